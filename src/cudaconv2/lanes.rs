//! SIMD lanes shared by the convolution kernels (ours, not a port): eight f32 lanes
//! ([`F32x8`], AVX2/FMA, the build's baseline) and sixteen ([`F32x16`], AVX-512, chosen
//! at run time by [`simd`]). `mul_add` is `f32::mul_add` in every lane (one rounding),
//! spelled with intrinsics (the test profile's opt-level 2 does not vectorise the plain
//! array form), or lane by lane without AVX: the same bits every way. Each lane runs
//! one output's operation sequence, so the width changes only how many outputs run at
//! once, never a result.

#[cfg(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma"))]
mod imp {
    use std::arch::x86_64::{
        __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };

    /// Eight f32 lanes.
    #[derive(Clone, Copy)]
    pub struct F32x8(__m256);

    impl F32x8 {
        /// All lanes `+0`.
        #[inline(always)]
        pub fn zero() -> F32x8 {
            // SAFETY: the build enables AVX (this module's cfg).
            F32x8(unsafe { _mm256_setzero_ps() })
        }
        /// All lanes `x`.
        #[inline(always)]
        pub fn splat(x: f32) -> F32x8 {
            // SAFETY: the build enables AVX.
            F32x8(unsafe { _mm256_set1_ps(x) })
        }
        /// The first eight values of `s`.
        #[inline(always)]
        pub fn load(s: &[f32]) -> F32x8 {
            let s = &s[..8];
            // SAFETY: 8 readable floats; unaligned load.
            F32x8(unsafe { _mm256_loadu_ps(s.as_ptr()) })
        }
        /// Eight values from `p`.
        ///
        /// # Safety
        /// `p` must address 8 readable floats.
        #[inline(always)]
        pub unsafe fn load_ptr(p: *const f32) -> F32x8 {
            F32x8(_mm256_loadu_ps(p))
        }
        /// Writes the lanes to the first eight values of `d`.
        #[inline(always)]
        pub fn store(self, d: &mut [f32]) {
            let d = &mut d[..8];
            // SAFETY: 8 writable floats; unaligned store.
            unsafe { _mm256_storeu_ps(d.as_mut_ptr(), self.0) }
        }
        /// Writes the lanes to `p`.
        ///
        /// # Safety
        /// `p` must address 8 writable floats.
        #[inline(always)]
        pub unsafe fn store_ptr(self, p: *mut f32) {
            _mm256_storeu_ps(p, self.0)
        }
        /// `self*b + c`, rounded once, in every lane.
        #[inline(always)]
        pub fn mul_add(self, b: F32x8, c: F32x8) -> F32x8 {
            // SAFETY: the build enables FMA.
            F32x8(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
        }
        /// The 8 x 8 transpose: lane `j` of result `i` is lane `i` of `rows[j]`.
        #[inline(always)]
        pub fn transpose(rows: [F32x8; 8]) -> [F32x8; 8] {
            use std::arch::x86_64::{
                _mm256_permute2f128_ps as lanes128, _mm256_shuffle_ps as shuffle,
                _mm256_unpackhi_ps as hi, _mm256_unpacklo_ps as lo,
            };
            let r = rows.map(|v| v.0);
            // SAFETY: the build enables AVX.
            unsafe {
                // Pairs of rows interleaved, then quadruples, then the 128-bit halves.
                let t = [
                    lo(r[0], r[1]),
                    hi(r[0], r[1]),
                    lo(r[2], r[3]),
                    hi(r[2], r[3]),
                    lo(r[4], r[5]),
                    hi(r[4], r[5]),
                    lo(r[6], r[7]),
                    hi(r[6], r[7]),
                ];
                let q = [
                    shuffle::<0x44>(t[0], t[2]),
                    shuffle::<0xEE>(t[0], t[2]),
                    shuffle::<0x44>(t[1], t[3]),
                    shuffle::<0xEE>(t[1], t[3]),
                    shuffle::<0x44>(t[4], t[6]),
                    shuffle::<0xEE>(t[4], t[6]),
                    shuffle::<0x44>(t[5], t[7]),
                    shuffle::<0xEE>(t[5], t[7]),
                ];
                std::array::from_fn(|i| {
                    let (a, b) = (q[i % 4], q[4 + i % 4]);
                    F32x8(if i < 4 {
                        lanes128::<0x20>(a, b)
                    } else {
                        lanes128::<0x31>(a, b)
                    })
                })
            }
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma")))]
mod imp {
    /// Eight f32 lanes.
    #[derive(Clone, Copy)]
    pub struct F32x8([f32; 8]);

    impl F32x8 {
        /// All lanes `+0`.
        #[inline(always)]
        pub fn zero() -> F32x8 {
            F32x8([0.0; 8])
        }
        /// All lanes `x`.
        #[inline(always)]
        pub fn splat(x: f32) -> F32x8 {
            F32x8([x; 8])
        }
        /// The first eight values of `s`.
        #[inline(always)]
        pub fn load(s: &[f32]) -> F32x8 {
            F32x8(s[..8].try_into().unwrap())
        }
        /// Eight values from `p`.
        ///
        /// # Safety
        /// `p` must address 8 readable floats.
        #[inline(always)]
        pub unsafe fn load_ptr(p: *const f32) -> F32x8 {
            F32x8(std::ptr::read_unaligned(p as *const [f32; 8]))
        }
        /// Writes the lanes to the first eight values of `d`.
        #[inline(always)]
        pub fn store(self, d: &mut [f32]) {
            d[..8].copy_from_slice(&self.0)
        }
        /// Writes the lanes to `p`.
        ///
        /// # Safety
        /// `p` must address 8 writable floats.
        #[inline(always)]
        pub unsafe fn store_ptr(self, p: *mut f32) {
            std::ptr::write_unaligned(p as *mut [f32; 8], self.0)
        }
        /// `self*b + c`, rounded once, in every lane.
        #[inline(always)]
        pub fn mul_add(self, b: F32x8, c: F32x8) -> F32x8 {
            F32x8(std::array::from_fn(|l| self.0[l].mul_add(b.0[l], c.0[l])))
        }
        /// The 8 x 8 transpose: lane `j` of result `i` is lane `i` of `rows[j]`.
        #[inline(always)]
        pub fn transpose(rows: [F32x8; 8]) -> [F32x8; 8] {
            std::array::from_fn(|i| F32x8(std::array::from_fn(|j| rows[j].0[i])))
        }
    }
}

pub use imp::F32x8;

/// The widest vectors the kernels may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// Eight lanes ([`F32x8`]).
    Avx2,
    /// Sixteen lanes ([`F32x16`]): the CPU has AVX-512F.
    Avx512,
}

thread_local! {
    static SIMD_OVERRIDE: std::cell::Cell<Option<Simd>> = const { std::cell::Cell::new(None) };
}

/// The vectors this CPU offers: AVX-512 when it has AVX-512F, unless the environment
/// variable `CONVNET_SIMD=avx2` asks for eight lanes (same results, for comparison).
/// A kernel reads this once, on the calling thread, and hands it to its tasks.
pub fn simd() -> Simd {
    if let Some(s) = SIMD_OVERRIDE.with(std::cell::Cell::get) {
        return s;
    }
    static DETECTED: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        let forced = std::env::var("CONVNET_SIMD").is_ok_and(|v| v.eq_ignore_ascii_case("avx2"));
        if !forced && avx512_available() {
            Simd::Avx512
        } else {
            Simd::Avx2
        }
    })
}

/// Runs `f` with kernels called on this thread using `s` (clamped to what the CPU
/// has), for tests and benchmarks that compare the widths inside one process.
pub fn with_simd<R>(s: Simd, f: impl FnOnce() -> R) -> R {
    let s = if avx512_available() { s } else { Simd::Avx2 };
    let old = SIMD_OVERRIDE.with(|o| o.replace(Some(s)));
    let r = f();
    SIMD_OVERRIDE.with(|o| o.set(old));
    r
}

/// True when the CPU can run [`F32x16`] code (AVX-512F, x86-64 only).
pub fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`F32x16`]'s code is compiled for AVX-512 by marking the functions that use it
/// `#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]`: the
/// methods inline into them. Elsewhere a portable stand-in keeps the code compiling;
/// [`simd`] never picks it.
#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };

    /// Sixteen f32 lanes. Every method is `unsafe`: only code compiled with
    /// `#[target_feature(enable = "avx512f")]` and entered after [`super::simd`] said
    /// [`super::Simd::Avx512`] may call them (they inline into it).
    #[derive(Clone, Copy)]
    pub struct F32x16(__m512);

    impl F32x16 {
        /// All lanes `+0`.
        ///
        /// # Safety
        /// The CPU has AVX-512F.
        #[inline(always)]
        pub unsafe fn zero() -> F32x16 {
            F32x16(_mm512_setzero_ps())
        }
        /// All lanes `x`.
        ///
        /// # Safety
        /// The CPU has AVX-512F.
        #[inline(always)]
        pub unsafe fn splat(x: f32) -> F32x16 {
            F32x16(_mm512_set1_ps(x))
        }
        /// Sixteen values from `p`.
        ///
        /// # Safety
        /// The CPU has AVX-512F; `p` addresses 16 readable floats.
        #[inline(always)]
        pub unsafe fn load_ptr(p: *const f32) -> F32x16 {
            F32x16(_mm512_loadu_ps(p))
        }
        /// Writes the lanes to `p`.
        ///
        /// # Safety
        /// The CPU has AVX-512F; `p` addresses 16 writable floats.
        #[inline(always)]
        pub unsafe fn store_ptr(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }
        /// `self*b + c`, rounded once, in every lane.
        ///
        /// # Safety
        /// The CPU has AVX-512F.
        #[inline(always)]
        pub unsafe fn mul_add(self, b: F32x16, c: F32x16) -> F32x16 {
            F32x16(_mm512_fmadd_ps(self.0, b.0, c.0))
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod wide {
    /// Sixteen f32 lanes (never used off x86-64; see [`super::simd`]).
    #[derive(Clone, Copy)]
    pub struct F32x16([f32; 16]);

    impl F32x16 {
        /// All lanes `+0`.
        ///
        /// # Safety
        /// None here (the x86-64 version needs AVX-512F).
        #[inline(always)]
        pub unsafe fn zero() -> F32x16 {
            F32x16([0.0; 16])
        }
        /// All lanes `x`.
        ///
        /// # Safety
        /// None here (the x86-64 version needs AVX-512F).
        #[inline(always)]
        pub unsafe fn splat(x: f32) -> F32x16 {
            F32x16([x; 16])
        }
        /// Sixteen values from `p`.
        ///
        /// # Safety
        /// `p` addresses 16 readable floats.
        #[inline(always)]
        pub unsafe fn load_ptr(p: *const f32) -> F32x16 {
            F32x16(std::ptr::read_unaligned(p as *const [f32; 16]))
        }
        /// Writes the lanes to `p`.
        ///
        /// # Safety
        /// `p` addresses 16 writable floats.
        #[inline(always)]
        pub unsafe fn store_ptr(self, p: *mut f32) {
            std::ptr::write_unaligned(p as *mut [f32; 16], self.0)
        }
        /// `self*b + c`, rounded once, in every lane.
        ///
        /// # Safety
        /// None here (the x86-64 version needs AVX-512F).
        #[inline(always)]
        pub unsafe fn mul_add(self, b: F32x16, c: F32x16) -> F32x16 {
            F32x16(std::array::from_fn(|l| self.0[l].mul_add(b.0[l], c.0[l])))
        }
    }
}

pub use wide::F32x16;

/// What [`F32x8`] and [`F32x16`] share, for code written once for both widths.
pub trait Lanes: Copy {
    /// Lanes per vector.
    const WIDTH: usize;
    /// All lanes `x`.
    ///
    /// # Safety
    /// The CPU runs this width (always for [`F32x8`]; AVX-512F for [`F32x16`]).
    unsafe fn splat(x: f32) -> Self;
    /// `self*b + c`, rounded once, in every lane.
    ///
    /// # Safety
    /// As [`Lanes::splat`].
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// Writes the lanes to `p`.
    ///
    /// # Safety
    /// As [`Lanes::splat`]; `p` addresses `WIDTH` writable floats.
    unsafe fn store_ptr(self, p: *mut f32);
}

/// [`Lanes`] through the type's own methods of the same names.
macro_rules! lanes_by_own_methods {
    ($t:ident, $width:expr) => {
        impl Lanes for $t {
            const WIDTH: usize = $width;
            #[inline(always)]
            unsafe fn splat(x: f32) -> $t {
                $t::splat(x)
            }
            #[inline(always)]
            unsafe fn mul_add(self, b: $t, c: $t) -> $t {
                $t::mul_add(self, b, c)
            }
            #[inline(always)]
            unsafe fn store_ptr(self, p: *mut f32) {
                $t::store_ptr(self, p)
            }
        }
    };
}
lanes_by_own_methods!(F32x8, 8);
lanes_by_own_methods!(F32x16, 16);

#[cfg(test)]
mod tests {
    use super::F32x8;

    #[test]
    fn transpose_swaps_rows_and_lanes() {
        let m: [[f32; 8]; 8] = std::array::from_fn(|i| std::array::from_fn(|j| (8 * i + j) as f32));
        let t = F32x8::transpose(m.map(|r| F32x8::load(&r)));
        for (i, v) in t.iter().enumerate() {
            let mut row = [0f32; 8];
            v.store(&mut row);
            assert_eq!(row, std::array::from_fn(|j| m[j][i]), "row {i}");
        }
    }
}
