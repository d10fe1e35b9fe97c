//! The cuRAND device API that NVMatrix uses (curand_kernel.h, curand_uniform.h,
//! curand_normal.h: `curandStateXORWOW`, `curand_init`, `skipahead`,
//! `skipahead_sequence`, `curand`, `curand_uniform`, `curand_normal`), and NVMatrix's
//! random streams (nvmatrix.cu / nvmatrix_kernels.cuh: `initRandom`, `kSetupCurand`,
//! `kUnaryRandomize`, `kBinaryRandomize` and the randomizers behind
//! `randomizeUniform`, `randomizeGaussian`, `addGaussianNoise`, `binarizeProbs`).
//!
//! XORWOW: five 32-bit words `v` shifted as Marsaglia's xorshift, plus a Weyl counter
//! `d += 362437`; output `v[4] + d`. `curand_init(seed, subsequence, offset)` salts and
//! multiplies the seed halves into the initial words (cuRAND's constants), then jumps
//! `subsequence * 2^67 + offset` steps. The jumps are powers of the generator's
//! 160x160 transition matrix over GF(2), which we compute ourselves by repeated
//! squaring (`M^(2^i)` for `i < 131`, once per process); `d` advances by
//! `362437 * offset` (a `2^67` jump leaves it unchanged mod 2^32).
//!
//! Tiers: `curand`, `curand_init`, `skipahead*`, `curand_uniform`
//! (`fma(float(x), 2^-32, 2^-33)`, as nvcc emits it) and the uniform randomizers are
//! **exact** (checked against values from cuRAND 10.4's own header, see the tests).
//! `curand_normal` is Box-Muller as cuRAND's device path does it: `u` as above,
//! `v = fma(float(y), 2^-32*2pi, 2^-33*2pi)`, `s = sqrtf(-2*logf(u))` with CUDA's
//! `logf` ported instruction for instruction from nvcc 13's PTX ([`logf`], exact),
//! then `__sincosf(v)` (`sin.approx`/`cos.approx`, whose bits are undocumented; we
//! compute them correctly rounded, within PTX's stated 2^-20.5 absolute error of the
//! GPU's) times `s`; the second value is cached in the state and returned by the next
//! call. So the Gaussian randomizers are tier **bounded**: absolute error
//! `<= s * 2^-20.5 <= 6.7 * 2^-20.5` per normal draw (before `mean + stdev*n`).

use super::NvMatrix;
use crate::cudaconv2::{require, ShapeError};
use crate::parallel::for_each_task;
use std::sync::OnceLock;

/// `NUM_RND_BLOCKS`.
pub const NUM_RND_BLOCKS: usize = 96;
/// `NUM_RND_THREADS_PER_BLOCK`.
pub const NUM_RND_THREADS_PER_BLOCK: usize = 128;
/// `NUM_RND_STREAMS`: one XORWOW state per GPU thread of the random kernels.
pub const NUM_RND_STREAMS: usize = NUM_RND_BLOCKS * NUM_RND_THREADS_PER_BLOCK;

/// `curandStateXORWOW` (the double-precision Box-Muller cache is not used by
/// NVMatrix and not kept).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurandState {
    /// The Weyl counter `d`.
    pub d: u32,
    /// The xorshift words `v[0..5]`.
    pub v: [u32; 5],
    /// `boxmuller_flag`: a second normal value is cached.
    pub boxmuller_flag: bool,
    /// `boxmuller_extra`: the cached value.
    pub boxmuller_extra: f32,
}

/// The xorshift part of one XORWOW step (linear over GF(2)).
fn xorshift(v: [u32; 5]) -> [u32; 5] {
    let t = v[0] ^ (v[0] >> 2);
    [
        v[1],
        v[2],
        v[3],
        v[4],
        (v[4] ^ (v[4] << 4)) ^ (t ^ (t << 1)),
    ]
}

/// A 160x160 matrix over GF(2), as the images of the 160 unit vectors.
type Gf2Matrix = [[u32; 5]; 160];

fn matvec(m: &Gf2Matrix, v: [u32; 5]) -> [u32; 5] {
    let mut r = [0u32; 5];
    for (w, &word) in v.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let col = &m[w * 32 + bits.trailing_zeros() as usize];
            for (x, c) in r.iter_mut().zip(col) {
                *x ^= c;
            }
            bits &= bits - 1;
        }
    }
    r
}

fn square(m: &Gf2Matrix) -> Gf2Matrix {
    let mut r = [[0u32; 5]; 160];
    for (c, col) in r.iter_mut().enumerate() {
        *col = matvec(m, m[c]);
    }
    r
}

/// `M^(2^i)` for `i = 0..131` (offsets up to 2^64 and subsequences of 2^67 steps up
/// to 2^64), computed once by repeated squaring of the one-step matrix.
fn jump_powers() -> &'static [Gf2Matrix] {
    static POWERS: OnceLock<Vec<Gf2Matrix>> = OnceLock::new();
    POWERS.get_or_init(|| {
        let mut m = [[0u32; 5]; 160];
        for (c, col) in m.iter_mut().enumerate() {
            let mut e = [0u32; 5];
            e[c / 32] = 1 << (c % 32);
            *col = xorshift(e);
        }
        let mut powers = vec![m];
        for i in 1..131 {
            let next = square(&powers[i - 1]);
            powers.push(next);
        }
        powers
    })
}

/// `2^67` steps: the distance between cuRAND subsequences.
const SUBSEQUENCE_LOG2: usize = 67;

/// The matrices of `2^j` subsequence jumps (`M^(2^(67+j))`) for `j < count`, flattened
/// as the CUDA kernel `nvm_curand_setup` reads them: 160 columns of 5 words each.
pub(crate) fn subsequence_jump_words(count: usize) -> Vec<u32> {
    jump_powers()[SUBSEQUENCE_LOG2..SUBSEQUENCE_LOG2 + count]
        .iter()
        .flat_map(|m| m.iter().flatten().copied())
        .collect()
}

impl CurandState {
    /// `curand_init(seed, subsequence, offset, &state)` for XORWOW.
    pub fn curand_init(seed: u64, subsequence: u64, offset: u64) -> CurandState {
        let s0 = (seed as u32) ^ 0xaad2_6b49;
        let s1 = ((seed >> 32) as u32) ^ 0xf7dc_efdd;
        let t0 = 1_099_087_573u32.wrapping_mul(s0);
        let t1 = 2_591_861_531u32.wrapping_mul(s1);
        let mut s = CurandState {
            d: 6_615_241u32.wrapping_add(t1).wrapping_add(t0),
            v: [
                123_456_789u32.wrapping_add(t0),
                362_436_069 ^ t0,
                521_288_629u32.wrapping_add(t1),
                88_675_123 ^ t1,
                5_783_321u32.wrapping_add(t0),
            ],
            boxmuller_flag: false,
            boxmuller_extra: 0.0,
        };
        s.skipahead_sequence(subsequence);
        s.skipahead(offset);
        s
    }

    /// `skipahead(n, &state)`: as `n` calls of `curand`.
    pub fn skipahead(&mut self, n: u64) {
        let p = jump_powers();
        for (i, m) in p.iter().enumerate().take(64) {
            if n >> i & 1 == 1 {
                self.v = matvec(m, self.v);
            }
        }
        self.d = self.d.wrapping_add(362_437u32.wrapping_mul(n as u32));
    }

    /// `skipahead_sequence(n, &state)`: `n * 2^67` steps.
    pub fn skipahead_sequence(&mut self, n: u64) {
        let p = jump_powers();
        for i in 0..64 {
            if n >> i & 1 == 1 {
                self.v = matvec(&p[SUBSEQUENCE_LOG2 + i], self.v);
            }
        }
    }

    /// The state as the CUDA kernels store it: `d`, `v[0..5]`, `boxmuller_flag`,
    /// `boxmuller_extra` (float bits).
    pub fn words(&self) -> [u32; 8] {
        let v = self.v;
        [
            self.d,
            v[0],
            v[1],
            v[2],
            v[3],
            v[4],
            self.boxmuller_flag as u32,
            self.boxmuller_extra.to_bits(),
        ]
    }

    /// The state of [`CurandState::words`].
    pub fn from_words(w: [u32; 8]) -> CurandState {
        CurandState {
            d: w[0],
            v: [w[1], w[2], w[3], w[4], w[5]],
            boxmuller_flag: w[6] != 0,
            boxmuller_extra: f32::from_bits(w[7]),
        }
    }

    /// `curand(&state)`: the next 32 random bits.
    #[inline]
    pub fn curand(&mut self) -> u32 {
        self.v = xorshift(self.v);
        self.d = self.d.wrapping_add(362_437);
        self.v[4].wrapping_add(self.d)
    }

    /// `curand_uniform(&state)`: in (0, 1], `fma(float(x), 2^-32, 2^-33)`. Exact.
    #[inline]
    pub fn curand_uniform(&mut self) -> f32 {
        uniform_of(self.curand())
    }

    /// `curand_normal(&state)`: Box-Muller pairs, the second value cached for the next
    /// call. Bounded (module doc).
    pub fn curand_normal(&mut self) -> f32 {
        if self.boxmuller_flag {
            self.boxmuller_flag = false;
            return self.boxmuller_extra;
        }
        let x = self.curand();
        let y = self.curand();
        let (a, b) = box_muller(x, y);
        self.boxmuller_extra = b;
        self.boxmuller_flag = true;
        a
    }
}

/// `_curand_uniform(x)`.
#[inline]
fn uniform_of(x: u32) -> f32 {
    (x as f32).mul_add(f32::from_bits(0x2F80_0000), f32::from_bits(0x2F00_0000))
}

/// `_curand_box_muller(x, y)` as the device compiles it.
fn box_muller(x: u32, y: u32) -> (f32, f32) {
    let u = uniform_of(x);
    // CURAND_2POW32_INV_2PI and half of it, folded in float by nvcc.
    let v = (y as f32).mul_add(f32::from_bits(0x30C9_0FDB), f32::from_bits(0x3049_0FDB));
    let l = -2.0 * logf(u);
    let s = (if u == 0.0 { f32::INFINITY } else { l }).sqrt();
    let (sin, cos) = (v as f64).sin_cos();
    let (sin, cos) = (sin as f32, cos as f32);
    (s * sin, s * cos)
}

/// CUDA's `logf` (full precision, not `__logf`), ported from the instruction sequence
/// nvcc 13 emits for it (sm_75 PTX): reduce to `m` in `[0.667, 1.333)` and exponent
/// `e`, evaluate a degree-9 polynomial in `f = m - 1` by FMAs, add `e*ln2`. Exact (the
/// same single-precision operations); within 1 ulp of the true logarithm.
pub fn logf(a: f32) -> f32 {
    let c = f32::from_bits;
    let (x, e0) = if a < c(0x0080_0000) {
        (a * 8_388_608.0, -23.0f32)
    } else {
        (a, 0.0)
    };
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    let ix = x.to_bits() as i32;
    let e = ix.wrapping_sub(0x3F2A_AAAB) & (0xFF80_0000u32 as i32);
    let m = f32::from_bits(ix.wrapping_sub(e) as u32);
    let fe = (e as f32).mul_add(c(0x3400_0000), e0);
    let f = m + -1.0;
    let mut p = c(0xBE05_5027).mul_add(f, c(0x3E10_39F6));
    for k in [
        0xBDF8_CDCC,
        0x3E0F_2955,
        0xBE2A_D8B9,
        0x3E4C_ED0B,
        0xBE7F_FF22,
        0x3EAA_AA78,
        0xBF00_0000,
    ] {
        p = p.mul_add(f, c(k));
    }
    let q = f * p;
    let r = q.mul_add(f, f);
    if (ix as u32) < 0x7F80_0000 {
        fe.mul_add(c(0x3F31_7218), r)
    } else {
        x.mul_add(f32::INFINITY, f32::INFINITY)
    }
}

/// The per-device random states of NVMatrix (`rndDevStates[device]`): one XORWOW
/// state per thread of the 96x128 random kernels. The original keeps them in a
/// static map keyed by device; here the owner (the layer code, one per device) holds
/// them and passes them to the `randomize*` calls.
#[derive(Clone, Debug)]
pub struct RandomStreams {
    states: Vec<CurandState>,
}

impl RandomStreams {
    /// `initRandom(seed)`: `kSetupCurand` gives thread `t` `curand_init(1 + 2*seed, t,
    /// 0)`. (Stream `t` is `2^67` steps after stream `t-1`, so one jump each.)
    pub fn init_random(seed: u64) -> RandomStreams {
        let first = CurandState::curand_init(1u64.wrapping_add(seed.wrapping_mul(2)), 0, 0);
        let jump = &jump_powers()[SUBSEQUENCE_LOG2];
        let mut states = Vec::with_capacity(NUM_RND_STREAMS);
        states.push(first);
        for t in 1..NUM_RND_STREAMS {
            let prev: &CurandState = &states[t - 1];
            let next = CurandState {
                v: matvec(jump, prev.v),
                ..*prev
            };
            states.push(next);
        }
        RandomStreams { states }
    }
    /// The states, thread by thread.
    pub fn states(&self) -> &[CurandState] {
        &self.states
    }
    /// The states as device memory holds them ([`CurandState::words`], thread by thread).
    pub fn words(&self) -> Vec<u32> {
        self.states.iter().flat_map(CurandState::words).collect()
    }
    /// Takes the states back from device memory (`words` as [`RandomStreams::words`]
    /// gives them).
    pub fn set_words(&mut self, words: &[u32]) {
        for (s, w) in self.states.iter_mut().zip(words.chunks_exact(8)) {
            *s = CurandState::from_words(w.try_into().expect("chunks of 8"));
        }
    }
}

#[derive(Clone, Copy)]
struct Raw<T>(*mut T);
impl<T> Raw<T> {
    /// The pointer (a method, so that closures capture the whole `Raw`).
    fn p(&self) -> *mut T {
        self.0
    }
}
// SAFETY: used only in `randomize`, whose tasks touch disjoint states and elements.
unsafe impl<T> Send for Raw<T> {}
unsafe impl<T> Sync for Raw<T> {}

/// `kUnaryRandomize` / `kBinaryRandomize`: thread `t` takes its state, visits elements
/// `t, t + NUM_RND_STREAMS, ...` in order, `target[i] = f(data[i], data2[i], state)`,
/// and stores the state back. Tasks are the original's 96 blocks of 128 threads.
///
/// # Safety
/// `srcs` and `dst` cover `n` elements; a source may be the target itself.
unsafe fn randomize<const N: usize>(
    rnd: &mut RandomStreams,
    srcs: [*const f32; N],
    dst: *mut f32,
    n: usize,
    f: impl Fn([f32; N], &mut CurandState) -> f32 + Sync,
) {
    let states = Raw(rnd.states.as_mut_ptr());
    let (srcs, dst) = (srcs.map(|p| Raw(p as *mut f32)), Raw(dst));
    let block = |b: usize| {
        for t in b * NUM_RND_THREADS_PER_BLOCK..(b + 1) * NUM_RND_THREADS_PER_BLOCK {
            // SAFETY: thread `t`'s state and elements belong to this task only.
            unsafe {
                let state = &mut *states.p().add(t);
                let mut local = *state;
                let mut i = t;
                while i < n {
                    let x: [f32; N] = std::array::from_fn(|k| *srcs[k].p().add(i));
                    *dst.p().add(i) = f(x, &mut local);
                    i += NUM_RND_STREAMS;
                }
                *state = local;
            }
        }
    };
    if n < 1 << 16 {
        (0..NUM_RND_BLOCKS).for_each(block);
    } else {
        for_each_task(NUM_RND_BLOCKS, block);
    }
}

impl NvMatrix {
    /// `_unaryRandomize(target, rnd)`: target resized like `this` if its dimensions
    /// differ; it must then share `this`'s orientation.
    fn unary_randomize_to(
        &self,
        target: &mut NvMatrix,
        rnd: &mut RandomStreams,
        f: impl Fn(f32, &mut CurandState) -> f32 + Sync,
    ) -> Result<(), ShapeError> {
        if !self.same_dims(target) {
            target.resize_like(self);
        }
        require(
            self.is_trans() == target.is_trans(),
            "NVMatrix::_unaryRandomize",
            "isTrans() == target.isTrans()",
        )?;
        let n = self.len();
        // SAFETY: distinct matrices of `n` elements.
        unsafe {
            randomize(
                rnd,
                [self.data().as_ptr()],
                target.data_mut().as_mut_ptr(),
                n,
                |[x], s| f(x, s),
            )
        };
        Ok(())
    }
    fn unary_randomize(
        &mut self,
        rnd: &mut RandomStreams,
        f: impl Fn(f32, &mut CurandState) -> f32 + Sync,
    ) {
        let n = self.len();
        let p = self.data_mut().as_mut_ptr();
        // SAFETY: the source is the target, element for element.
        unsafe { randomize(rnd, [p as *const f32], p, n, |[x], s| f(x, s)) };
    }
    /// `_binaryRandomize(data2, target, rnd)` with `target` either this matrix
    /// (`None`) or another; `data2` may be this matrix (`None`).
    fn binary_randomize(
        &mut self,
        data2: Option<&NvMatrix>,
        rnd: &mut RandomStreams,
        f: impl Fn(f32, f32, &mut CurandState) -> f32 + Sync,
    ) -> Result<(), ShapeError> {
        let fname = "NVMatrix::_binaryRandomize";
        if let Some(d2) = data2 {
            require(
                self.same_dims(d2) && self.is_trans() == d2.is_trans(),
                fname,
                "isSameDims(data2) && isTrans() == data2.isTrans()",
            )?;
        }
        let n = self.len();
        let p = self.data_mut().as_mut_ptr();
        let q = data2.map_or(p as *const f32, |d| d.data().as_ptr());
        // SAFETY: `this` is source and target element for element; `data2` has its shape.
        unsafe { randomize(rnd, [p as *const f32, q], p, n, |[x, y], s| f(x, y, s)) };
        Ok(())
    }
    fn binary_randomize_to(
        &self,
        data2: &NvMatrix,
        target: &mut NvMatrix,
        rnd: &mut RandomStreams,
        f: impl Fn(f32, f32, &mut CurandState) -> f32 + Sync,
    ) -> Result<(), ShapeError> {
        let fname = "NVMatrix::_binaryRandomize";
        require(
            self.same_dims(data2) && self.is_trans() == data2.is_trans(),
            fname,
            "isSameDims(data2) && isTrans() == data2.isTrans()",
        )?;
        if !self.same_dims(target) {
            target.resize_like(self);
        }
        require(
            self.is_trans() == target.is_trans(),
            fname,
            "isTrans() == target.isTrans()",
        )?;
        let n = self.len();
        // SAFETY: distinct matrices of `n` elements.
        unsafe {
            randomize(
                rnd,
                [self.data().as_ptr(), data2.data().as_ptr()],
                target.data_mut().as_mut_ptr(),
                n,
                |[x, y], s| f(x, y, s),
            )
        };
        Ok(())
    }

    /// `randomizeUniform()`: `curand_uniform` (`UniformUnaryRandomizer`), element `i`
    /// from stream `i mod 12288`. Exact.
    pub fn randomize_uniform(&mut self, rnd: &mut RandomStreams) {
        self.unary_randomize(rnd, |_, s| s.curand_uniform());
    }
    /// `randomizeGaussian(mean, stdev)`: `fma(curand_normal, stdev, mean)`
    /// (`GaussianUnaryRandomizer`); `randomizeGaussian()` / `(stdev)` are `(0, 1)` /
    /// `(0, stdev)`. Bounded.
    pub fn randomize_gaussian(&mut self, rnd: &mut RandomStreams, mean: f32, stdev: f32) {
        self.unary_randomize(rnd, move |_, s| s.curand_normal().mul_add(stdev, mean));
    }
    /// `randomizeGaussian(stdevs)`: `stdevs * curand_normal` (`GaussianBinaryRandomizer`
    /// with `data2 = stdevs`, target this). Bounded.
    pub fn randomize_gaussian_stdevs(
        &mut self,
        rnd: &mut RandomStreams,
        stdevs: &NvMatrix,
    ) -> Result<(), ShapeError> {
        self.binary_randomize(Some(stdevs), rnd, |_, sd, s| sd * s.curand_normal())
    }
    /// `addGaussianNoise(stdev)`: `fma(stdev, curand_normal, a)`
    /// (`AddGaussianUnaryRandomizer`). Bounded.
    pub fn add_gaussian_noise(&mut self, rnd: &mut RandomStreams, stdev: f32) {
        self.unary_randomize(rnd, move |x, s| stdev.mul_add(s.curand_normal(), x));
    }
    /// `addGaussianNoise(stdev, target)`. Bounded.
    pub fn add_gaussian_noise_to(
        &self,
        rnd: &mut RandomStreams,
        stdev: f32,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        self.unary_randomize_to(target, rnd, move |x, s| stdev.mul_add(s.curand_normal(), x))
    }
    /// `addGaussianNoise(stdevs, var)` in place: `a + (var ? sd : 1) * sd * n`, i.e.
    /// `fma(sd*sd, n, a)` or `fma(sd, n, a)` (`AddGaussianBinaryRandomizer<var>`).
    /// `stdevs == None` means this matrix itself (the 2012 neuron's
    /// `_outputs->addGaussianNoise(*_outputs, false)`). Bounded.
    pub fn add_gaussian_noise_stdevs(
        &mut self,
        rnd: &mut RandomStreams,
        stdevs: Option<&NvMatrix>,
        var: bool,
    ) -> Result<(), ShapeError> {
        self.binary_randomize(stdevs, rnd, move |x, sd, s| {
            add_gaussian_binary(x, sd, var, s)
        })
    }
    /// `addGaussianNoise(stdevs, var, target)`. Bounded.
    pub fn add_gaussian_noise_stdevs_to(
        &self,
        rnd: &mut RandomStreams,
        stdevs: &NvMatrix,
        var: bool,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        self.binary_randomize_to(stdevs, target, rnd, move |x, sd, s| {
            add_gaussian_binary(x, sd, var, s)
        })
    }
    /// `binarizeProbs()`: `a > curand_uniform` (`BinarizeUnaryRandomizer`). Exact.
    pub fn binarize_probs(&mut self, rnd: &mut RandomStreams) {
        self.unary_randomize(rnd, |x, s| if x > s.curand_uniform() { 1.0 } else { 0.0 });
    }
    /// `binarizeProbs(target)`. Exact.
    pub fn binarize_probs_to(
        &self,
        rnd: &mut RandomStreams,
        target: &mut NvMatrix,
    ) -> Result<(), ShapeError> {
        self.unary_randomize_to(
            target,
            rnd,
            |x, s| if x > s.curand_uniform() { 1.0 } else { 0.0 },
        )
    }
}

fn add_gaussian_binary(x: f32, sd: f32, var: bool, s: &mut CurandState) -> f32 {
    let w = if var { sd * sd } else { sd };
    w.mul_add(s.curand_normal(), x)
}
