//! Importers (Fashion-MNIST IDX files, CIFAR-10 python batches) into cuda-convnet
//! batch files, the format data.py and convdata.py read:
//! `data_batch_<N>` pickles holding `data` (uint8, `(num_vis, cases)`, one case per
//! column) and `labels` (a list of ints), and `batches.meta` holding `data_mean`
//! (float64 `(num_vis, 1)`, the mean training image), `label_names`, `num_vis` and
//! `num_cases_per_batch` (and, ours, `num_colors` and `img_size`). Written as Python 2 pickles (protocol 2), loadable by
//! cPickle with numpy 1.x and by our reader.

use crate::checkpoint;
use crate::checkpoint::model::pystr;
use crate::checkpoint::value::{Dtype, NdArray, Obj, PyObj};
use crate::checkpoint::writer::{dumps, save_atomic};
use flate2::read::GzDecoder;
use std::cell::RefCell;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Where Debian's `dataset-fashion-mnist` puts the IDX files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's class names, by label.
pub const FASHION_MNIST_LABELS: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Cases per batch file, as CIFAR-10's batches.
pub const CASES_PER_BATCH: usize = 10000;

/// Images of one IDX file: `count` images of `rows x cols` bytes, row-major each.
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads an IDX file (gzipped or not) of unsigned bytes with `dims` dimensions;
/// returns the dimensions and the payload.
fn read_idx(path: &Path, dims: usize) -> Result<(Vec<usize>, Vec<u8>), String> {
    let b = read_maybe_gz(path)?;
    let bad = |what: &str| {
        format!(
            "{}: not an IDX file of unsigned bytes with {dims} dimensions ({what})",
            path.display()
        )
    };
    if b.len() < 4 + 4 * dims || b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] as usize != dims {
        return Err(bad("header"));
    }
    let shape: Vec<usize> = (0..dims)
        .map(|i| u32::from_be_bytes(b[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let n: usize = shape.iter().product();
    let body = &b[4 + 4 * dims..];
    if body.len() != n {
        return Err(bad(&format!(
            "{} payload bytes for shape {shape:?}",
            body.len()
        )));
    }
    Ok((shape, body.to_vec()))
}

/// Reads an IDX image file (`idx3-ubyte`).
pub fn read_idx_images(path: &Path) -> Result<IdxImages, String> {
    let (s, pixels) = read_idx(path, 3)?;
    Ok(IdxImages {
        count: s[0],
        rows: s[1],
        cols: s[2],
        pixels,
    })
}

/// Reads an IDX label file (`idx1-ubyte`).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, String> {
    Ok(read_idx(path, 1)?.1)
}

pub(crate) fn array(kind: char, size: usize, shape: Vec<u64>, data: Vec<u8>) -> Obj {
    let dtype = Dtype {
        kind,
        size,
        big_endian: false,
    };
    Rc::new(PyObj::Array(RefCell::new(NdArray {
        dtype,
        shape,
        fortran: false,
        data,
    })))
}

pub(crate) fn dict(items: Vec<(&str, Obj)>) -> Obj {
    Rc::new(PyObj::Dict(RefCell::new(
        items.into_iter().map(|(k, v)| (pystr(k), v)).collect(),
    )))
}

pub(crate) fn list(items: Vec<Obj>) -> Obj {
    Rc::new(PyObj::List(RefCell::new(items)))
}

pub(crate) fn tuple(items: Vec<Obj>) -> Obj {
    Rc::new(PyObj::Tuple(items))
}

/// One batch file's dict: `data` `(num_vis, cases)` uint8 from case-major pixels,
/// `labels`, and `batch_label`.
fn batch(pixels: &[u8], labels: &[i64], num_vis: usize, name: &str) -> Obj {
    let cases = labels.len();
    let mut data = vec![0u8; num_vis * cases];
    for (c, img) in pixels.chunks_exact(num_vis).enumerate() {
        for (v, &p) in img.iter().enumerate() {
            data[v * cases + c] = p;
        }
    }
    let labels = list(labels.iter().map(|&l| Rc::new(PyObj::Int(l))).collect());
    dict(vec![
        ("batch_label", pystr(name)),
        (
            "data",
            array('u', 1, vec![num_vis as u64, cases as u64], data),
        ),
        ("labels", labels),
    ])
}

/// A labelled image dataset in memory: case-major pixels (`num_vis` bytes per case,
/// channel by channel, row by row), labels, class names and geometry.
struct Dataset {
    colors: usize,
    size: usize,
    train: (Vec<u8>, Vec<i64>),
    test: (Vec<u8>, Vec<i64>),
    label_names: Vec<String>,
}

/// The mean of images of `num_vis` bytes, summed exactly.
pub(crate) struct MeanImage {
    sums: Vec<u64>,
    count: u64,
}

impl MeanImage {
    pub(crate) fn new(num_vis: usize) -> MeanImage {
        MeanImage {
            sums: vec![0; num_vis],
            count: 0,
        }
    }
    pub(crate) fn add(&mut self, img: &[u8]) {
        for (s, &p) in self.sums.iter_mut().zip(img) {
            *s += p as u64;
        }
        self.count += 1;
    }
    /// `data_mean`: float64 `(num_vis, 1)` (zeros without images).
    pub(crate) fn array(&self) -> Obj {
        let n = self.count.max(1) as f64;
        let bytes = self
            .sums
            .iter()
            .flat_map(|&s| (s as f64 / n).to_le_bytes())
            .collect();
        array('f', 8, vec![self.sums.len() as u64, 1], bytes)
    }
}

/// Pickles `obj` into `out/name` (zipped when `zip`); returns the path.
pub(crate) fn write_pickle(
    out: &Path,
    name: &str,
    obj: &Obj,
    zip: bool,
) -> Result<PathBuf, String> {
    let path = out.join(name);
    save_atomic(&path, &dumps(obj), zip).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// How a dataset is cut into batch files (ours; the defaults give the datasets'
/// usual batches).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub cases_per_batch: usize,
    /// Keep only the first `n` training (test) cases.
    pub train_cases: Option<usize>,
    pub test_cases: Option<usize>,
    /// Zip each file (member `data`), as `--zip-save` does checkpoints.
    pub zip: bool,
}

impl Default for Layout {
    fn default() -> Layout {
        Layout {
            cases_per_batch: CASES_PER_BATCH,
            train_cases: None,
            test_cases: None,
            zip: false,
        }
    }
}

/// Writes `ds` into `out` as batch files of `layout.cases_per_batch` cases, the
/// training set first and the test set after it, then `batches.meta` with the mean
/// training image. `progress(done, total)` is called after each file.
fn write_dataset(
    ds: &Dataset,
    out: &Path,
    layout: &Layout,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<PathBuf>, String> {
    let num_vis = ds.colors * ds.size * ds.size;
    let per_batch = layout.cases_per_batch.max(1);
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let keep = |(pixels, labels): &(Vec<u8>, Vec<i64>), n: Option<usize>| {
        let n = n.unwrap_or(labels.len()).min(labels.len());
        (pixels[..n * num_vis].to_vec(), labels[..n].to_vec())
    };
    let (train, test) = (
        keep(&ds.train, layout.train_cases),
        keep(&ds.test, layout.test_cases),
    );
    let mut jobs: Vec<(&[u8], &[i64])> = Vec::new();
    for (pixels, labels) in [&train, &test] {
        for start in (0..labels.len()).step_by(per_batch) {
            let end = (start + per_batch).min(labels.len());
            jobs.push((&pixels[start * num_vis..end * num_vis], &labels[start..end]));
        }
    }
    let total = jobs.len() + 1;
    let mut written = Vec::new();
    let write = |name: &str, obj: &Obj| write_pickle(out, name, obj, layout.zip);
    for (i, (pixels, labels)) in jobs.iter().enumerate() {
        let name = format!("data_batch_{}", i + 1);
        written.push(write(&name, &batch(pixels, labels, num_vis, &name))?);
        progress(i + 1, total);
    }

    let mut mean = MeanImage::new(num_vis);
    for img in train.0.chunks_exact(num_vis) {
        mean.add(img);
    }
    let names = list(ds.label_names.iter().map(|n| pystr(n)).collect());
    let meta = dict(vec![
        ("data_mean", mean.array()),
        ("label_names", names),
        ("num_cases_per_batch", Rc::new(PyObj::Int(per_batch as i64))),
        ("num_vis", Rc::new(PyObj::Int(num_vis as i64))),
        // Ours: the image geometry, which CIFAR's providers hard-code as 3 x 32x32.
        ("num_colors", Rc::new(PyObj::Int(ds.colors as i64))),
        ("img_size", Rc::new(PyObj::Int(ds.size as i64))),
    ]);
    written.push(write("batches.meta", &meta)?);
    progress(total, total);
    Ok(written)
}

/// Imports Fashion-MNIST from `src` (the four IDX files, gzipped or not) into `out`:
/// the 60000 training images as `data_batch_1`..`6` and the 10000 test images as
/// `data_batch_7` (so `--train-range=1-6 --test-range=7`), 784 pixels per case
/// (one channel, 28x28, row by row), and `batches.meta`. `progress(done, total)` is
/// called after each file. Returns the files written.
pub fn fashion_mnist(
    src: &Path,
    out: &Path,
    layout: &Layout,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<PathBuf>, String> {
    let find = |stem: &str| -> Result<PathBuf, String> {
        [format!("{stem}.gz"), stem.to_string()]
            .iter()
            .map(|n| src.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "{}: no {stem}[.gz] (install Debian's dataset-fashion-mnist)",
                    src.display()
                )
            })
    };
    let train = read_idx_images(&find("train-images-idx3-ubyte")?)?;
    let train_labels = read_idx_labels(&find("train-labels-idx1-ubyte")?)?;
    let test = read_idx_images(&find("t10k-images-idx3-ubyte")?)?;
    let test_labels = read_idx_labels(&find("t10k-labels-idx1-ubyte")?)?;
    if train.rows != train.cols {
        return Err(format!(
            "{}: images are {}x{}; cuda-convnet's providers need square images",
            src.display(),
            train.rows,
            train.cols
        ));
    }
    if train.count != train_labels.len()
        || test.count != test_labels.len()
        || (test.rows, test.cols) != (train.rows, train.cols)
    {
        return Err(format!(
            "{}: image and label files do not match",
            src.display()
        ));
    }
    let labels = |l: Vec<u8>| l.into_iter().map(i64::from).collect();
    let ds = Dataset {
        colors: 1,
        size: train.rows,
        train: (train.pixels, labels(train_labels)),
        test: (test.pixels, labels(test_labels)),
        label_names: FASHION_MNIST_LABELS.iter().map(|s| s.to_string()).collect(),
    };
    write_dataset(&ds, out, layout, progress)
}

/// One CIFAR-10 python batch (`data` uint8 `(cases, 3072)`, rows are cases, and
/// `labels`), as the dataset's cPickle files hold it.
fn cifar_batch(path: &Path) -> Result<(Vec<u8>, Vec<i64>), String> {
    let err = |m: &str| format!("{}: {m}", path.display());
    let d = checkpoint::load(path).map_err(|e| e.to_string())?;
    let data = d.get("data").ok_or_else(|| err("no data"))?;
    let PyObj::Array(a) = &*data else {
        return Err(err("data is not a numpy array"));
    };
    let a = a.borrow();
    if a.dtype.code() != "u1" || a.shape.len() != 2 || a.shape[1] != 3072 {
        return Err(err(&format!(
            "data is {} {:?}, not uint8 (cases, 3072)",
            a.dtype.code(),
            a.shape
        )));
    }
    let pixels = a.c_order_le_bytes();
    let labels = match d.get("labels").as_deref() {
        Some(PyObj::List(l)) => l
            .borrow()
            .iter()
            .map(|v| match &**v {
                PyObj::Int(i) if (0..10).contains(i) => Ok(*i),
                other => Err(err(&format!("label {other:?} is not a class of CIFAR-10"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(err("no labels list")),
    };
    if labels.len() as u64 != a.shape[0] {
        return Err(err(&format!(
            "{} labels for {} cases",
            labels.len(),
            a.shape[0]
        )));
    }
    Ok((pixels, labels))
}

/// Imports CIFAR-10's python batches (`cifar-10-batches-py`: `data_batch_1`..`5`,
/// `test_batch`, `batches.meta`, rows are cases) into `out` as cuda-convnet batches
/// (columns are cases): with the dataset's 10000 cases per file, `data_batch_1`..`5`
/// for training and `data_batch_6` for testing (`--train-range=1-5 --test-range=6`,
/// the original's split), and `batches.meta` with the mean training image.
pub fn cifar10(
    src: &Path,
    out: &Path,
    layout: &Layout,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<PathBuf>, String> {
    let mut train = (Vec::new(), Vec::new());
    for i in 1..=5 {
        let (p, l) = cifar_batch(&src.join(format!("data_batch_{i}")))?;
        train.0.extend(p);
        train.1.extend(l);
    }
    let test = cifar_batch(&src.join("test_batch"))?;
    let meta_path = src.join("batches.meta");
    let meta = checkpoint::load(&meta_path).map_err(|e| e.to_string())?;
    let label_names = super::batches::label_names(&meta)
        .ok_or_else(|| format!("{}: no label_names", meta_path.display()))?;
    let ds = Dataset {
        colors: 3,
        size: 32,
        train,
        test,
        label_names,
    };
    write_dataset(&ds, out, layout, progress)
}
