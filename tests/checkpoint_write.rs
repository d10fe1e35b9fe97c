//! Writing checkpoints: what we write reads back to the same objects here, and Python
//! 2.7 (cPickle + numpy 1.x) and Python 3 (`pickle.load(f, encoding='latin1')` + numpy)
//! load it to objects equal to what they load from the original's file. The Python
//! tests need CONVNET_PYTHON2 / CONVNET_PYTHON3 (interpreters with numpy; .ci/run sets
//! them up) and are listed as ignored without.

use convnet::checkpoint::value::{to_json, Obj};
use convnet::checkpoint::{load, read_container, writer};
use std::path::{Path, PathBuf};
use std::process::Command;

fn originals() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/checkpoints");
    let mut out = Vec::new();
    for gen in ["c1", "a12"] {
        for name in [
            "ckpt-p0",
            "ckpt-p1",
            "ckpt-p2",
            "ckpt-zip",
            "ckpt-p0.gz",
            "ckpt-p1.gz",
            "resumed-2.2",
        ] {
            let p = root.join(gen).join(name);
            if p.exists() {
                out.push(p);
            }
        }
    }
    for b in ["batches.meta", "data_batch_1"] {
        out.push(root.join("batches").join(b));
    }
    out
}

fn json(o: &Obj) -> String {
    let mut s = String::new();
    to_json(o, &mut s);
    s
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convnet-write-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn read_of_write_is_identity() {
    for path in originals() {
        let obj = load(&path).unwrap();
        let again = convnet::checkpoint::pickle::loads(&writer::dumps(&obj)).unwrap();
        assert_eq!(json(&again), json(&obj), "{}", path.display());
    }
}

#[test]
fn shared_objects_are_written_once() {
    // The 2011 layers list references input layers from each consumer's inputLayers.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/checkpoints/c1/ckpt-p2");
    let obj = load(&path).unwrap();
    let ours = writer::dumps(&obj);
    let theirs = read_container(&path).unwrap();
    assert!(
        ours.len() < theirs.len() * 11 / 10,
        "ours {} bytes vs the original's {}",
        ours.len(),
        theirs.len()
    );
}

#[test]
fn atomic_save_plain_and_zipped() {
    let obj = load(&originals()[0]).unwrap();
    let bytes = writer::dumps(&obj);
    for zip in [false, true] {
        // A directory of its own: tests running beside this one save into scratch().
        let dir = scratch("atomic");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(if zip { "saved-zip" } else { "saved" });
        writer::save_atomic(&path, &bytes, zip).unwrap();
        assert_eq!(json(&load(&path).unwrap()), json(&obj));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
    }
}

/// Loads both pickles given as arguments and compares them deeply: same types, dict
/// keys, instance classes and state, array dtype, shape, order and contents. Stub
/// modules for the classes named in the pickles are made on the fly.
const COMPARE_PY: &str = r#"
import sys, types, pickle
try:
    import cPickle as pk
except ImportError:
    pk = None
import numpy as np

def stub(module, name):
    mod = sys.modules.get(module)
    if mod is None:
        mod = types.ModuleType(module)
        sys.modules[module] = mod
    if not hasattr(mod, name):
        setattr(mod, name, type(name, (object,), {}) if sys.version_info[0] >= 3 else types.ClassType(name, (), {}))

def load(path):
    data = open(path, 'rb').read()
    if sys.version_info[0] >= 3:
        return pickle.loads(data, encoding='latin1')
    return pk.loads(data)

CLASSES = (type,) + ((types.ClassType,) if sys.version_info[0] < 3 else ())

def same(a, b, path):
    if isinstance(a, CLASSES):
        assert isinstance(b, CLASSES) and a.__name__ == b.__name__, path
        return
    if type(a).__name__ != type(b).__name__:
        raise AssertionError('%s: %s vs %s' % (path, type(a), type(b)))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert a.flags.f_contiguous == b.flags.f_contiguous and a.flags.c_contiguous == b.flags.c_contiguous, path
        assert a.tobytes() == b.tobytes(), path
    elif isinstance(a, dict):
        assert sorted(map(repr, a.keys())) == sorted(map(repr, b.keys())), path
        for k in a:
            same(a[k], b[k], '%s[%r]' % (path, k))
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, '%s[%d]' % (path, i))
    elif hasattr(a, '__dict__'):
        assert a.__class__.__name__ == b.__class__.__name__, path
        same(a.__dict__, b.__dict__, path + '.__dict__')
    elif isinstance(a, float) and a != a:
        assert b != b, path
    else:
        assert a == b, '%s: %r vs %r' % (path, a, b)

for x in sys.argv[3].split(','):
    if x:
        stub(*x.rsplit('.', 1))
same(load(sys.argv[1]), load(sys.argv[2]), 'checkpoint')
print('SAME')
"#;

/// Every `module.Name` a decoded pickle names as a class or global, except numpy's and
/// the standard library's.
fn class_names(o: &Obj, out: &mut Vec<String>) {
    let text = json(o);
    for key in ["\"$class\": \"", "\"$global\": \""] {
        for part in text.split(key).skip(1) {
            let name = part.split('"').next().unwrap().to_string();
            if !name.starts_with("numpy")
                && !name.starts_with("collections.")
                && !out.contains(&name)
            {
                out.push(name);
            }
        }
    }
}

/// `tag` keeps the scratch files of tests running side by side apart.
fn python_loads_ours_like_theirs(python: &str, tag: &str) {
    for path in originals() {
        let obj = load(&path).unwrap();
        let ours = scratch(&format!(
            "{tag}-{}-{}",
            path.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            path.file_name().unwrap().to_string_lossy()
        ));
        writer::save_atomic(&ours, &writer::dumps(&obj), false).unwrap();
        let theirs = scratch(&format!("{tag}-theirs"));
        std::fs::write(&theirs, read_container(&path).unwrap()).unwrap();
        let mut classes = Vec::new();
        class_names(&obj, &mut classes);
        let out = Command::new(python)
            .arg("-c")
            .arg(COMPARE_PY)
            .arg(&theirs)
            .arg(&ours)
            .arg(classes.join(","))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("SAME"),
            "{python} on {}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[cfg_attr(
    not(convnet_python2),
    ignore = "needs CONVNET_PYTHON2 (Python 2.7 with numpy 1.x)"
)]
fn python2_cpickle_loads_what_we_write() {
    python_loads_ours_like_theirs(&std::env::var("CONVNET_PYTHON2").unwrap(), "py2");
}

#[test]
#[cfg_attr(
    not(convnet_python3),
    ignore = "needs CONVNET_PYTHON3 (Python 3 with numpy)"
)]
fn python3_pickle_loads_what_we_write() {
    python_loads_ours_like_theirs(&std::env::var("CONVNET_PYTHON3").unwrap(), "py3");
}

/// Parse one of the small nets of golden/checkpoints and pickle its layers.
fn parsed_layers(gen: convnet::config::Generation, tag: &str) -> (Obj, Vec<u8>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/checkpoints");
    let model = convnet::config::Model {
        data_dims: vec![3072, 1],
        num_classes: 10,
        num_gpus: 1,
        conserve_mem: 0,
        seed: 3,
    };
    let net = convnet::config::parse_layers(
        gen,
        &root.join(format!("layers-{tag}.cfg")),
        &root.join(format!("layer-params-{tag}.cfg")),
        &model,
        &mut Vec::new(),
    )
    .unwrap();
    let obj = convnet::checkpoint::model::layers(&net);
    let bytes = writer::dumps(&obj);
    (obj, bytes)
}

#[test]
fn parsed_layers_pickle_with_shared_input_layers() {
    use convnet::checkpoint::value::PyObj;
    let (obj, bytes) = parsed_layers(convnet::config::Generation::C1, "c1");
    let back = convnet::checkpoint::pickle::loads(&bytes).unwrap();
    assert_eq!(json(&back), json(&obj));
    let PyObj::List(layers) = &*back else {
        panic!("2011 layers are a list")
    };
    let layers = layers.borrow();
    let by_name = |n: &str| {
        layers
            .iter()
            .find(|l| l.get("name").and_then(|v| v.as_text()).as_deref() == Some(n))
            .unwrap()
            .clone()
    };
    for l in layers.iter() {
        let Some(inputs) = l.get("inputLayers") else {
            continue;
        };
        let PyObj::List(inputs) = &*inputs else {
            panic!()
        };
        for i in inputs.borrow().iter() {
            let name = i.get("name").and_then(|v| v.as_text()).unwrap();
            assert!(
                std::rc::Rc::ptr_eq(i, &by_name(&name)),
                "inputLayers entry {name} is the layer itself"
            );
        }
    }
}

#[test]
#[cfg_attr(
    not(convnet_python2),
    ignore = "needs CONVNET_PYTHON2 (Python 2.7 with numpy 1.x)"
)]
fn python2_loads_parsed_layers_as_the_original_built_them() {
    for (gen, tag) in [
        (convnet::config::Generation::C1, "c1"),
        (convnet::config::Generation::A12, "a12"),
    ] {
        let (_, bytes) = parsed_layers(gen, tag);
        let path = scratch(&format!("layers-{tag}"));
        std::fs::write(&path, bytes).unwrap();
        let script = r#"
import sys, cPickle
layers = cPickle.load(open(sys.argv[1], 'rb'))
items = layers if isinstance(layers, list) else layers.values()
by_name = dict((l['name'], l) for l in items)
for l in items:
    for inp in l.get('inputLayers', []):
        assert inp is by_name[inp['name']], l['name']
    for w in l.get('weights', []):
        assert str(w.dtype) == 'float32' and w.ndim == 2
print('OK %d' % len(by_name))
"#;
        let out = Command::new(std::env::var("CONVNET_PYTHON2").unwrap())
            .arg("-c")
            .arg(script)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("OK"),
            "{tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn shared_weight_matrices_are_one_object_in_the_pickle() {
    use convnet::checkpoint::value::PyObj;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let model = convnet::config::Model {
        data_dims: vec![3 * 8 * 8, 1],
        num_classes: 10,
        num_gpus: 1,
        conserve_mem: 0,
        seed: 5,
    };
    let net = convnet::config::parse_layers(
        convnet::config::Generation::C1,
        &data.join("shared-weights.layers.cfg"),
        &data.join("shared-weights.params.cfg"),
        &model,
        &mut Vec::new(),
    )
    .unwrap();
    let back = convnet::checkpoint::pickle::loads(&writer::dumps(
        &convnet::checkpoint::model::layers(&net),
    ))
    .unwrap();
    let PyObj::List(layers) = &*back else {
        panic!()
    };
    let layer = |n: &str| {
        layers
            .borrow()
            .iter()
            .find(|l| l.get("name").and_then(|v| v.as_text()).as_deref() == Some(n))
            .unwrap()
            .clone()
    };
    let matrix = |l: &Obj, key: &str, i: usize| match l.get(key).as_deref() {
        Some(PyObj::List(v)) => v.borrow()[i].clone(),
        _ => panic!(),
    };
    for key in ["weights", "weightsInc"] {
        // conv3 takes its first matrix from conv2 (weightSource=conv2,).
        assert!(
            std::rc::Rc::ptr_eq(
                &matrix(&layer("conv3"), key, 0),
                &matrix(&layer("conv2"), key, 0)
            ),
            "{key}"
        );
        assert!(
            !std::rc::Rc::ptr_eq(
                &matrix(&layer("conv3"), key, 1),
                &matrix(&layer("conv2"), key, 0)
            ),
            "{key}"
        );
    }
}
