//! `convnet find-similar` (2012 findsimilar.py) against what the script computed and drew
//! on the same batches (golden/find-similar): the printed lines, every neighbour (batch,
//! case and float32 distance, ties included) and the figures' pixels.

use convnet::driver::find_similar::{find_similar, FindSimilar};
use std::path::{Path, PathBuf};
use std::process::Command;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/find-similar")
}

fn settings(out: &Path) -> FindSimilar {
    FindSimilar {
        features: golden().join("ftr"),
        images: golden().join("img"),
        test_batch: "data_batch_3000".into(),
        batches: 3,
        test_imgs: 4,
        top: 3,
        img_size: 4,
        per_figure: 2,
        cases: Some(vec![3, 5, 4, 1]),
        seed: 0,
        out: out.to_path_buf(),
    }
}

/// A line with its timing replaced: `Finished training batch 1 (0.004261 sec)`.
fn untimed(l: &str) -> String {
    match l.find(" (") {
        Some(p) if l.starts_with("Finished") => format!("{} (<t> sec)", &l[..p]),
        _ => l.to_string(),
    }
}

#[test]
fn neighbours_and_figures_are_the_scripts() {
    let out = std::env::temp_dir().join(format!("convnet-find-similar-{}", std::process::id()));
    let mut printed = Vec::new();
    let tops = find_similar(&settings(&out), &mut printed).unwrap();
    let want = std::fs::read_to_string(golden().join("findsimilar.out")).unwrap();
    let got = String::from_utf8(printed).unwrap();
    assert_eq!(
        got.lines().map(untimed).collect::<Vec<_>>(),
        want.lines().map(untimed).collect::<Vec<_>>()
    );
    let expected = std::fs::read_to_string(golden().join("tops.txt")).unwrap();
    let mut rows = 0;
    for l in expected
        .lines()
        .filter(|l| !l.starts_with("cases") && !l.starts_with("figure"))
    {
        let f: Vec<&str> = l.split(' ').collect();
        let (row, batch, idx) = (
            f[0].parse::<usize>().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        );
        let dist = f[3].parse::<f64>().unwrap() as f32;
        let k = rows % 3;
        let n = &tops[row][k];
        assert_eq!(
            (n.batch, n.idx, n.dist.to_bits()),
            (batch, idx, dist.to_bits()),
            "row {row} neighbour {k}"
        );
        rows += 1;
    }
    assert_eq!(rows, 12);
    for fig in [1, 2] {
        let want = std::fs::read(golden().join(format!("figure-{fig}.rgb"))).unwrap();
        let file = std::fs::File::open(out.join(format!("figure-{fig}.png"))).unwrap();
        let mut reader = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (23, 9));
        assert_eq!(&buf[..info.buffer_size()], &want[..], "figure {fig}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_command_line_runs_and_reports_bad_input() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_convnet"))
            .current_dir(golden())
            .arg("find-similar")
            .args(args)
            .output()
            .unwrap()
    };
    let out = std::env::temp_dir().join(format!("convnet-find-similar-cli-{}", std::process::id()));
    let o = out.to_str().unwrap();
    let small = [
        "--features=ftr",
        "--images=img",
        "--test-imgs=4",
        "--top=3",
        "--per-figure=2",
    ];
    let ok = run(&[
        &small[..],
        &["--img-size=4", "--batches=3", "--seed=1", "--out", o],
    ]
    .concat());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.join("figure-2.png").is_file());
    for (extra, want) in [
        (&["--img-size=4", "--batches=4"][..], "data_batch_4"),
        (
            &["--img-size=4", "--batches=1", "--cases=0,9"],
            "test case 9 of 6",
        ),
        (
            &["--img-size=4", "--batches=1", "--cases=x"],
            "--cases: 'x' is not a case",
        ),
        (&["--img-size=5", "--batches=1"], "data is 48x6, not 75x6"),
    ] {
        let r = run(&[&small[..], extra, &["--out", o]].concat());
        assert_eq!(r.status.code(), Some(1), "{extra:?}");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
