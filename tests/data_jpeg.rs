//! The 2012 JPEG data path: `convnet import jpeg-folder` writes the batch format of
//! convdata_jpeg.py (checked with our reader, the `image` crate and, where
//! `CONVNET_PYTHON2` is set, Python 2.7's cPickle); the `inet-lr-cropped-jpeg` provider
//! crops, flips, subtracts the mean, adds PCA colour noise and takes the ten test views
//! as computed independently here; a small 2012 net trains on imported JPEGs.

use convnet::checkpoint::{self, value::PyObj};
use convnet::data::jpeg::JpegCroppedProvider;
use convnet::data::provider::{DataProvider, DpParams};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::rc::Rc;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("convnet-jpeg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A deterministic pseudo-random byte.
fn hash(a: u32, b: u32, c: u32) -> u8 {
    let mut z = (a as u64) << 40 ^ (b as u64) << 20 ^ c as u64;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z >> 56) as u8
}

/// Writes a `w x h` image whose pixel `(x, y)` is `f(x, y)` (PNG or JPEG by extension).
fn write_image(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
        .save(path)
        .unwrap();
}

/// A folder of `per_class` noisy `size x size` images in each of `classes` classes
/// `a`, `b`, ..., alternately PNG and JPEG; the colours lean to the class.
fn noisy_folder(dir: &Path, classes: u8, per_class: u32, size: u32, salt: u32) {
    for k in 0..classes {
        let class = ((b'a' + k) as char).to_string();
        for i in 0..per_class {
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            let id = salt * 1000 + k as u32 * 100 + i;
            write_image(
                &dir.join(class.as_str()).join(format!("{i}.{ext}")),
                size,
                size,
                |x, y| {
                    let n = |ch| hash(id, y * size + x, ch) / 2;
                    [n(0) + 12 * k, n(1) + 40, n(2) + 110 - 12 * k]
                },
            );
        }
    }
}

fn convnet(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_convnet"));
    cmd.args(args);
    for (flag, p) in paths {
        cmd.arg(flag).arg(p);
    }
    cmd.output().unwrap()
}

/// `convnet import jpeg-folder --src SRC --out OUT ARGS...`, which must succeed.
fn import(src: &Path, out: &Path, args: &[&str]) {
    let mut all = vec!["import", "jpeg-folder"];
    all.extend(args);
    let r = convnet(&all, &[("--src", src), ("--out", out)]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

/// The items of a pickled tuple or list.
fn items(o: &PyObj) -> Vec<Rc<PyObj>> {
    match o {
        PyObj::Tuple(v) => v.clone(),
        PyObj::List(l) => l.borrow().clone(),
        other => panic!("not a sequence: {other:?}"),
    }
}

fn int(o: &PyObj) -> i64 {
    match o {
        PyObj::Int(i) => *i,
        other => panic!("not an int: {other:?}"),
    }
}

fn bytes(o: &PyObj) -> Vec<u8> {
    match o {
        PyObj::Bytes(b) => b.clone(),
        other => panic!("not a str: {other:?}"),
    }
}

/// A numpy array's shape and values as f64.
fn f64s(o: &PyObj) -> (Vec<u64>, Vec<f64>) {
    let PyObj::Array(a) = o else {
        panic!("not an array: {o:?}")
    };
    let a = a.borrow();
    assert_eq!(a.dtype.code(), "f8");
    let v = a
        .data
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (a.shape.clone(), v)
}

/// One batch file: `(jpegs, orig_sizes, labels)`.
type JpegBatch = (Vec<Vec<u8>>, Vec<(i64, i64)>, Vec<(String, i64)>);

fn read_batch(path: &Path) -> JpegBatch {
    let t = items(&checkpoint::load(path).unwrap());
    assert_eq!(t.len(), 3);
    let jpegs = items(&t[0]).iter().map(|s| bytes(s)).collect();
    let sizes = items(&t[1])
        .iter()
        .map(|s| {
            let wh = items(s);
            (int(&wh[0]), int(&wh[1]))
        })
        .collect();
    let labels = items(&t[2])
        .iter()
        .map(|l| {
            let l = items(l);
            (String::from_utf8(bytes(&l[0])).unwrap(), int(&l[1]))
        })
        .collect();
    (jpegs, sizes, labels)
}

/// A JPEG decoded here: `(height, width)` and the pixels as planes `(3, h, w)`.
fn planes(jpeg: &[u8]) -> ((u32, u32), Vec<u8>) {
    let img = image::load_from_memory(jpeg).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let mut p = vec![0u8; (3 * w * h) as usize];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..3 {
                p[((ch * h + y) * w + x) as usize] = img.get_pixel(x, y).0[ch as usize];
            }
        }
    }
    ((h, w), p)
}

/// What the tests read of batches.meta.
struct Meta {
    num_vis: usize,
    names: Vec<String>,
    mean: Vec<f64>,
    batch_size: i64,
    stdevs: Vec<f64>,
    /// `vecs[3*c + j]`: channel `c` of eigenvector `j`.
    vecs: Vec<f64>,
}

fn read_meta(dir: &Path) -> Meta {
    let m = checkpoint::load(&dir.join("batches.meta")).unwrap();
    let (mean_shape, mean) = f64s(&m.get("data_mean").unwrap());
    let pca = items(&m.get("color_pca").unwrap());
    let ((s_shape, stdevs), (v_shape, vecs)) = (f64s(&pca[0]), f64s(&pca[1]));
    assert_eq!((s_shape, v_shape), (vec![3], vec![3, 3]));
    let num_vis = int(&m.get("num_vis").unwrap()) as usize;
    assert_eq!(mean_shape, vec![num_vis as u64, 1]);
    Meta {
        num_vis,
        names: items(&m.get("label_names").unwrap())
            .iter()
            .map(|n| String::from_utf8(bytes(n)).unwrap())
            .collect(),
        mean,
        batch_size: int(&m.get("batch_size").unwrap()),
        stdevs,
        vecs,
    }
}

/// Every batch file of `dir` in order, up to the first missing number.
fn batches(dir: &Path) -> Vec<JpegBatch> {
    (1..)
        .map(|n| dir.join(format!("data_batch_{n}")))
        .take_while(|p| p.exists())
        .map(|p| read_batch(&p))
        .collect()
}

#[test]
fn import_writes_the_2012_batch_format() {
    let dir = scratch("import");
    let (src, test_src, out) = (dir.join("train"), dir.join("test"), dir.join("out"));
    // Class "x": a 24x12 image whose centre square is kept as it is; "y": a 12x12 image
    // and a 24x24 one scaled by 1/2; "z": 5 small noisy images. Red follows x, green y.
    let ramp = |x: u32, y: u32| [(10 * x) as u8, (10 * y) as u8, 128];
    write_image(&src.join("x/wide.png"), 24, 12, ramp);
    write_image(&src.join("y/same.png"), 12, 12, |x, y| ramp(2 * x, y));
    write_image(&src.join("y/big.png"), 24, 24, |x, y| {
        [(5 * x) as u8, (5 * y) as u8, 128]
    });
    for i in 0..5 {
        write_image(&src.join(format!("z/{i}.jpg")), 9, 9, |x, y| {
            [hash(i, x, y), hash(i, y, x), 7]
        });
    }
    std::fs::write(src.join("README"), "not an image folder, ignored").unwrap();
    std::fs::write(src.join("z/notes.txt"), "not an image, ignored").unwrap();
    write_image(&test_src.join("y/t.png"), 12, 12, ramp);
    write_image(&test_src.join("x/t.png"), 12, 12, |x, y| ramp(y, x));
    let mut args = vec!["import", "jpeg-folder", "--size=12", "--cases-per-batch=3"];
    args.push("--quality=100");
    let r = convnet(
        &args,
        &[("--src", &src), ("--out", &out), ("--test-src", &test_src)],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // 8 training images in batches of 3, 3, 2; then the 2 test images.
    let all = batches(&out);
    let counts: Vec<usize> = all.iter().map(|b| b.0.len()).collect();
    assert_eq!(counts, vec![3, 3, 2, 2]);
    let meta = read_meta(&out);
    assert_eq!(meta.names, vec!["x", "y", "z"]);
    assert_eq!((meta.num_vis, meta.batch_size), (432, 3));

    // Labels are (class, index); the classes' images all arrive, shuffled.
    let mut by_size = std::collections::HashMap::new();
    let mut train_planes = vec![];
    for (n, (jpegs, sizes, labels)) in all.iter().enumerate() {
        for ((jpeg, &size), (name, idx)) in jpegs.iter().zip(sizes).zip(labels) {
            assert_eq!(meta.names[*idx as usize], *name);
            let (hw, p) = planes(jpeg);
            assert_eq!(hw, (12, 12));
            if n < 3 {
                train_planes.push(p.clone());
                by_size.insert(size, (name.clone(), p));
            }
        }
    }
    let order: Vec<&str> = all[..3]
        .iter()
        .flat_map(|b| b.2.iter().map(|l| l.0.as_str()))
        .collect();
    assert_ne!(
        order,
        vec!["x", "y", "y", "z", "z", "z", "z", "z"],
        "shuffled"
    );
    assert_eq!(all[3].2.iter().filter(|l| l.0 == "x").count(), 1);

    // The kept pixels: mean absolute difference from the expected image, per image.
    let close = |p: &[u8], f: &dyn Fn(u32, u32) -> [f64; 3]| {
        let mut diff = 0.0;
        for y in 0..12 {
            for x in 0..12 {
                for ch in 0..3 {
                    diff +=
                        (p[(ch * 144 + y * 12 + x) as usize] as f64 - f(x, y)[ch as usize]).abs();
                }
            }
        }
        diff / 432.0
    };
    let wide = &by_size[&(24, 12)];
    assert_eq!(wide.0, "x");
    // The centre square of the 24x12 image starts at x = 6; a shift by one would be 10
    // apart on average in red.
    let centre = |x: u32, y: u32| [10.0 * (x + 6) as f64, 10.0 * y as f64, 128.0];
    assert!(close(&wide.1, &centre) < 3.0, "{}", close(&wide.1, &centre));
    let same = &by_size[&(12, 12)];
    let f = |x: u32, y: u32| [20.0 * x as f64, 10.0 * y as f64, 128.0];
    assert!(close(&same.1, &f) < 3.0, "{}", close(&same.1, &f));
    // Scaled by 1/2: output pixel x samples the source around 2x + 0.5.
    let big = &by_size[&(24, 24)];
    let f = |x: u32, y: u32| {
        [
            5.0 * (2 * x) as f64 + 2.5,
            5.0 * (2 * y) as f64 + 2.5,
            128.0,
        ]
    };
    assert!(close(&big.1, &f) < 3.0, "{}", close(&big.1, &f));

    // data_mean: the mean of the training JPEGs as decoded.
    for v in 0..432 {
        let m = train_planes.iter().map(|p| p[v] as f64).sum::<f64>() / 8.0;
        assert!((meta.mean[v] - m).abs() < 1e-9, "{v}: {} {m}", meta.mean[v]);
    }
    // color_pca: the covariance of the training pixels' RGB = sum_j s_j^2 v_j v_j^T,
    // with orthonormal eigenvectors and ascending values.
    let px: Vec<[f64; 3]> = train_planes
        .iter()
        .flat_map(|p| (0..144).map(move |i| [0, 1, 2].map(|c| p[c * 144 + i] as f64)))
        .collect();
    let n = px.len() as f64;
    let mu = [0, 1, 2].map(|c| px.iter().map(|p| p[c]).sum::<f64>() / n);
    for a in 0..3 {
        for b in 0..3 {
            let cov = px
                .iter()
                .map(|p| (p[a] - mu[a]) * (p[b] - mu[b]))
                .sum::<f64>()
                / n;
            let rebuilt: f64 = (0..3)
                .map(|j| meta.stdevs[j].powi(2) * meta.vecs[3 * a + j] * meta.vecs[3 * b + j])
                .sum();
            assert!(
                (cov - rebuilt).abs() < 1e-6 * cov.abs().max(1.0),
                "{a}{b}: {cov} {rebuilt}"
            );
            let dot: f64 = (0..3)
                .map(|c| meta.vecs[3 * c + a] * meta.vecs[3 * c + b])
                .sum();
            assert!((dot - (a == b) as u8 as f64).abs() < 1e-9);
        }
    }
    assert!(meta.stdevs[0] <= meta.stdevs[1] && meta.stdevs[1] <= meta.stdevs[2]);
}

#[test]
fn bad_folders_are_clear_errors() {
    let dir = scratch("bad");
    let fails = |src: &Path, extra: &[(&str, &Path)], want: &str| {
        let mut paths = vec![("--src", src), ("--out", &*dir)];
        paths.extend(extra);
        let r = convnet(&["import", "jpeg-folder", "--size=8"], &paths);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{err}");
        assert!(
            err.contains(want) && !err.contains("panicked"),
            "{want}: {err}"
        );
    };
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    fails(&src, &[], "no class folders");
    fails(&dir.join("missing"), &[], "missing");
    std::fs::create_dir_all(src.join("empty")).unwrap();
    fails(&src, &[], "empty: no images");
    std::fs::remove_dir(src.join("empty")).unwrap();
    write_image(&src.join("ok/a.png"), 8, 8, |x, y| [x as u8, y as u8, 0]);
    std::fs::write(src.join("ok/broken.jpg"), b"\xff\xd8 not really a JPEG").unwrap();
    fails(&src, &[], "broken.jpg");
    std::fs::remove_file(src.join("ok/broken.jpg")).unwrap();
    let test = dir.join("test");
    write_image(&test.join("other/a.png"), 8, 8, |x, y| {
        [x as u8, y as u8, 0]
    });
    fails(
        &src,
        &[("--test-src", &test)],
        "class other is not a class of",
    );
    let r = convnet(&["import", "jpeg-folder", "--out", "/tmp/x"], &[]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("jpeg-folder needs --src"));
}

#[test]
fn python2_cpickle_loads_the_jpeg_batches() {
    let Ok(py) = std::env::var("CONVNET_PYTHON2") else {
        // Past the harness's capture of `eprintln!`, so that `cargo test` shows it.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: python2_cpickle_loads_the_jpeg_batches needs CONVNET_PYTHON2 (Python 2.7 with numpy 1.x)"
        );
        return;
    };
    let dir = scratch("py2");
    noisy_folder(&dir.join("src"), 3, 2, 10, 0);
    let out = dir.join("out");
    import(&dir.join("src"), &out, &["--size=8", "--cases-per-batch=4"]);
    let script = "import cPickle, sys\n\
        d = sys.argv[1]\n\
        s, o, l = cPickle.load(open(d + '/data_batch_1', 'rb'))\n\
        m = cPickle.load(open(d + '/batches.meta', 'rb'))\n\
        print len(s), type(s[0]).__name__, s[0][:2] == '\\xff\\xd8', o[0], set(x[0] for x in l) <= set('abc'), type(l[0][1]).__name__\n\
        print m['num_vis'], m['label_names'], m['data_mean'].shape, m['data_mean'].dtype, m['batch_size'], m['color_pca'][0].shape, m['color_pca'][1].shape\n";
    let r = Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        String::from_utf8_lossy(&r.stdout).trim(),
        "4 str True (10, 10) True int\n192 ['a', 'b', 'c'] (192, 1) float64 4 (3,) (3, 3)"
    );
}

/// An imported folder of `per_class` noisy images per class, `size x size`, one batch.
fn imported(name: &str, per_class: u32, size: u32) -> PathBuf {
    let dir = scratch(name);
    noisy_folder(&dir.join("src"), 3, per_class, size, 1);
    let out = dir.join("out");
    let n = (3 * per_class).to_string();
    import(
        &dir.join("src"),
        &out,
        &[&format!("--size={size}"), &format!("--cases-per-batch={n}")],
    );
    out
}

fn provider(dir: &Path, dp: DpParams, test: bool, seed: u64) -> JpegCroppedProvider {
    JpegCroppedProvider::new(dir, vec![1], 1, None, dp, test, seed).unwrap()
}

/// The expected crop value: pixel `(ch, sy + y, sx + x)` of an image (`x` mirrored
/// when flipped) as float32, minus `mean`.
fn expected(
    p: &[u8],
    size: usize,
    inner: usize,
    (sy, sx, flip): (usize, usize, bool),
    d: usize,
    mean: f32,
) -> f32 {
    let (ch, y, x) = (d / (inner * inner), d / inner % inner, d % inner);
    let x = if flip { inner - 1 - x } else { x };
    p[(ch * size + sy + y) * size + sx + x] as f32 - mean
}

#[test]
fn provider_test_views_and_mean() {
    let dir = imported("views", 4, 10);
    let (size, border, inner) = (10, 2, 6);
    let meta = read_meta(&dir);
    let (jpegs, _, labels) = read_batch(&dir.join("data_batch_1"));
    let imgs: Vec<Vec<u8>> = jpegs.iter().map(|j| planes(j).1).collect();
    let n = imgs.len();
    // The centre crop of the mean, in float32.
    let mean_crop = |d: usize| {
        let (ch, y, x) = (d / 36, d / 6 % 6, d % 6);
        meta.mean[(ch * size + border + y) * size + border + x] as f32
    };
    let dp = DpParams {
        crop_border: border,
        ..DpParams::default()
    };
    let mut p = provider(&dir, dp, true, 0);
    assert_eq!(
        (
            p.data_dims(0),
            p.data_dims(1),
            p.num_classes(),
            p.num_views()
        ),
        (108, 1, 3, 1)
    );
    let b = p.next_batch().unwrap();
    assert_eq!((b.epoch, b.batchnum), (1, 1));
    let (d, l) = (&b.data[0], &b.data[1]);
    assert_eq!((d.rows(), d.cols(), d.is_trans()), (108, n, false));
    for c in 0..n {
        assert_eq!(l.get(0, c), labels[c].1 as f32);
        for v in 0..108 {
            assert_eq!(
                d.get(v, c),
                expected(&imgs[c], size, inner, (2, 2, false), v, mean_crop(v))
            );
        }
    }
    // Ten views, view-major, labels tiled.
    let mut p = provider(
        &dir,
        DpParams {
            multiview_test: true,
            ..dp
        },
        true,
        0,
    );
    assert_eq!(p.num_views(), 10);
    let b = p.next_batch().unwrap();
    assert_eq!((b.data[0].cols(), b.data[1].cols()), (10 * n, 10 * n));
    let starts = [(0, 0), (0, 4), (2, 2), (4, 0), (4, 4)];
    for k in 0..10 {
        let (sy, sx) = starts[k % 5];
        for c in 0..n {
            assert_eq!(b.data[1].get(0, k * n + c), labels[c].1 as f32);
            for v in 0..108 {
                let e = expected(&imgs[c], size, inner, (sy, sx, k >= 5), v, mean_crop(v));
                assert_eq!(
                    b.data[0].get(v, k * n + c),
                    e,
                    "view {k} case {c} value {v}"
                );
            }
        }
    }
    // --scalar-mean: one mean, that of the mean image.
    let mut p = provider(
        &dir,
        DpParams {
            scalar_mean: true,
            ..dp
        },
        true,
        0,
    );
    let b = p.next_batch().unwrap();
    let scalar = meta.mean.iter().sum::<f64>() / meta.mean.len() as f64;
    for (c, img) in imgs.iter().enumerate() {
        for v in 0..108 {
            let e = expected(img, size, inner, (2, 2, false), v, 0.0) as f64 - scalar;
            assert!((b.data[0].get(v, c) as f64 - e).abs() < 1e-4);
        }
    }
}

#[test]
fn provider_training_crops_chunks_and_color_noise() {
    // 36 images: chunks of 32 and 4 cases, each cropped alike.
    let dir = imported("train", 12, 8);
    let (size, border, inner) = (8, 2, 4);
    let meta = read_meta(&dir);
    let (jpegs, _, _) = read_batch(&dir.join("data_batch_1"));
    let imgs: Vec<Vec<u8>> = jpegs.iter().map(|j| planes(j).1).collect();
    let mean_crop = |d: usize| {
        let (ch, y, x) = (d / 16, d / 4 % 4, d % 4);
        meta.mean[(ch * size + border + y) * size + border + x] as f32
    };
    let dp = DpParams {
        crop_border: border,
        ..DpParams::default()
    };
    let noisy = DpParams {
        color_noise: 0.5,
        ..dp
    };
    let mut plain = provider(&dir, dp, false, 7);
    let mut with_noise = provider(&dir, noisy, false, 7);
    let mut seen = std::collections::HashSet::new();
    let mut noise = vec![];
    for _ in 0..40 {
        let (a, b) = (
            plain.next_batch().unwrap(),
            with_noise.next_batch().unwrap(),
        );
        let (a, b) = (&a.data[0], &b.data[0]);
        assert_eq!((a.cols(), a.rows()), (36, 48));
        for (lo, hi) in [(0, 32), (32, 36)] {
            // The one crop that explains every case of the chunk.
            let crops: Vec<(usize, usize, bool)> = (0..25)
                .flat_map(|k| [false, true].map(|f| (k / 5, k % 5, f)))
                .filter(|&crop| {
                    (lo..hi).all(|c| {
                        (0..48).all(|v| {
                            a.get(v, c) == expected(&imgs[c], size, inner, crop, v, mean_crop(v))
                        })
                    })
                })
                .collect();
            assert_eq!(crops.len(), 1, "{crops:?}");
            seen.insert(crops[0]);
        }
        // Colour noise: (x + 0.5 n[c][ch]) / 1.5 in float32, n one RGB offset per image.
        let n = with_noise.color_noise();
        assert_eq!(n.len(), 36);
        for (c, nc) in n.iter().enumerate() {
            for v in 0..48 {
                let e = (a.get(v, c) + nc[v / 16] * 0.5f32) / 1.5f32;
                assert_eq!(b.get(v, c), e);
            }
        }
        noise.extend_from_slice(n);
    }
    assert!(seen.len() > 40, "{} distinct crops", seen.len());
    assert!(seen.iter().any(|c| c.2) && seen.iter().any(|c| !c.2));
    // The noise's covariance is the pixels' (sum_j s_j^2 v_j v_j^T), within sampling
    // error of 1440 draws.
    let cov = |a: usize, b: usize| {
        noise.iter().map(|n| n[a] as f64 * n[b] as f64).sum::<f64>() / noise.len() as f64
    };
    let want = |a: usize, b: usize| -> f64 {
        (0..3)
            .map(|j| meta.stdevs[j].powi(2) * meta.vecs[3 * a + j] * meta.vecs[3 * b + j])
            .sum()
    };
    let scale = (0..3).map(|a| want(a, a)).fold(0.0, f64::max);
    for a in 0..3 {
        for b in 0..3 {
            assert!(
                (cov(a, b) - want(a, b)).abs() < 0.15 * scale,
                "{a}{b}: {} {}",
                cov(a, b),
                want(a, b)
            );
        }
    }
}

#[test]
fn provider_errors_are_results() {
    let dir = imported("errors", 1, 8);
    let dp = DpParams {
        crop_border: 4,
        ..DpParams::default()
    };
    let e = JpegCroppedProvider::new(&dir, vec![1], 1, None, dp, false, 0)
        .err()
        .unwrap();
    assert!(e.contains("--crop-border=4"), "{e}");
    let dp = DpParams {
        crop_border: 1,
        ..DpParams::default()
    };
    let mut p = JpegCroppedProvider::new(&dir, vec![1, 2], 1, None, dp, false, 0).unwrap();
    assert!(p.next_batch().is_ok());
    let e = p.next_batch().err().unwrap();
    assert!(e.contains("data_batch_2"), "{e}");
    // Registered for 2012 only, as the originals' registries.
    use convnet::config::Generation;
    use convnet::data::provider::get_instance;
    let get = |gen| {
        get_instance(
            gen,
            &dir,
            vec![1],
            1,
            None,
            Some("inet-lr-cropped-jpeg"),
            dp,
            true,
            0,
        )
    };
    assert_eq!(get(Generation::A12).unwrap().data_dims(0), 108);
    assert!(get(Generation::C1)
        .err()
        .unwrap()
        .contains("No such data provider"));
    std::fs::write(dir.join("data_batch_1"), b"garbage").unwrap();
    let mut p = JpegCroppedProvider::new(&dir, vec![1], 1, None, dp, true, 0).unwrap();
    assert!(p.next_batch().err().unwrap().contains("data_batch_1"));
}

#[test]
fn a_2012_net_trains_on_imported_jpegs() {
    let dir = scratch("e2e");
    // The test net has 10 classes.
    noisy_folder(&dir.join("train"), 10, 5, 14, 2);
    noisy_folder(&dir.join("test"), 10, 1, 12, 3);
    let out = dir.join("out");
    let args = ["--size=12", "--cases-per-batch=25"];
    let r = convnet(
        &[&["import", "jpeg-folder"][..], &args].concat(),
        &[
            ("--src", &dir.join("train")),
            ("--out", &out),
            ("--test-src", &dir.join("test")),
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // 50 training images in batches 1-2, 10 test images in batch 3; crops of 8x8 give
    // the 192 inputs of the test net.
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/e2e");
    let r = convnet(
        &[
            "--data-provider=inet-lr-cropped-jpeg",
            "--train-range=1-2",
            "--test-range=3",
            "--crop-border=2",
            "--color-noise=0.1",
            "--multiview-test=1",
            "--logreg-name=logprob",
            "--epochs=1",
            "--test-freq=2",
            "--mini=8",
        ],
        &[
            ("--data-path", &out),
            ("--layer-def", &e2e.join("layers-2012.cfg")),
            ("--layer-params", &e2e.join("params-2012.cfg")),
            ("--save-path", &dir.join("save")),
        ],
    );
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let costs: Vec<f64> = stdout
        .lines()
        .filter(|l| l.contains("logprob:"))
        .map(|l| {
            let v = l.split("logprob:").nth(1).unwrap().trim();
            v.split(',').next().unwrap().trim().parse().unwrap()
        })
        .collect();
    // Batches 1.1, 1.2, the test, and the loop's extra batch 2.1.
    assert!(costs.len() >= 4, "{stdout}");
    assert!(costs.iter().all(|c| c.is_finite() && *c > 0.0), "{costs:?}");
    println!("costs: {costs:?}");
}
