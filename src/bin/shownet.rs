//! Port of shownet.py: the command line of the model viewer. Its options are accepted
//! with the original names; the views themselves arrive with checkpoint reading.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Show what a cuda-convnet model learned (options as in shownet.py).
#[derive(Parser)]
#[command(name = "shownet", version)]
struct Args {
    /// Checkpoint directory or file to show.
    #[arg(short = 'f', value_name = "PATH")]
    load_file: PathBuf,
    /// Plot the cost of this cost layer over training.
    #[arg(long = "show-cost")]
    show_cost: Option<String>,
    /// Show the filters of this layer.
    #[arg(long = "show-filters")]
    show_filters: Option<String>,
    /// Show predictions of this softmax layer on test images.
    #[arg(long = "show-preds")]
    show_preds: Option<String>,
    /// Write the features of this layer to --feature-path.
    #[arg(long = "write-features")]
    write_features: Option<String>,
    /// Print the whole checkpoint as JSON.
    #[arg(long = "dump-json")]
    dump_json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    eprintln!(
        "shownet: error: cannot read '{}': checkpoint reading is not implemented yet",
        args.load_file.display()
    );
    ExitCode::FAILURE
}
