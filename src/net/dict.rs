//! Reading a layer dictionary the way layer.cu's constructors read theirs
//! (`pyDictGetInt`, `pyDictGetFloat`, `pyDictGetIntV`, `pyDictGetMatrix`, ...).

use super::NetError;
use crate::config::value::{Array, Dict, Value};
use crate::nvmatrix::NvMatrix;

/// One layer's dictionary, with errors that name the layer and key.
pub struct LayerDict<'a> {
    pub name: &'a str,
    pub d: &'a Dict,
}

impl<'a> LayerDict<'a> {
    pub fn new(d: &'a Dict) -> Result<LayerDict<'a>, NetError> {
        let name = d
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| NetError {
                layer: None,
                message: "a layer without a name".into(),
            })?;
        Ok(LayerDict { name, d })
    }

    pub fn err(&self, message: impl Into<String>) -> NetError {
        NetError {
            layer: Some(self.name.to_string()),
            message: message.into(),
        }
    }

    fn get(&self, key: &str) -> Result<&'a Value, NetError> {
        self.d
            .get(key)
            .ok_or_else(|| self.err(format!("missing key '{key}'")))
    }

    pub fn has(&self, key: &str) -> bool {
        self.d.contains_key(key)
    }

    pub fn int(&self, key: &str) -> Result<i64, NetError> {
        self.get(key)?
            .as_int()
            .ok_or_else(|| self.err(format!("key '{key}' is not an int")))
    }

    pub fn usize(&self, key: &str) -> Result<usize, NetError> {
        let v = self.int(key)?;
        usize::try_from(v).map_err(|_| self.err(format!("key '{key}' is negative ({v})")))
    }

    /// `pyDictGetFloat`: a Python float (or int) read as a C float.
    pub fn float(&self, key: &str) -> Result<f32, NetError> {
        Ok(self.f64(key)? as f32)
    }

    pub fn f64(&self, key: &str) -> Result<f64, NetError> {
        self.get(key)?
            .as_f64()
            .ok_or_else(|| self.err(format!("key '{key}' is not a number")))
    }

    pub fn str(&self, key: &str) -> Result<&'a str, NetError> {
        self.get(key)?
            .as_str()
            .ok_or_else(|| self.err(format!("key '{key}' is not a string")))
    }

    pub fn bool(&self, key: &str) -> Result<bool, NetError> {
        Ok(self.get(key)?.truthy())
    }

    pub fn list(&self, key: &str) -> Result<&'a [Value], NetError> {
        self.get(key)?
            .as_list()
            .ok_or_else(|| self.err(format!("key '{key}' is not a list")))
    }

    pub fn ints(&self, key: &str) -> Result<Vec<i64>, NetError> {
        self.list(key)?
            .iter()
            .map(|v| {
                v.as_int()
                    .ok_or_else(|| self.err(format!("key '{key}' holds a non-int")))
            })
            .collect()
    }

    pub fn usizes(&self, key: &str) -> Result<Vec<usize>, NetError> {
        self.ints(key)?
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| self.err(format!("key '{key}' holds {v}"))))
            .collect()
    }

    pub fn floats(&self, key: &str) -> Result<Vec<f32>, NetError> {
        self.list(key)?
            .iter()
            .map(|v| {
                v.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| self.err(format!("key '{key}' holds a non-number")))
            })
            .collect()
    }

    pub fn matrix(&self, key: &str) -> Result<NvMatrix, NetError> {
        match self.get(key)? {
            Value::Array(a) => Ok(to_matrix(a)),
            _ => Err(self.err(format!("key '{key}' is not a float32 matrix"))),
        }
    }

    pub fn matrices(&self, key: &str) -> Result<Vec<NvMatrix>, NetError> {
        self.list(key)?
            .iter()
            .map(|v| match v {
                Value::Array(a) => Ok(to_matrix(a)),
                _ => Err(self.err(format!("key '{key}' holds a non-matrix"))),
            })
            .collect()
    }
}

/// `Matrix` over a numpy array, then `copyFromHost(m, true)`: the same shape and
/// memory order (Fortran order is NVMatrix's `trans`).
pub fn to_matrix(a: &Array) -> NvMatrix {
    NvMatrix::from_vec(a.rows, a.cols, a.fortran, a.data.clone())
}

/// `copyToHost` into the dictionary's array: the values in the array's own order.
pub fn store(m: &NvMatrix, a: &mut Array) {
    assert_eq!(
        (m.rows(), m.cols()),
        (a.rows, a.cols),
        "matrix shape changed"
    );
    if m.is_trans() == a.fortran {
        a.data.copy_from_slice(m.data());
    } else {
        for i in 0..a.rows {
            for j in 0..a.cols {
                let k = if a.fortran {
                    j * a.rows + i
                } else {
                    i * a.cols + j
                };
                a.data[k] = m.get(i, j);
            }
        }
    }
}
