//! The crops of the cropped providers (convdata.py's `CroppedCIFARDataProvider`,
//! convdata_jpeg.py's `JPEGCroppedImageNetDP.__trim_borders`): square windows of
//! `inner x inner` pixels of every channel, at an offset, flipped left-right or not,
//! and the ten views of the multiview test.

/// One crop: top-left corner `(y, x)` in the image, mirrored left-right when `flip`
/// (numpy's `pic[:, :, :, ::-1]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub y: usize,
    pub x: usize,
    pub flip: bool,
}

/// The ten views of the 2011 multiview test and of the 2012 JPEG provider, in the
/// order of the test batch's blocks: corners `(0,0)`, `(0,2b)`, centre `(b,b)`,
/// `(2b,0)`, `(2b,2b)`, then the same five flipped.
pub fn ten_views(border: usize) -> Vec<View> {
    let b = border;
    let starts = [(0, 0), (0, 2 * b), (b, b), (2 * b, 0), (2 * b, 2 * b)];
    [false, true]
        .iter()
        .flat_map(|&flip| starts.iter().map(move |&(y, x)| View { y, x, flip }))
        .collect()
}

/// Calls `f(d, v)` for every value of the crop `view` of an image `(colors, size,
/// size)` (channel, row, column; row-major): `d` is the value's index in the crop
/// `(colors, inner, inner)`, `v` the index in the image of the pixel it copies.
pub fn for_each_pixel(
    colors: usize,
    size: usize,
    inner: usize,
    view: View,
    mut f: impl FnMut(usize, usize),
) {
    for ch in 0..colors {
        for y in 0..inner {
            let (d_row, v_row) = ((ch * inner + y) * inner, (ch * size + view.y + y) * size);
            for x in 0..inner {
                let src_x = if view.flip {
                    view.x + inner - 1 - x
                } else {
                    view.x + x
                };
                f(d_row + x, v_row + src_x);
            }
        }
    }
}

/// The centre crop (offset `border`, not flipped) of `image` `(colors, size, size)`,
/// e.g. `data_mean_crop`; values past the end of `image` read as `missing`.
pub fn centre_crop<T: Copy>(
    image: &[T],
    colors: usize,
    size: usize,
    border: usize,
    missing: T,
) -> Vec<T> {
    let inner = size - 2 * border;
    let mut out = vec![missing; colors * inner * inner];
    let view = View {
        y: border,
        x: border,
        flip: false,
    };
    for_each_pixel(colors, size, inner, view, |d, v| {
        out[d] = image.get(v).copied().unwrap_or(missing)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flipped_crop_reads_columns_backwards() {
        // 1 colour of 3x3, a 2x2 crop at (1, 0) flipped: rows 1-2, columns 1 then 0.
        let mut got = vec![];
        let view = View {
            y: 1,
            x: 0,
            flip: true,
        };
        for_each_pixel(1, 3, 2, view, |d, v| got.push((d, v)));
        assert_eq!(got, vec![(0, 4), (1, 3), (2, 7), (3, 6)]);
        assert_eq!(
            centre_crop(&[0, 1, 2, 3, 4, 5, 6, 7, 8], 1, 3, 1, 0),
            vec![4]
        );
    }
}
