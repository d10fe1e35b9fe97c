//! `convnet import fashion-mnist`: IDX files become cuda-convnet batch files that our
//! reader and Python 2.7's cPickle (numpy 1.x) load, with cases in columns, labels,
//! and the mean training image.

use convnet::checkpoint::{self, value::PyObj};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("convnet-import-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes an IDX file of bytes with the given shape, gzipped when `gz`.
fn write_idx(path: &Path, shape: &[u32], body: &[u8], gz: bool) {
    let mut b = vec![0, 0, 8, shape.len() as u8];
    for s in shape {
        b.extend(s.to_be_bytes());
    }
    b.extend(body);
    if gz {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&b).unwrap();
        b = e.finish().unwrap();
    }
    std::fs::write(path, b).unwrap();
}

/// A synthetic Fashion-MNIST: `n` training and 3 test images of 2x3 pixels whose
/// pixel `v` of case `c` is `(c + 7v) % 256`, labels `c % 10`.
fn synthetic(dir: &Path, n: usize) {
    let img = |c: usize| (0..6).map(move |v| ((c + 7 * v) % 256) as u8);
    let train: Vec<u8> = (0..n).flat_map(img).collect();
    let labels: Vec<u8> = (0..n).map(|c| (c % 10) as u8).collect();
    write_idx(
        &dir.join("train-images-idx3-ubyte.gz"),
        &[n as u32, 2, 3],
        &train,
        true,
    );
    write_idx(
        &dir.join("train-labels-idx1-ubyte"),
        &[n as u32],
        &labels,
        false,
    );
    write_idx(
        &dir.join("t10k-images-idx3-ubyte"),
        &[3, 2, 3],
        &(0..3).flat_map(img).collect::<Vec<_>>(),
        false,
    );
    write_idx(
        &dir.join("t10k-labels-idx1-ubyte.gz"),
        &[3],
        &[0, 1, 2],
        true,
    );
}

fn import(src: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["import", "fashion-mnist", "--src"])
        .arg(src)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn array(o: &PyObj) -> (Vec<u64>, String, Vec<u8>) {
    match o {
        PyObj::Array(a) => {
            let a = a.borrow();
            (a.shape.clone(), a.dtype.code(), a.data.clone())
        }
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn batches_hold_cases_in_columns_and_the_mean_image() {
    let dir = scratch("synthetic");
    synthetic(&dir, 10003);
    let out = dir.join("batches");
    let r = import(&dir, &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // 10003 training cases: batches of 10000 and 3; the test set is the last batch.
    let b2 = checkpoint::load(&out.join("data_batch_2")).unwrap();
    let (shape, dtype, data) = array(&b2.get("data").unwrap());
    assert_eq!((shape, dtype.as_str()), (vec![6, 3], "u1"));
    for v in 0..6 {
        for c in 0..3 {
            assert_eq!(data[v * 3 + c] as usize, (10000 + c + 7 * v) % 256);
        }
    }
    let labels = b2.get("labels").unwrap();
    match &*labels {
        PyObj::List(l) => assert!(matches!(&*l.borrow()[2], PyObj::Int(2))),
        other => panic!("labels: {other:?}"),
    }
    let test = checkpoint::load(&out.join("data_batch_3")).unwrap();
    assert_eq!(array(&test.get("data").unwrap()).0, vec![6, 3]);
    assert!(!out.join("data_batch_4").exists());

    let meta = checkpoint::load(&out.join("batches.meta")).unwrap();
    let (shape, dtype, mean) = array(&meta.get("data_mean").unwrap());
    assert_eq!((shape, dtype.as_str()), (vec![6, 1], "f8"));
    for v in 0..6 {
        let want = (0..10003).map(|c| ((c + 7 * v) % 256) as f64).sum::<f64>() / 10003.0;
        let got = f64::from_le_bytes(mean[8 * v..8 * v + 8].try_into().unwrap());
        assert_eq!(got, want);
    }
    assert!(matches!(&*meta.get("num_vis").unwrap(), PyObj::Int(6)));
}

#[test]
fn missing_or_broken_files_are_clear_errors() {
    let dir = scratch("broken");
    let r = import(&dir, &dir.join("out"));
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("no train-images-idx3-ubyte"));
    synthetic(&dir, 5);
    std::fs::write(
        dir.join("train-labels-idx1-ubyte"),
        b"\0\0\x08\x01\0\0\0\x09abc",
    )
    .unwrap();
    let r = import(&dir, &dir.join("out"));
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("train-labels-idx1-ubyte: not an IDX file"),
        "{err}"
    );
}

#[test]
#[cfg_attr(
    not(convnet_python2),
    ignore = "needs CONVNET_PYTHON2 (Python 2.7 with numpy 1.x)"
)]
fn python2_cpickle_loads_the_batches() {
    let dir = scratch("py2");
    synthetic(&dir, 12);
    let out = dir.join("batches");
    assert!(import(&dir, &out).status.success());
    let script = "import cPickle, sys\n\
        d = sys.argv[1]\n\
        m = cPickle.load(open(d + '/batches.meta', 'rb'))\n\
        b = cPickle.load(open(d + '/data_batch_1', 'rb'))\n\
        print m['num_vis'], m['label_names'][9], m['data_mean'].shape, b['data'].shape, b['data'].dtype, b['labels'][:3], b['data'][1, 2]\n";
    let r = Command::new(std::env::var("CONVNET_PYTHON2").unwrap())
        .arg("-c")
        .arg(script)
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        String::from_utf8_lossy(&r.stdout).trim(),
        "6 Ankle boot (6, 1) (6, 12) uint8 [0, 1, 2] 9"
    );
}
