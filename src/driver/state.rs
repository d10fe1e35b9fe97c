//! Port of gpumodel.py's model state (both generations): `train_outputs` and
//! `test_outputs` as convnet.py keeps, prints and pickles them, the checkpoint
//! directory's name, `os.path.join`/`dirname` as the original combined paths, and the
//! local time the original formatted with `strftime`/`asctime`.

use crate::checkpoint::model::pystr;
use crate::checkpoint::value::{Obj, PyObj};
use crate::config::dictorder::iteration_order;
use crate::net::Cost;
use std::cell::RefCell;
use std::rc::Rc;

/// One entry of `train_outputs` / `test_outputs`: `({costName: [values...]}, numCases)`.
/// The costs are in the order the original's dict iterated them (which is the order
/// they print and pickle in); the values are sums over the cases until the printing
/// divides them by `num_cases` in place, as the original's `print_costs` did.
#[derive(Clone, Debug, PartialEq)]
pub struct CostRecord {
    pub costs: Vec<(String, Vec<f64>)>,
    pub num_cases: i64,
}

impl CostRecord {
    /// `finishBatch()`'s `(dict, numCases)`: the C++ side filled a Python dict from a
    /// `std::map` (names in byte order), so the dict iterates in CPython 2.7's hash
    /// order of the sorted names.
    pub fn from_cost(cost: &Cost) -> CostRecord {
        let mut names: Vec<&String> = cost.values.keys().collect();
        names.sort();
        let costs = iteration_order(&names)
            .into_iter()
            .map(|i| (names[i].clone(), cost.values[names[i]].1.clone()))
            .collect();
        CostRecord {
            costs,
            num_cases: cost.num_cases as i64,
        }
    }

    /// `aggregate_test_outputs`: the cost vectors summed element by element into the
    /// first entry's (in list order), and the case counts summed.
    pub fn aggregate(outputs: &[CostRecord]) -> CostRecord {
        let mut first = outputs[0].clone();
        for o in &outputs[1..] {
            for (name, v) in &o.costs {
                if let Some((_, acc)) = first.costs.iter_mut().find(|(n, _)| n == name) {
                    for (a, b) in acc.iter_mut().zip(v) {
                        *a += b;
                    }
                }
            }
        }
        first.num_cases = outputs.iter().map(|o| o.num_cases).sum();
        first
    }

    /// `str((costs, numCases))` as Python 2 printed it in `--test-only` mode.
    pub fn repr(&self) -> String {
        let items: Vec<String> = self
            .costs
            .iter()
            .map(|(n, v)| {
                let vals: Vec<String> = v.iter().map(|x| super::format::repr_float(*x)).collect();
                format!("{}: [{}]", super::format::repr_str(n), vals.join(", "))
            })
            .collect();
        format!("({{{}}}, {})", items.join(", "), self.num_cases)
    }

    /// The pickled tuple.
    pub fn to_pyobj(&self) -> Obj {
        let dict = self
            .costs
            .iter()
            .map(|(n, v)| {
                let list = v.iter().map(|x| Rc::new(PyObj::Float(*x))).collect();
                (pystr(n), Rc::new(PyObj::List(RefCell::new(list))))
            })
            .collect();
        Rc::new(PyObj::Tuple(vec![
            Rc::new(PyObj::Dict(RefCell::new(dict))),
            Rc::new(PyObj::Int(self.num_cases)),
        ]))
    }

    /// An entry of a checkpoint's `train_outputs` / `test_outputs`.
    pub fn from_pyobj(o: &PyObj) -> Result<CostRecord, String> {
        let items: Vec<Obj> = match o {
            PyObj::Tuple(t) => t.clone(),
            PyObj::List(l) => l.borrow().clone(),
            _ => return Err("an output entry is not a (costs, numCases) pair".into()),
        };
        let [costs, num] = &items[..] else {
            return Err("an output entry is not a (costs, numCases) pair".into());
        };
        let PyObj::Dict(d) = &**costs else {
            return Err("an output entry's costs are not a dict".into());
        };
        let number = |x: &PyObj| match x {
            PyObj::Float(f) => Some(*f),
            PyObj::Int(i) => Some(*i as f64),
            PyObj::Bool(b) => Some(*b as i64 as f64),
            _ => None,
        };
        let costs = d
            .borrow()
            .iter()
            .map(|(k, v)| {
                let name = k.as_text().ok_or("a cost name is not a string")?;
                let values = match &**v {
                    PyObj::List(l) => l.borrow().iter().map(|x| number(x)).collect(),
                    PyObj::Tuple(t) => t.iter().map(|x| number(x)).collect(),
                    _ => None,
                }
                .ok_or(format!("cost '{name}' is not a list of numbers"))?;
                Ok((name, values))
            })
            .collect::<Result<_, String>>()?;
        let num_cases = match &**num {
            PyObj::Int(i) => *i,
            _ => return Err("an output entry's numCases is not an int".into()),
        };
        Ok(CostRecord { costs, num_cases })
    }
}

/// A list of outputs as pickled.
pub fn outputs_to_pyobj(outputs: &[CostRecord]) -> Obj {
    Rc::new(PyObj::List(RefCell::new(
        outputs.iter().map(CostRecord::to_pyobj).collect(),
    )))
}

/// A checkpoint's list of outputs.
pub fn outputs_from_pyobj(o: Option<Obj>) -> Result<Vec<CostRecord>, String> {
    match o.as_deref() {
        None => Ok(vec![]),
        Some(PyObj::List(l)) => l
            .borrow()
            .iter()
            .map(|x| CostRecord::from_pyobj(x))
            .collect(),
        Some(_) => Err("train_outputs/test_outputs is not a list".into()),
    }
}

/// A broken-down local time (`time.localtime()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    /// 1..=12
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

impl LocalTime {
    /// Now, in the machine's time zone.
    pub fn now() -> LocalTime {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as libc::time_t;
        // SAFETY: localtime_r only writes the tm we hand it.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
        if !ok {
            return LocalTime::from_unix_utc(t as i64);
        }
        LocalTime {
            year: tm.tm_year + 1900,
            month: (tm.tm_mon + 1) as u32,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            minute: tm.tm_min as u32,
            second: tm.tm_sec as u32,
            weekday: tm.tm_wday as u32,
        }
    }

    /// A Unix time in UTC (for tests, and where the time zone cannot be read).
    pub fn from_unix_utc(t: i64) -> LocalTime {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400) as u32;
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + if month <= 2 { 1 } else { 0 }) as i32;
        LocalTime {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// `strftime('%Y-%m-%d_%H.%M.%S')`.
    pub fn stamp(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}_{:02}.{:02}.{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `asctime()`: `Sat Nov 28 03:24:47 2026` (the day padded with a space).
    pub fn asctime(&self) -> String {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "{} {} {:>2} {:02}:{:02}:{:02} {}",
            DAYS[self.weekday as usize % 7],
            MONTHS[(self.month as usize + 11) % 12],
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.year
        )
    }
}

/// The checkpoint directory of a fresh model: `model_name + "_" + "_".join(filename
/// options) + "_" + strftime(...)`; ConvNet names no filename options, hence the
/// double underscore: `ConvNet__2012-08-03_14.28.23`.
pub fn checkpoint_dir_name(t: &LocalTime) -> String {
    format!("ConvNet__{}", t.stamp())
}

/// `os.path.join(a, b)` (posixpath): `b` absolute replaces `a`; otherwise one `/`
/// between them unless `a` is empty or already ends in one.
pub fn path_join(a: &str, b: &str) -> String {
    if b.starts_with('/') || a.is_empty() {
        b.to_string()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// `os.path.dirname(p)` (posixpath): everything before the last `/`, with trailing
/// slashes removed unless it is all slashes.
pub fn dirname(p: &str) -> String {
    match p.rfind('/') {
        None => String::new(),
        Some(i) => {
            let head = &p[..=i];
            if head.chars().all(|c| c == '/') {
                head.to_string()
            } else {
                head.trim_end_matches('/').to_string()
            }
        }
    }
}

/// `get_num_batches_done()`: `len(train_range)*(epoch-1) + batchnum - train_range[0] + 1`
/// (it assumes a contiguous range, as the original did).
pub fn num_batches_done(train_range: &[i64], epoch: i64, batchnum: i64) -> i64 {
    train_range.len() as i64 * (epoch - 1) + batchnum - train_range.first().copied().unwrap_or(0)
        + 1
}

/// The 2012 schedules' progress: `min(1, max(0, (batches done - 1) / (epochs *
/// len(train_range))))` (0 where the original would divide by zero).
pub fn progress(train_range: &[i64], num_epochs: i64, epoch: i64, batchnum: i64) -> f64 {
    let total = num_epochs * train_range.len() as i64;
    if total == 0 {
        return 0.0;
    }
    let done = num_batches_done(train_range, epoch, batchnum);
    ((done - 1) as f64 / total as f64).clamp(0.0, 1.0)
}

/// Where a resumed training provider starts: the saved `(epoch, batchnum)`, then
/// `advance_batch()` (a batch number not in the range means its first batch).
pub fn advanced(range: &[i64], epoch: i64, batchnum: i64) -> (i64, i64) {
    let idx = range.iter().position(|&b| b == batchnum).unwrap_or(0);
    let next = (idx + 1) % range.len().max(1);
    let epoch = if next == 0 { epoch + 1 } else { epoch };
    (epoch, range.get(next).copied().unwrap_or(batchnum))
}
