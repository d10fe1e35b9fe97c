//! Port of convnet.py (both generations): the command line of the training program.
//! So far it parses a model's layer-definition and layer-parameter files as the
//! original did, prints the original's per-layer summary and, with `--dump-layers`,
//! the layer dictionaries as JSON.

use clap::{Parser, ValueEnum};
use convnet::config::{detect_generation, parse_layers, Generation, Model};
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
    /// Layer definition file.
    #[arg(long = "layer-def", value_name = "FILE")]
    layer_def: PathBuf,
    /// Layer parameter file.
    #[arg(long = "layer-params", value_name = "FILE")]
    layer_params: PathBuf,
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

fn main() -> ExitCode {
    let args = Args::parse();
    let generation = match args.compat {
        Compat::Auto => detect_generation(&args.layer_def),
        Compat::Y2011 => Generation::C1,
        Compat::Y2012 => Generation::A12,
    };
    let model = Model {
        data_dims: args.data_dims,
        num_classes: args.num_classes,
        num_gpus: args.num_gpus.unwrap_or(args.gpu.len() as i64),
        conserve_mem: args.conserve_mem,
        seed: args.seed,
    };
    let mut log = Vec::new();
    let result = parse_layers(
        generation,
        &args.layer_def,
        &args.layer_params,
        &model,
        &mut log,
    );
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
