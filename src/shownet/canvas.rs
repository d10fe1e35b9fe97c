//! A small RGB raster for shownet's figures: rectangles, lines, 8x8 bitmap text
//! (the public-domain glyphs of the `font8x8` crate) and images scaled up by whole
//! factors (nearest neighbour, as `imshow(..., interpolation='nearest')` shows them).

use super::png;

pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];
pub const GREY: Rgb = [128, 128, 128];
pub const LIGHT_GREY: Rgb = [220, 220, 220];
/// matplotlib's one-letter colours of the original's plots: 'r', 'b' (and 'k' = black).
pub const RED: Rgb = [255, 0, 0];
pub const BLUE: Rgb = [0, 0, 255];

/// Glyph cell: 8x8 pixels at scale 1.
pub const GLYPH: usize = 8;

/// An image of values in `[0, 1]`: one channel (grey) or three (RGB), row by row.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// 1 or 3.
    pub channels: usize,
    /// `(y * width + x) * channels + c`.
    pub data: Vec<f32>,
}

impl Image {
    pub fn new(width: usize, height: usize, channels: usize) -> Image {
        Image {
            width,
            height,
            channels,
            data: vec![0.0; width * height * channels],
        }
    }

    pub fn set(&mut self, x: usize, y: usize, c: usize, v: f32) {
        self.data[(y * self.width + x) * self.channels + c] = v;
    }

    /// The pixel as 8-bit RGB (values clipped to `[0, 1]`, NaN as 0).
    pub fn rgb(&self, x: usize, y: usize) -> Rgb {
        let at = (y * self.width + x) * self.channels;
        let byte = |v: f32| {
            if v.is_nan() {
                0
            } else {
                (v.clamp(0.0, 1.0) * 255.0).round() as u8
            }
        };
        if self.channels == 3 {
            [
                byte(self.data[at]),
                byte(self.data[at + 1]),
                byte(self.data[at + 2]),
            ]
        } else {
            let g = byte(self.data[at]);
            [g, g, g]
        }
    }
}

/// An RGB canvas.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    px: Vec<u8>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: Rgb) -> Canvas {
        let mut px = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            px.extend_from_slice(&background);
        }
        Canvas { width, height, px }
    }

    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let at = (y as usize * self.width + x as usize) * 3;
            self.px[at..at + 3].copy_from_slice(&c);
        }
    }

    pub fn get(&self, x: usize, y: usize) -> Rgb {
        let at = (y * self.width + x) * 3;
        [self.px[at], self.px[at + 1], self.px[at + 2]]
    }

    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        for yy in y.max(0)..(y + h).min(self.height as i64) {
            for xx in x.max(0)..(x + w).min(self.width as i64) {
                self.set(xx, yy, c);
            }
        }
    }

    /// A one-pixel rectangle outline.
    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        self.fill_rect(x, y, w, 1, c);
        self.fill_rect(x, y + h - 1, w, 1, c);
        self.fill_rect(x, y, 1, h, c);
        self.fill_rect(x + w - 1, y, 1, h, c);
    }

    /// A straight line (Bresenham), `thick` pixels wide.
    pub fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: Rgb, thick: i64) {
        let (mut x, mut y) = (x0.round() as i64, y0.round() as i64);
        let (xe, ye) = (x1.round() as i64, y1.round() as i64);
        let (dx, dy) = ((xe - x).abs(), -(ye - y).abs());
        let (sx, sy) = (if x < xe { 1 } else { -1 }, if y < ye { 1 } else { -1 });
        let mut err = dx + dy;
        let off = (thick - 1) / 2;
        loop {
            self.fill_rect(x - off, y - off, thick, thick, c);
            if x == xe && y == ye {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text with its top-left corner at `(x, y)`; characters outside ASCII print as `?`.
    /// Returns the width drawn.
    pub fn text(&mut self, x: i64, y: i64, s: &str, scale: usize, c: Rgb) -> i64 {
        let mut cx = x;
        for ch in s.chars() {
            let code = if ch.is_ascii() {
                ch as usize
            } else {
                '?' as usize
            };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..GLYPH {
                    if bits >> col & 1 == 1 {
                        self.fill_rect(
                            cx + (col * scale) as i64,
                            y + (row * scale) as i64,
                            scale as i64,
                            scale as i64,
                            c,
                        );
                    }
                }
            }
            cx += (GLYPH * scale) as i64;
        }
        cx - x
    }

    /// Text centred on `cx`.
    pub fn text_centered(&mut self, cx: i64, y: i64, s: &str, scale: usize, c: Rgb) {
        let w = text_width(s, scale) as i64;
        self.text(cx - w / 2, y, s, scale, c);
    }

    /// Text ending at `right`.
    pub fn text_right(&mut self, right: i64, y: i64, s: &str, scale: usize, c: Rgb) {
        let w = text_width(s, scale) as i64;
        self.text(right - w, y, s, scale, c);
    }

    /// `img` scaled up `scale` times, its top-left corner at `(x, y)`.
    pub fn image(&mut self, x: i64, y: i64, img: &Image, scale: usize) {
        for iy in 0..img.height {
            for ix in 0..img.width {
                let c = img.rgb(ix, iy);
                self.fill_rect(
                    x + (ix * scale) as i64,
                    y + (iy * scale) as i64,
                    scale as i64,
                    scale as i64,
                    c,
                );
            }
        }
    }

    /// An 8-bit RGB image stored as planes `(3, height, width)`, its top-left corner at
    /// `(x, y)`.
    pub fn planes(&mut self, x: usize, y: usize, planes: &[u8], height: usize, width: usize) {
        let plane = height * width;
        for iy in 0..height {
            for ix in 0..width {
                let p = iy * width + ix;
                let c = [planes[p], planes[plane + p], planes[2 * plane + p]];
                self.set((x + ix) as i64, (y + iy) as i64, c);
            }
        }
    }

    pub fn to_png(&self) -> Vec<u8> {
        png::encode_rgb(self.width, self.height, &self.px)
    }
}

/// The width of `s` drawn at `scale`.
pub fn text_width(s: &str, scale: usize) -> usize {
    s.chars().count() * GLYPH * scale
}

/// `s` cut to at most `max` characters (the last one replaced by `.` when cut).
pub fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('.');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_draws_pixels_inside_its_box() {
        let mut c = Canvas::new(40, 10, WHITE);
        let w = c.text(1, 1, "Ab", 1, BLACK);
        assert_eq!(w, 16);
        let dark: Vec<(usize, usize)> = (0..10)
            .flat_map(|y| (0..40).map(move |x| (x, y)))
            .filter(|&(x, y)| c.get(x, y) == BLACK)
            .collect();
        assert!(dark.len() > 10);
        assert!(dark
            .iter()
            .all(|&(x, y)| (1..17).contains(&x) && (1..9).contains(&y)));
    }

    #[test]
    fn lines_reach_both_ends() {
        let mut c = Canvas::new(10, 10, WHITE);
        c.line(1.0, 8.0, 8.0, 2.0, RED, 1);
        assert_eq!(c.get(1, 8), RED);
        assert_eq!(c.get(8, 2), RED);
    }
}
