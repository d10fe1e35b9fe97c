//! `convnet verify-test-preds PREDS DATA_PATH` (2012 verify-test-preds.py) against what
//! the script printed for the same image (golden/verify-test-preds), the image it
//! writes, its random choice and its errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/verify-test-preds")
}

fn verify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .current_dir(golden())
        .arg("verify-test-preds")
        .args(args)
        .output()
        .unwrap()
}

/// Width, height and RGB bytes of one of our PNGs.
fn png_rgb(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn prints_what_the_script_printed_and_writes_the_image() {
    let dir = std::env::temp_dir().join(format!("convnet-verify-preds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (index, size) in [(1, (7, 5)), (3, (9, 7))] {
        let png = dir.join(format!("{index}.png"));
        let i = index.to_string();
        let out = verify(&[
            "preds.txt",
            "data",
            "--batch=3000",
            "--index",
            &i,
            "--out",
            png.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = std::fs::read_to_string(golden().join(format!("index-{index}.out"))).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
        let (w, h, rgb) = png_rgb(&png);
        assert_eq!((w, h), size);
        // The pixels are our decoder's (planes (3, h, w) -> interleaved).
        let obj = convnet::checkpoint::load(&golden().join("data/data_batch_3000")).unwrap();
        let convnet::checkpoint::value::PyObj::Tuple(parts) = &*obj else {
            panic!()
        };
        let convnet::checkpoint::value::PyObj::List(strings) = &*parts[0] else {
            panic!()
        };
        let convnet::checkpoint::value::PyObj::Bytes(jpeg) = &*strings.borrow()[index] else {
            panic!()
        };
        let (ph, pw, planes) = convnet::data::jpeg::decode_planes(jpeg).unwrap();
        let (px, planes) = (ph * pw, &planes);
        let interleaved: Vec<u8> = (0..px)
            .flat_map(|p| (0..3).map(move |c| planes[c * px + p]))
            .collect();
        assert_eq!(rgb, interleaved);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_seed_repeats_its_choice_and_errors_are_clean() {
    // Random choices: the same seed, the same batch and image (here every batch but
    // 3000 is missing, so either the line or the missing file repeats).
    let a = verify(&["preds.txt", "data", "--seed=7"]);
    let b = verify(&["preds.txt", "data", "--seed=7"]);
    assert_eq!((a.stdout.clone(), a.stderr.clone()), (b.stdout, b.stderr));
    let err = String::from_utf8_lossy(&a.stderr);
    assert!(a.status.success() || err.contains("data_batch_30"), "{err}");
    for (args, want) in [
        (
            &["preds.txt", "data", "--batch=3098"][..],
            "--batch 3098: the test batches are 3000 to 3097",
        ),
        (&["preds.txt", "data", "--batch=3001"], "data_batch_3001"),
        (
            &["preds.txt", "data", "--batch=3000", "--index=6"],
            "no image 6",
        ),
        (
            &["missing.txt", "data", "--batch=3000", "--index=0"],
            "missing.txt",
        ),
    ] {
        let out = verify(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
