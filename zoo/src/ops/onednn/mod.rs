//! The convolution's three passes and the matrix products through oneDNN (feature `onednn`), the
//! library PyTorch's CPU convolutions run on: the forward pass, the input gradient and the weight
//! gradient of a 2-D f32 convolution, each on oneDNN's own blocked layouts (the plain NCHW / OIHW
//! tensors reordered in and out), and `zoo::ops::gemm`'s products through oneDNN's sgemm, with
//! JIT-compiled AVX2 / AVX-512 kernels chosen for the CPU at run time.
//!
//! The C side is `shim.c` next to this file, built by `zoo/build.rs` against the headers of
//! Debian's `libdnnl-dev` (oneDNN 2.x), or of the oneDNN 2.x or 3.x in `DNNL_ROOT` (PyPI's
//! `onednn-devel-cpu-gomp` is 3.2). The library of the headers' major version (`libdnnl.so.2` or
//! `.3`) is opened on first use: `ZOO_DNNL_LIBRARY` if set, then `DNNL_ROOT/lib`, then the loader's
//! search path; where it cannot be, a warning says so once and the im2col op runs. One primitive
//! per geometry and pass is made on first use and kept. The large 3x3 stride-1 layers compute with
//! Winograd's algorithm where the library has it ([`set_winograd`]). Every primitive works in one
//! scratchpad buffer of the shim's (oneDNN's `scratchpad_mode_user`, as PyTorch runs it), not in
//! oneDNN's per-thread one, with which 2.6's Winograd primitives corrupted memory when two threads
//! ran them in turn (`zoo/tests/onednn_threads.rs`).
//!
//! oneDNN threads with OpenMP, beside candle's rayon pool. Before opening it, unless the user set
//! them: `OMP_NUM_THREADS` = rayon's thread count, and a short spin, `GOMP_SPINCOUNT=10000`
//! (libgomp's; unless `OMP_WAIT_POLICY` is set): OpenMP threads that spin long after each
//! convolution (libgomp's default, 300000) take the cores from the rayon ops that follow (a
//! WRN-40-4 step: 2112 -> 1808 ms on 2 cores with no spin at all), and threads that never spin
//! are woken for each of a step's ~440 oneDNN calls (a 147 kB weight reorder: 0.09 ms against
//! 0.02 ms with the short spin, measured by `ONEDNN_VERBOSE`). Its sums are in another order than the
//! im2col op's, so the two agree to rounding, not to the bit; each is deterministic run to run for
//! a given thread count.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use candle_core::{bail, Result};

#[repr(C)]
struct RawConv {
    _opaque: [u8; 0],
}

extern "C" {
    fn zoo_dnnl_soname() -> *const c_char;
    fn zoo_dnnl_load(path: *const c_char, err: *mut c_char, err_len: usize) -> c_int;
    fn zoo_dnnl_conv_new(
        pass: c_int,
        geometry: *const i64,
        bf16: c_int,
        winograd: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut RawConv;
    fn zoo_dnnl_conv_winograd(conv: *const RawConv) -> c_int;
    fn zoo_dnnl_conv_run(
        conv: *mut RawConv,
        a: *const f32,
        b: *const f32,
        out: *mut f32,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn zoo_dnnl_conv_backward(
        bw: *mut RawConv,
        bd: *mut RawConv,
        x: *const f32,
        dy: *const f32,
        w: *const f32,
        dw: *mut f32,
        dx: *mut f32,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn zoo_dnnl_conv_free(conv: *mut RawConv);
    fn zoo_dnnl_sgemm(
        ta: c_char,
        tb: c_char,
        m: i64,
        n: i64,
        k: i64,
        a: *const f32,
        lda: i64,
        b: *const f32,
        ldb: i64,
        beta: f32,
        c: *mut f32,
        single: c_int,
    ) -> c_int;
}

/// One operand of [`sgemm`]: its elements, `'N'` (row-major, leading dimension `ld`) or `'T'` (the
/// row-major transpose), as BLAS.
pub(crate) struct Operand<'a> {
    pub data: &'a [f32],
    pub trans: u8,
    pub ld: usize,
}

/// `c = a b` (`+ c` with `accumulate`), `c` row-major `m x n`, through oneDNN's JIT sgemm: on its
/// OpenMP threads, or with `single` on the calling thread alone (products that already run side
/// by side). What the zoo's products call when oneDNN is on. The caller checked the shapes against
/// the slices (`gemm::View`).
#[allow(clippy::too_many_arguments)] // BLAS's own
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: Operand,
    b: Operand,
    c: &mut [f32],
    accumulate: bool,
    single: bool,
) -> Result<()> {
    // SAFETY: the caller's views bound every element the leading dimensions reach.
    let status = unsafe {
        zoo_dnnl_sgemm(
            a.trans as c_char,
            b.trans as c_char,
            m as i64,
            n as i64,
            k as i64,
            a.data.as_ptr(),
            a.ld as i64,
            b.data.as_ptr(),
            b.ld as i64,
            if accumulate { 1.0 } else { 0.0 },
            c.as_mut_ptr(),
            single as c_int,
        )
    };
    if status != 0 {
        bail!("onednn sgemm {m} x {k} x {n} failed")
    }
    Ok(())
}

/// Which pass of the convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Pass {
    /// `x, w -> y`.
    Forward = 0,
    /// `dy, w -> dx`.
    BackwardData = 1,
    /// `x, dy -> dw`.
    BackwardWeights = 2,
}

/// A convolution's shapes: `n, c, h, w, o, kh, kw, oh, ow, stride, padding`.
pub(crate) type Dims = [usize; 11];

/// One primitive, owned; the C object is used by one thread at a time (under [`cache`]'s lock).
struct Primitive(*mut RawConv);

// SAFETY: the object holds no thread-local state; every use is under the cache's mutex.
unsafe impl Send for Primitive {}

impl Drop for Primitive {
    fn drop(&mut self) {
        // SAFETY: made by zoo_dnnl_conv_new, freed once.
        unsafe { zoo_dnnl_conv_free(self.0) }
    }
}

/// The primitives made so far, by pass, geometry, whether they compute in bf16 and whether
/// Winograd's algorithm was asked for.
type Primitives = HashMap<(Pass, Dims, bool, bool), Primitive>;

fn cache() -> &'static Mutex<Primitives> {
    static CACHE: OnceLock<Mutex<Primitives>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

static BF16: AtomicBool = AtomicBool::new(false);

/// Runs the convolutions' three passes in bfloat16 (off by default): their inputs are converted
/// by the reorders into oneDNN's layouts, which they go through anyway, and their outputs stay
/// f32, as are all the tensors around them (PyTorch's CPU autocast likewise casts a convolution's
/// inputs to bf16; it also leaves its output in bf16). oneDNN runs bf16 on AMX or AVX-512 BF16
/// where the CPU has them, and emulates it more slowly elsewhere: see [`bf16_native`].
pub fn set_bf16(on: bool) {
    BF16.store(on, Ordering::Relaxed)
}

/// Whether convolutions run in bf16 ([`set_bf16`]).
pub fn bf16() -> bool {
    BF16.load(Ordering::Relaxed)
}

/// Whether this CPU has bf16 arithmetic oneDNN uses: AVX-512 BF16 (which every CPU with AMX has
/// too; oneDNN picks AMX where it is).
pub fn bf16_native() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

static WINOGRAD: super::Switch = super::Switch::new("ZOO_WINOGRAD");

/// Computes the large f32 3x3 stride-1 convolutions with Winograd's algorithm where the library
/// has it, and directly elsewhere; on by default (`ZOO_WINOGRAD=0` in the environment turns it
/// off). oneDNN 2.x has F(4x4, 3x3) for AVX-512 CPUs, for all three passes (Debian's
/// `libdnnl-dev` is 2.6); oneDNN 3.x dropped it, so there every layer runs directly.
///
/// Large means at least 64 channels in and out, in multiples of 16, and at least 784 output pixels
/// per call (`N OH OW`): every 3x3 layer of WRN-40-4 and ResNet-18 at the paper's batch sizes but
/// the strided ones and the first of WRN. Winograd's transforms cost per tile and channel, its
/// products per tile and channel pair, and small maps waste most of each 4x4 tile, so it pays
/// only on wide layers with many tiles. Measured per pass against the direct algorithm (oneDNN
/// 2.6, AVX-512, 2 cores): 0.38-0.66x the time on WRN-40-4's 64-, 128- and 256-channel layers at
/// batch 32 and on ResNet-18's at batch 16 from 56x56 to 14x14, 0.71-0.94x on ResNet-18's 512
/// channels at 7x7 (784 pixels); but 0.6-1.8x with 16 channels in (its forward pass slower),
/// 1.0-1.9x with 32 channels at 8x8, 0.9-3.7x with 64 at 4x4 (512 pixels), 1.7-10x at 2x2.
///
/// F(4x4, 3x3) computes each 4x4 block of outputs from a 6x6 tile of inputs with 36 products
/// per channel pair instead of 144, through transforms that round differently: against an f64
/// reference its three passes are off by up to 3.4e-6 of the largest value on the zoo's layers,
/// the direct algorithm's by up to 1.3e-6 (`zoo/tests/onednn.rs`, which holds both to 1e-5), and
/// the zoo goldens pass with it. A WRN-40-4 training step takes 0.68-0.70x as long with it.
/// PyTorch's CPU convolutions are always direct; cuDNN on GPUs picks Winograd the same way.
pub fn set_winograd(on: bool) {
    WINOGRAD.set(on)
}

/// Whether Winograd's algorithm is asked for ([`set_winograd`]).
pub fn winograd() -> bool {
    WINOGRAD.get()
}

/// Whether a convolution of `dims` is large enough for Winograd's algorithm (see [`set_winograd`]).
fn takes_winograd(dims: &Dims) -> bool {
    let [n, c, _, _, o, kh, kw, oh, ow, stride, _] = *dims;
    kh == 3 && kw == 3 && stride == 1 && c >= 64 && o >= 64 && c % 16 == 0 && o % 16 == 0 && n * oh * ow >= 784
}

static WINOGRAD_RUNS: AtomicU64 = AtomicU64::new(0);

/// How many convolution passes this process has computed with Winograd's algorithm (for tests and
/// profiles: whether it ran).
pub fn winograd_runs() -> u64 {
    WINOGRAD_RUNS.load(Ordering::Relaxed)
}

/// Whether the loaded oneDNN has Winograd's algorithm for the layers [`set_winograd`] names.
pub fn winograd_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if !loaded() {
            return false;
        }
        // A primitive of the smallest layer that takes it, made under the cache's lock as the others.
        let Ok(_turn) = super::lock(cache(), "onednn cache") else { return false };
        let (mut err, g) = ([0 as c_char; 256], [16i64, 64, 7, 7, 64, 3, 3, 7, 7, 1, 1]);
        // SAFETY: as in `make`.
        let raw = unsafe { zoo_dnnl_conv_new(Pass::Forward as c_int, g.as_ptr(), 0, 1, err.as_mut_ptr(), err.len()) };
        if raw.is_null() {
            return false;
        }
        let probe = Primitive(raw);
        // SAFETY: a live object.
        unsafe { zoo_dnnl_conv_winograd(probe.0) != 0 }
    })
}

static ON: super::Switch = super::Switch::new("ZOO_ONEDNN");

/// Turns oneDNN on or off (default on, or `ZOO_ONEDNN=0` in the environment); off, the im2col +
/// GEMM convolution and the `gemm` crate's products run, the references oneDNN is tested against.
pub fn set_onednn(on: bool) {
    ON.set(on)
}

/// Whether convolutions and products run through oneDNN: on (see [`set_onednn`]) and the library
/// loaded.
pub fn onednn() -> bool {
    ON.get() && loaded()
}

/// Opens oneDNN once (see the module docs); false, after one warning, where it cannot.
fn loaded() -> bool {
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        if std::env::var_os("OMP_NUM_THREADS").is_none() {
            std::env::set_var("OMP_NUM_THREADS", rayon::current_num_threads().to_string());
        }
        if std::env::var_os("OMP_WAIT_POLICY").is_none() && std::env::var_os("GOMP_SPINCOUNT").is_none() {
            std::env::set_var("GOMP_SPINCOUNT", "10000");
        }
        let mut tried = vec![];
        // SAFETY: a static NUL-terminated string.
        let soname = unsafe { CStr::from_ptr(zoo_dnnl_soname()) }.to_string_lossy().into_owned();
        let built_against = option_env!("ZOO_DNNL_DIR").map(|dir| format!("{dir}/{soname}"));
        let candidates = std::env::var("ZOO_DNNL_LIBRARY").ok().into_iter().chain(built_against);
        for path in candidates.chain([soname]) {
            let mut err: [c_char; 512] = [0; 512];
            let Ok(c_path) = std::ffi::CString::new(path.clone()) else { continue };
            // SAFETY: a NUL-terminated path and a writable buffer of its length.
            if unsafe { zoo_dnnl_load(c_path.as_ptr(), err.as_mut_ptr(), err.len()) } == 0 {
                return true;
            }
            tried.push(message(&err));
        }
        eprintln!("zoo: oneDNN could not be opened ({}); convolutions run through im2col", tried.join("; "));
        false
    })
}

/// The element counts of a pass's two inputs and its output.
fn lengths(pass: Pass, d: &Dims) -> [usize; 3] {
    let [n, c, h, w, o, kh, kw, oh, ow, _, _] = *d;
    let (x, wt, y) = (n * c * h * w, o * c * kh * kw, n * o * oh * ow);
    match pass {
        Pass::Forward => [x, wt, y],
        Pass::BackwardData => [y, wt, x],
        Pass::BackwardWeights => [x, y, wt],
    }
}

fn message(err: &[c_char]) -> String {
    // SAFETY: the C side writes a NUL-terminated string into the zeroed buffer.
    unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned()
}

/// The primitive of `pass` and `dims` in `prims` (in bf16 if [`bf16`] is on, else with Winograd's
/// algorithm if [`winograd`] is and the layer [`takes_winograd`]), made on first use; counts a
/// Winograd run.
fn primitive(prims: &mut Primitives, pass: Pass, dims: Dims) -> Result<*mut RawConv> {
    let half = bf16();
    let key = (pass, dims, half, !half && winograd() && takes_winograd(&dims));
    let raw = match prims.get(&key) {
        Some(p) => p.0,
        None => make(prims, key)?,
    };
    // SAFETY: a live object of the cache.
    if unsafe { zoo_dnnl_conv_winograd(raw) } != 0 {
        WINOGRAD_RUNS.fetch_add(1, Ordering::Relaxed);
    }
    Ok(raw)
}

/// Makes the primitive of `key` and keeps it in `prims`.
fn make(prims: &mut Primitives, key: (Pass, Dims, bool, bool)) -> Result<*mut RawConv> {
    let (pass, dims, half, winograd) = key;
    let mut err: [c_char; 256] = [0; 256];
    let g = dims.map(|v| v as i64);
    // SAFETY: g has the 11 entries the shim reads; err is a writable buffer of its length.
    let raw = unsafe {
        zoo_dnnl_conv_new(pass as c_int, g.as_ptr(), half as c_int, winograd as c_int, err.as_mut_ptr(), err.len())
    };
    if raw.is_null() {
        let precision = if half { " (bf16)" } else { "" };
        bail!("onednn conv2d {pass:?}{precision} {dims:?}: {}", message(&err))
    }
    prims.insert(key, Primitive(raw));
    Ok(raw)
}

/// Checks `got` against a pass's operand lengths and makes its output buffer.
fn output(pass: Pass, dims: &Dims, got: [usize; 2]) -> Result<Vec<f32>> {
    let [la, lb, lout] = lengths(pass, dims);
    if got != [la, lb] {
        bail!("onednn conv2d {pass:?}: operands of {got:?} elements for {dims:?}")
    }
    Ok(Vec::with_capacity(lout))
}

/// Runs `pass` of the convolution `dims` on plain tensors `a` and `b` (see [`Pass`]) and returns
/// its output, written by oneDNN into a fresh buffer (never zero-filled first).
pub(crate) fn run(pass: Pass, dims: Dims, a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    let mut out = output(pass, &dims, [a.len(), b.len()])?;
    let mut err: [c_char; 256] = [0; 256];
    let mut prims = super::lock(cache(), "onednn cache")?;
    let prim = primitive(&mut prims, pass, dims)?;
    // SAFETY: the input lengths were checked against the primitive's geometry and `out` has room
    // for its whole output; the lock is held.
    let status =
        unsafe { zoo_dnnl_conv_run(prim, a.as_ptr(), b.as_ptr(), out.as_mut_ptr(), err.as_mut_ptr(), err.len()) };
    if status != 0 {
        bail!("onednn conv2d {pass:?} {dims:?}: {}", message(&err))
    }
    // SAFETY: a successful run wrote every element of the output.
    unsafe { out.set_len(out.capacity()) };
    Ok(out)
}

/// Both gradients of the convolution `dims`, `(dw, dx)` from `x`, `dy` and `w`, in one call that
/// reorders `dy` into oneDNN's layout once for the two passes.
pub(crate) fn backward(dims: Dims, x: &[f32], dy: &[f32], w: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut dw = output(Pass::BackwardWeights, &dims, [x.len(), dy.len()])?;
    let mut dx = output(Pass::BackwardData, &dims, [dy.len(), w.len()])?;
    let mut err: [c_char; 256] = [0; 256];
    let mut prims = super::lock(cache(), "onednn cache")?;
    let bw = primitive(&mut prims, Pass::BackwardWeights, dims)?;
    let bd = primitive(&mut prims, Pass::BackwardData, dims)?;
    // SAFETY: as in `run`, for both passes.
    let status = unsafe {
        zoo_dnnl_conv_backward(
            bw,
            bd,
            x.as_ptr(),
            dy.as_ptr(),
            w.as_ptr(),
            dw.as_mut_ptr(),
            dx.as_mut_ptr(),
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if status != 0 {
        bail!("onednn conv2d backward {dims:?}: {}", message(&err))
    }
    // SAFETY: a successful call wrote every element of both outputs.
    unsafe {
        dw.set_len(dw.capacity());
        dx.set_len(dx.capacity());
    }
    Ok((dw, dx))
}
