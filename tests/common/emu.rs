//! The host emulation backend: cuda/*.cu compiled as C++ with cuda/emu.h forced in,
//! loaded with dlopen, each launch run as one block of one thread (the kernels'
//! grid-stride loops then compute every output, each with its own operation sequence).
//! Every kernel's signature is read from its `extern "C" __global__` line and given a
//! trampoline `NAME__emu(void **params)` that unpacks `cuLaunchKernel`-style params.

use convnet::cuda::{Backend, Cuda, DevBuf, Gemm, GpuError, Param, SOURCES};
use convnet::nvmatrix::{MatView, NvMatrix};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

type Trampoline = unsafe extern "C" fn(*mut *mut c_void);

/// Every backend the kernel tests run on: the emulation (where a C++ compiler exists)
/// and each CUDA GPU present. Each says why it is missing.
pub fn backends() -> Vec<Box<dyn Backend>> {
    let mut out: Vec<Box<dyn Backend>> = Vec::new();
    if let Some(e) = emu() {
        out.push(Box::new(e));
    }
    out.extend(gpus().into_iter().map(|c| Box::new(c) as Box<dyn Backend>));
    out
}

/// Each CUDA GPU present, opened; `SKIPPED: no CUDA GPU (<reason>)` printed once when
/// there is none (a failure when `CONVNET_REQUIRE_GPU=1`, as .ci/gpu-check sets). A GPU
/// that is present but does not open fails the test.
pub fn gpus() -> Vec<Cuda> {
    static SKIP: std::sync::Once = std::sync::Once::new();
    let n = match Cuda::device_count() {
        Ok(0) => Err("the driver reports no device".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.0),
    };
    match n {
        Ok(n) => (0..n)
            .map(|i| Cuda::open(i).unwrap_or_else(|e| panic!("CUDA device {i}: {e}")))
            .collect(),
        Err(why) if std::env::var("CONVNET_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("CONVNET_REQUIRE_GPU=1 but no CUDA GPU: {why}")
        }
        Err(why) => {
            SKIP.call_once(|| super::skip(&format!("no CUDA GPU ({why})")));
            Vec::new()
        }
    }
}

/// The emulation, or `None` with the reason (no C++ compiler, or
/// `CONVNET_NO_EMULATION=1`, which .ci/gpu-check sets: CI runs the emulation) printed.
pub fn emu() -> Option<Emu> {
    static LIB: OnceLock<Result<usize, String>> = OnceLock::new();
    let off = || match std::env::var("CONVNET_NO_EMULATION").as_deref() {
        Ok("1") => Err("CONVNET_NO_EMULATION=1".to_string()),
        _ => build(),
    };
    match LIB.get_or_init(off) {
        Ok(handle) => Some(Emu {
            handle: *handle,
            syms: RefCell::new(HashMap::new()),
        }),
        Err(why) => {
            super::skip(&format!("CUDA kernels not emulated: {why}"));
            None
        }
    }
}

pub struct Emu {
    handle: usize,
    syms: RefCell<HashMap<String, Trampoline>>,
}

/// `(name, [parameter types])` of every `extern "C" __global__` kernel in `src`.
pub fn kernel_signatures(src: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let marker = "extern \"C\" __global__ void ";
    let mut rest = src;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let open = rest.find('(').expect("kernel signature without '('");
        let close = rest.find(')').expect("kernel signature without ')'");
        let name = rest[..open].trim().to_string();
        let params = rest[open + 1..close]
            .split(',')
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| {
                // Drop the parameter name: the last identifier.
                let cut = p
                    .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .map_or(0, |i| i + 1);
                p[..cut].trim().to_string()
            })
            .collect();
        out.push((name, params));
        rest = &rest[close..];
    }
    out
}

/// `-mfma` where the host CPU has FMA: `fmaf` then compiles to the instruction (the same
/// bits as the library call, much faster); `-ffp-contract=off` still keeps every other
/// `a * b + c` unfused.
fn fma_flags() -> &'static [&'static str] {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("fma") {
        return &["-mfma"];
    }
    &[]
}

fn build() -> Result<usize, String> {
    let cxx = ["g++", "c++", "clang++"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .ok_or("no C++ compiler (g++) on PATH")?;
    let cuda_dir = super::repo_root().join("cuda");
    let mut tramp = String::from("#include <stdint.h>\n");
    let mut units = Vec::new();
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    for (file, text) in SOURCES {
        sha2::Digest::update(&mut hasher, text.as_bytes());
        if !file.ends_with(".cu") {
            continue;
        }
        units.push(cuda_dir.join(file));
        for (name, types) in kernel_signatures(text) {
            let decl: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            let args: Vec<String> = types
                .iter()
                .enumerate()
                .map(|(i, t)| format!("*({t}*)p[{i}]"))
                .collect();
            tramp.push_str(&format!(
                "extern \"C\" void {name}({});\nextern \"C\" void {name}__emu(void** p) {{ {name}({}); }}\n",
                decl.join(", "),
                args.join(", ")
            ));
        }
    }
    let emu_h = std::fs::read(cuda_dir.join("emu.h")).map_err(|e| e.to_string())?;
    sha2::Digest::update(&mut hasher, &emu_h);
    sha2::Digest::update(&mut hasher, fma_flags().concat().as_bytes());
    let key: String = sha2::Digest::finalize(hasher)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cuda-emu-{key}"));
    let lib = dir.join("libccemu.so");
    if !lib.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let tramp_path = dir.join(format!("trampolines-{}.cpp", std::process::id()));
        std::fs::write(&tramp_path, tramp).map_err(|e| e.to_string())?;
        let tmp = dir.join(format!("libccemu-{}.so", std::process::id()));
        let out = Command::new(cxx)
            .args([
                "-std=c++14",
                "-O2",
                "-ffp-contract=off",
                "-fno-fast-math",
                "-fPIC",
                "-shared",
            ])
            .args(fma_flags())
            .arg("-include")
            .arg(cuda_dir.join("emu.h"))
            .arg("-I")
            .arg(&cuda_dir)
            .arg("-x")
            .arg("c++")
            .args(&units)
            .arg(&tramp_path)
            .arg("-o")
            .arg(&tmp)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            panic!(
                "emulation build of cuda/*.cu failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::rename(&tmp, &lib).map_err(|e| e.to_string())?;
    }
    let path = CString::new(lib.to_str().unwrap()).unwrap();
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!("dlopen {} failed", lib.display()));
    }
    Ok(handle as usize)
}

impl Backend for Emu {
    fn name(&self) -> String {
        "host emulation of cuda/*.cu".into()
    }
    fn emulated(&self) -> bool {
        true
    }
    fn alloc(&self, len: usize) -> Result<DevBuf, GpuError> {
        let mut mem = vec![0u32; len.max(1)].into_boxed_slice();
        let ptr = mem.as_mut_ptr() as u64;
        Ok(DevBuf::new(ptr, len, Box::new(mem)))
    }
    fn write_words(&self, dst: &DevBuf, offset: usize, src: &[u32]) -> Result<(), GpuError> {
        if offset + src.len() > dst.len() {
            return Err(GpuError("write past the end of a buffer".into()));
        }
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), (dst.ptr_at(offset)) as *mut u32, src.len())
        };
        Ok(())
    }
    fn read_words(&self, src: &DevBuf, offset: usize, dst: &mut [u32]) -> Result<(), GpuError> {
        if offset + dst.len() > src.len() {
            return Err(GpuError("read past the end of a buffer".into()));
        }
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.ptr_at(offset) as *const u32,
                dst.as_mut_ptr(),
                dst.len(),
            )
        };
        Ok(())
    }
    /// Through the CPU port's product (`NvMatrix::add_product`), whose operand views
    /// are the column-major ones cuBLAS reads (contiguous: leading dimensions as the
    /// shapes give them).
    fn gemm(&self, g: &Gemm, a: &DevBuf, b: &DevBuf, c: &DevBuf) -> Result<(), GpuError> {
        g.check(a, b, c)?;
        // op(X) of a column-major buffer: X itself if not transposed (column-major view),
        // else the row-major view of the stored transpose.
        fn view(
            data: &[f32],
            rows: usize,
            cols: usize,
            t: bool,
            ld: usize,
        ) -> Result<MatView<'_>, GpuError> {
            let want = if t { cols } else { rows };
            if ld != want && rows * cols > 0 {
                return Err(GpuError(format!(
                    "emulated gemm: leading dimension {ld}, not {want}"
                )));
            }
            Ok(MatView::new(&data[..rows * cols], rows, cols, !t))
        }
        let (ad, bd) = (self.download(a)?, self.download(b)?);
        let av = view(&ad, g.m, g.k, g.trans_a, g.lda)?;
        let bv = view(&bd, g.k, g.n, g.trans_b, g.ldb)?;
        if g.ldc != g.m {
            return Err(GpuError(format!(
                "emulated gemm: ldc {} for {} rows",
                g.ldc, g.m
            )));
        }
        let cd = self.download(c)?;
        let mut cm = NvMatrix::from_vec(g.m, g.n, true, cd[..g.m * g.n].to_vec());
        cm.add_product(av, bv, g.beta, g.alpha)
            .map_err(|e| GpuError(e.to_string()))?;
        let words: Vec<u32> = cm.data().iter().map(|x| x.to_bits()).collect();
        self.write_words(c, 0, &words)
    }
    fn launch(
        &self,
        name: &str,
        _grid: u32,
        _block: u32,
        params: &[Param],
    ) -> Result<(), GpuError> {
        let f = *self
            .syms
            .borrow_mut()
            .entry(name.to_string())
            .or_insert_with(|| {
                let sym = CString::new(format!("{name}__emu")).unwrap();
                let p = unsafe { libc::dlsym(self.handle as *mut c_void, sym.as_ptr()) };
                assert!(!p.is_null(), "no kernel {name} in cuda/*.cu");
                unsafe { std::mem::transmute::<*mut c_void, Trampoline>(p) }
            });
        let mut slots: Vec<u64> = params.iter().map(Param::slot).collect();
        let mut ptrs: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| s as *mut u64 as *mut c_void)
            .collect();
        unsafe { f(ptrs.as_mut_ptr()) };
        Ok(())
    }
}
