//! The CUDA backend ([`Cuda`]): our runtime for cuda/*.cu on a GPU, through `cudarc`'s
//! thin layers over the driver API, NVRTC and cuBLAS (the original's CUDA runtime calls,
//! `cublasSgemm` of nvmatrix.cu). libcuda, libnvrtc and libcublas are loaded at run time,
//! so the crate builds and runs where CUDA is absent; `Cuda::open` then fails cleanly.
//!
//! Kernels: each cuda/*.cu is a module, from the PTX nvcc made at build time
//! (build.rs) if there is one, else compiled by NVRTC for the device with
//! `--fmad=false`. A driver older than that nvcc refuses its PTX version; the PTX is then
//! retried declaring the newest version the driver reads (our kernels use no recent
//! instructions), then NVRTC. Everything runs on the legacy default stream, so
//! operations are ordered and a read waits for every launch before it. Copies of 1 MiB
//! and more pass through page-locked host memory in 16 MiB chunks (`Staging`).

use super::{Backend, DevBuf, Gemm, GpuError, Param, SOURCES};
use cudarc::cublas::{result as blas, sys as blas_sys};
use cudarc::driver::{result as cu, sys};
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};

include!(concat!(env!("OUT_DIR"), "/ptx.rs"));

/// Runs `f`, turning a panic (cudarc panics when a library or symbol is missing) into
/// an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, GpuError>) -> Result<T, GpuError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(GpuError(format!("{what}: {msg}")))
    })
}

/// Maps a driver error, naming the call.
fn drv(call: &'static str) -> impl Fn(cu::DriverError) -> GpuError {
    move |e| {
        let why = e
            .error_string()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        GpuError(format!("{call}: {:?} ({why})", e.0))
    }
}

/// Loads libcuda and initialises the driver.
fn init_driver() -> Result<(), GpuError> {
    static INIT: OnceLock<Result<(), GpuError>> = OnceLock::new();
    INIT.get_or_init(|| {
        guarded("loading libcuda", || {
            // SAFETY: only probes for the library.
            if !unsafe { sys::is_culib_present() } {
                return Err(GpuError("no CUDA driver (libcuda.so not found)".into()));
            }
            cu::init().map_err(drv("cuInit"))
        })
    })
    .clone()
}

/// A retained primary context; released when the backend and all its buffers are gone.
struct Context {
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
}

impl Context {
    /// Makes the context current on this thread.
    fn bind(&self) -> Result<(), GpuError> {
        // SAFETY: the context is retained until `self` drops.
        unsafe { cu::ctx::set_current(self.ctx) }.map_err(drv("cuCtxSetCurrent"))
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: retained in `Cuda::open`, released once here.
        unsafe {
            let _ = cu::primary_ctx::release(self.dev);
        }
    }
}

/// Device memory of a [`DevBuf`].
struct DeviceMem {
    ptr: sys::CUdeviceptr,
    ctx: Rc<Context>,
}

impl Drop for DeviceMem {
    fn drop(&mut self) {
        if self.ctx.bind().is_ok() {
            // SAFETY: allocated by `Cuda::alloc` in this context, freed once.
            unsafe {
                let _ = cu::free_sync(self.ptr);
            }
        }
    }
}

/// Words of page-locked memory a large copy goes through at a time (16 MiB).
const STAGING_WORDS: usize = 4 << 20;
/// Copies of at least this many words (1 MiB) are staged.
const STAGED_MIN_WORDS: usize = 1 << 18;

/// Page-locked host memory (`cuMemHostAlloc`) for large copies: the driver copies
/// pageable memory at a fraction of the bus's speed (1-3 GB/s on the H200 machine we
/// measured), page-locked memory by DMA. The host side of each chunk is copied by the
/// helper threads.
struct Staging {
    ptr: *mut u32,
}

/// Copies `src` into `dst` (of the same length) in 1 MiB pieces on the helper threads.
fn par_copy(src: &[u32], dst: &mut [u32]) {
    const PIECE: usize = 1 << 18;
    assert_eq!(src.len(), dst.len(), "par_copy");
    let out = crate::parallel::SharedOut::new(dst);
    crate::parallel::for_each_task(src.len().div_ceil(PIECE), |p| {
        let piece = &src[p * PIECE..((p + 1) * PIECE).min(src.len())];
        // SAFETY: piece `p` of the destination belongs to this task only.
        unsafe { out.slice(p * PIECE, piece.len()) }.copy_from_slice(piece);
    });
}

/// One CUDA device: its primary context, the modules of cuda/*.cu and a cuBLAS handle.
pub struct Cuda {
    ctx: Rc<Context>,
    name: String,
    modules: Vec<(&'static str, sys::CUmodule)>,
    functions: RefCell<HashMap<String, sys::CUfunction>>,
    cublas: RefCell<Option<blas_sys::cublasHandle_t>>,
    /// Made on the first large copy; `None` inside when page-locked memory is refused
    /// (copies then go direct).
    staging: OnceCell<Option<Staging>>,
    /// How each module was loaded ("nvcc PTX", "nvcc PTX as version X.Y", "NVRTC").
    sources: Vec<(&'static str, String)>,
}

impl Cuda {
    /// The number of CUDA devices, or why there are none to count (no driver).
    pub fn device_count() -> Result<usize, GpuError> {
        init_driver()?;
        guarded("cuDeviceGetCount", || {
            cu::device::get_count()
                .map(|n| n.max(0) as usize)
                .map_err(drv("cuDeviceGetCount"))
        })
    }

    /// Opens device `ordinal`: retains its primary context and loads every kernel
    /// module. Fails cleanly without a driver, a device, or kernels that load.
    pub fn open(ordinal: usize) -> Result<Cuda, GpuError> {
        let count = Cuda::device_count()?;
        if ordinal >= count {
            return Err(GpuError(format!(
                "no CUDA device {ordinal} ({count} present)"
            )));
        }
        guarded("opening the CUDA device", || Cuda::open_device(ordinal))
    }

    fn open_device(ordinal: usize) -> Result<Cuda, GpuError> {
        let dev = cu::device::get(ordinal as i32).map_err(drv("cuDeviceGet"))?;
        // SAFETY: `dev` is a valid device; released by `Context::drop`.
        let ctx =
            unsafe { cu::primary_ctx::retain(dev) }.map_err(drv("cuDevicePrimaryCtxRetain"))?;
        let ctx = Rc::new(Context { dev, ctx });
        ctx.bind()?;
        let attr = |a| {
            // SAFETY: a valid device and attribute.
            unsafe { cu::device::get_attribute(dev, a) }.map_err(drv("cuDeviceGetAttribute"))
        };
        use sys::CUdevice_attribute::*;
        let cc = (
            attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        );
        let mut version = 0;
        // SAFETY: writes one int.
        unsafe { sys::cuDriverGetVersion(&mut version) }
            .result()
            .map_err(drv("cuDriverGetVersion"))?;
        let name = format!(
            "{} (sm_{}{}), CUDA driver {}.{}",
            cu::device::get_name(dev).map_err(drv("cuDeviceGetName"))?,
            cc.0,
            cc.1,
            version / 1000,
            version % 1000 / 10
        );
        let mut cuda = Cuda {
            ctx,
            name,
            modules: Vec::new(),
            functions: RefCell::new(HashMap::new()),
            cublas: RefCell::new(None),
            staging: OnceCell::new(),
            sources: Vec::new(),
        };
        for (file, text) in SOURCES.iter().filter(|(f, _)| f.ends_with(".cu")) {
            let (module, how) = load_module(file, text, cc, version)?;
            cuda.modules.push((file, module));
            cuda.sources.push((file, how));
        }
        Ok(cuda)
    }

    /// How each kernel file was loaded: `(file, "nvcc PTX" | "nvcc PTX as version X.Y"
    /// | "NVRTC")`.
    pub fn module_sources(&self) -> &[(&'static str, String)] {
        &self.sources
    }

    /// Kernel `name`'s function, looked up once in the modules.
    fn function(&self, name: &str) -> Result<sys::CUfunction, GpuError> {
        if let Some(&f) = self.functions.borrow().get(name) {
            return Ok(f);
        }
        let cname = CString::new(name).map_err(|_| GpuError(format!("kernel name {name:?}")))?;
        for &(_, module) in &self.modules {
            // SAFETY: the module is loaded until `self` drops.
            if let Ok(f) = unsafe { cu::module::get_function(module, cname.clone()) } {
                self.functions.borrow_mut().insert(name.to_string(), f);
                return Ok(f);
            }
        }
        Err(GpuError(format!("no kernel {name} in cuda/*.cu")))
    }

    /// True when some module defines kernel `name`.
    pub fn has_kernel(&self, name: &str) -> bool {
        self.function(name).is_ok()
    }

    /// The cuBLAS handle, created on first use.
    fn cublas(&self) -> Result<blas_sys::cublasHandle_t, GpuError> {
        if let Some(h) = *self.cublas.borrow() {
            return Ok(h);
        }
        let h = guarded("loading cuBLAS", || {
            // SAFETY: only probes for the library.
            if !unsafe { blas_sys::is_culib_present() } {
                return Err(GpuError("cuBLAS not found (libcublas.so)".into()));
            }
            blas::create_handle().map_err(|e| GpuError(format!("cublasCreate: {e:?}")))
        })?;
        *self.cublas.borrow_mut() = Some(h);
        Ok(h)
    }

    /// The staging memory for a copy of `len` words, if the copy is large enough to be
    /// staged and page-locked memory could be had.
    fn staging(&self, len: usize) -> Option<*mut u32> {
        if len < STAGED_MIN_WORDS {
            return None;
        }
        let st = self.staging.get_or_init(|| {
            // SAFETY: a plain page-locked allocation in the bound context.
            let p = unsafe { cu::malloc_host(4 * STAGING_WORDS, 0) }.ok()?;
            Some(Staging { ptr: p as *mut u32 })
        });
        st.as_ref().map(|s| s.ptr)
    }

    /// Checks `len` words at `offset` against `buf`.
    fn span(buf: &DevBuf, offset: usize, len: usize, what: &str) -> Result<u64, GpuError> {
        if offset + len > buf.len() {
            return Err(GpuError(format!(
                "{what}: words {offset}..{} of a buffer of {}",
                offset + len,
                buf.len()
            )));
        }
        Ok(buf.ptr_at(offset))
    }
}

impl Drop for Cuda {
    fn drop(&mut self) {
        if self.ctx.bind().is_err() {
            return;
        }
        // SAFETY: created by this backend, destroyed once.
        unsafe {
            if let Some(h) = self.cublas.get_mut().take() {
                let _ = blas::destroy_handle(h);
            }
            if let Some(Some(st)) = self.staging.take() {
                let _ = cu::free_host(st.ptr as *mut c_void);
            }
            for &(_, m) in &self.modules {
                let _ = cu::module::unload(m);
            }
        }
    }
}

/// The PTX ISA version a driver of CUDA `version` (e.g. 12040) reads at most, for
/// the versions whose mapping the PTX ISA documents.
fn driver_ptx_isa(version: i32) -> Option<(i32, i32)> {
    let (major, minor) = (version / 1000, version % 1000 / 10);
    match major {
        11 => Some((7, minor)),
        12 => Some((
            8,
            [0, 1, 2, 3, 4, 5, 5, 5, 7, 8]
                .get(minor as usize)
                .copied()
                .unwrap_or(8),
        )),
        13 => Some((9, minor)),
        _ => None,
    }
}

/// `ptx` declaring PTX ISA `isa` instead of its own `.version`.
fn with_ptx_version(ptx: &str, isa: (i32, i32)) -> String {
    ptx.lines()
        .map(|l| {
            if l.trim_start().starts_with(".version ") {
                format!(".version {}.{}", isa.0, isa.1)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn load_ptx(ptx: &str) -> Result<sys::CUmodule, cu::DriverError> {
    let image = CString::new(ptx).expect("PTX without NUL bytes");
    // SAFETY: a NUL-terminated PTX image; the context is current.
    unsafe { cu::module::load_data(image.as_ptr() as *const c_void) }
}

/// `file`'s source for NVRTC: `#include "common.cuh"` replaced by the header itself.
fn nvrtc_source(text: &str) -> String {
    let common = SOURCES
        .iter()
        .find(|(f, _)| *f == "common.cuh")
        .map_or("", |(_, t)| *t);
    text.replace("#include \"common.cuh\"", common)
}

/// `file` compiled by NVRTC for compute capability `cc` (once per process).
fn nvrtc_ptx(file: &str, text: &str, cc: (i32, i32)) -> Result<String, GpuError> {
    type Key = (String, (i32, i32));
    static CACHE: OnceLock<Mutex<HashMap<Key, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (file.to_string(), cc);
    if let Some(p) = cache.lock().unwrap().get(&key) {
        return Ok(p.clone());
    }
    let ptx = guarded("NVRTC", || {
        // SAFETY: only probes for the library.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(GpuError("NVRTC not found (libnvrtc.so)".into()));
        }
        let opts = cudarc::nvrtc::CompileOptions {
            fmad: Some(false),
            options: vec![format!("--gpu-architecture=compute_{}{}", cc.0, cc.1)],
            name: Some(file.to_string()),
            ..Default::default()
        };
        cudarc::nvrtc::compile_ptx_with_opts(nvrtc_source(text), opts)
            .map(|p| p.to_src())
            .map_err(|e| match e {
                cudarc::nvrtc::CompileError::CompileError { log, .. } => GpuError(format!(
                    "NVRTC failed on cuda/{file}:\n{}",
                    log.to_string_lossy()
                )),
                e => GpuError(format!("NVRTC on cuda/{file}: {e:?}")),
            })
    })?;
    cache.lock().unwrap().insert(key, ptx.clone());
    Ok(ptx)
}

/// Loads `file` as a module (see the module doc for the order of attempts); returns
/// it and how it was loaded.
fn load_module(
    file: &'static str,
    text: &str,
    cc: (i32, i32),
    version: i32,
) -> Result<(sys::CUmodule, String), GpuError> {
    let mut tried = Vec::new();
    if let Some((_, ptx)) = PTX.iter().find(|(f, _)| *f == file) {
        match load_ptx(ptx) {
            Ok(m) => return Ok((m, "nvcc PTX".into())),
            Err(e) => tried.push(drv("nvcc PTX")(e)),
        }
        let refused = tried[0].0.contains("UNSUPPORTED_PTX_VERSION");
        if let Some(isa) = driver_ptx_isa(version).filter(|_| refused) {
            match load_ptx(&with_ptx_version(ptx, isa)) {
                Ok(m) => return Ok((m, format!("nvcc PTX as version {}.{}", isa.0, isa.1))),
                Err(e) => tried.push(drv("nvcc PTX, older version")(e)),
            }
        }
    }
    match nvrtc_ptx(file, text, cc).and_then(|ptx| load_ptx(&ptx).map_err(drv("NVRTC PTX"))) {
        Ok(m) => Ok((m, "NVRTC".into())),
        Err(e) => {
            tried.push(e);
            let why: Vec<String> = tried.into_iter().map(|e| e.0).collect();
            Err(GpuError(format!(
                "cuda/{file} does not load: {}",
                why.join("; ")
            )))
        }
    }
}

impl Backend for Cuda {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn alloc(&self, len: usize) -> Result<DevBuf, GpuError> {
        self.ctx.bind()?;
        let bytes = 4 * len.max(1);
        // SAFETY: plain allocation in the current context, zeroed before use.
        let ptr = unsafe { cu::malloc_sync(bytes) }.map_err(drv("cuMemAlloc"))?;
        let mem = DeviceMem {
            ptr,
            ctx: self.ctx.clone(),
        };
        // SAFETY: `bytes` bytes at `ptr` were just allocated.
        unsafe { cu::memset_d8_sync(ptr, 0, bytes) }.map_err(drv("cuMemsetD8"))?;
        Ok(DevBuf::new(ptr, len, Box::new(mem)))
    }

    fn write_words(&self, dst: &DevBuf, offset: usize, src: &[u32]) -> Result<(), GpuError> {
        let ptr = Cuda::span(dst, offset, src.len(), "write_words")?;
        self.ctx.bind()?;
        let Some(stage) = self.staging(src.len()) else {
            // SAFETY: in bounds of a live buffer of this context.
            return unsafe { cu::memcpy_htod_sync(ptr, src) }.map_err(drv("cuMemcpyHtoD"));
        };
        for (i, chunk) in src.chunks(STAGING_WORDS).enumerate() {
            // SAFETY: the staging memory holds STAGING_WORDS words, the chunk at most
            // that; the synchronous copy is done with it before the next chunk.
            let staged = unsafe { std::slice::from_raw_parts_mut(stage, chunk.len()) };
            par_copy(chunk, staged);
            // SAFETY: in bounds of a live buffer of this context.
            unsafe { cu::memcpy_htod_sync(ptr + 4 * (i * STAGING_WORDS) as u64, staged) }
                .map_err(drv("cuMemcpyHtoD"))?;
        }
        Ok(())
    }

    fn read_words(&self, src: &DevBuf, offset: usize, dst: &mut [u32]) -> Result<(), GpuError> {
        let ptr = Cuda::span(src, offset, dst.len(), "read_words")?;
        self.ctx.bind()?;
        let Some(stage) = self.staging(dst.len()) else {
            // SAFETY: in bounds of a live buffer of this context.
            return unsafe { cu::memcpy_dtoh_sync(dst, ptr) }.map_err(drv("cuMemcpyDtoH"));
        };
        for (i, chunk) in dst.chunks_mut(STAGING_WORDS).enumerate() {
            // SAFETY: as in `write_words`.
            let staged = unsafe { std::slice::from_raw_parts_mut(stage, chunk.len()) };
            // SAFETY: in bounds of a live buffer of this context.
            unsafe { cu::memcpy_dtoh_sync(staged, ptr + 4 * (i * STAGING_WORDS) as u64) }
                .map_err(drv("cuMemcpyDtoH"))?;
            par_copy(staged, chunk);
        }
        Ok(())
    }

    fn launch(&self, name: &str, grid: u32, block: u32, params: &[Param]) -> Result<(), GpuError> {
        self.ctx.bind()?;
        let f = self.function(name)?;
        let mut slots: Vec<u64> = params.iter().map(Param::slot).collect();
        let mut ptrs: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| s as *mut u64 as *mut c_void)
            .collect();
        // SAFETY: the parameters are laid out as the kernel's signature (the launch
        // wrappers' contract); the slots outlive the call, which copies them.
        unsafe {
            cu::launch_kernel(
                f,
                (grid.max(1), 1, 1),
                (block.max(1), 1, 1),
                0,
                std::ptr::null_mut(),
                &mut ptrs,
            )
        }
        .map_err(|e| GpuError(format!("launching {name}: {}", drv("cuLaunchKernel")(e).0)))
    }

    fn gemm(&self, g: &Gemm, a: &DevBuf, b: &DevBuf, c: &DevBuf) -> Result<(), GpuError> {
        g.check(a, b, c)?;
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        let int = |x: usize| {
            i32::try_from(x.max(1)).map_err(|_| GpuError(format!("gemm: dimension {x} too large")))
        };
        let op = |t: bool| {
            if t {
                blas_sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                blas_sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        self.ctx.bind()?;
        let h = self.cublas()?;
        // SAFETY: `check` proved the buffers cover the matrices; alpha and beta are
        // host values (the handle's default pointer mode).
        unsafe {
            blas::sgemm(
                h,
                op(g.trans_a),
                op(g.trans_b),
                int(g.m)?,
                int(g.n)?,
                i32::try_from(g.k).map_err(|_| GpuError("gemm: k too large".into()))?,
                &g.alpha,
                a.ptr() as *const f32,
                int(g.lda)?,
                b.ptr() as *const f32,
                int(g.ldb)?,
                &g.beta,
                c.ptr() as *mut f32,
                int(g.ldc)?,
            )
        }
        .map_err(|e| GpuError(format!("cublasSgemm: {e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::par_copy;

    #[test]
    fn par_copy_copies_every_word_with_any_thread_count() {
        let len = 3 * (1 << 18) + 5;
        let src: Vec<u32> = (0..len as u32)
            .map(|i| i.wrapping_mul(2654435761))
            .collect();
        for threads in [1, 2, 3] {
            let mut dst = vec![0u32; len];
            crate::parallel::with_threads(threads, || par_copy(&src, &mut dst));
            assert_eq!(dst, src, "{threads} threads");
        }
    }
}
