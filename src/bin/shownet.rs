//! Port of shownet.py: the command line of the model viewer. `--dump-json` prints a
//! whole checkpoint as JSON; the plots (cost, filters, predictions) and the feature
//! writer arrive with the data issue.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Show what a cuda-convnet model learned (options as in shownet.py).
#[derive(Parser)]
#[command(name = "shownet", version)]
struct Args {
    /// Checkpoint directory (its newest file is read) or file.
    #[arg(short = 'f', value_name = "PATH")]
    load_file: PathBuf,
    /// Print the whole decoded checkpoint as JSON on stdout.
    #[arg(long = "dump-json")]
    dump_json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.dump_json {
        eprintln!("shownet: error: only --dump-json is implemented so far");
        return ExitCode::from(2);
    }
    match convnet::checkpoint::load(&args.load_file) {
        Ok(obj) => {
            let mut out = String::new();
            convnet::checkpoint::value::to_json(&obj, &mut out);
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shownet: error: {e}");
            ExitCode::FAILURE
        }
    }
}
