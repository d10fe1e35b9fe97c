//! Port of shownet.py (cuda-convnet 1 and the 2012 code): look inside a checkpoint.
//! The original opened matplotlib windows; we write PNG files (cost.png, filters.png,
//! preds.png) into `--out-dir` and print what they show as text on stdout.
//!
//! Modes, run in the original's order when several are given: `--show-cost`
//! ([`cost`]), `--show-filters` ([`filters`]), `--show-preds` ([`preds`]),
//! `--write-features` ([`features`]). Without any, a text summary of the model
//! ([`summary`], ours). Errors print one line `shownet: error: ...` on stderr and
//! exit with status 1.

pub mod canvas;
pub mod cli;
pub mod cost;
pub mod features;
pub mod filters;
pub mod png;
pub mod preds;
pub mod summary;

use crate::checkpoint::{self, model, value::Obj, value::PyObj};
use crate::config::value::{Array, Dict, Value};
use crate::config::{Generation, Net};
use crate::data::batches::{batch_meta, BatchMeta};
use crate::data::provider::{get_instance, DataProvider, DpParams};
use crate::driver::state::{self, CostRecord};
use crate::net::{ConvNet, NetOptions};
use crate::nvmatrix::NvMatrix;
use crate::options::Options;
use cli::Args;
use std::path::{Path, PathBuf};

pub type Res<T> = Result<T, String>;

/// What shownet reads of a checkpoint (`IGPUModel.__init__` with a load_dic).
pub struct Loaded {
    pub gen: Generation,
    /// `model_state['layers']`.
    pub net: Net,
    /// The checkpoint's options (`load_dic['op']`).
    pub op: Options,
    pub epoch: i64,
    pub batchnum: i64,
    pub train_outputs: Vec<CostRecord>,
    pub test_outputs: Vec<CostRecord>,
}

impl Loaded {
    /// Reads a checkpoint file or directory.
    pub fn load(path: &Path) -> Res<Loaded> {
        let ckpt = checkpoint::load(path).map_err(|e| format!("Error loading checkpoint: {e}"))?;
        Loaded::from_obj(&ckpt).map_err(|e| format!("Error loading checkpoint: {e}"))
    }

    pub fn from_obj(ckpt: &Obj) -> Res<Loaded> {
        let ms = ckpt
            .get("model_state")
            .ok_or("the checkpoint has no 'model_state'")?;
        let layers = ms.get("layers").ok_or("model_state has no 'layers'")?;
        let net = model::layers_from(&layers)?;
        let op = match ckpt.get("op") {
            Some(op) => Options::from_pyobj(&op)?,
            None => return Err("the checkpoint has no 'op'".into()),
        };
        let int = |k: &str| match ms.get(k).as_deref() {
            Some(PyObj::Int(i)) => Ok(*i),
            _ => Err(format!("model_state has no int '{k}'")),
        };
        Ok(Loaded {
            gen: net.generation,
            epoch: int("epoch")?,
            batchnum: int("batchnum")?,
            train_outputs: state::outputs_from_pyobj(ms.get("train_outputs"))?,
            test_outputs: state::outputs_from_pyobj(ms.get("test_outputs"))?,
            net,
            op,
        })
    }

    pub fn opt_int(&self, name: &str) -> Option<i64> {
        self.op.get(name).and_then(Value::as_int)
    }

    pub fn opt_text(&self, name: &str) -> String {
        self.op
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    pub fn opt_range(&self, name: &str) -> Vec<i64> {
        self.op
            .get(name)
            .and_then(Value::as_list)
            .unwrap_or(&[])
            .iter()
            .filter_map(Value::as_int)
            .collect()
    }

    /// The layer dict named `name`.
    pub fn layer(&self, name: &str) -> Option<&Dict> {
        self.net
            .layers
            .iter()
            .find(|l| l.get("name").and_then(Value::as_str) == Some(name))
    }

    /// convnet.py's `get_layer_idx(name, check_type)` checks, with its messages.
    pub fn check_layer(&self, name: &str, ty: Option<&str>) -> Res<&Dict> {
        let l = self
            .layer(name)
            .ok_or_else(|| format!("Layer with name '{name}' not defined."))?;
        if let Some(ty) = ty {
            let t = str_of(l, "type");
            if t != ty {
                return Err(format!(
                    "Layer with name '{name}' has type '{t}'; should be '{ty}'."
                ));
            }
        }
        Ok(l)
    }
}

/// `n` and the word, plural unless `n` is 1 (`1 test`, `2 tests`).
pub fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else if word.ends_with("ch") {
        format!("{n} {word}es")
    } else {
        format!("{n} {word}s")
    }
}

pub fn str_of<'a>(l: &'a Dict, key: &str) -> &'a str {
    l.get(key).and_then(Value::as_str).unwrap_or_default()
}

pub fn int_of(l: &Dict, key: &str) -> Option<i64> {
    l.get(key).and_then(Value::as_int)
}

/// Entry `i` of a list-valued key (`filterChannels[i]`, ...).
pub fn int_at(l: &Dict, key: &str, i: usize) -> Option<i64> {
    l.get(key)
        .and_then(Value::as_list)
        .and_then(|v| v.get(i))
        .and_then(Value::as_int)
}

/// Element `(r, c)` of a 2-D numpy array in whichever order it is stored.
pub fn at(a: &Array, r: usize, c: usize) -> f32 {
    if a.fortran {
        a.data[c * a.rows + r]
    } else {
        a.data[r * a.cols + c]
    }
}

/// What the modes that run the net need: the net, the test data provider, the data
/// directory's batches.meta. Built only when such a mode is asked for, as the original
/// only set up the GPU and the providers for them.
pub struct Runner {
    pub convnet: ConvNet,
    pub test_dp: Box<dyn DataProvider>,
    pub data_path: PathBuf,
    pub meta: Result<BatchMeta, String>,
}

impl Runner {
    pub fn new(m: &Loaded, args: &Args) -> Res<Runner> {
        let data_path = args
            .data_path
            .clone()
            .unwrap_or_else(|| PathBuf::from(m.opt_text("data_path")));
        let test_range = match &args.test_range {
            Some(r) => r.0.clone(),
            None => m.opt_range("test_batch_range"),
        };
        let test_range: Vec<usize> = test_range
            .iter()
            .map(|&b| usize::try_from(b).map_err(|_| format!("test batch {b} is negative")))
            .collect::<Res<_>>()?;
        if test_range.is_empty() {
            return Err("no test batches (--test-range)".into());
        }
        let dp_type = m.opt_text("dp_type");
        // Multiview testing is off here: shownet looks at one view of each case.
        let scalar_mean = m.op.get("scalar_mean").and_then(Value::as_f64);
        let dp_params = DpParams {
            crop_border: m.opt_int("crop_border").unwrap_or(0).max(0) as usize,
            scalar_mean: scalar_mean.is_some_and(|v| v != 0.0),
            ..DpParams::default()
        };
        let test_dp = get_instance(
            m.gen,
            &data_path,
            test_range,
            1,
            None,
            (!dp_type.is_empty()).then_some(dp_type.as_str()),
            dp_params,
            true,
            args.seed.wrapping_add(2),
        )
        .map_err(|e| format!("Unable to create data provider: {e}"))?;
        let meta = batch_meta(&data_path);
        let opts = NetOptions {
            minibatch_size: m.opt_int("minibatch_size").unwrap_or(128).max(1) as usize,
            wupdate_freq: 1,
            random_seed: args.seed,
        };
        let convnet =
            ConvNet::new(&m.net, opts).map_err(|e| format!("Error creating ConvNet: {e}"))?;
        Ok(Runner {
            convnet,
            test_dp,
            data_path,
            meta,
        })
    }
}

/// Columns `idx` of a `(rows, cases)` row-major matrix.
pub fn select_columns(m: &NvMatrix, idx: &[usize]) -> NvMatrix {
    let rows = m.rows();
    let mut data = Vec::with_capacity(rows * idx.len());
    for i in 0..rows {
        for &j in idx {
            data.push(m.get(i, j));
        }
    }
    NvMatrix::from_vec(rows, idx.len(), false, data)
}

/// Writes a figure, creating the directory; returns its path.
pub fn write_png(dir: &Path, name: &str, canvas: &canvas::Canvas) -> Res<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, canvas.to_png()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The shownet program: `args` parsed; what it prints goes to `out`.
pub fn run(args: &Args, out: &mut dyn std::io::Write) -> Res<()> {
    let w = |out: &mut dyn std::io::Write, s: &str| {
        writeln!(out, "{s}").map_err(|e| format!("cannot write to stdout: {e}"))
    };
    if args.dump_json {
        let obj = checkpoint::load(&args.load_file).map_err(|e| e.to_string())?;
        let mut s = String::new();
        checkpoint::value::to_json(&obj, &mut s);
        return w(out, &s);
    }
    if args.only_errors && Args::given(&args.show_preds).is_none() {
        return Err("Option --only-errors (Show only mistaken predictions (to be used with --show-preds)) requires option --show-preds (Show predictions made by given softmax on test set)".into());
    }
    let m = Loaded::load(&args.load_file)?;
    let cost = Args::given(&args.show_cost);
    let filt = Args::given(&args.show_filters);
    let preds = Args::given(&args.show_preds);
    let feats = Args::given(&args.write_features);
    // Check the layer names before anything runs, as init_model_state did.
    if let Some(p) = preds {
        m.check_layer(p, Some("softmax"))?;
    }
    if let Some(f) = feats {
        m.check_layer(f, None)?;
        if args.feature_path.as_deref().unwrap_or("").is_empty() {
            return Err("--write-features needs --feature-path (the directory to write to)".into());
        }
    }
    if cost.is_none() && filt.is_none() && preds.is_none() && feats.is_none() {
        for l in summary::summary(&m, &args.load_file) {
            w(out, &l)?;
        }
        return Ok(());
    }
    if let Some(name) = cost {
        let lines = cost::show_cost(&m, args, name)?;
        for l in lines {
            w(out, &l)?;
        }
    }
    if let Some(name) = filt {
        let lines = filters::show_filters(&m, args, name)?;
        for l in lines {
            w(out, &l)?;
        }
    }
    if preds.is_some() || feats.is_some() {
        let mut runner = Runner::new(&m, args)?;
        if let Some(name) = preds {
            for l in preds::show_preds(&m, args, &mut runner, name)? {
                w(out, &l)?;
            }
        }
        if let Some(name) = feats {
            features::write_features(&m, args, &mut runner, name, &mut |s| w(out, s))?;
        }
    }
    Ok(())
}

/// The `shownet` program: returns the exit status.
pub fn main(argv: Vec<String>) -> i32 {
    use clap::Parser;
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return 0;
            }
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            eprintln!(
                "shownet: error: {} (see shownet --help)",
                first.trim_start_matches("error: ")
            );
            return 1;
        }
    };
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match run(&args, &mut lock) {
        Ok(()) => 0,
        Err(e) => {
            use std::io::Write;
            let _ = lock.flush();
            eprintln!("shownet: error: {e}");
            1
        }
    }
}
