//! Marks the build when CONVNET_ORIGINALS names the original configs, so the tests that
//! need them are listed as ignored (with the reason) where it is unset.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(convnet_originals)");
    println!("cargo::rerun-if-env-changed=CONVNET_ORIGINALS");
    if std::env::var_os("CONVNET_ORIGINALS").is_some() {
        println!("cargo::rustc-cfg=convnet_originals");
    }
}
