//! The CUDA fast-math intrinsics the originals call (`__expf`, `__logf`, `__powf`,
//! `__fdividef`), emulated as nvcc lowers them to PTX.
//!
//! nvcc turns `__expf(x)` into `ex2.approx(x * log2(e))`, `__logf(x)` into
//! `lg2.approx(x) * ln(2)`, `__powf(x, y)` into `ex2.approx(y * lg2.approx(x))` and
//! `__fdividef(x, y)` into `div.approx` (`x * (1/y)`, and 0 for `2^126 < |y| < 2^128`).
//! The special-function unit's `ex2.approx` / `lg2.approx` bits are not documented; we
//! compute them correctly rounded, so every kernel that uses these is tier
//! **bounded**: the PTX ISA guarantees `ex2.approx` within 2 ulp and `lg2.approx`
//! within 2^-22.6 absolute (for x in 0.5..2) or relative; `div.approx` within 2 ulp.
//! The multiplications around them are the same single-precision operations as on the
//! GPU.

/// `log2(e)` as the f32 constant nvcc uses for `__expf` (0x3FB8AA3B).
const LOG2_E: f32 = f32::from_bits(0x3FB8_AA3B);
/// `ln(2)` as the f32 constant nvcc uses for `__logf` (0x3F317218).
const LN_2: f32 = f32::from_bits(0x3F31_7218);

/// PTX `ex2.approx.f32`, correctly rounded.
#[inline]
pub fn ex2_approx(x: f32) -> f32 {
    (x as f64).exp2() as f32
}

/// PTX `lg2.approx.f32`, correctly rounded.
#[inline]
pub fn lg2_approx(x: f32) -> f32 {
    (x as f64).log2() as f32
}

/// `__expf(x)`.
#[inline]
pub fn expf(x: f32) -> f32 {
    ex2_approx(x * LOG2_E)
}

/// `__logf(x)`.
#[inline]
pub fn logf(x: f32) -> f32 {
    lg2_approx(x) * LN_2
}

/// `__powf(x, y)`.
#[inline]
pub fn powf(x: f32, y: f32) -> f32 {
    ex2_approx(y * lg2_approx(x))
}

/// `MUFU.RCP`, the reciprocal `div.approx` multiplies by: `1/y` correctly rounded, and
/// 0 for `2^126 < |y| < 2^128` as the CUDA programming guide documents for
/// `__fdividef`.
#[inline(always)]
fn rcp_approx(y: f32) -> f32 {
    let huge = y.abs() > f32::from_bits(0x7E80_0000) && y.is_finite();
    if huge {
        0.0
    } else {
        1.0 / y
    }
}

/// `__fdividef(x, y)` as the machine code (sm_75 SASS) expands `div.approx.f32`, in its
/// two operands: `(x', r)` with `x / y ≈ x' * r`, `r` the reciprocal of the divisor
/// (see `rcp_approx`); for a subnormal divisor (`|y| < 2^-126`) both operands are first
/// multiplied by 2^24. A caller whose final product ptxas contracts into an FFMA uses
/// the parts; everyone else [`fdividef`].
#[inline(always)]
pub fn fdividef_parts(x: f32, y: f32) -> (f32, f32) {
    // Selects rather than branches, so that loops over it vectorise.
    let s = if y.abs() < f32::MIN_POSITIVE {
        16_777_216.0
    } else {
        1.0
    };
    (x * s, rcp_approx(y * s))
}

/// `__fdividef(x, y)`: `x * (1/y)`; 0 when `2^126 < |y| < 2^128` (and NaN for an
/// infinite `x` there); subnormal divisors rescaled as the machine code does.
#[inline]
pub fn fdividef(x: f32, y: f32) -> f32 {
    let (x, r) = fdividef_parts(x, y);
    x * r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_nvccs() {
        assert_eq!(LOG2_E, std::f32::consts::LOG2_E);
        assert_eq!(LN_2, std::f32::consts::LN_2);
    }

    #[test]
    fn fdividef_flushes_huge_divisors() {
        assert_eq!(fdividef(1.0, 2f32.powi(127)), 0.0);
        assert_eq!(fdividef(6.0, 3.0), 2.0);
        assert!(fdividef(f32::INFINITY, 2f32.powi(127)).is_nan());
        // A subnormal divisor: both operands scaled by 2^24 first, so 1/y does not
        // overflow to infinity.
        let y = f32::from_bits(1 << 20);
        assert_eq!(
            fdividef(1e-30, y),
            (1e-30 * 16_777_216.0) * (1.0 / (y * 16_777_216.0))
        );
        assert!(fdividef(1e-30, y).is_finite());
    }

    #[test]
    fn exp_log_pow_are_close() {
        for &x in &[0.5f32, 1.0, 2.0, 3.7, 10.0] {
            assert!((expf(x) - x.exp()).abs() <= 4.0 * f32::EPSILON * x.exp());
            assert!((logf(x) - x.ln()).abs() <= 4.0 * f32::EPSILON);
            assert!((powf(x, -0.75) - x.powf(-0.75)).abs() <= 8.0 * f32::EPSILON);
        }
    }
}
