//! Port of convnet.py (both generations): the command line of the training program.
//! So far it parses a model's layer-definition and layer-parameter files as the
//! original did, prints the original's per-layer summary and, with `--dump-layers`,
//! the layer dictionaries as JSON; with `-f` it loads a checkpoint's layers and options
//! and re-reads the parameter file over them, as the original's resume did.

use clap::{Parser, ValueEnum};
use convnet::checkpoint;
use convnet::config::value::Value;
use convnet::config::{detect_generation, parse_layers, reparse_params, Generation, Model, Net};
use convnet::options::Options;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
enum Compat {
    /// 2012 when a layer has `gpu=` or a type only the 2012 code has, else 2011.
    Auto,
    #[value(name = "2011")]
    Y2011,
    #[value(name = "2012")]
    Y2012,
}

/// cuda-convnet in Rust. Options keep convnet.py's names (`--name=value` or `--name value`).
#[derive(Parser)]
#[command(name = "convnet", version)]
struct Args {
    /// Checkpoint directory or file to resume from (excuses all other options).
    #[arg(short = 'f', value_name = "PATH")]
    load_file: Option<PathBuf>,
    /// Layer definition file (cannot be changed on resume).
    #[arg(long = "layer-def", value_name = "FILE")]
    layer_def: Option<PathBuf>,
    /// Layer parameter file.
    #[arg(long = "layer-params", value_name = "FILE")]
    layer_params: Option<PathBuf>,
    /// Which original parser to follow.
    #[arg(long, value_enum, default_value = "auto")]
    compat: Compat,
    /// Print the parsed layer dictionaries as JSON on stdout and exit.
    #[arg(long = "dump-layers")]
    dump_layers: bool,
    /// Size of each data matrix by dataIdx, where no data provider is given.
    #[arg(long = "data-dims", value_delimiter = ',', default_value = "3072,1")]
    data_dims: Vec<i64>,
    /// Number of classes the data provider reports (the dummy providers' default is 10).
    #[arg(long = "num-classes", default_value_t = 10)]
    num_classes: i64,
    /// GPU device ids (the 2012 `gpu=` keys index this list).
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        default_value = "-1"
    )]
    gpu: Vec<i64>,
    /// Number of GPUs (default: the length of --gpu).
    #[arg(long = "num-gpus")]
    num_gpus: Option<i64>,
    /// Conserve memory (0/1), copied into every layer as conserveMem.
    #[arg(long = "conserve-mem", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..=1))]
    conserve_mem: i64,
    /// Seed of the random weight initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// A fresh model: parse both files.
fn fresh(args: &Args, log: &mut Vec<String>) -> Result<Net, String> {
    let missing = |letter: &str, desc: &str| format!("Option --{letter} ({desc}) not supplied");
    let def = args
        .layer_def
        .as_ref()
        .ok_or_else(|| missing("layer-def", "Layer definition file"))?;
    let params = args
        .layer_params
        .as_ref()
        .ok_or_else(|| missing("layer-params", "Layer parameter file"))?;
    let generation = match args.compat {
        Compat::Auto => detect_generation(def),
        Compat::Y2011 => Generation::C1,
        Compat::Y2012 => Generation::A12,
    };
    let model = Model {
        data_dims: args.data_dims.clone(),
        num_classes: args.num_classes,
        num_gpus: args.num_gpus.unwrap_or(args.gpu.len() as i64),
        conserve_mem: args.conserve_mem,
        seed: args.seed,
    };
    parse_layers(generation, def, params, &model, log).map_err(|e| e.to_string())
}

/// `-f`: the checkpoint's layers, its options merged with the ones given now (the
/// original's `merge_from`), then the parameter pass again.
fn resume(args: &Args, path: &std::path::Path) -> Result<Net, String> {
    let ckpt = checkpoint::load(path).map_err(|e| format!("Error loading checkpoint: {e}"))?;
    let layers = ckpt
        .get("model_state")
        .and_then(|m| m.get("layers"))
        .ok_or("the checkpoint has no model_state['layers']")?;
    let mut net = checkpoint::model::layers_from(&layers)?;
    let op_obj = ckpt.get("op").ok_or("the checkpoint has no 'op'")?;
    let mut op = Options::from_pyobj(&op_obj)?;
    let mut given = Options::convnet(net.generation);
    let text = |p: &PathBuf| p.to_string_lossy().into_owned();
    given
        .set("load_file", &path.to_string_lossy())
        .map_err(|e| e.0)?;
    for (name, value) in [
        ("layer_def", &args.layer_def),
        ("layer_params", &args.layer_params),
    ] {
        if let Some(v) = value {
            given.set(name, &text(v)).map_err(|e| e.0)?;
        }
    }
    op.merge_from(&given).map_err(|e| e.0)?;
    op.eval_expr_defaults().map_err(|e| e.0)?;
    let path_of = |name: &str| {
        op.get(name)
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .ok_or(format!("the checkpoint's options have no {name}"))
    };
    let model = Model {
        data_dims: vec![],
        num_classes: args.num_classes,
        num_gpus: op.get("num_gpus").and_then(Value::as_int).unwrap_or(1),
        conserve_mem: op.get("conserve_mem").and_then(Value::as_int).unwrap_or(0),
        seed: args.seed,
    };
    reparse_params(
        &mut net,
        &path_of("layer_def")?,
        &path_of("layer_params")?,
        &model,
    )
    .map_err(|e| e.to_string())?;
    Ok(net)
}

/// `convnet bench kernels`: kernel throughput at our nets' shapes (JSON lines).
#[derive(Parser)]
#[command(name = "convnet bench")]
struct BenchArgs {
    /// What to benchmark.
    #[arg(value_parser = ["kernels"])]
    what: String,
    /// Only cases whose kernel or shape name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Minimum seconds to repeat each measurement.
    #[arg(long = "min-secs", default_value_t = 0.5)]
    min_secs: f64,
}

fn bench(args: BenchArgs) -> ExitCode {
    let peak = convnet::bench::peak_gflops();
    let copy = convnet::bench::copy_gbps(64 << 20);
    let threads = convnet::parallel::threads();
    println!("{{\"kernel\": \"peak-fma\", \"threads\": {threads}, \"gflops\": {peak:.1}}}");
    println!("{{\"kernel\": \"copy\", \"case\": \"64MiB\", \"gbps\": {copy:.1}}}");
    convnet::bench::kernels(args.only.as_deref(), args.min_secs, |line| {
        println!("{}", line.json(peak))
    });
    ExitCode::SUCCESS
}

/// `convnet import fashion-mnist|cifar10`: write cuda-convnet batch files from a dataset.
#[derive(Parser)]
#[command(name = "convnet import")]
struct ImportArgs {
    /// The dataset.
    #[arg(value_parser = ["fashion-mnist", "cifar10"])]
    dataset: String,
    /// Directory of the dataset's files: the IDX files (default
    /// /usr/share/datasets/fashion-mnist), or cifar-10-batches-py.
    #[arg(long)]
    src: Option<PathBuf>,
    /// Directory to write data_batch_N and batches.meta into.
    #[arg(long)]
    out: PathBuf,
}

fn import(args: ImportArgs) -> ExitCode {
    use std::io::{IsTerminal, Write};
    let tty = std::io::stderr().is_terminal();
    let progress = |done: usize, total: usize| {
        if tty {
            let bar = "#".repeat(30 * done / total) + &" ".repeat(30 - 30 * done / total);
            eprint!("\rimporting [{bar}] {done}/{total}");
            let _ = std::io::stderr().flush();
        }
    };
    use convnet::data::import;
    let result = match (args.dataset.as_str(), &args.src) {
        ("fashion-mnist", src) => {
            let src = src
                .clone()
                .unwrap_or_else(|| import::FASHION_MNIST_DIR.into());
            import::fashion_mnist(&src, &args.out, progress)
        }
        (_, Some(src)) => import::cifar10(src, &args.out, progress),
        (_, None) => Err("cifar10 needs --src DIR (the cifar-10-batches-py directory)".into()),
    };
    if tty {
        eprintln!();
    }
    match result {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("convnet: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("bench") => return bench(BenchArgs::parse_from(std::env::args().skip(1))),
        Some("import") => return import(ImportArgs::parse_from(std::env::args().skip(1))),
        _ => {}
    }
    let args = Args::parse();
    let mut log = Vec::new();
    let result = match &args.load_file {
        Some(path) => resume(&args, path),
        None => fresh(&args, &mut log),
    };
    for line in &log {
        if args.dump_layers {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    match result {
        Ok(net) => {
            if args.dump_layers {
                println!("{}", net.to_json());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("convnet: error: {e}");
            ExitCode::FAILURE
        }
    }
}
