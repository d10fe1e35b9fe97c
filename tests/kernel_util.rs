//! Tests of the conv_util image utilities (src/cudaconv2/conv_util/util.rs): float64
//! references on small and awkward shapes, adjoint and finite-difference checks of the
//! bed-of-nails undo, scale accumulation, exact-bits regression goldens (golden/kernels/
//! util.tsv, every case with 1 and 2 threads) and bad shapes.

mod common;

use common::{assert_close, same_bits_any_threads_or_lanes, Regression};
use convnet::cudaconv2::conv_util::norm::{conv_tica, conv_tica_grad, normalize_local_weights};
use convnet::cudaconv2::conv_util::util::*;
use convnet::nvmatrix::NvMatrix;
use convnet::synthetic::uniform;

/// Image counts of the references: 1, odd, not a multiple of 32 or 128.
const IMAGE_COUNTS: [usize; 4] = [1, 37, 100, 130];

fn mat(rows: usize, cols: usize, seed: u64, lo: f32, hi: f32) -> NvMatrix {
    NvMatrix::from_vec(rows, cols, false, uniform(seed, rows * cols, lo, hi))
}

fn f64s(m: &NvMatrix) -> Vec<f64> {
    m.data().iter().map(|&x| x as f64).collect()
}

/// `st * t + so * r` in float64 (the reference of every scaled write).
fn acc(t: &[f64], r: &[f64], st: f64, so: f64) -> Vec<f64> {
    t.iter().zip(r).map(|(t, r)| st * t + so * r).collect()
}

// ---------------------------------------------------------------------------------
// Bed of nails
// ---------------------------------------------------------------------------------

/// Parser rule: `outputsX = DIVUP(imgSize, stride)`, `start = (imgSize - stride*(outputsX-1))/2`.
fn nails_start(img: usize, stride: usize) -> (usize, i32) {
    let ox = img.div_ceil(stride);
    (ox, ((img - stride * (ox - 1)) / 2) as i32)
}

fn nails_ref(x: &[f64], ch: usize, img: usize, start: usize, stride: usize, n: usize) -> Vec<f64> {
    let ox = img.div_ceil(stride);
    let mut out = vec![0.0; ch * ox * ox * n];
    for c in 0..ch {
        for oy in 0..ox {
            for oxx in 0..ox {
                let px = (start + oy * stride) * img + start + oxx * stride;
                for i in 0..n {
                    out[((c * ox + oy) * ox + oxx) * n + i] = x[(c * img * img + px) * n + i];
                }
            }
        }
    }
    out
}

fn nails_undo_ref(
    g: &[f64],
    ch: usize,
    img: usize,
    start: usize,
    stride: usize,
    n: usize,
) -> Vec<f64> {
    let ox = img.div_ceil(stride);
    let mut out = vec![0.0; ch * img * img * n];
    for c in 0..ch {
        for o in 0..ox * ox {
            let px = (start + (o / ox) * stride) * img + start + (o % ox) * stride;
            for i in 0..n {
                out[(c * img * img + px) * n + i] = g[((c * ox * ox) + o) * n + i];
            }
        }
    }
    out
}

#[test]
fn bed_of_nails_reference_and_scale() {
    for &n in &IMAGE_COUNTS {
        for &(ch, img, stride) in &[(3, 7, 2), (8, 9, 3), (1, 5, 4), (16, 8, 2)] {
            let (ox, start) = nails_start(img, stride);
            let x = mat(ch * img * img, n, 1, -1.0, 1.0);
            let mut t = NvMatrix::default();
            conv_bed_of_nails(&x, &mut t, ch, img, start, stride, 0.0, 1.0).unwrap();
            let want = nails_ref(&f64s(&x), ch, img, start as usize, stride, n);
            assert_close("bedOfNails", t.data(), &want, 0.0);
            // Scale accumulation.
            let t0 = mat(ch * ox * ox, n, 2, -1.0, 1.0);
            let mut t = t0.clone();
            conv_bed_of_nails(&x, &mut t, ch, img, start, stride, 0.75, -1.5).unwrap();
            assert_close(
                "bedOfNails scaled",
                t.data(),
                &acc(&f64s(&t0), &want, 0.75, -1.5),
                1e-6,
            );
            // Undo, fresh and accumulating (the corrected check).
            let g = mat(ch * ox * ox, n, 3, -1.0, 1.0);
            let mut u = mat(5, 5, 9, 0.0, 1.0); // resized and zeroed
            conv_bed_of_nails_undo(&g, &mut u, ch, img, start, stride, 0.0, 2.0).unwrap();
            let want = nails_undo_ref(&f64s(&g), ch, img, start as usize, stride, n);
            assert_close(
                "bedOfNailsUndo",
                u.data(),
                &want.iter().map(|w| 2.0 * w).collect::<Vec<_>>(),
                0.0,
            );
            let u0 = mat(ch * img * img, n, 4, -1.0, 1.0);
            let mut u = u0.clone();
            conv_bed_of_nails_undo_fixed(&g, &mut u, ch, img, start, stride, 0.5, 3.0).unwrap();
            let mut want_acc = f64s(&u0);
            for (w, (&d, &u0)) in want_acc.iter_mut().zip(want.iter().zip(&f64s(&u0))) {
                if d != 0.0 {
                    *w = 0.5 * u0 + 3.0 * d;
                }
            }
            assert_close("bedOfNailsUndo scaled", u.data(), &want_acc, 1e-6);
        }
    }
}

/// The undo is the adjoint of the forward pass: `<nails(x), y> = <x, undo(y)>`, and a
/// float64 finite-difference gradient of `C(x) = <nails(x), y>` equals `undo(y)`.
#[test]
fn bed_of_nails_undo_is_the_gradient() {
    let (ch, img, stride, n) = (2, 7, 3, 5);
    let (ox, start) = nails_start(img, stride);
    let x = mat(ch * img * img, n, 11, -1.0, 1.0);
    let y = mat(ch * ox * ox, n, 12, -1.0, 1.0);
    let cost = |x: &NvMatrix| -> f64 {
        let mut t = NvMatrix::default();
        conv_bed_of_nails(x, &mut t, ch, img, start, stride, 0.0, 1.0).unwrap();
        t.data()
            .iter()
            .zip(y.data())
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    let mut u = NvMatrix::default();
    conv_bed_of_nails_undo(&y, &mut u, ch, img, start, stride, 0.0, 1.0).unwrap();
    let dot_xu: f64 = x
        .data()
        .iter()
        .zip(u.data())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum();
    assert!((cost(&x) - dot_xu).abs() < 1e-9, "adjoint identity");
    let h = 1.0f32 / 64.0; // exact steps in f32 for |x| < 1
    let mut numeric = Vec::with_capacity(x.len());
    for k in 0..x.len() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.data_mut()[k] += h;
        xm.data_mut()[k] -= h;
        numeric.push((cost(&xp) - cost(&xm)) / (2.0 * h as f64));
    }
    assert_close(
        "bedOfNailsUndo vs finite differences",
        u.data(),
        &numeric,
        1e-9,
    );
}

// ---------------------------------------------------------------------------------
// Gaussian blur
// ---------------------------------------------------------------------------------

/// The blur as the kernel computes it (see the doc of `conv_gaussian_blur`): with
/// `g[2r] := g[0]`, output `p` adds `x[c]*g[r+c-p]` for the first `r` pixels and
/// `x[c]*g[r+p-c]` for the others.
fn blur_ref(x: &[f64], filter: &[f64], ch: usize, img: usize, n: usize, horiz: bool) -> Vec<f64> {
    let r = filter.len() / 2;
    let g = |k: usize| if k == 2 * r { filter[0] } else { filter[k] };
    let mut out = vec![0.0; x.len()];
    for c in 0..ch {
        for line in 0..img {
            let at = |j: usize| {
                if horiz {
                    c * img * img + line * img + j
                } else {
                    c * img * img + j * img + line
                }
            };
            for p in 0..img {
                for i in 0..n {
                    let mut s = 0.0;
                    for q in p.saturating_sub(r)..(p + r + 1).min(img) {
                        let w = if q < r { g(r + q - p) } else { g(r + p - q) };
                        s += x[at(q) * n + i] * w;
                    }
                    out[at(p) * n + i] = s;
                }
            }
        }
    }
    out
}

fn gaussian(r: usize, sigma: f64) -> Vec<f32> {
    let w: Vec<f64> = (0..=2 * r)
        .map(|k| (-((k as f64 - r as f64).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| (v / s) as f32).collect()
}

#[test]
fn gaussian_blur_reference_and_scale() {
    for &n in &IMAGE_COUNTS {
        for r in 1..=4 {
            for &img in &[2 * r + 1, 11, 12] {
                for horiz in [true, false] {
                    let ch = 2;
                    let x = mat(ch * img * img, n, 20 + r as u64, -1.0, 1.0);
                    // An asymmetric filter shows the kernel's exact tap use.
                    let fv: Vec<f32> = uniform(30 + r as u64, 2 * r + 1, 0.0, 1.0);
                    let filter = NvMatrix::from_vec(1, 2 * r + 1, false, fv.clone());
                    let f64f: Vec<f64> = fv.iter().map(|&v| v as f64).collect();
                    let want = blur_ref(&f64s(&x), &f64f, ch, img, n, horiz);
                    let mut t = NvMatrix::default();
                    conv_gaussian_blur(&x, &filter, &mut t, horiz, ch, 0.0, 1.0).unwrap();
                    assert_close(
                        &format!("blur r{r} img{img} horiz {horiz}"),
                        t.data(),
                        &want,
                        1e-6,
                    );
                    let t0 = mat(ch * img * img, n, 40, -1.0, 1.0);
                    let mut t = t0.clone();
                    conv_gaussian_blur(&x, &filter, &mut t, horiz, ch, -0.5, 2.0).unwrap();
                    assert_close(
                        "blur scaled",
                        t.data(),
                        &acc(&f64s(&t0), &want, -0.5, 2.0),
                        2e-6,
                    );
                    // In place equals out of place, bit for bit, for both scale paths.
                    for (st, so) in [(0.0, 1.0), (-0.5, 2.0)] {
                        let mut a = x.clone();
                        conv_gaussian_blur(&x, &filter, &mut a, horiz, ch, st, so).unwrap();
                        let mut b = x.clone();
                        conv_gaussian_blur_in_place(&mut b, &filter, horiz, ch, st, so).unwrap();
                        assert_eq!(a.data(), b.data(), "in place r{r} img{img}");
                    }
                }
            }
        }
    }
}

/// With a symmetric filter the two passes are the textbook zero-padded separable blur.
#[test]
fn gaussian_blur_symmetric_is_the_textbook_blur() {
    let (ch, img, n, r) = (3, 10, 37, 2);
    let fv = gaussian(r, 1.0);
    let filter = NvMatrix::from_vec(1, 2 * r + 1, false, fv.clone());
    let x = mat(ch * img * img, n, 50, 0.0, 1.0);
    let mut t = NvMatrix::default();
    conv_gaussian_blur(&x, &filter, &mut t, true, ch, 0.0, 1.0).unwrap();
    conv_gaussian_blur_in_place(&mut t, &filter, false, ch, 0.0, 1.0).unwrap();
    let xs = f64s(&x);
    let mut want = vec![0.0; xs.len()];
    for c in 0..ch {
        for y in 0..img {
            for xx in 0..img {
                for i in 0..n {
                    let mut s = 0.0;
                    for dy in 0..=2 * r {
                        for dx in 0..=2 * r {
                            let (sy, sx) = (
                                y as isize + dy as isize - r as isize,
                                xx as isize + dx as isize - r as isize,
                            );
                            if (0..img as isize).contains(&sy) && (0..img as isize).contains(&sx) {
                                s += fv[dy] as f64
                                    * fv[dx] as f64
                                    * xs[(c * img * img + sy as usize * img + sx as usize) * n + i];
                            }
                        }
                    }
                    want[(c * img * img + y * img + xx) * n + i] = s;
                }
            }
        }
    }
    assert_close("2-pass blur", t.data(), &want, 1e-6);
}

// ---------------------------------------------------------------------------------
// Resize, colour, crop, reflection
// ---------------------------------------------------------------------------------

fn resize_ref(x: &[f64], ch: usize, img: usize, tgt: usize, scale: f64, n: usize) -> Vec<f64> {
    let cs = img as f64 * 0.5 - tgt as f64 * 0.5 * scale;
    let coord = |p: usize| (p as f64 * scale + cs).min(img as f64 - 1.01).max(0.0);
    let mut out = vec![0.0; ch * tgt * tgt * n];
    for c in 0..ch {
        for py in 0..tgt {
            for px in 0..tgt {
                let (sy, sx) = (coord(py), coord(px));
                let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
                let (fy, fx) = (sy - y0 as f64, sx - x0 as f64);
                for i in 0..n {
                    let v = |y: usize, xx: usize| x[(c * img * img + y * img + xx) * n + i];
                    let top = v(y0, x0) * (1.0 - fx) + v(y0, x0 + 1) * fx;
                    let bot = v(y0 + 1, x0) * (1.0 - fx) + v(y0 + 1, x0 + 1) * fx;
                    out[((c * tgt + py) * tgt + px) * n + i] = top * (1.0 - fy) + bot * fy;
                }
            }
        }
    }
    out
}

#[test]
fn resize_bilinear_reference() {
    for &n in &IMAGE_COUNTS {
        for &(img, tgt) in &[(12usize, 9usize), (9, 12), (8, 8), (13, 5), (2, 3)] {
            let ch = 3;
            let scale = img as f32 / tgt as f32;
            let x = mat(ch * img * img, n, 60, -1.0, 1.0);
            let mut t = NvMatrix::default();
            conv_resize_bilinear(&x, &mut t, img, tgt, scale).unwrap();
            assert_eq!((t.rows(), t.cols()), (ch * tgt * tgt, n));
            assert_close(
                "resize",
                t.data(),
                &resize_ref(&f64s(&x), ch, img, tgt, scale as f64, n),
                1e-5,
            );
        }
    }
}

#[test]
fn colour_transforms_reference() {
    for &n in &IMAGE_COUNTS {
        let px = 5 * 5;
        let x = mat(3 * px, n, 70, 0.0, 1.0);
        let xs = f64s(&x);
        let mut yuv = NvMatrix::default();
        conv_rgb_to_yuv(&x, &mut yuv).unwrap();
        let mut labs = [NvMatrix::default(), NvMatrix::default()];
        conv_rgb_to_lab(&x, &mut labs[0], false).unwrap();
        conv_rgb_to_lab(&x, &mut labs[1], true).unwrap();
        let (mut wy, mut wl) = (
            vec![0.0; xs.len()],
            [vec![0.0; xs.len()], vec![0.0; xs.len()]],
        );
        let f = |t: f64| {
            if t > 0.0088564517 {
                t.powf(0.3333)
            } else {
                7.787037 * t + 0.13793103
            }
        };
        for p in 0..px * n {
            let (r, g, b) = (xs[p], xs[px * n + p], xs[2 * px * n + p]);
            wy[p] = 0.2126 * r + 0.7152 * g + 0.0722 * b;
            wy[px * n + p] = -0.09991 * r - 0.33609 * g + 0.436 * b;
            wy[2 * px * n + p] = 0.615 * r - 0.55861 * g - 0.05639 * b;
            let (fx, fy, fz) = (
                f(0.49 * r + 0.31 * g + 0.2 * b),
                f(0.17697 * r + 0.8124 * g + 0.01063 * b),
                f(0.01 * g + 0.99 * b),
            );
            for (k, w) in wl.iter_mut().enumerate() {
                w[p] = 116.0 * fy - 16.0 - 50.0 * k as f64;
                w[px * n + p] = 500.0 * (fx - fy);
                w[2 * px * n + p] = 200.0 * (fy - fz);
            }
        }
        assert_close("yuv", yuv.data(), &wy, 1e-6);
        assert_close("lab", labs[0].data(), &wl[0], 1e-5);
        assert_close("lab center", labs[1].data(), &wl[1], 1e-5);
    }
}

#[test]
fn crop_and_reflect_reference() {
    for &n in &IMAGE_COUNTS {
        let (ch, img, tgt, sy, sx) = (3, 9, 5, 3, 1);
        let x = mat(ch * img * img, n, 80, -1.0, 1.0);
        let xs = f64s(&x);
        let mut t = NvMatrix::default();
        conv_crop(&x, &mut t, img, tgt, sy, sx).unwrap();
        let mut want = vec![0.0; ch * tgt * tgt * n];
        for c in 0..ch {
            for y in 0..tgt {
                for xx in 0..tgt {
                    for i in 0..n {
                        want[((c * tgt + y) * tgt + xx) * n + i] =
                            xs[((c * img + y + sy as usize) * img + xx + sx as usize) * n + i];
                    }
                }
            }
        }
        assert_close("crop", t.data(), &want, 0.0);
        for colors in 1..=3 {
            let x = mat(colors * img * img, n, 81, -1.0, 1.0);
            let xs = f64s(&x);
            let mut t = NvMatrix::default();
            conv_reflect_horizontal(&x, &mut t, img).unwrap();
            let mut want = vec![0.0; xs.len()];
            for c in 0..colors {
                for y in 0..img {
                    for xx in 0..img {
                        for i in 0..n {
                            want[((c * img + y) * img + xx) * n + i] =
                                xs[((c * img + y) * img + img - 1 - xx) * n + i];
                        }
                    }
                }
            }
            assert_close("reflect", t.data(), &want, 0.0);
            // Its own adjoint: reflecting twice is the identity.
            let mut back = NvMatrix::default();
            conv_reflect_horizontal(&t, &mut back, img).unwrap();
            assert_eq!(back.data(), x.data());
        }
    }
}

// ---------------------------------------------------------------------------------
// Half quantisation
// ---------------------------------------------------------------------------------

#[test]
fn half_conversion_is_ieee_round_to_nearest_even() {
    // Known bit patterns.
    for (x, h) in [
        (0.0f32, 0x0000u16),
        (-0.0, 0x8000),
        (1.0, 0x3C00),
        (-2.0, 0xC000),
        (65504.0, 0x7BFF),
        (65519.99, 0x7BFF),
        (65520.0, 0x7C00),
        (1e6, 0x7C00),
        (f32::NEG_INFINITY, 0xFC00),
        (6.103_515_6e-5, 0x0400), // 2^-14, smallest normal
        (5.960_464_5e-8, 0x0001), // 2^-24, smallest subnormal
        (2.980_232_2e-8, 0x0000), // 2^-25: a tie, to even (0)
        (2.980_232_5e-8, 0x0001), // just above the tie
        (8.940_697e-8, 0x0002),   // 1.5 * 2^-24: a tie, to even (2)
        (1.000_488_3, 0x3C00),    // 1 + 2^-11: a tie, to even
        (1.001_464_8, 0x3C02),    // 1 + 3*2^-11: a tie, to even (up)
        (1e-30, 0x0000),
    ] {
        assert_eq!(float2half_rn(x), h, "float2half_rn({x:e})");
    }
    assert_eq!(float2half_rn(f32::NAN), 0x7FFF);
    // Every half converts exactly and back; every midpoint rounds to the even side.
    for h in 0..=u16::MAX {
        let v = half2float(h);
        if v.is_nan() {
            assert!((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0);
            continue;
        }
        assert_eq!(float2half_rn(v), h, "round trip {h:#06x}");
        let e = h & 0x7FFF;
        if e < 0x7BFF {
            // Midpoint between h and the next half up in magnitude (exact in f32).
            let (a, b) = (half2float(e) as f64, half2float(e + 1) as f64);
            let mid = ((a + b) / 2.0) as f32;
            assert_eq!(mid as f64, (a + b) / 2.0);
            let want = if e & 1 == 0 { e } else { e + 1 };
            let sign = h & 0x8000;
            let m = if sign != 0 { -mid } else { mid };
            assert_eq!(float2half_rn(m), sign | want, "midpoint above {h:#06x}");
            assert_eq!(
                float2half_rn(f32::from_bits(m.to_bits() + 1)),
                sign | (e + 1)
            );
            assert_eq!(float2half_rn(f32::from_bits(m.to_bits() - 1)), sign | e);
        }
    }
}

#[test]
fn quantize_half_round_trip_and_scale() {
    for &len in &[1usize, 37, 100, 130 * 7] {
        let x = NvMatrix::from_vec(len, 1, true, uniform(90, len, -3.0, 3.0));
        let mut q = NvMatrix::default();
        conv_quantize_half(&x, &mut q).unwrap();
        assert_eq!(q.len(), len.div_ceil(2));
        let mut d = NvMatrix::default();
        conv_dequantize_half(&q, &mut d, len, 0.0, 1.0).unwrap();
        let want = f64s(&x);
        // binary16 keeps 11 significant bits: relative error <= 2^-11.
        for (i, (&g, &w)) in d.data().iter().zip(&want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= w.abs() * 2f64.powi(-11) + 2f64.powi(-25),
                "element {i}: {g} vs {w}"
            );
        }
        let t0 = NvMatrix::from_vec(1, len, false, uniform(91, len, -1.0, 1.0));
        let mut t = t0.clone();
        conv_dequantize_half(&q, &mut t, len, 0.5, -2.0).unwrap();
        let deq = f64s(&d);
        assert_close(
            "dequantize scaled",
            t.data(),
            &acc(&f64s(&t0), &deq, 0.5, -2.0),
            1e-6,
        );
    }
}

// ---------------------------------------------------------------------------------
// Local-weight normalisation and TICA (norm.rs; kept here as the cross-check of an
// independent port checked in a PTX interpreter, which agreed bit for bit)
// ---------------------------------------------------------------------------------

#[test]
fn normalize_local_weights_reference() {
    for &(modules, per, filters) in &[(3usize, 27usize, 16usize), (5, 9, 48), (2, 4, 128)] {
        let w0 = mat(modules * per, filters, 100, -1.0, 1.0);
        let norm = (per as f32 / 3.0).sqrt(); // about the median norm
        let mut w = w0.clone();
        normalize_local_weights(&mut w, modules, norm).unwrap();
        let ws = f64s(&w0);
        let mut want = ws.clone();
        let mut scaled = 0;
        for m in 0..modules {
            for f in 0..filters {
                let s: f64 = (0..per)
                    .map(|p| ws[(m * per + p) * filters + f].powi(2))
                    .sum::<f64>()
                    .sqrt();
                if s > norm as f64 {
                    scaled += 1;
                    for p in 0..per {
                        want[(m * per + p) * filters + f] *= norm as f64 / s;
                    }
                }
            }
        }
        assert!(
            scaled > 0 && scaled < modules * filters,
            "both branches exercised"
        );
        assert_close("normalizeLocalWeights", w.data(), &want, 1e-6);
    }
}

fn tica_sums(
    x: &[f64],
    filters: usize,
    img: usize,
    n: usize,
    size: usize,
    term: impl Fn(f64) -> f64,
) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    let h = (size / 2) as isize;
    for f in 0..filters {
        for y in 0..img as isize {
            for xx in 0..img as isize {
                for i in 0..n {
                    let mut s = 0.0;
                    for wy in y - h..y - h + size as isize {
                        for wx in xx - h..xx - h + size as isize {
                            if (0..img as isize).contains(&wy) && (0..img as isize).contains(&wx) {
                                s += term(x[((f * img + wy as usize) * img + wx as usize) * n + i]);
                            }
                        }
                    }
                    out[((f * img + y as usize) * img + xx as usize) * n + i] = s;
                }
            }
        }
    }
    out
}

#[test]
fn tica_reference_and_scale() {
    for &n in &IMAGE_COUNTS {
        for &size in &[1usize, 3, 4, 5] {
            let (filters, img) = (16, 5);
            let x = mat(filters * img * img, n, 110, -1.0, 1.0);
            let xs = f64s(&x);
            let sums = tica_sums(&xs, filters, img, n, size, |v| v * v);
            let want: Vec<f64> = sums.iter().map(|s| 1.0 / (0.001 + s.sqrt())).collect();
            let mut t = NvMatrix::default();
            conv_tica(&x, &mut t, filters, size, 0.0, 1.0).unwrap();
            assert_close("tica", t.data(), &want, 1e-6);
            let t0 = mat(filters * img * img, n, 111, -1.0, 1.0);
            let mut t = t0.clone();
            conv_tica(&x, &mut t, filters, size, 0.25, 0.5).unwrap();
            assert_close(
                "tica scaled",
                t.data(),
                &acc(&f64s(&t0), &want, 0.25, 0.5),
                1e-6,
            );
            // Gradient: Σ ticas when scaleTarget == 0, sqrt(Σ) otherwise (as the original).
            let ticas = mat(filters * img * img, n, 112, 0.0, 1.0);
            let tsum = tica_sums(&f64s(&ticas), filters, img, n, size, |v| v);
            let mut g = NvMatrix::default();
            conv_tica_grad(&x, &ticas, &mut g, filters, size, 0.0, 0.7).unwrap();
            let want: Vec<f64> = xs.iter().zip(&tsum).map(|(x, s)| -0.7 * x * s).collect();
            assert_close("ticaGrad", g.data(), &want, 1e-6);
            let mut g = t0.clone();
            conv_tica_grad(&x, &ticas, &mut g, filters, size, 0.25, 0.7).unwrap();
            let want: Vec<f64> = xs
                .iter()
                .zip(&tsum)
                .zip(&f64s(&t0))
                .map(|((x, s), t)| 0.25 * t - 0.7 * x * s.sqrt())
                .collect();
            assert_close("ticaGrad scaled", g.data(), &want, 1e-6);
        }
    }
}

// ---------------------------------------------------------------------------------
// Regression goldens
// ---------------------------------------------------------------------------------

#[test]
fn regression_goldens() {
    let mut reg = Regression::new("util");
    let mut case = |name: &str, f: &dyn Fn() -> Vec<f32>| {
        let out = same_bits_any_threads_or_lanes(name, f);
        reg.case(name, &out);
    };

    // Bed of nails: imgsPerThread 4/2/1 (128, 64, 37 images) x chansPerThread 1/2
    // (3 or 16 channels), fresh and scaled, forward and undo.
    for &n in &[128usize, 64, 37] {
        for &ch in &[3usize, 16] {
            let (img, stride) = (32, 2);
            let (ox, start) = nails_start(img, stride);
            let x = mat(ch * img * img, n, 200, -1.0, 1.0);
            let t0 = mat(ch * ox * ox, n, 201, -1.0, 1.0);
            for (st, so) in [(0.0f32, 1.0f32), (0.5, 1.5)] {
                case(
                    &format!("bedOfNails/{ch}x{img}x{img}/n{n}/st{st}/so{so}"),
                    &|| {
                        let mut t = t0.clone();
                        conv_bed_of_nails(&x, &mut t, ch, img, start, stride, st, so).unwrap();
                        t.into_vec()
                    },
                );
                case(
                    &format!("bedOfNailsUndo/{ch}x{img}x{img}/n{n}/st{st}/so{so}"),
                    &|| {
                        let mut u = x.clone();
                        conv_bed_of_nails_undo_fixed(&t0, &mut u, ch, img, start, stride, st, so)
                            .unwrap();
                        u.into_vec()
                    },
                );
            }
        }
    }

    // Blur: every radius, both directions, both scale paths, in place, at 32x32 (the
    // main loop's 4-step groups: (32 - r) % 4 single steps) and 11x11.
    for r in 1..=4usize {
        let filter = NvMatrix::from_vec(1, 2 * r + 1, false, gaussian(r, r as f64 * 0.7));
        let asym = NvMatrix::from_vec(
            1,
            2 * r + 1,
            false,
            uniform(210 + r as u64, 2 * r + 1, 0.0, 1.0),
        );
        for &(img, n) in &[(32usize, 128usize), (11, 37)] {
            let x = mat(3 * img * img, n, 211, 0.0, 1.0);
            let t0 = mat(3 * img * img, n, 212, -1.0, 1.0);
            for horiz in [true, false] {
                for (st, so) in [(0.0f32, 1.0f32), (0.75, 1.25)] {
                    for (fname, f) in [("gauss", &filter), ("asym", &asym)] {
                        case(&format!("gaussianBlur/r{r}/{fname}/3x{img}x{img}/n{n}/horiz{horiz}/st{st}/so{so}"), &|| {
                            let mut t = t0.clone();
                            conv_gaussian_blur(&x, f, &mut t, horiz, 3, st, so).unwrap();
                            t.into_vec()
                        });
                    }
                }
            }
            case(
                &format!("gaussianBlur/r{r}/gauss/3x{img}x{img}/n{n}/layer-fprop-in-place"),
                &|| {
                    let mut t = NvMatrix::default();
                    conv_gaussian_blur(&x, &filter, &mut t, true, 3, 0.0, 1.0).unwrap();
                    conv_gaussian_blur_in_place(&mut t, &filter, false, 3, 0.0, 1.0).unwrap();
                    t.into_vec()
                },
            );
        }
    }

    // Resize (imgsPerThread 4/2/1), down and up, the 2012 rscale-like factors.
    for &n in &[128usize, 64, 37] {
        for &(img, tgt) in &[(32usize, 24usize), (24, 32), (32, 29)] {
            let x = mat(3 * img * img, n, 220, 0.0, 1.0);
            case(&format!("resizeBilinear/3x{img}->{tgt}/n{n}"), &|| {
                let mut t = NvMatrix::default();
                conv_resize_bilinear(&x, &mut t, img, tgt, img as f32 / tgt as f32).unwrap();
                t.into_vec()
            });
        }
    }

    // Colour transforms, crop, reflection.
    for &n in &[128usize, 64, 37] {
        let x = mat(3 * 32 * 32, n, 230, 0.0, 1.0);
        case(&format!("rgbToYUV/32x32/n{n}"), &|| {
            let mut t = NvMatrix::default();
            conv_rgb_to_yuv(&x, &mut t).unwrap();
            t.into_vec()
        });
        for center in [false, true] {
            case(&format!("rgbToLAB/32x32/n{n}/center{center}"), &|| {
                let mut t = NvMatrix::default();
                conv_rgb_to_lab(&x, &mut t, center).unwrap();
                t.into_vec()
            });
        }
        case(&format!("crop/3x32->24@(5,3)/n{n}"), &|| {
            let mut t = NvMatrix::default();
            conv_crop(&x, &mut t, 32, 24, 5, 3).unwrap();
            t.into_vec()
        });
        for colors in 1..=3usize {
            let x = mat(colors * 32 * 32, n, 231, -1.0, 1.0);
            case(&format!("reflectHorizontal/{colors}x32x32/n{n}"), &|| {
                let mut t = NvMatrix::default();
                conv_reflect_horizontal(&x, &mut t, 32).unwrap();
                t.into_vec()
            });
        }
    }

    // Half quantisation: ordinary values and the edges (overflow, subnormals, ties).
    let mut vals = uniform(240, 999, -70000.0, 70000.0);
    vals.extend(uniform(241, 999, -1e-4, 1e-4));
    vals.extend([
        0.0,
        -0.0,
        65504.0,
        65520.0,
        -65520.0,
        2.980_232_2e-8,
        1.000_488_3,
        f32::INFINITY,
        f32::NAN,
    ]);
    let x = NvMatrix::from_vec(vals.len(), 1, false, vals);
    case("quantizeHalf/2007", &|| {
        let mut q = NvMatrix::default();
        conv_quantize_half(&x, &mut q).unwrap();
        q.into_vec()
    });
    let t0 = mat(1, x.len(), 242, -1.0, 1.0);
    for (st, so) in [(0.0f32, 1.0f32), (1.0, 1.0), (0.5, -3.0)] {
        case(&format!("dequantizeHalf/2007/st{st}/so{so}"), &|| {
            let mut q = NvMatrix::default();
            conv_quantize_half(&x, &mut q).unwrap();
            let mut t = t0.clone();
            conv_dequantize_half(&q, &mut t, x.len(), st, so).unwrap();
            t.into_vec()
        });
    }

    // normalizeLocalWeights: the variants by numFilters (128, 64, 32, 16).
    for &filters in &[128usize, 64, 32, 16] {
        let w0 = mat(36 * 27, filters, 250, -0.5, 0.5);
        case(&format!("normalizeLocalWeights/36x27x{filters}"), &|| {
            let mut w = w0.clone();
            normalize_local_weights(&mut w, 36, 1.0).unwrap();
            w.into_vec()
        });
    }

    // TICA forward and gradient (both paths), checkCaseBounds on and off.
    for &n in &[128usize, 37] {
        for &size in &[3usize, 5] {
            let x = mat(32 * 8 * 8, n, 260, -1.0, 1.0);
            let ticas = mat(32 * 8 * 8, n, 261, 0.0, 1.0);
            let t0 = mat(32 * 8 * 8, n, 262, -1.0, 1.0);
            for (st, so) in [(0.0f32, 1.0f32), (0.5, 2.0)] {
                case(
                    &format!("tica/32x8x8/n{n}/size{size}/st{st}/so{so}"),
                    &|| {
                        let mut t = t0.clone();
                        conv_tica(&x, &mut t, 32, size, st, so).unwrap();
                        t.into_vec()
                    },
                );
                case(
                    &format!("ticaGrad/32x8x8/n{n}/size{size}/st{st}/so{so}"),
                    &|| {
                        let mut t = t0.clone();
                        conv_tica_grad(&x, &ticas, &mut t, 32, size, st, so).unwrap();
                        t.into_vec()
                    },
                );
            }
        }
    }
    reg.finish();
}

// ---------------------------------------------------------------------------------
// Bad shapes
// ---------------------------------------------------------------------------------

#[test]
fn bad_shapes_are_errors() {
    let x = mat(3 * 8 * 8, 4, 300, 0.0, 1.0);
    let mut t = NvMatrix::default();
    let xt = NvMatrix::from_vec(3 * 8 * 8, 4, true, x.data().to_vec());
    let mut tt = NvMatrix::new(2, 2, true);
    // Bed of nails: stride 1 (the parser allows it, the original asserts), rows, trans,
    // nails outside the image, the original's undo check with scaleTargets != 0.
    assert!(conv_bed_of_nails(&x, &mut t, 3, 8, 0, 1, 0.0, 1.0).is_err());
    assert!(conv_bed_of_nails(&x, &mut t, 2, 8, 0, 2, 0.0, 1.0).is_err());
    assert!(conv_bed_of_nails(&xt, &mut t, 3, 8, 0, 2, 0.0, 1.0).is_err());
    assert!(conv_bed_of_nails(&x, &mut tt, 3, 8, 0, 2, 0.0, 1.0).is_err());
    assert!(conv_bed_of_nails(&x, &mut t, 3, 8, 1, 2, 0.0, 1.0).is_ok());
    assert!(conv_bed_of_nails(&x, &mut t, 3, 8, 2, 2, 0.0, 1.0).is_err());
    assert!(conv_bed_of_nails(&x, &mut t, 3, 8, -1, 2, 0.0, 1.0).is_err());
    assert!(conv_bed_of_nails(&x, &mut NvMatrix::new(3, 4, false), 3, 8, 0, 2, 1.0, 1.0).is_err());
    let g = mat(3 * 16, 4, 301, 0.0, 1.0);
    let mut u = x.clone();
    let e = conv_bed_of_nails_undo(&g, &mut u, 3, 8, 0, 2, 1.0, 1.0).unwrap_err();
    assert_eq!(e.function, "convBedOfNailsUndo");
    assert!(conv_bed_of_nails_undo_fixed(&g, &mut u, 3, 8, 0, 2, 1.0, 1.0).is_ok());
    assert!(conv_bed_of_nails_undo(&mat(5, 4, 1, 0.0, 1.0), &mut u, 3, 8, 0, 2, 0.0, 1.0).is_err());
    // Blur: radius 0 and 5, image too small, non-square, two-row filter, channels 0.
    for cols in [1usize, 11] {
        assert!(conv_gaussian_blur(
            &x,
            &NvMatrix::new(1, cols, false),
            &mut t,
            true,
            3,
            0.0,
            1.0
        )
        .is_err());
    }
    assert!(conv_gaussian_blur(
        &mat(3 * 4 * 4, 2, 1, 0.0, 1.0),
        &NvMatrix::new(1, 5, false),
        &mut t,
        true,
        3,
        0.0,
        1.0
    )
    .is_err());
    assert!(conv_gaussian_blur(
        &mat(3 * 10, 2, 1, 0.0, 1.0),
        &NvMatrix::new(1, 3, false),
        &mut t,
        true,
        3,
        0.0,
        1.0
    )
    .is_err());
    assert!(
        conv_gaussian_blur(&x, &NvMatrix::new(2, 3, false), &mut t, true, 3, 0.0, 1.0).is_err()
    );
    assert!(
        conv_gaussian_blur(&x, &NvMatrix::new(1, 3, false), &mut t, true, 0, 0.0, 1.0).is_err()
    );
    assert!(conv_gaussian_blur(
        &x,
        &NvMatrix::new(1, 3, false),
        &mut NvMatrix::new(2, 2, false),
        true,
        3,
        1.0,
        1.0
    )
    .is_err());
    assert!(
        conv_gaussian_blur(&xt, &NvMatrix::new(1, 3, false), &mut t, true, 3, 0.0, 1.0).is_err()
    );
    // Resize, colour, crop, reflection.
    assert!(conv_resize_bilinear(&x, &mut t, 7, 4, 1.5).is_err());
    assert!(conv_resize_bilinear(&mat(3, 4, 1, 0.0, 1.0), &mut t, 1, 4, 0.25).is_err());
    assert!(conv_resize_bilinear(&xt, &mut t, 8, 4, 2.0).is_err());
    assert!(conv_rgb_to_yuv(&mat(4, 4, 1, 0.0, 1.0), &mut t).is_err());
    assert!(conv_rgb_to_lab(&xt, &mut t, false).is_err());
    assert!(conv_crop(&x, &mut t, 8, 5, 4, 0).is_err());
    assert!(conv_crop(&x, &mut t, 8, 5, 0, -1).is_err());
    assert!(conv_crop(&x, &mut t, 7, 5, 0, 0).is_err());
    assert!(conv_crop(&x, &mut t, 0, 0, 0, 0).is_err());
    assert!(conv_crop(&x, &mut t, 8, 9, 0, 0).is_err());
    assert!(conv_reflect_horizontal(&mat(4 * 64, 2, 1, 0.0, 1.0), &mut t, 8).is_err());
    assert!(conv_reflect_horizontal(&x, &mut t, 7).is_err());
    assert!(conv_reflect_horizontal(&x, &mut t, 0).is_err());
    // Quantisation.
    let mut q = NvMatrix::default();
    conv_quantize_half(&x, &mut q).unwrap();
    assert!(conv_dequantize_half(&q, &mut t, x.len() + 3, 0.0, 1.0).is_err());
    assert!(conv_dequantize_half(&q, &mut NvMatrix::new(3, 3, false), x.len(), 1.0, 1.0).is_err());
    // normalizeLocalWeights and TICA.
    assert!(normalize_local_weights(&mut mat(10, 16, 1, 0.0, 1.0), 3, 1.0).is_err());
    assert!(normalize_local_weights(&mut mat(9, 24, 1, 0.0, 1.0), 3, 1.0).is_err());
    assert!(normalize_local_weights(&mut mat(9, 16, 1, 0.0, 1.0), 0, 1.0).is_err());
    let y = mat(16 * 25, 3, 1, 0.0, 1.0);
    assert!(conv_tica(&y, &mut t, 16, 6, 0.0, 1.0).is_err());
    assert!(conv_tica(&mat(8 * 25, 3, 1, 0.0, 1.0), &mut t, 8, 3, 0.0, 1.0).is_err());
    assert!(conv_tica(&mat(24 * 25, 3, 1, 0.0, 1.0), &mut t, 24, 3, 0.0, 1.0).is_err());
    assert!(conv_tica(&mat(16 * 24, 3, 1, 0.0, 1.0), &mut t, 16, 3, 0.0, 1.0).is_err());
    assert!(conv_tica(&y, &mut t, 0, 3, 0.0, 1.0).is_err());
    assert!(conv_tica(&y, &mut NvMatrix::new(2, 2, false), 16, 3, 1.0, 1.0).is_err());
    assert!(conv_tica_grad(&y, &mat(16 * 25, 2, 1, 0.0, 1.0), &mut t, 16, 3, 0.0, 1.0).is_err());
}
