//! Port of layer.py's `MyConfigParser` value readers (`safe_get`, `safe_get_int`,
//! `safe_get_float`, `safe_get_bool`, `safe_get_*_list`) and of `FakeConfigParser`,
//! with the original's messages.
//!
//! Each reader returns `Ok(None)` where the key is absent, so the caller applies the
//! original's default (and its type: `initB` defaults to the int 0) or calls `required`.

use super::ini::{GetError, Ini};
use super::py;
use super::ConfigError;
use indexmap::IndexMap;

/// Where a layer's keys come from: its section of a file, or the dict a detached
/// neuron layer is parsed from (`FakeConfigParser`, no interpolation).
pub enum Source<'a> {
    Ini(&'a Ini),
    Fake(IndexMap<String, String>),
}

/// The keys of one layer (section `name`).
pub struct Section<'a> {
    pub src: &'a Source<'a>,
    pub name: &'a str,
}

impl Section<'_> {
    fn err(&self, message: String) -> ConfigError {
        ConfigError::layer(self.name, message)
    }

    /// `safe_get` with no default: `Ok(None)` for a missing key.
    pub fn str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.src {
            Source::Fake(d) => Ok(d.get(key).cloned()),
            Source::Ini(ini) => match ini.get(self.name, key) {
                Ok(v) => Ok(Some(v)),
                Err(GetError::NoOption) => Ok(None),
                Err(GetError::NoSection) => Err(self
                    .err(format!(
                        "Layer '{}': no section for parameter '{key}' (NoSectionError)",
                        self.name
                    ))
                    .key(key)
                    .crash()),
                Err(GetError::Interpolation { class, detail }) => Err(self
                    .err(format!(
                        "Layer '{}': parameter '{key}': {class}: {detail}",
                        self.name
                    ))
                    .key(key)
                    .crash()),
            },
        }
    }

    /// "Layer 'X': required parameter 'Y' missing".
    pub fn required<T>(&self, key: &str, v: Option<T>) -> Result<T, ConfigError> {
        v.ok_or_else(|| {
            self.err(format!(
                "Layer '{}': required parameter '{key}' missing",
                self.name
            ))
            .key(key)
        })
    }

    pub fn req_str(&self, key: &str) -> Result<String, ConfigError> {
        let v = self.str(key)?;
        self.required(key, v)
    }

    pub fn req_int(&self, key: &str) -> Result<i64, ConfigError> {
        let v = self.int(key)?;
        self.required(key, v)
    }

    pub fn req_float(&self, key: &str) -> Result<f64, ConfigError> {
        let v = self.float(key)?;
        self.required(key, v)
    }

    pub fn req_bool(&self, key: &str) -> Result<bool, ConfigError> {
        let v = self.bool(key)?;
        self.required(key, v)
    }

    pub fn req_int_list(&self, key: &str) -> Result<Vec<i64>, ConfigError> {
        let v = self.int_list(key)?;
        self.required(key, v)
    }

    pub fn req_float_list(&self, key: &str) -> Result<Vec<f64>, ConfigError> {
        let v = self.float_list(key)?;
        self.required(key, v)
    }

    fn typed<T>(
        &self,
        key: &str,
        typestr: &str,
        conv: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => conv(&s).map(Some).ok_or_else(|| {
                self.err(format!(
                    "Layer '{}': parameter '{key}' must be {typestr}",
                    self.name
                ))
                .key(key)
            }),
        }
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        let v = self.typed(key, "int", py::int)?;
        v.map(|v| self.c_int(key, v)).transpose()
    }

    /// The C++ side reads every size as a C `int`; wider values are refused here
    /// rather than overflowing later (Python itself would carry them as longs).
    fn c_int(&self, key: &str, v: i64) -> Result<i64, ConfigError> {
        if i32::try_from(v).is_ok() {
            return Ok(v);
        }
        Err(self
            .err(format!(
                "Layer '{}': parameter '{key}' ({v}) does not fit the 32-bit ints of the C++ side",
                self.name
            ))
            .key(key)
            .crash())
    }

    pub fn float(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        self.typed(key, "float", py::float)
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.typed(key, "bool", py::boolean)
    }

    /// "... must be ','-delimited list of `<typestr>`", the error of `safe_get_list`; also
    /// what a missing key with a non-list default gives (the `initW` default bug).
    pub fn list_error(&self, key: &str, typestr: &str) -> ConfigError {
        self.err(format!(
            "Layer '{}': parameter '{key}' must be ','-delimited list of {typestr}",
            self.name
        ))
        .key(key)
    }

    fn list<T>(
        &self,
        key: &str,
        typestr: &str,
        conv: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<Vec<T>>, ConfigError> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => s
                .split(',')
                .map(|x| conv(py::strip(x)))
                .collect::<Option<Vec<T>>>()
                .map(Some)
                .ok_or_else(|| self.list_error(key, typestr)),
        }
    }

    pub fn str_list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        self.list(key, "strings", |x| Some(x.to_string()))
    }

    pub fn int_list(&self, key: &str) -> Result<Option<Vec<i64>>, ConfigError> {
        let v = self.list(key, "ints", py::int)?;
        v.map(|l| l.into_iter().map(|x| self.c_int(key, x)).collect())
            .transpose()
    }

    pub fn float_list(&self, key: &str) -> Result<Option<Vec<f64>>, ConfigError> {
        self.list(key, "floats", py::float)
    }

    /// Bool lists accept only `true`/`1` (any case) as true; everything else is false.
    pub fn bool_list(&self, key: &str) -> Result<Option<Vec<bool>>, ConfigError> {
        self.list(key, "bools", |x| {
            Some(matches!(x.to_ascii_lowercase().as_str(), "true" | "1"))
        })
    }
}
