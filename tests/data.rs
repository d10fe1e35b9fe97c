//! Data: `convnet import fashion-mnist` turns IDX files into cuda-convnet batch files
//! that our reader and Python 2.7's cPickle (numpy 1.x) load, with cases in columns,
//! labels and the mean training image; the `cifar` and `cifar-cropped` providers serve
//! them as the originals did (checked against direct computations).

use convnet::checkpoint::{self, value::PyObj};
use convnet::config::Generation;
use convnet::data::cifar::{CifarProvider, CroppedCifarProvider};
use convnet::data::provider::DataProvider;
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

/// A synthetic Fashion-MNIST: `n` training and 3 test images of 3x3 pixels whose
/// pixel `v` of case `c` is `(c + 7v) % 256`, labels `c % 10`.
fn synthetic(dir: &Path, n: usize) {
    let img = |c: usize| (0..9).map(move |v| ((c + 7 * v) % 256) as u8);
    let train: Vec<u8> = (0..n).flat_map(img).collect();
    let labels: Vec<u8> = (0..n).map(|c| (c % 10) as u8).collect();
    write_idx(
        &dir.join("train-images-idx3-ubyte.gz"),
        &[n as u32, 3, 3],
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
        &[3, 3, 3],
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
    assert_eq!((shape, dtype.as_str()), (vec![9, 3], "u1"));
    for v in 0..9 {
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
    assert_eq!(array(&test.get("data").unwrap()).0, vec![9, 3]);
    assert!(!out.join("data_batch_4").exists());

    let meta = checkpoint::load(&out.join("batches.meta")).unwrap();
    let (shape, dtype, mean) = array(&meta.get("data_mean").unwrap());
    assert_eq!((shape, dtype.as_str()), (vec![9, 1], "f8"));
    for v in 0..9 {
        let want = (0..10003).map(|c| ((c + 7 * v) % 256) as f64).sum::<f64>() / 10003.0;
        let got = f64::from_le_bytes(mean[8 * v..8 * v + 8].try_into().unwrap());
        assert_eq!(got, want);
    }
    assert!(matches!(&*meta.get("num_vis").unwrap(), PyObj::Int(9)));
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
        "9 Ankle boot (9, 1) (9, 12) uint8 [0, 1, 2] 9"
    );
}

/// Pixel `v` of training case `c` in [`synthetic`] data.
fn pixel(c: usize, v: usize) -> f64 {
    ((c + 7 * v) % 256) as f64
}

/// Imported synthetic batches (12 training cases of 3x3, so one training batch and
/// the test batch 2).
fn imported(name: &str) -> PathBuf {
    let dir = scratch(name);
    synthetic(&dir, 12);
    let out = dir.join("batches");
    assert!(import(&dir, &out).status.success());
    out
}

fn mean(v: usize) -> f64 {
    (0..12).map(|c| pixel(c, v)).sum::<f64>() / 12.0
}

#[test]
fn cifar_provider_subtracts_the_mean_as_numpy() {
    let dir = imported("cifar");
    let mut p = CifarProvider::new(Generation::C1, &dir, vec![1], 1, None).unwrap();
    assert_eq!(
        (p.data_dims(0), p.data_dims(1), p.num_classes()),
        (9, 1, 10)
    );
    let b = p.next_batch().unwrap();
    assert_eq!((b.epoch, b.batchnum), (1, 1));
    let (d, l) = (&b.data[0], &b.data[1]);
    assert_eq!((d.rows(), d.cols(), l.rows(), l.cols()), (9, 12, 1, 12));
    for v in 0..9 {
        for c in 0..12 {
            assert_eq!(d.get(v, c), (pixel(c, v) - mean(v)) as f32);
        }
    }
    assert_eq!(l.get(0, 7), 7.0);
    assert_eq!(p.next_batch().unwrap().epoch, 2);
}

#[test]
fn cropped_provider_crops_flips_and_takes_ten_views() {
    let dir = imported("cropped");
    // 3x3 images, border 1: 1x1 crops; the mean of the centre pixel is subtracted.
    let centre_mean = mean(4);
    let value =
        |c: usize, y: usize, x: usize| (pixel(c, 3 * y + x) as f32 as f64 - centre_mean) as f32;
    let mut test =
        CroppedCifarProvider::new(Generation::C1, &dir, vec![1], 1, None, 1, false, true, 0)
            .unwrap();
    let b = test.next_batch().unwrap();
    assert_eq!(b.data[0].cols(), 12);
    for c in 0..12 {
        assert_eq!(b.data[0].get(0, c), value(c, 1, 1));
    }
    let mut multi =
        CroppedCifarProvider::new(Generation::C1, &dir, vec![1], 1, None, 1, true, true, 0)
            .unwrap();
    assert_eq!(multi.num_views(), 10);
    let b = multi.next_batch().unwrap();
    assert_eq!((b.data[0].cols(), b.data[1].cols()), (120, 120));
    let starts = [(0, 0), (0, 2), (1, 1), (2, 0), (2, 2)];
    for (v, &(y, x)) in starts.iter().enumerate() {
        for c in 0..12 {
            assert_eq!(b.data[0].get(0, v * 12 + c), value(c, y, x));
            // A 1-pixel crop flipped is itself.
            assert_eq!(b.data[0].get(0, (v + 5) * 12 + c), value(c, y, x));
            assert_eq!(b.data[1].get(0, (v + 5) * 12 + c), (c % 10) as f32);
        }
    }
    // Training: every case is one of the nine 1x1 crops; over many batches all occur.
    let mut train =
        CroppedCifarProvider::new(Generation::C1, &dir, vec![1], 1, None, 1, false, false, 42)
            .unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let b = train.next_batch().unwrap();
        for c in 0..12 {
            let got = b.data[0].get(0, c);
            let pos = (0..9)
                .find(|&k| value(c, k / 3, k % 3) == got)
                .expect("a crop of the case");
            seen.insert(pos);
        }
    }
    assert_eq!(seen.len(), 9);
}

#[test]
fn providers_reject_what_they_cannot_serve() {
    let dir = imported("reject");
    let e = CroppedCifarProvider::new(Generation::C1, &dir, vec![1], 1, None, 2, false, false, 0)
        .err()
        .unwrap();
    assert!(e.contains("--crop-border=2"), "{e}");
    let e = CifarProvider::new(Generation::C1, &dir, vec![3], 1, None)
        .err()
        .unwrap();
    assert!(e.contains("data_batch_3"), "{e}");
}

/// [`synthetic_cifar`] in `dir`, imported by `convnet import cifar10` into
/// `dir/batches` (returned).
fn imported_cifar(dir: &Path) -> PathBuf {
    synthetic_cifar(dir);
    let out = dir.join("batches");
    let r = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["import", "cifar10", "--src"])
        .arg(dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    out
}

/// Writes a synthetic `cifar-10-batches-py` with our pickle writer: five training
/// batches of 2 cases and a test batch of 3, pixel `v` of case `c` = `(3c + v) % 251`
/// (cases numbered across the training batches, then the test batch from 10).
fn synthetic_cifar(dir: &Path) {
    use convnet::checkpoint::model::pystr;
    use convnet::checkpoint::value::{Dtype, NdArray};
    use convnet::checkpoint::writer::dumps;
    use std::cell::RefCell;
    use std::rc::Rc;
    let obj = |o: PyObj| Rc::new(o);
    let batch = |first: usize, cases: usize| {
        let data: Vec<u8> = (first..first + cases)
            .flat_map(|c| (0..3072).map(move |v| ((3 * c + v) % 251) as u8))
            .collect();
        let dtype = Dtype {
            kind: 'u',
            size: 1,
            big_endian: false,
        };
        let arr = obj(PyObj::Array(RefCell::new(NdArray {
            dtype,
            shape: vec![cases as u64, 3072],
            fortran: false,
            data,
        })));
        let labels = obj(PyObj::List(RefCell::new(
            (first..first + cases)
                .map(|c| obj(PyObj::Int((c % 10) as i64)))
                .collect(),
        )));
        dumps(&obj(PyObj::Dict(RefCell::new(vec![
            (pystr("data"), arr),
            (pystr("labels"), labels),
        ]))))
    };
    for i in 0..5 {
        std::fs::write(dir.join(format!("data_batch_{}", i + 1)), batch(2 * i, 2)).unwrap();
    }
    std::fs::write(dir.join("test_batch"), batch(10, 3)).unwrap();
    let names = obj(PyObj::List(RefCell::new(
        (0..10).map(|i| pystr(&format!("class{i}"))).collect(),
    )));
    std::fs::write(
        dir.join("batches.meta"),
        dumps(&obj(PyObj::Dict(RefCell::new(vec![(
            pystr("label_names"),
            names,
        )])))),
    )
    .unwrap();
}

#[test]
fn cifar10_python_batches_become_column_batches() {
    let dir = scratch("cifar10");
    let out = imported_cifar(&dir);
    let train = checkpoint::load(&out.join("data_batch_1")).unwrap();
    let (shape, _, data) = array(&train.get("data").unwrap());
    assert_eq!(shape, vec![3072, 10]);
    for v in [0, 1, 1000, 3071] {
        for c in 0..10 {
            assert_eq!(data[v * 10 + c] as usize, (3 * c + v) % 251);
        }
    }
    let test = checkpoint::load(&out.join("data_batch_2")).unwrap();
    let (shape, _, data) = array(&test.get("data").unwrap());
    assert_eq!(
        (shape, data[5 * 3 + 2] as usize),
        (vec![3072, 3], 41) // pixel 5 of case 12: 3*12 + 5
    );
    let mut p = CifarProvider::new(Generation::C1, &out, vec![1], 1, None).unwrap();
    assert_eq!((p.data_dims(0), p.num_classes()), (3072, 10));
    let b = p.next_batch().unwrap();
    let mean7 = (0..10).map(|c| ((3 * c + 7) % 251) as f64).sum::<f64>() / 10.0;
    assert_eq!(
        b.data[0].get(7, 4),
        (19.0 - mean7) as f32 // pixel 7 of case 4: 3*4 + 7
    );
    // A broken source names the file.
    std::fs::write(dir.join("data_batch_3"), b"not a pickle").unwrap();
    let r = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["import", "cifar10", "--src"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("data_batch_3"));
}

#[test]
#[cfg_attr(
    not(convnet_python2),
    ignore = "needs CONVNET_PYTHON2 (Python 2.7 with numpy 1.x)"
)]
fn cifar10_batches_pickled_by_python2_import() {
    // The dataset's files are Python 2 cPickle dumps of dicts with numpy arrays; make
    // small ones the same way.
    let dir = scratch("cifar10-py2");
    let script = "import cPickle, sys, numpy as n\n\
        d = sys.argv[1]\n\
        for i, name in enumerate(['data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5', 'test_batch']):\n\
        \x20   x = ((n.arange(2)[:, None] + 2 * i) * 3 + n.arange(3072)[None, :]) % 251\n\
        \x20   cPickle.dump({'data': x.astype(n.uint8), 'labels': [i, i], 'batch_label': name}, open(d + '/' + name, 'wb'), 2)\n\
        cPickle.dump({'label_names': ['c%d' % k for k in range(10)], 'num_vis': 3072}, open(d + '/batches.meta', 'wb'))\n";
    let r = Command::new(std::env::var("CONVNET_PYTHON2").unwrap())
        .arg("-c")
        .arg(script)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let out = dir.join("batches");
    let r = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["import", "cifar10", "--src"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (shape, _, data) = array(
        &checkpoint::load(&out.join("data_batch_1"))
            .unwrap()
            .get("data")
            .unwrap(),
    );
    assert_eq!(shape, vec![3072, 10]);
    // Pixel 100 of case 7: 3*7 + 100.
    assert_eq!(data[100 * 10 + 7], 121);
}

#[test]
fn the_2012_providers_add_one_hot_labels_and_take_nine_views() {
    let dir = imported("a12");
    let mut p = CifarProvider::new(Generation::A12, &dir, vec![1], 1, None).unwrap();
    assert_eq!((p.data_dims(0), p.data_dims(1), p.data_dims(2)), (9, 1, 10));
    let b = p.next_batch().unwrap();
    let onehot = &b.data[2];
    assert_eq!((onehot.rows(), onehot.cols()), (10, 12));
    for c in 0..12 {
        for k in 0..10 {
            assert_eq!(onehot.get(k, c), (k == c % 10) as u8 as f32);
        }
    }
    // 3x3 images with border 1: the nine 1x1 views are the nine pixels, rows first.
    let mut multi =
        CroppedCifarProvider::new(Generation::A12, &dir, vec![1], 1, None, 1, true, true, 0)
            .unwrap();
    assert_eq!(multi.num_views(), 9);
    let b = multi.next_batch().unwrap();
    assert_eq!(b.data[0].cols(), 108);
    let centre_mean = mean(4);
    for k in 0..9 {
        for c in 0..12 {
            assert_eq!(
                b.data[0].get(0, k * 12 + c),
                (pixel(c, k) as f32 as f64 - centre_mean) as f32
            );
        }
    }
}

#[test]
fn get_instance_names_the_providers_as_the_original() {
    use convnet::data::provider::{get_instance, DpParams};
    let dir = imported("instance");
    let dp = DpParams {
        crop_border: 1,
        multiview_test: true,
        ..DpParams::default()
    };
    let get = |ty: Option<&str>, test| {
        get_instance(Generation::C1, &dir, vec![1], 1, None, ty, dp, test, 0)
    };
    let mut p = get(Some("cifar-cropped"), true).unwrap();
    assert_eq!(
        (p.data_dims(0), p.num_views(), p.num_classes()),
        (1, 10, 10)
    );
    assert_eq!(p.next_batch().unwrap().data[0].cols(), 120);
    assert_eq!(get(Some("cifar"), false).unwrap().data_dims(0), 9);
    let mut d = get(Some("dummy-cn-20"), false).unwrap();
    let b = d.next_batch().unwrap();
    // The original's dummy provider reports the epoch after advancing.
    assert_eq!(
        (b.epoch, b.batchnum, b.data[0].rows(), b.data[0].cols()),
        (2, 1, 20, 512)
    );
    assert!(b.data[0].data().iter().all(|&x| (0.0..1.0).contains(&x)));
    assert!(b.data[1]
        .data()
        .iter()
        .all(|&l| l < 10.0 && l.fract() == 0.0));
    let err = |ty: Option<&str>| get(ty, false).err().unwrap();
    assert!(err(None).contains("no dp_type"));
    assert_eq!(err(Some("bogus")), "No such data provider: bogus");
    assert!(err(Some("dummy-labeled-5")).contains("cannot train on"));
    assert!(err(Some("dummy-cn-x")).contains("No such data provider"));
}

#[test]
fn cropped_cifar_training_crops_and_flips_as_computed_here() {
    let dir = scratch("cifar-crops");
    let out = imported_cifar(&dir);
    // 32x32, border 4: 24x24 crops at offsets 0..=8, flipped or not; the mean's
    // centre crop (over the 10 training cases) is subtracted.
    let px = |c: usize, v: usize| ((3 * c + v) % 251) as f64;
    let mean = |v: usize| (0..10).map(|c| px(c, v)).sum::<f64>() / 10.0;
    let expected = |c: usize, (sy, sx, flip): (usize, usize, bool), d: usize| {
        let (ch, y, x) = (d / 576, d / 24 % 24, d % 24);
        let src_x = if flip { sx + 23 - x } else { sx + x };
        let v = (ch * 32 + sy + y) * 32 + src_x;
        let centre = (ch * 32 + 4 + y) * 32 + 4 + x;
        (px(c, v) as f32 as f64 - mean(centre)) as f32
    };
    let mut p =
        CroppedCifarProvider::new(Generation::C1, &out, vec![1], 1, None, 4, false, false, 5)
            .unwrap();
    let mut flips = std::collections::HashSet::new();
    for _ in 0..4 {
        let b = p.next_batch().unwrap();
        assert_eq!((b.data[0].rows(), b.data[0].cols()), (1728, 10));
        for c in 0..10 {
            let fits: Vec<(usize, usize, bool)> = (0..81)
                .flat_map(|k| [false, true].map(|f| (k / 9, k % 9, f)))
                .filter(|&crop| (0..1728).all(|d| b.data[0].get(d, c) == expected(c, crop, d)))
                .collect();
            assert!(!fits.is_empty(), "case {c} is no crop of its image");
            if fits.iter().all(|f| f.2 == fits[0].2) {
                flips.insert(fits[0].2);
            }
        }
    }
    assert_eq!(flips.len(), 2, "both flipped and unflipped crops occur");
}
