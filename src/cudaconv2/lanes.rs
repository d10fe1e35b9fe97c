//! Eight f32 lanes in one vector register, shared by the convolution kernels (ours,
//! not a port). `mul_add` is `f32::mul_add` in every lane (one rounding), spelled with
//! the AVX/FMA intrinsics where the build has them (the test profile's opt-level 2
//! does not vectorise the plain array form), else lane by lane: the same bits either
//! way.

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
    }
}

pub use imp::F32x8;
