//! Training on real data, end to end through the command line: import Fashion-MNIST
//! (Debian's dataset-fashion-mnist) into cuda-convnet batches, train our 80-second
//! net (layer-defs/fmnist-80sec.cfg) for half an epoch and check the test error is
//! far below chance (90%). Skips, saying so, where the dataset is not installed.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

const FMNIST: &str = "/usr/share/datasets/fashion-mnist";

#[test]
fn fmnist_80sec_learns_within_half_an_epoch() {
    if !Path::new(FMNIST).exists() {
        // Past the harness's capture of `eprintln!`, so that `cargo test` shows it.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {FMNIST} not found (apt install dataset-fashion-mnist)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("convnet-fmnist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = env!("CARGO_BIN_EXE_convnet");
    let data = dir.join("batches");
    let out = Command::new(bin)
        .args(["import", "fashion-mnist", "--out"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(bin)
        .current_dir(root)
        .args([
            "--data-provider=cifar",
            "--train-range=1-3",
            "--test-range=7",
            "--test-freq=3",
            "--epochs=1",
            "--layer-def=layer-defs/fmnist-80sec.cfg",
            "--layer-params=params/fmnist-80sec.cfg",
        ])
        .arg(format!("--data-path={}", data.display()))
        .arg(format!("--save-path={}", dir.join("save").display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The test block's cost line: `logprob:  <nll>, <error> `.
    let block = stdout.split("Test output").nth(1).expect("a test block");
    let line = block.lines().find(|l| l.starts_with("logprob:")).unwrap();
    let vals: Vec<f64> = line["logprob:".len()..]
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert!(
        vals[1] < 0.35,
        "test error {} after 30000 images:\n{stdout}",
        vals[1]
    );
    assert!(stdout.contains("Saved checkpoint to"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// README's main command on the embedded subset (data/fmnist-small), shortened to
/// two epochs: it trains, tests and saves.
#[test]
fn the_main_job_on_the_embedded_subset() {
    let dir = std::env::temp_dir().join(format!("convnet-main-job-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "--data-provider=cifar",
            "--data-path=data/fmnist-small",
            "--train-range=1-5",
            "--test-range=6",
            "--test-freq=5",
            "--epochs=2",
            "--layer-def=layer-defs/fmnist-80sec.cfg",
            "--layer-params=params/fmnist-80sec.cfg",
        ])
        .arg(format!("--save-path={}", dir.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\n2.5... logprob:  "), "{stdout}");
    assert_eq!(stdout.matches("Saved checkpoint to").count(), 2, "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
