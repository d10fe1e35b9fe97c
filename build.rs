//! Marks the build with what the environment offers the compatibility tests (the
//! original configs, Python 2.7 and Python 3 with numpy), so tests that need a missing
//! one are listed as ignored, with the reason, instead of passing silently.

fn main() {
    for (var, cfg) in [
        ("CONVNET_ORIGINALS", "convnet_originals"),
        ("CONVNET_PYTHON2", "convnet_python2"),
        ("CONVNET_PYTHON3", "convnet_python3"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var_os(var).is_some() {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
