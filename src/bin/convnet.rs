//! Port of convnet.py (both generations): the `convnet` program. Training, testing,
//! resuming and the gradient check live in [`convnet::driver`]; this file only adds
//! the `bench kernels`, `import`, `avg-test`, `avg-valid`, `fix-batches`,
//! `find-similar`, `txt-preds`, `verify-test-preds` and `test-log` subcommands.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Where the kernels run: the CPU port, or our CUDA kernels (convolutions only).
    #[arg(long, value_parser = ["cpu", "cuda"], default_value = "cpu")]
    device: String,
    /// The CUDA device with `--device cuda`.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
}

fn bench(args: BenchArgs) -> ExitCode {
    if args.device == "cuda" {
        return bench_gpu(&args);
    }
    let (lanes, peak) = convnet::bench::peak_gflops();
    let copy = convnet::bench::copy_gbps(64 << 20);
    let threads = convnet::parallel::threads();
    println!(
        "{{\"kernel\": \"peak-fma\", \"threads\": {threads}, \"lanes\": {lanes}, \"gflops\": {peak:.1}}}"
    );
    println!("{{\"kernel\": \"copy\", \"case\": \"64MiB\", \"gbps\": {copy:.1}}}");
    convnet::bench::kernels(args.only.as_deref(), args.min_secs, |line| {
        println!("{}", line.json(Some(peak)))
    });
    ExitCode::SUCCESS
}

/// `convnet bench kernels --device cuda`: our CUDA convolution kernels on GPU `--gpu`.
fn bench_gpu(args: &BenchArgs) -> ExitCode {
    use convnet::cuda::{Backend, Cuda};
    let run = || -> Result<(), convnet::cuda::GpuError> {
        let gpu = Cuda::open(args.gpu)?;
        println!("{{\"kernel\": \"device\", \"name\": \"{}\"}}", gpu.name());
        convnet::bench::gpu_kernels(&gpu, args.only.as_deref(), args.min_secs, |line| {
            println!("{}", line.json(None))
        })
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("convnet: error: bench kernels --device cuda: GPU: {}", e.0);
            ExitCode::FAILURE
        }
    }
}

/// `convnet import fashion-mnist|cifar10|jpeg-folder`: write cuda-convnet batch files
/// from a dataset.
#[derive(Parser)]
#[command(
    name = "convnet import",
    after_help = "jpeg-folder: --src holds one subfolder per class, named after the class \
        (classes are numbered in name order), with .jpg, .jpeg or .png images; each image's \
        central square is scaled to --size and stored as a JPEG in the 2012 batch format \
        of --data-provider=inet-lr-cropped-jpeg: data_batch_N = (jpeg_strings, orig_sizes, \
        [(class, index)]), batches.meta with data_mean, label_names, num_vis, batch_size and \
        color_pca. Training images are shuffled (--seed) into batches 1..k; --test-src \
        images follow in batches k+1.."
)]
struct ImportArgs {
    /// The dataset.
    #[arg(value_parser = ["fashion-mnist", "cifar10", "jpeg-folder"])]
    dataset: String,
    /// Directory of the dataset's files: the IDX files (default
    /// /usr/share/datasets/fashion-mnist), cifar-10-batches-py, or the image folder
    /// (one subfolder per class).
    #[arg(long)]
    src: Option<PathBuf>,
    /// Directory to write data_batch_N and batches.meta into.
    #[arg(long)]
    out: PathBuf,
    /// Cases per batch file (default 10000; jpeg-folder 1024).
    #[arg(long = "cases-per-batch")]
    cases_per_batch: Option<usize>,
    /// Keep only the first N training cases.
    #[arg(long = "train-cases")]
    train_cases: Option<usize>,
    /// Keep only the first N test cases.
    #[arg(long = "test-cases")]
    test_cases: Option<usize>,
    /// Zip each file (member `data`), as --zip-save does checkpoints.
    #[arg(long)]
    zip: bool,
    /// jpeg-folder: side of the stored square images.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// jpeg-folder: JPEG quality (1-100).
    #[arg(long, default_value_t = 90)]
    quality: u8,
    /// jpeg-folder: seed of the shuffle of the images.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// jpeg-folder: a folder of test images (subfolders of the same classes).
    #[arg(long = "test-src")]
    test_src: Option<PathBuf>,
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
    use convnet::data::{import, jpeg_import};
    let jpeg = args.dataset == "jpeg-folder";
    let layout = import::Layout {
        cases_per_batch: args.cases_per_batch.unwrap_or(if jpeg {
            jpeg_import::JPEG_CASES_PER_BATCH
        } else {
            import::CASES_PER_BATCH
        }),
        train_cases: args.train_cases,
        test_cases: args.test_cases,
        zip: args.zip,
    };
    let result = match (args.dataset.as_str(), &args.src) {
        ("fashion-mnist", src) => {
            let src = src
                .clone()
                .unwrap_or_else(|| import::FASHION_MNIST_DIR.into());
            import::fashion_mnist(&src, &args.out, &layout, progress)
        }
        ("jpeg-folder", Some(src)) => {
            let opts = jpeg_import::JpegOptions {
                size: args.size,
                quality: args.quality,
                seed: args.seed,
                test_src: args.test_src.clone(),
            };
            jpeg_import::jpeg_folder(src, &args.out, &layout, &opts, progress)
        }
        ("cifar10", Some(src)) => import::cifar10(src, &args.out, &layout, progress),
        (d, _) => Err(format!(
            "{d} needs --src DIR (the {})",
            if jpeg {
                "image folder"
            } else {
                "cifar-10-batches-py directory"
            }
        )),
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

/// `convnet avg-test DIRS OUT COEFFS` (2012 avg-test.py): the weighted sum of several
/// models' `--test-out` predictions.
#[derive(Parser)]
#[command(name = "convnet avg-test")]
struct AvgTestArgs {
    /// Comma-separated directories of test_preds_<n> files (one per model).
    dirs: String,
    /// Directory to write the summed test_preds_<n> files into.
    out: PathBuf,
    /// Comma-separated coefficients, one per directory.
    coeffs: String,
}

/// Comma-separated directories.
fn dir_list(dirs: &str) -> Vec<PathBuf> {
    dirs.split(',').map(PathBuf::from).collect()
}

/// Comma-separated coefficients (Python's `float(x)`).
fn coeff_list(coeffs: &str) -> Result<Vec<f64>, String> {
    (coeffs.split(','))
        .map(|c| {
            c.trim()
                .parse::<f64>()
                .map_err(|_| format!("coefficient '{c}' is not a number"))
        })
        .collect()
}

fn avg_test(args: AvgTestArgs) -> Result<(), String> {
    let coeffs = coeff_list(&args.coeffs)?;
    let out = &mut std::io::stdout();
    convnet::driver::preds::avg_test(&dir_list(&args.dirs), &args.out, &coeffs, out)
}

/// `convnet avg-valid DIRS [COEFFS]` (2012 avg-valid.py): the top-1 and top-5 errors of
/// a weighted sum of several models' predictions on the validation batches, or, without
/// coefficients, a search for the coefficients with the lowest top-5 error.
#[derive(Parser)]
#[command(name = "convnet avg-valid")]
struct AvgValidArgs {
    /// Comma-separated directories of test_preds_<n> files (one per model), made with
    /// --test-out on the validation batches.
    dirs: String,
    /// Comma-separated coefficients, one per directory; without them, search.
    coeffs: Option<String>,
    /// The validation batches (data_batch_<n> and batches.meta with label_offset); the
    /// script's fixed path by default.
    #[arg(long = "valid-path", default_value = "/storage/lsvrc-2012")]
    valid_path: PathBuf,
}

fn avg_valid(args: AvgValidArgs) -> Result<(), String> {
    use convnet::driver::preds;
    let dirs = dir_list(&args.dirs);
    let ensemble = preds::Ensemble::load(&dirs, &args.valid_path)?;
    let out = &mut std::io::stdout().lock();
    match args.coeffs {
        Some(c) => preds::avg_valid(&ensemble, &coeff_list(&c)?, out),
        None => preds::find_coeffs(&ensemble, dirs.len(), out),
    }
}

/// `convnet txt-preds DIR` (2012 txt-preds.py): each case's top five classes.
#[derive(Parser)]
#[command(name = "convnet txt-preds")]
struct TxtPredsArgs {
    /// Directory of test_preds_<n> files (1000 classes).
    dir: PathBuf,
}

/// `convnet test-log LOG` (2012 test.py): the average error figures of a `--test-only`
/// run's log.
#[derive(Parser)]
#[command(name = "convnet test-log")]
struct TestLogArgs {
    /// The saved output of `convnet --test-only=1 ...` (its `batch N: ...` lines).
    log: PathBuf,
}

/// Exit status of a subcommand's result, its error printed as the driver prints one.
fn status(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("convnet: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `convnet fix-batches imgnet|flickr` (2012 fix-big-imgnet.py, fix-flickr.py): re-pack
/// JPEG batches, dropping the images that do not decode.
#[derive(Parser)]
#[command(name = "convnet fix-batches")]
struct FixBatchesArgs {
    /// Which script: imgnet (fix-big-imgnet.py) or flickr (fix-flickr.py).
    #[arg(value_parser = ["imgnet", "flickr"])]
    script: String,
    /// Directory of source batches 0, 1, ...; the script's fixed path by default.
    #[arg(long)]
    src: Option<PathBuf>,
    /// Directory the data_batch_<n> files go to; the script's fixed path by default.
    #[arg(long)]
    dst: Option<PathBuf>,
    /// Source batches to read (the script's 49 or 977 by default).
    #[arg(long)]
    batches: Option<usize>,
    /// Images per written batch (the script's 1024 or 2048 by default).
    #[arg(long = "batch-size")]
    batch_size: Option<usize>,
}

fn fix_batches(args: FixBatchesArgs) -> Result<(), String> {
    use convnet::data::fix_batches::{fix_batches, Script};
    let script = match args.script.as_str() {
        "imgnet" => Script::Imgnet,
        _ => Script::Flickr,
    };
    let d = script.defaults();
    let r = convnet::data::fix_batches::FixBatches {
        script,
        src: args.src.unwrap_or(d.src),
        dst: args.dst.unwrap_or(d.dst),
        batches: args.batches.unwrap_or(d.batches),
        batch_size: args.batch_size.unwrap_or(d.batch_size),
    };
    fix_batches(&r, &mut std::io::stdout().lock())
}

/// `convnet verify-test-preds PREDS DATA_PATH` (2012 verify-test-preds.py): a test
/// image and its five predicted classes.
#[derive(Parser)]
#[command(name = "convnet verify-test-preds")]
struct VerifyArgs {
    /// The predictions, as txt-preds prints them (five 1-based classes per line).
    preds: PathBuf,
    /// The test batches (data_batch_3000 .. data_batch_3097) and batches.meta.
    data_path: PathBuf,
    /// The test batch (random by default, as the script's).
    #[arg(long)]
    batch: Option<usize>,
    /// The image's index in the batch (random by default).
    #[arg(long)]
    index: Option<usize>,
    /// Seed of the random choices (the script's were unseeded; by default the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Write the image here (PNG); the script showed it in a window.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn verify_test_preds(args: VerifyArgs) -> Result<(), String> {
    use convnet::driver::verify_preds::{verify_test_preds, Verify};
    let v = Verify {
        preds: args.preds,
        data_path: args.data_path,
        batch: args.batch,
        index: args.index,
        seed: args.seed.unwrap_or_else(clock_seed),
        out: args.out,
    };
    verify_test_preds(&v, &mut std::io::stdout().lock())
}

/// `convnet find-similar` (2012 findsimilar.py): test images' nearest training images in
/// feature space, drawn in grids (the script's constants and paths by default).
#[derive(Parser)]
#[command(name = "convnet find-similar")]
struct FindSimilarArgs {
    /// Feature batches (dicts with data (cases, dims) float32), the script's ftr_dir.
    #[arg(long, default_value = "/storage2/imnet-features-4096")]
    features: PathBuf,
    /// Pixel batches (dicts with data (3*size*size, cases) uint8), the script's imnet_dir.
    #[arg(long, default_value = "/storage2/imnet-contest")]
    images: PathBuf,
    /// The test batch's file name.
    #[arg(long = "test-batch", default_value = "data_batch_3000")]
    test_batch: String,
    /// Training batches 1..=N.
    #[arg(long, default_value_t = 1334)]
    batches: usize,
    /// Test images (random cases of the test batch).
    #[arg(long = "test-imgs", default_value_t = 128)]
    test_imgs: usize,
    /// Neighbours kept per test image.
    #[arg(long, default_value_t = 16)]
    top: usize,
    /// Image side in pixels.
    #[arg(long = "img-size", default_value_t = 256)]
    img_size: usize,
    /// Test images per figure.
    #[arg(long = "per-figure", default_value_t = 16)]
    per_figure: usize,
    /// Comma-separated test cases instead of random ones.
    #[arg(long)]
    cases: Option<String>,
    /// Seed of the random test cases (by default the clock, as the script's were unseeded).
    #[arg(long)]
    seed: Option<u64>,
    /// Where figure-<n>.png go.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

fn find_similar(args: FindSimilarArgs) -> Result<(), String> {
    use convnet::driver::find_similar::{find_similar, FindSimilar};
    let cases = match &args.cases {
        Some(c) => Some(
            c.split(',')
                .map(|x| {
                    x.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("--cases: '{x}' is not a case"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let s = FindSimilar {
        features: args.features,
        images: args.images,
        test_batch: args.test_batch,
        batches: args.batches,
        test_imgs: args.test_imgs,
        top: args.top,
        img_size: args.img_size,
        per_figure: args.per_figure,
        cases,
        seed: args.seed.unwrap_or_else(clock_seed),
        out: args.out,
    };
    find_similar(&s, &mut std::io::stdout().lock()).map(|_| ())
}

/// A seed from the clock, for the scripts whose numpy draws were unseeded.
fn clock_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    t.map_or(0, |d| d.as_nanos() as u64)
}

fn main() -> ExitCode {
    let sub = || std::env::args().skip(1);
    match std::env::args().nth(1).as_deref() {
        Some("bench") => return bench(BenchArgs::parse_from(sub())),
        Some("import") => return import(ImportArgs::parse_from(sub())),
        Some("avg-test") => return status(avg_test(AvgTestArgs::parse_from(sub()))),
        Some("avg-valid") => return status(avg_valid(AvgValidArgs::parse_from(sub()))),
        Some("fix-batches") => return status(fix_batches(FixBatchesArgs::parse_from(sub()))),
        Some("find-similar") => return status(find_similar(FindSimilarArgs::parse_from(sub()))),
        Some("verify-test-preds") => {
            return status(verify_test_preds(VerifyArgs::parse_from(sub())))
        }
        Some("txt-preds") => {
            let args = TxtPredsArgs::parse_from(sub());
            let out = &mut std::io::stdout().lock();
            return status(convnet::driver::preds::txt_preds(&args.dir, out));
        }
        Some("test-log") => {
            let args = TestLogArgs::parse_from(sub());
            let out = &mut std::io::stdout().lock();
            return status(convnet::driver::testlog::test_log(&args.log, out));
        }
        _ => {}
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(convnet::driver::main(&args).clamp(0, 255) as u8)
}
