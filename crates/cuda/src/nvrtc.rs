//! Run-time compilation of `kernels/*.cu` with NVRTC.
//!
//! The kernel sources are part of the crate (`include_str!`); they are compiled once per
//! process and architecture (the first [`CudaDevice`](crate::CudaDevice) on a device of
//! that compute capability pays for it) and the CUBIN images are cached.
//!
//! **Finding NVRTC.** cudarc's dynamic loading asks the system loader for bare library
//! names (`libnvrtc.so`, …, `libnvrtc.so.13`), so it finds NVRTC through the usual
//! search path (`LD_LIBRARY_PATH`, the loader cache) only. To use an NVRTC that is not on
//! the search path (CI installs it from PyPI into `.venv`), set
//! `TRIAD_NVRTC_LIB=/path/to/libnvrtc.so.13`: [`preload`] opens that file first, and the
//! loader then resolves cudarc's `libnvrtc.so.13` to the already-loaded library (glibc
//! matches a loaded object's `SONAME`). NVRTC in turn opens `libnvrtc-builtins.so.13.x`
//! by bare name, so [`preload`] loads the builtins found beside it first.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::nvrtc::{result, sys};

/// The environment variable naming an NVRTC library file to load first.
pub const NVRTC_LIB_ENV: &str = "TRIAD_NVRTC_LIB";

/// Every kernel family: (file name under `kernels/`, source).
pub const KERNEL_SOURCES: [(&str, &str); 7] = [
    ("elementwise.cu", include_str!("../../../kernels/elementwise.cu")),
    ("bits.cu", include_str!("../../../kernels/bits.cu")),
    ("layout.cu", include_str!("../../../kernels/layout.cu")),
    ("prg.cu", include_str!("../../../kernels/prg.cu")),
    ("conv.cu", include_str!("../../../kernels/conv.cu")),
    ("gemm.cu", include_str!("../../../kernels/gemm.cu")),
    ("fused.cu", include_str!("../../../kernels/fused.cu")),
];

/// The headers the kernel files include (`#include "chacha.cuh"`): (file name under
/// `kernels/`, source). Every compile is given all of them.
pub const KERNEL_HEADERS: [(&str, &str); 2] = [
    ("chacha.cuh", include_str!("../../../kernels/chacha.cuh")),
    ("bits.cuh", include_str!("../../../kernels/bits.cuh")),
];

/// One compiled kernel file.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The file name (`gemm.cu`).
    pub name: &'static str,
    /// The CUBIN image for the requested architecture.
    pub cubin: Vec<u8>,
    /// NVRTC's log (warnings; empty for a clean compile).
    pub log: String,
}

/// Opens the library named by `TRIAD_NVRTC_LIB`, once per process, after the
/// `libnvrtc-builtins.so.*` beside it (NVRTC opens its builtins by bare name too, so they
/// must be loaded first when they are not on the search path). Returns the path it
/// loaded, `Ok(None)` when the variable is unset, or why loading failed.
pub fn preload() -> Result<Option<String>, String> {
    type Loaded = (String, Vec<libloading::Library>);
    static PRELOADED: OnceLock<Result<Option<Loaded>, String>> = OnceLock::new();
    let r = PRELOADED.get_or_init(|| {
        let Some(path) = std::env::var_os(NVRTC_LIB_ENV) else {
            return Ok(None);
        };
        let path = std::path::PathBuf::from(path);
        let shown = path.display().to_string();
        let mut files: Vec<std::path::PathBuf> = path
            .parent()
            .and_then(|dir| std::fs::read_dir(dir).ok())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                name.starts_with("libnvrtc-builtins.so") && !name.contains(".alt.")
            })
            .collect();
        files.sort();
        files.push(path);
        let mut libs = Vec::new();
        for file in files {
            // SAFETY: loading NVRTC (or its builtins) runs its initialisers, which have no
            // preconditions; the libraries stay loaded for the whole process (they are kept
            // in this static).
            match unsafe { libloading::Library::new(&file) } {
                Ok(lib) => libs.push(lib),
                Err(e) => return Err(format!("{NVRTC_LIB_ENV}={shown}: loading {}: {e}", file.display())),
            }
        }
        Ok(Some((shown, libs)))
    });
    match r {
        Ok(Some((p, _))) => Ok(Some(p.clone())),
        Ok(None) => Ok(None),
        Err(e) => Err(e.clone()),
    }
}

/// Whether NVRTC can be loaded (after [`preload`]). Never panics: cudarc would panic on
/// the first NVRTC call without the library, so every caller checks this first.
pub fn available() -> Result<(), String> {
    preload()?;
    // SAFETY: `is_culib_present` only tries to open the library by its candidate names.
    if unsafe { sys::is_culib_present() } {
        Ok(())
    } else {
        Err(format!(
            "the NVRTC library (libnvrtc.so.13) was not found: put it on LD_LIBRARY_PATH or set {NVRTC_LIB_ENV} to its path"
        ))
    }
}

/// The NVRTC version, `(major, minor)`.
pub fn version() -> Result<(i32, i32), String> {
    available()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: both pointers point to live locals; NVRTC is loaded (checked above).
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }.result().map_err(|e| format!("nvrtcVersion: {e:?}"))?;
    Ok((major, minor))
}

/// The options every kernel is compiled with, for architecture `arch` (`sm_90`).
pub fn options(arch: &str) -> Vec<String> {
    vec![format!("--gpu-architecture={arch}"), "--std=c++17".to_string(), "--extra-device-vectorization".to_string()]
}

/// Compiles one source file to a CUBIN for `arch` (a real architecture such as `sm_90`),
/// with [`KERNEL_HEADERS`] to include. Errors carry NVRTC's log.
pub fn compile(name: &'static str, src: &str, arch: &str) -> Result<Compiled, String> {
    available()?;
    let cstr = |s: &str| CString::new(s).map_err(|e| format!("{name}: {e}"));
    let (csrc, cname) = (cstr(src)?, cstr(name)?);
    let headers = KERNEL_HEADERS.iter().map(|(_, h)| cstr(h)).collect::<Result<Vec<_>, _>>()?;
    let includes = KERNEL_HEADERS.iter().map(|(n, _)| cstr(n)).collect::<Result<Vec<_>, _>>()?;
    let (hp, ip): (Vec<_>, Vec<_>) = headers.iter().zip(&includes).map(|(h, i)| (h.as_ptr(), i.as_ptr())).unzip();
    let mut prog = std::mem::MaybeUninit::uninit();
    // SAFETY: every pointer is to a live NUL-terminated string (`csrc`, `cname`, and the
    // `hp.len()` headers and their names) that outlives the program; NVRTC copies them.
    unsafe {
        sys::nvrtcCreateProgram(
            prog.as_mut_ptr(),
            csrc.as_ptr(),
            cname.as_ptr(),
            hp.len() as i32,
            hp.as_ptr(),
            ip.as_ptr(),
        )
    }
    .result()
    .map_err(|e| format!("{name}: create program: {e:?}"))?;
    // SAFETY: nvrtcCreateProgram succeeded, so it wrote the program handle.
    let prog = unsafe { prog.assume_init() };
    // SAFETY: `prog` was created just above; it is destroyed exactly once, at the end of
    // this function.
    let compiled = unsafe { result::compile_program(prog, &options(arch)) };
    // SAFETY: as above.
    let log = unsafe { result::get_program_log(prog) }
        .map(|raw| {
            let bytes: Vec<u8> = raw.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
            String::from_utf8_lossy(&bytes).trim().to_string()
        })
        .unwrap_or_default();
    let out = match compiled {
        Err(e) => Err(format!("{name} ({arch}): {e:?}\n{log}")),
        // SAFETY: as above; the program compiled successfully.
        Ok(()) => unsafe { cubin(prog) }.map(|cubin| Compiled { name, cubin, log }).map_err(|e| format!("{name}: {e}")),
    };
    // SAFETY: as above; `prog` is not used after this.
    let _ = unsafe { result::destroy_program(prog) };
    out
}

/// The CUBIN of a compiled program.
///
/// # Safety
/// `prog` must be a live program that compiled successfully for a real architecture.
unsafe fn cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>, String> {
    let mut size = 0usize;
    // SAFETY: `prog` is live (caller); `size` is a live local.
    unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }.result().map_err(|e| format!("nvrtcGetCUBINSize: {e:?}"))?;
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` has exactly the `size` bytes NVRTC reported.
    unsafe { sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr().cast()) }
        .result()
        .map_err(|e| format!("nvrtcGetCUBIN: {e:?}"))?;
    Ok(buf)
}

/// Compiles every kernel file for `arch`.
pub fn compile_all(arch: &str) -> Result<Vec<Compiled>, String> {
    KERNEL_SOURCES.iter().map(|&(name, src)| compile(name, src, arch)).collect()
}

/// [`compile_all`], once per process and architecture.
pub fn compile_all_cached(arch: &str) -> Result<Arc<Vec<Compiled>>, String> {
    type Cache = Mutex<HashMap<String, Result<Arc<Vec<Compiled>>, String>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(arch.to_string()).or_insert_with(|| compile_all(arch).map(Arc::new)).clone()
}
