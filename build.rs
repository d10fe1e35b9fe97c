//! Marks the build with what the environment offers the compatibility tests (the
//! original configs, Python 2.7 and Python 3 with numpy), so tests that need a missing
//! one are listed as ignored, with the reason, instead of passing silently; and
//! compiles the CUDA kernels (cuda/*.cu) to PTX when nvcc is available (env `NVCC`,
//! else `nvcc` on PATH), embedding them as `OUT_DIR/ptx.rs` (README "CUDA path").

use std::path::{Path, PathBuf};
use std::process::Command;

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
    compile_kernels();
}

/// nvcc from `NVCC`, else from PATH.
fn find_nvcc() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NVCC").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("nvcc"))
        .find(|p| p.is_file())
}

/// Writes `OUT_DIR/ptx.rs`: `PTX: &[(file name, PTX text)]`, one entry per cuda/*.cu
/// compiled with `-ptx --fmad=false -arch=compute_75 -I cuda`, or none without nvcc.
/// A kernel file that does not compile fails the build with nvcc's message.
fn compile_kernels() {
    println!("cargo::rerun-if-changed=cuda");
    println!("cargo::rerun-if-env-changed=NVCC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let cuda = Path::new("cuda");
    let mut entries = Vec::new();
    match find_nvcc() {
        None => println!(
            "cargo::warning=nvcc not found (set NVCC or put nvcc on PATH): no PTX embedded; \
             the CUDA backend compiles the kernels with NVRTC at run time"
        ),
        Some(nvcc) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(cuda)
                .expect("cuda/")
                .map(|e| e.expect("cuda/ entry").path())
                .filter(|p| p.extension().is_some_and(|e| e == "cu"))
                .collect();
            files.sort();
            for file in files {
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                let ptx = out.join(format!(
                    "{}.ptx",
                    file.file_stem().unwrap().to_string_lossy()
                ));
                let run = Command::new(&nvcc)
                    .args(["-ptx", "--fmad=false", "-arch=compute_75", "-I"])
                    .arg(cuda)
                    .arg(&file)
                    .arg("-o")
                    .arg(&ptx)
                    .output()
                    .unwrap_or_else(|e| panic!("running {}: {e}", nvcc.display()));
                if !run.status.success() {
                    panic!(
                        "nvcc failed on cuda/{name}:\n{}{}",
                        String::from_utf8_lossy(&run.stdout),
                        String::from_utf8_lossy(&run.stderr)
                    );
                }
                entries.push(format!(
                    "    ({name:?}, include_str!({:?})),\n",
                    ptx.display().to_string()
                ));
            }
        }
    }
    let text = format!(
        "/// PTX of cuda/*.cu compiled by nvcc at build time (empty without nvcc).\n\
         pub const PTX: &[(&str, &str)] = &[\n{}];\n",
        entries.concat()
    );
    std::fs::write(out.join("ptx.rs"), text).expect("writing ptx.rs");
}
