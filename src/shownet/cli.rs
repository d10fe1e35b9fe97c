//! shownet's command line: the options of shownet.py's `get_options_parser` (both
//! generations: the 2012 `--norm-filters` and `--local-plane` too), the training
//! options it kept (`--train-range`, `--test-range`; the 2012 `--data-path`), and ours
//! (`--dump-json`, `--out-dir`, `--filter-start`, `--num-filters`, `--seed`).
//!
//! Values are given as `--name=value` or `--name value`; the 0/1 options may also be
//! given bare (`--no-rgb` means `--no-rgb=1`).

use clap::Parser;
use std::path::PathBuf;

/// A batch range as options.py's `RangeOptionParser` reads it: `a-b` or `n`.
#[derive(Clone, Debug, PartialEq)]
pub struct Range(pub Vec<i64>);

fn range(text: &str) -> Result<Range, String> {
    match crate::options::parse(&crate::options::Kind::Range, text) {
        Ok(crate::config::value::Value::List(v)) => {
            Ok(Range(v.iter().filter_map(|x| x.as_int()).collect()))
        }
        Ok(_) => Err("argument is not a range".into()),
        Err(e) => Err(e),
    }
}

/// options.py's `BooleanOptionParser`: `0` or `1`.
fn boolean(text: &str) -> Result<bool, String> {
    match text {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err("argument is not a boolean (0 or 1)".into()),
    }
}

/// Show what a cuda-convnet model learned: cost curves, filters, predictions, features
/// (shownet.py of both generations; figures are written as PNG files).
#[derive(Parser, Debug, Clone)]
#[command(name = "shownet", version, infer_long_args = true)]
pub struct Args {
    /// Checkpoint directory (its newest file is read) or file.
    #[arg(short = 'f', value_name = "PATH")]
    pub load_file: PathBuf,
    /// Print the whole decoded checkpoint as JSON on stdout, and nothing else.
    #[arg(long = "dump-json")]
    pub dump_json: bool,

    /// Plot this cost's training and test values (cost.png).
    #[arg(long = "show-cost", value_name = "COST")]
    pub show_cost: Option<String>,
    /// Which value of the cost --show-cost plots.
    #[arg(long = "cost-idx", value_name = "N", default_value_t = 0)]
    pub cost_idx: usize,

    /// Draw the filters of this conv, local or fc layer (filters.png).
    #[arg(long = "show-filters", value_name = "LAYER")]
    pub show_filters: Option<String>,
    /// Which of the layer's weight matrices (one per input) --show-filters draws.
    #[arg(long = "input-idx", value_name = "N", default_value_t = 0)]
    pub input_idx: usize,
    /// Channels of the fc layer given to --show-filters (fc layers only).
    #[arg(long = "channels", value_name = "N", default_value_t = 0)]
    pub channels: usize,
    /// Don't combine 3 channels into colour; draw them side by side in grey.
    #[arg(long = "no-rgb", value_name = "0/1", num_args = 0..=1, require_equals = true,
          default_value = "0", default_missing_value = "1", value_parser = boolean)]
    pub no_rgb: bool,
    /// Treat 3 channels as YUV and convert them to RGB.
    #[arg(long = "yuv-to-rgb", value_name = "0/1", num_args = 0..=1, require_equals = true,
          default_value = "0", default_missing_value = "1", value_parser = boolean)]
    pub yuv_to_rgb: bool,
    /// Normalise each filter to zero mean and unit variance first (2012).
    #[arg(long = "norm-filters", value_name = "0/1", num_args = 0..=1, require_equals = true,
          default_value = "0", default_missing_value = "1", value_parser = boolean)]
    pub norm_filters: bool,
    /// 2012 local layers: which filter of every module to draw.
    #[arg(long = "local-plane", value_name = "N", default_value_t = 0)]
    pub local_plane: usize,
    /// First filter to draw (ours; a 2011 local layer otherwise starts at a random module).
    #[arg(long = "filter-start", value_name = "N")]
    pub filter_start: Option<usize>,
    /// Draw at most this many filters (ours; default the original's 16 rows, 24 in 2012).
    #[arg(long = "num-filters", value_name = "N")]
    pub num_filters: Option<usize>,

    /// Run the net on a test batch and draw test images with this softmax layer's top
    /// predictions (preds.png).
    #[arg(long = "show-preds", value_name = "SOFTMAX")]
    pub show_preds: Option<String>,
    /// Show only mistaken predictions (with --show-preds).
    #[arg(long = "only-errors", value_name = "0/1", num_args = 0..=1, require_equals = true,
          default_value = "0", default_missing_value = "1", value_parser = boolean)]
    pub only_errors: bool,

    /// Write this layer's outputs on every test batch as feature batches.
    #[arg(long = "write-features", value_name = "LAYER")]
    pub write_features: Option<String>,
    /// Directory for --write-features.
    #[arg(long = "feature-path", value_name = "DIR")]
    pub feature_path: Option<String>,

    /// Directory the figures are written to.
    #[arg(
        long = "out-dir",
        visible_alias = "out",
        value_name = "DIR",
        default_value = "."
    )]
    pub out_dir: PathBuf,
    /// Data directory (default: the checkpoint's --data-path).
    #[arg(long = "data-path", value_name = "DIR")]
    pub data_path: Option<PathBuf>,
    /// Test batches (default: the checkpoint's --test-range).
    #[arg(long = "test-range", value_name = "RANGE", value_parser = range)]
    pub test_range: Option<Range>,
    /// Training batches (default: the checkpoint's; --show-cost's epoch ticks use it).
    #[arg(long = "train-range", value_name = "RANGE", value_parser = range)]
    pub train_range: Option<Range>,
    /// Seed of the random choices (test cases for --show-preds, the module of a 2011
    /// local layer).
    #[arg(long = "seed", value_name = "N", default_value_t = 0)]
    pub seed: u64,
}

impl Args {
    /// The string options as the original tested them (`if self.show_cost:`): empty
    /// means not given.
    pub fn given(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.is_empty())
    }
}
