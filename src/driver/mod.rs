//! Port of convnet.py and gpumodel.py of both generations (cuda-convnet 1 and the 2012
//! AlexNet code): the `convnet` training program. Options are read as
//! `OptionsParser.parse` read them ([`cli`], [`crate::options`]), a checkpoint given with
//! `-f` is resumed by the original's merge rules, and [`train`] runs `IGPUModel.train`
//! with ConvNet's overrides: the per-batch cost lines, the test block, checkpoints,
//! `--test-only`, `--check-grads` and the multiview test. `--dump-layers` and `--bench`
//! are ours.
//!
//! Output follows the original's `print` statements byte for byte on stdout
//! ([`format::PyPrint`]); where the original printed an error and stopped, we print
//! `convnet: error: ...` on stderr and exit with status 1 (the original's `sys.exit()`
//! gave 0 for several of those).

pub mod bench;
pub mod cli;
pub mod find_similar;
pub mod format;
pub mod preds;
pub mod state;
pub mod testlog;
pub mod train;
pub mod verify_preds;

use crate::checkpoint;
use crate::checkpoint::value::{Obj, PyObj};
use crate::config::Net;
use crate::config::{detect_generation, Generation};
use crate::net::{ConvNet, Cost, Device, GcSummary, NetError, NetOptions};
use crate::nvmatrix::NvMatrix;
use crate::options::{OptionError, Options};
use cli::{parse_command_line, Compat};
use std::io::{IsTerminal, Write};
use std::path::Path;

/// How the program stops: its exit status, and the error to print on stderr.
#[derive(Debug)]
pub struct Stop {
    pub code: i32,
    pub message: Option<String>,
}

impl Stop {
    /// A normal end (the original's `sys.exit(0)`).
    pub fn done() -> Stop {
        Stop {
            code: 0,
            message: None,
        }
    }
    /// An error: `convnet: error: <message>`, status 1.
    pub fn error(message: impl Into<String>) -> Stop {
        Stop {
            code: 1,
            message: Some(message.into()),
        }
    }
    /// A stop with status 1 whose message has already been printed.
    pub fn failed() -> Stop {
        Stop {
            code: 1,
            message: None,
        }
    }
}

impl From<OptionError> for Stop {
    fn from(e: OptionError) -> Stop {
        Stop::error(e.0)
    }
}

/// What the driver asks of the net: the calls convnet.py made into its C++ module
/// (`startBatch`/`finishBatch` for training and testing, `startMultiviewTest`,
/// `startFeatureWriter`, `checkGradients`, `syncWithHost`). [`ConvNet`] is the
/// implementation; tests drive the loop with stand-ins.
pub trait Network {
    /// `startBatch(data, progress, test=False)` + `finishBatch()`.
    fn train_batch(&mut self, data: &[NvMatrix], progress: f64) -> Result<Cost, NetError>;
    /// Re-seeds the net's random numbers (see [`ConvNet::set_random_seed`]).
    fn reseed(&mut self, _seed: u64) {}
    /// `startBatch(data, test=True)` + `finishBatch()`.
    fn test_batch(&mut self, data: &[NvMatrix]) -> Result<Cost, NetError>;
    /// `startMultiviewTest(data, numViews, logreg)` + `finishBatch()`.
    fn multiview_test(
        &mut self,
        data: &[NvMatrix],
        num_views: usize,
        logreg: &str,
    ) -> Result<Cost, NetError>;
    /// `startFeatureWriter(data, layer)`: the layer's activations `(cases, outputs)`.
    fn features(&mut self, data: &[NvMatrix], layer: &str) -> Result<(Cost, NvMatrix), NetError>;
    /// `checkGradients(data)`, its report written to `out`.
    fn check_gradients(
        &mut self,
        data: &[NvMatrix],
        out: &mut dyn Write,
    ) -> Result<GcSummary, NetError>;
    /// `syncWithHost()`: the weights back into the layer dicts.
    fn sync_to_host(&self, net: &mut Net);
    /// Starts per-layer timing (`--bench` with `CONVNET_PROFILE=1`).
    fn set_profiling(&mut self, _on: bool) {}
    /// Per layer (name, type): seconds in fprop, bprop and update while timing.
    fn profile(&self) -> Vec<(String, String, [f64; 3])> {
        Vec::new()
    }
    /// How many devices the net is placed on (2012 `gpu=` towers).
    fn towers(&self) -> usize {
        1
    }
    /// Runs tower `i`'s image kernels on `devices[i]` (`--device=cuda`).
    fn set_devices(&mut self, _devices: Vec<Device>) -> Result<(), NetError> {
        Ok(())
    }
}

impl Network for ConvNet {
    fn set_profiling(&mut self, on: bool) {
        ConvNet::set_profiling(self, on)
    }
    fn profile(&self) -> Vec<(String, String, [f64; 3])> {
        ConvNet::profile(self)
    }
    fn train_batch(&mut self, data: &[NvMatrix], progress: f64) -> Result<Cost, NetError> {
        ConvNet::train_batch(self, data, progress)
    }
    fn reseed(&mut self, seed: u64) {
        self.set_random_seed(seed)
    }
    fn test_batch(&mut self, data: &[NvMatrix]) -> Result<Cost, NetError> {
        ConvNet::test_batch(self, data)
    }
    fn multiview_test(
        &mut self,
        data: &[NvMatrix],
        num_views: usize,
        logreg: &str,
    ) -> Result<Cost, NetError> {
        ConvNet::multiview_test(self, data, num_views, logreg)
    }
    fn features(&mut self, data: &[NvMatrix], layer: &str) -> Result<(Cost, NvMatrix), NetError> {
        ConvNet::features(self, data, layer)
    }
    fn check_gradients(
        &mut self,
        data: &[NvMatrix],
        out: &mut dyn Write,
    ) -> Result<GcSummary, NetError> {
        ConvNet::check_gradients(self, data, out)
    }
    fn sync_to_host(&self, net: &mut Net) {
        ConvNet::sync_to_host(self, net)
    }
    fn towers(&self) -> usize {
        ConvNet::towers(self)
    }
    fn set_devices(&mut self, devices: Vec<Device>) -> Result<(), NetError> {
        ConvNet::set_devices(self, devices)
    }
}

/// Builds the net from the parsed layers (`initModel`).
pub type MakeNet = Box<dyn FnOnce(&Net, NetOptions) -> Result<Box<dyn Network>, NetError>>;

/// Where the driver writes and which net it makes.
pub struct Env {
    /// The original's stdout: everything it printed with `print`.
    pub out: Box<dyn Write>,
    /// Our errors, the usage table and the list of data providers.
    pub err: Box<dyn Write>,
    /// Whether to draw the progress bar (stdout and stderr are terminals).
    pub tty: bool,
    pub make_net: MakeNet,
}

impl Env {
    /// The process's stdout and stderr and the real [`ConvNet`].
    pub fn process() -> Env {
        Env {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            tty: std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
            make_net: Box::new(|net, opts| {
                ConvNet::new(net, opts).map(|n| Box::new(n) as Box<dyn Network>)
            }),
        }
    }
}

/// The `convnet` program (without the `bench`/`import` subcommands): `args` without the
/// program name. Returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let stop = run_with(args, Env::process());
    stop.code
}

/// [`main`] with its output and net chosen by the caller; the error, if any, has been
/// written to `env.err` as `convnet: error: ...`.
pub fn run_with(args: &[String], env: Env) -> Stop {
    let err: std::rc::Rc<std::cell::RefCell<Box<dyn Write>>> =
        std::rc::Rc::new(std::cell::RefCell::new(env.err));
    let env = Env {
        err: Box::new(Shared(err.clone())),
        ..env
    };
    let stop = match run(args, env) {
        Ok(()) => Stop::done(),
        Err(s) => s,
    };
    let _ = std::io::stdout().flush();
    if let Some(m) = &stop.message {
        let _ = writeln!(err.borrow_mut(), "convnet: error: {m}");
    }
    let _ = err.borrow_mut().flush();
    stop
}

/// A writer shared by the driver and [`run_with`].
struct Shared(std::rc::Rc<std::cell::RefCell<Box<dyn Write>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// Every option of both generations' tables (to find `-f`, `--layer-def` and
/// `--compat` before the generation is known).
fn union_table() -> Options {
    let mut t = Options::convnet(Generation::C1);
    for (name, o) in Options::convnet(Generation::A12).options {
        t.options.entry(name).or_insert(o);
    }
    t
}

/// The generation of a checkpoint: its layers are a list (2011) or a dict (2012).
fn checkpoint_generation(ckpt: &Obj) -> Option<Generation> {
    match ckpt.get("model_state")?.get("layers").as_deref()? {
        PyObj::List(_) => Some(Generation::C1),
        PyObj::Dict(_) => Some(Generation::A12),
        _ => None,
    }
}

/// Options our modes excuse as `--check-grads` excuses the data ones.
const OUR_EXCUSES: &[&str] = &[
    "data_path",
    "save_path",
    "train_batch_range",
    "test_batch_range",
    "dp_type",
];

fn run(args: &[String], mut env: Env) -> Result<(), Stop> {
    // The generation decides the option table: --compat, else the checkpoint of -f,
    // else the layer definition file.
    let first = parse_command_line(args, &union_table()).map_err(Stop::error)?;
    let load = first.get("load_file").map(str::to_string);
    let loaded = load
        .as_ref()
        .map(|p| checkpoint::load(Path::new(p)).map_err(|e| e.to_string()));
    let ckpt_gen = match &loaded {
        Some(Ok(c)) => checkpoint_generation(c),
        _ => None,
    };
    let gen = match (first.extras.compat, ckpt_gen) {
        (Compat::Y2011, Some(Generation::A12)) | (Compat::Y2012, Some(Generation::C1)) => {
            return Err(Stop::error(
                "--compat contradicts the checkpoint (its layers are a list in 2011, a dict in 2012)",
            ))
        }
        (Compat::Y2011, _) => Generation::C1,
        (Compat::Y2012, _) => Generation::A12,
        (Compat::Auto, Some(g)) => g,
        (Compat::Auto, None) => first
            .get("layer_def")
            .map_or(Generation::C1, |d| detect_generation(Path::new(d))),
    };
    let mut op = Options::convnet(gen);
    let cl = parse_command_line(args, &op).map_err(Stop::error)?;
    let ours = cl.extras.dump_layers || cl.extras.bench.is_some();
    let also: &[&str] = if ours { OUR_EXCUSES } else { &[] };
    if let Err(e) = op.parse_args(&cl.given, also) {
        if e.is_missing() {
            let mut lines = vec![e.0.clone()];
            lines.extend(op.usage("convnet", env.tty));
            lines.extend(cli::extra_usage());
            let _ = writeln!(env.err, "{}", lines.join("\n"));
            return Err(Stop::failed());
        }
        return Err(e.into());
    }
    let ckpt = match loaded {
        Some(Ok(c)) => {
            let old = c
                .get("op")
                .ok_or("the checkpoint has no 'op'")
                .map_err(Stop::error)?;
            let mut old = Options::from_pyobj(&old)
                .map_err(|e| Stop::error(format!("Error loading checkpoint: {e}")))?;
            old.merge_from(&op)?;
            old.as_python_dict();
            op = old;
            Some(c)
        }
        Some(Err(e)) => return Err(Stop::error(format!("Error loading checkpoint: {e}"))),
        None => None,
    };
    op.eval_expr_defaults()?;
    train::ConvNetModel::run(gen, op, cl.extras, ckpt, env)
}
