//! Port of layer.py of both generations (cuda-convnet 1 at 6627f67 and the 2012 code):
//! `LayerParser.parse_layers` and every layer, neuron, schedule and quantizer parser,
//! over a port of Python 2.7's `SafeConfigParser`.
//!
//! The result is the list (2011) or dict (2012) of layer dictionaries the original
//! hands to its C++ side and pickles into checkpoints, as [`value::Dict`]s.

pub mod convert;
pub mod dictorder;
pub mod ini;
mod layer;
mod layers;
mod parser;
pub mod py;
pub mod reader;
pub mod specs;
pub mod value;

pub use parser::{detect_generation, parse_layers, reparse_params, Net};

use std::fmt;
use std::path::{Path, PathBuf};

/// Which original parser to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// cuda-convnet 1 (2011): layers in a list, inputs by index.
    C1,
    /// The 2012 AlexNet code: layers in a dict by name, `gpu=` placement, schedules.
    A12,
}

/// What the parser asks of the model (`model.op`) and its data provider.
#[derive(Debug, Clone)]
pub struct Model {
    /// `get_data_dims(idx)` by `dataIdx`.
    pub data_dims: Vec<i64>,
    /// `get_num_classes()`.
    pub num_classes: i64,
    /// `--num-gpus`: `gpu=` must lie in `0..num_gpus` (2012).
    pub num_gpus: i64,
    /// `--conserve-mem` (0/1), copied into every layer.
    pub conserve_mem: i64,
    /// Seed of the random weight initialisation (the original draws from numpy's
    /// unseeded global generator; the draws need not equal numpy's).
    pub seed: u64,
}

/// A rejected configuration: file, layer and key where known, and the message. Where
/// the original raised a `LayerParsingError`, `message` is its text verbatim; where the
/// original crashed with an uncaught exception, `crash` is set and the message is ours.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub layer: Option<String>,
    pub key: Option<String>,
    pub message: String,
    pub crash: bool,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            layer: None,
            key: None,
            message: message.into(),
            crash: false,
        }
    }

    pub fn layer(layer: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            layer: Some(layer.to_string()),
            ..ConfigError::new(message)
        }
    }

    pub fn key(mut self, key: &str) -> ConfigError {
        self.key = Some(key.to_string());
        self
    }

    pub fn crash(mut self) -> ConfigError {
        self.crash = true;
        self
    }

    /// Attach the file being read unless one is already named.
    pub fn in_file(mut self, file: &Path) -> ConfigError {
        self.file.get_or_insert_with(|| file.to_path_buf());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        f.write_str(&self.message)?;
        if let Some(key) = &self.key {
            if !self.message.contains(&format!("'{key}'")) {
                write!(f, " (key '{key}')")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
