//! `--show-filters` (shownet.py's `plot_filters` and `make_filter_fig`, both
//! generations): a weight matrix read as `(channels, pixels, filters)`, optionally
//! YUV→RGB and (2012) per-filter normalised, then shifted to minimum 0 and divided by
//! the maximum over all of it, and laid out as a grid with one-pixel black separators:
//! 16 filters per row (a 2012 local layer: `modulesX`), at most 16 rows (2012: 24); in
//! colour when there are 3 channels (unless `--no-rgb`), else grey with each filter's
//! channels side by side.

use super::canvas::{self, Canvas, Image, BLACK, WHITE};
use super::cli::Args;
use super::{at, int_at, int_of, str_of, write_png, Loaded, Res};
use crate::config::value::Value;
use crate::config::{Generation, Net};
use crate::synthetic::SplitMix64;

/// Weights as `(channels, pixels, count)`: `data[(c * pixels + p) * count + f]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Filters {
    pub channels: usize,
    pub pixels: usize,
    pub count: usize,
    pub data: Vec<f32>,
}

impl Filters {
    fn new(channels: usize, pixels: usize, count: usize) -> Filters {
        Filters {
            channels,
            pixels,
            count,
            data: vec![0.0; channels * pixels * count],
        }
    }
    fn idx(&self, c: usize, p: usize, f: usize) -> usize {
        (c * self.pixels + p) * self.count + f
    }
    pub fn get(&self, c: usize, p: usize, f: usize) -> f32 {
        self.data[self.idx(c, p, f)]
    }
    fn set(&mut self, c: usize, p: usize, f: usize, v: f32) {
        let i = self.idx(c, p, f);
        self.data[i] = v;
    }
}

/// The options of the mode.
#[derive(Clone, Debug, Default)]
pub struct FilterOpts {
    pub input_idx: usize,
    pub channels: usize,
    pub no_rgb: bool,
    pub yuv_to_rgb: bool,
    pub norm_filters: bool,
    pub local_plane: usize,
    pub filter_start: Option<usize>,
    pub num_filters: Option<usize>,
    pub seed: u64,
}

/// What the figure shows.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterFig {
    pub title: String,
    /// The grid (`bigpic`), values in `[0, 1]`.
    pub pic: Image,
    pub start: usize,
    pub end: usize,
    pub filter_size: usize,
    pub per_row: usize,
    pub rows: usize,
    pub channels: usize,
    pub combined: bool,
}

/// `plot_filters` up to the normalisation, then `make_filter_fig`'s grid.
pub fn filter_fig(net: &Net, name: &str, o: &FilterOpts) -> Res<FilterFig> {
    let layer = net
        .layers
        .iter()
        .find(|l| str_of(l, "name") == name)
        .ok_or_else(|| format!("Layer with name '{name}' not defined by given convnet."))?;
    let ty = str_of(layer, "type");
    if !matches!(ty, "fc" | "conv" | "local") {
        return Err(format!(
            "Layer '{name}' is a {ty} layer; --show-filters draws conv, local and fc layers"
        ));
    }
    let w = match layer
        .get("weights")
        .and_then(Value::as_list)
        .and_then(|l| l.get(o.input_idx))
    {
        Some(Value::Array(a)) => a,
        _ => {
            return Err(format!(
                "Layer '{name}' has no weight matrix {} (--input-idx)",
                o.input_idx
            ))
        }
    };
    let int = |k: &str| -> Res<usize> {
        int_of(layer, k)
            .filter(|&v| v > 0)
            .map(|v| v as usize)
            .ok_or_else(|| format!("Layer '{name}' has no positive '{k}'"))
    };
    let list_int = |k: &str| -> Res<usize> {
        int_at(layer, k, o.input_idx)
            .filter(|&v| v > 0)
            .map(|v| v as usize)
            .ok_or_else(|| format!("Layer '{name}' has no positive '{k}[{}]'", o.input_idx))
    };
    let mut per_row_max = 16;
    let mut start = 0;
    let mut rng = SplitMix64::new(o.seed);
    let reshape = |channels: usize| -> Res<Filters> {
        if w.rows % channels != 0 {
            return Err(format!(
                "Layer '{name}': {} weight rows do not split into {channels} channels",
                w.rows
            ));
        }
        let pixels = w.rows / channels;
        let mut f = Filters::new(channels, pixels, w.cols);
        for c in 0..channels {
            for p in 0..pixels {
                for k in 0..w.cols {
                    f.set(c, p, k, at(w, c * pixels + p, k));
                }
            }
        }
        Ok(f)
    };
    let mut filters = match ty {
        "fc" => {
            if o.channels == 0 {
                return Err(format!(
                    "Layer '{name}' is fully connected: give its input's channels with --channels"
                ));
            }
            reshape(o.channels)?
        }
        "conv" => reshape(list_int("filterChannels")?)?,
        _ => {
            // local: weights (modules * pixels * channels, filters).
            let (channels, pixels) = (list_int("filterChannels")?, list_int("filterPixels")?);
            let (modules, nf) = (int("modules")?, int("filters")?);
            if w.rows != modules * pixels * channels || w.cols != nf {
                return Err(format!(
                    "Layer '{name}': weights of {}x{} for {modules} modules of {nf} filters",
                    w.rows, w.cols
                ));
            }
            match net.generation {
                Generation::C1 => {
                    // Every module's filters, module-major, from a random module on.
                    start = (rng.next_u64() % modules as u64) as usize * nf;
                    let mut f = Filters::new(channels, pixels, nf * modules);
                    for md in 0..modules {
                        for c in 0..channels {
                            for p in 0..pixels {
                                for k in 0..nf {
                                    let r = md * pixels * channels + c * pixels + p;
                                    f.set(c, p, md * nf + k, at(w, r, k));
                                }
                            }
                        }
                    }
                    f
                }
                Generation::A12 => {
                    // Filter `local_plane` of every module, modulesX to a row.
                    if o.local_plane >= nf {
                        return Err(format!(
                            "--local-plane={}: layer '{name}' has {nf} filters per module",
                            o.local_plane
                        ));
                    }
                    per_row_max = int("modulesX")?;
                    let mut f = Filters::new(channels, pixels, modules);
                    for md in 0..modules {
                        for c in 0..channels {
                            for p in 0..pixels {
                                let r = (md * channels + c) * pixels + p;
                                f.set(c, p, md, at(w, r, o.local_plane));
                            }
                        }
                    }
                    f
                }
            }
        }
    };
    if let Some(s) = o.filter_start {
        start = s;
    }
    let channels = filters.channels;
    if o.yuv_to_rgb && channels == 3 {
        for p in 0..filters.pixels {
            for k in 0..filters.count {
                let (y, u, v) = (
                    filters.get(0, p, k),
                    filters.get(1, p, k),
                    filters.get(2, p, k),
                );
                filters.set(0, p, k, y + 1.28033 * v);
                filters.set(1, p, k, y + -0.21482 * u + -0.38059 * v);
                filters.set(2, p, k, y + 2.12798 * u);
            }
        }
    }
    let combined = !o.no_rgb && channels == 3;
    if o.norm_filters {
        normalise_each(&mut filters);
    }
    // Global shift to 0 and scale to 1.
    let min = filters.data.iter().copied().fold(f32::INFINITY, f32::min);
    for v in filters.data.iter_mut() {
        *v -= min;
    }
    let max = filters
        .data
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    if max > 0.0 {
        for v in filters.data.iter_mut() {
            *v /= max;
        }
    }
    let max_rows = match net.generation {
        Generation::C1 => 16,
        Generation::A12 => 24,
    };
    grid(
        &filters,
        start,
        &format!("Layer {name}"),
        combined,
        per_row_max,
        max_rows,
        o.num_filters,
    )
}

/// The 2012 `--norm-filters`: each filter minus its mean over channels and pixels,
/// divided by its standard deviation (numpy's `var`, ddof 0).
fn normalise_each(f: &mut Filters) {
    let n = (f.channels * f.pixels) as f64;
    for k in 0..f.count {
        let vals: Vec<f64> = (0..f.channels)
            .flat_map(|c| (0..f.pixels).map(move |p| (c, p)))
            .map(|(c, p)| f.get(c, p, k) as f64)
            .collect();
        let mean = vals.iter().sum::<f64>() / n;
        let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
        for c in 0..f.channels {
            for p in 0..f.pixels {
                let v = ((f.get(c, p, k) as f64 - mean) / sd) as f32;
                f.set(c, p, k, v);
            }
        }
    }
}

/// `make_filter_fig`: filters `start..` (at most `FILTERS_PER_ROW * MAX_ROWS`, or
/// `limit`) in rows of `ceil(per_row / (1 or channels))`.
pub fn grid(
    f: &Filters,
    start: usize,
    title: &str,
    combined: bool,
    per_row_max: usize,
    max_rows: usize,
    limit: Option<usize>,
) -> Res<FilterFig> {
    if start >= f.count {
        return Err(format!(
            "--filter-start={start}: there are {} filters",
            f.count
        ));
    }
    let size = (f.pixels as f64).sqrt() as usize;
    if size * size != f.pixels {
        return Err(format!(
            "filters of {} pixels are not square (--channels?)",
            f.pixels
        ));
    }
    let colors = f.channels;
    let per_row = per_row_max.div_ceil(if combined { 1 } else { colors });
    let shown = (per_row_max * max_rows).min(limit.unwrap_or(usize::MAX));
    let end = (start + shown).min(f.count);
    let rows = (end - start).div_ceil(per_row);
    let pic = if combined {
        let mut pic = Image::new(size * per_row + per_row + 1, size * rows + rows + 1, 3);
        for m in start..end {
            let (y, x) = ((m - start) / per_row, (m - start) % per_row);
            for c in 0..3 {
                for p in 0..f.pixels {
                    let (py, px) = (p / size, p % size);
                    pic.set(
                        1 + (1 + size) * x + px,
                        1 + (1 + size) * y + py,
                        c,
                        f.get(c, p, m),
                    );
                }
            }
        }
        pic
    } else {
        let mut pic = Image::new(
            size * colors * per_row + per_row + 1,
            size * rows + rows + 1,
            1,
        );
        for m in start..end {
            let (y, x) = ((m - start) / per_row, (m - start) % per_row);
            for c in 0..colors {
                for p in 0..f.pixels {
                    let (py, px) = (p / size, p % size);
                    pic.set(
                        1 + (1 + size * colors) * x + size * c + px,
                        1 + (1 + size) * y + py,
                        0,
                        f.get(c, p, m),
                    );
                }
            }
        }
        pic
    };
    Ok(FilterFig {
        title: format!("{title} {size}x{size} filters {start}-{}", end - 1),
        pic,
        start,
        end,
        filter_size: size,
        per_row,
        rows,
        channels: colors,
        combined,
    })
}

/// Margin around the grid and height of the title strip of filters.png.
pub const MARGIN: usize = 10;
pub const TITLE_H: usize = 36;

/// How many times the grid is enlarged: as large as fits 800x800, at most 16 times.
pub fn scale(pic: &Image) -> usize {
    (800 / pic.width.max(1))
        .min(800 / pic.height.max(1))
        .clamp(1, 16)
}

/// filters.png: the title above the enlarged grid.
pub fn render(fig: &FilterFig) -> Canvas {
    let s = scale(&fig.pic);
    let (gw, gh) = (fig.pic.width * s, fig.pic.height * s);
    let width = gw.max(canvas::text_width(&fig.title, 1)) + 2 * MARGIN;
    let height = TITLE_H + gh + MARGIN;
    let mut cv = Canvas::new(width, height, WHITE);
    cv.text_centered(width as i64 / 2, 14, &fig.title, 1, BLACK);
    cv.image(((width - gw) / 2) as i64, TITLE_H as i64, &fig.pic, s);
    cv
}

/// The mode: filters.png into `--out-dir`, a description on stdout.
pub fn show_filters(m: &Loaded, args: &Args, name: &str) -> Res<Vec<String>> {
    let o = FilterOpts {
        input_idx: args.input_idx,
        channels: args.channels,
        no_rgb: args.no_rgb,
        yuv_to_rgb: args.yuv_to_rgb,
        norm_filters: args.norm_filters,
        local_plane: args.local_plane,
        filter_start: args.filter_start,
        num_filters: args.num_filters,
        seed: args.seed,
    };
    let fig = filter_fig(&m.net, name, &o)?;
    let path = write_png(&args.out_dir, "filters.png", &render(&fig))?;
    Ok(vec![
        fig.title.clone(),
        format!(
            "{} filters in {} row(s) of {}, {}; grid {}x{} pixels, drawn {} times larger",
            fig.end - fig.start,
            fig.rows,
            fig.per_row,
            if fig.combined {
                "colour".to_string()
            } else {
                format!("grey, {} channel(s) side by side", fig.channels)
            },
            fig.pic.width,
            fig.pic.height,
            scale(&fig.pic)
        ),
        format!("Wrote {}", path.display()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::{Array, Dict};

    fn layer(ty: &str, w: Array, extra: &[(&str, Value)]) -> Net {
        let mut d = Dict::new();
        d.insert("name".into(), Value::Str("l".into()));
        d.insert("type".into(), Value::Str(ty.into()));
        d.insert("weights".into(), Value::List(vec![Value::Array(w)]));
        for (k, v) in extra {
            d.insert(k.to_string(), v.clone());
        }
        Net {
            generation: Generation::C1,
            layers: vec![d],
        }
    }

    #[test]
    fn conv_and_fc_weights_land_where_the_original_put_them() {
        // conv: 1 channel of 2x2, 2 filters; W[p, f] = 2p + f, so 0..7 over 7.
        let w = Array {
            rows: 4,
            cols: 2,
            fortran: false,
            data: (0..8).map(|v| v as f32).collect(),
        };
        let net = layer(
            "conv",
            w,
            &[("filterChannels", Value::List(vec![Value::Int(1)]))],
        );
        let g = filter_fig(&net, "l", &FilterOpts::default()).unwrap();
        // Filter 1 sits at x = 1 + 3; its pixel (1, 0) is p = 1: W[1, 1] = 3.
        assert_eq!(g.pic.data[g.pic.width + 4 + 1], 3.0 / 7.0);
        assert_eq!(g.pic.data[2 * g.pic.width + 1 + 1], 6.0 / 7.0);
        // fc: the same matrix stored in Fortran order reads the same.
        let f = Array {
            rows: 4,
            cols: 2,
            fortran: true,
            data: vec![0., 2., 4., 6., 1., 3., 5., 7.],
        };
        let net = layer("fc", f, &[]);
        let o = FilterOpts {
            channels: 1,
            ..Default::default()
        };
        assert_eq!(filter_fig(&net, "l", &o).unwrap().pic, g.pic);
    }

    fn filters(channels: usize, pixels: usize, count: usize) -> Filters {
        let mut f = Filters::new(channels, pixels, count);
        for (i, v) in f.data.iter_mut().enumerate() {
            *v = i as f32 / (channels * pixels * count) as f32;
        }
        f
    }

    #[test]
    fn grid_sizes_follow_make_filter_fig() {
        // 3 channels combined: 16 per row, 3x3 filters.
        let g = grid(&filters(3, 9, 20), 0, "t", true, 16, 16, None).unwrap();
        assert_eq!(
            (g.pic.width, g.pic.height, g.rows),
            (3 * 16 + 17, 3 * 2 + 3, 2)
        );
        assert_eq!(g.title, "t 3x3 filters 0-19");
        // Side by side: ceil(16 / 3) = 6 per row of 3 channels.
        let g = grid(&filters(3, 9, 20), 0, "t", false, 16, 16, None).unwrap();
        assert_eq!(g.per_row, 6);
        assert_eq!((g.pic.width, g.pic.height), (9 * 6 + 7, 3 * 4 + 5));
        // A start and a limit.
        let g = grid(&filters(1, 4, 300), 10, "t", false, 16, 16, Some(5)).unwrap();
        assert_eq!((g.start, g.end, g.rows), (10, 15, 1));
        // At most 16 rows of 16.
        let g = grid(&filters(1, 4, 300), 0, "t", false, 16, 16, None).unwrap();
        assert_eq!(g.end, 256);
    }

    #[test]
    fn grid_places_channels_and_separators() {
        let g = grid(&filters(2, 4, 1), 0, "t", false, 16, 16, None).unwrap();
        // One filter of 2x2 per channel, channels side by side, framed by zeros.
        assert_eq!((g.pic.width, g.pic.height), (2 * 2 * 8 + 9, 2 + 2));
        let row1: Vec<f32> = (0..6).map(|x| g.pic.data[g.pic.width + x]).collect();
        let f = filters(2, 4, 1);
        assert_eq!(
            row1,
            [
                0.0,
                f.get(0, 0, 0),
                f.get(0, 1, 0),
                f.get(1, 0, 0),
                f.get(1, 1, 0),
                0.0
            ]
        );
    }

    #[test]
    fn non_square_filters_and_bad_starts_are_errors() {
        assert!(grid(&filters(1, 6, 2), 0, "t", false, 16, 16, None).is_err());
        assert!(grid(&filters(1, 4, 2), 2, "t", false, 16, 16, None).is_err());
    }
}
