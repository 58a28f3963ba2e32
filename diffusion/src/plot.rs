//! The quantisation sweep as a PNG heat map (plotters, bitmap backend; text drawn with the
//! bundled DejaVu Sans through `ab_glyph`, so no system font is needed).
//!
//! Rows: state bits; columns: coupling bits. Each cell shows the fixed engine's dec0 cosine
//! against the U-Net, coloured by its shortfall from float (the golden engine): green within the
//! tolerance, then yellow, orange, red; grey where no valid description exists. `sat` marks
//! formats that saturated.

use crate::quantize::QuantReport;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "thermo-sans";

fn register() -> Result<(), String> {
    static ONCE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| "bundled font does not parse".to_string())
    })
    .clone()
}

fn colour(deficit: f64, tol: f64) -> RGBColor {
    if deficit <= tol {
        RGBColor(120, 200, 120)
    } else if deficit <= 0.02 {
        RGBColor(235, 225, 110)
    } else if deficit <= 0.1 {
        RGBColor(240, 170, 90)
    } else {
        RGBColor(225, 100, 90)
    }
}

/// Write an RGB buffer of `w x h` pixels as a PNG file.
fn write_png(path: &Path, w: u32, h: u32, buf: &[u8]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("plot {}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().map_err(|e| err(&e))?;
    wr.write_image_data(buf).map_err(|e| err(&e))?;
    wr.finish().map_err(|e| err(&e))
}

/// Draw the sweep as a heat map into a PNG file.
pub fn heat_map(r: &QuantReport, title: &str, path: &Path) -> Result<(), String> {
    register()?;
    let mut cb: Vec<u32> = r.cells.iter().map(|c| c.coupling_bits).collect();
    let mut sb: Vec<u32> = r.cells.iter().map(|c| c.state_bits).collect();
    cb.sort_unstable();
    cb.dedup();
    sb.sort_unstable();
    sb.dedup();
    let (nc, ns) = (cb.len() as u32, sb.len() as u32);
    let (w, h) = ((160 + 90 * nc).max(860), (200 + 46 * ns).max(420));
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let err = |e: &dyn std::fmt::Display| format!("plot {}: {e}", path.display());
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (top, bottom) = root.split_vertically(h - 70);
        let mut chart = ChartBuilder::on(&top)
            .caption(title, (FAMILY, 18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(
                (0u32..nc.saturating_sub(1)).into_segmented(),
                (0u32..ns.saturating_sub(1)).into_segmented(),
            )
            .map_err(|e| err(&e))?;
        let cbl = cb.clone();
        let sbl = sb.clone();
        let xf = move |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => cbl
                .get(*i as usize)
                .map_or(String::new(), |b| b.to_string()),
            SegmentValue::Last => String::new(),
        };
        let yf = move |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => sbl
                .get(*i as usize)
                .map_or(String::new(), |b| b.to_string()),
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(nc as usize)
            .y_labels(ns as usize)
            .x_label_formatter(&xf)
            .y_label_formatter(&yf)
            .x_desc("coupling bits (couplings, bus factors and gains, noise amplitude)")
            .y_desc("state bits (states, bus lines)")
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 15))
            .draw()
            .map_err(|e| err(&e))?;
        let tol = r.options.tolerance;
        let float = r.float_vs_unet.cosine;
        for c in &r.cells {
            let (Some(i), Some(j)) = (
                cb.iter().position(|&b| b == c.coupling_bits),
                sb.iter().position(|&b| b == c.state_bits),
            ) else {
                continue;
            };
            let (i, j) = (i as u32, j as u32);
            let (fill, text, sub) = match c.vs_unet {
                Some(v) => (
                    colour(float - v.cosine, tol),
                    format!(
                        "{:.4}{}",
                        v.cosine,
                        if c.saturation.total() > 0 { " sat" } else { "" }
                    ),
                    c.vs_golden
                        .map_or(String::new(), |g| format!("g {:.4}", g.cosine)),
                ),
                None => (
                    RGBColor(200, 200, 200),
                    "invalid".to_string(),
                    String::new(),
                ),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(i), SegmentValue::Exact(j)),
                        (SegmentValue::Exact(i + 1), SegmentValue::Exact(j + 1)),
                    ],
                    ShapeStyle::from(&fill).filled(),
                )))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(i), SegmentValue::Exact(j)),
                        (SegmentValue::Exact(i + 1), SegmentValue::Exact(j + 1)),
                    ],
                    ShapeStyle::from(&WHITE).stroke_width(2),
                )))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (SegmentValue::CenterOf(i), SegmentValue::CenterOf(j)),
                    (FAMILY, 14)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )))
                .map_err(|e| err(&e))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    sub,
                    (SegmentValue::CenterOf(i), SegmentValue::CenterOf(j)),
                    (FAMILY, 12)
                        .into_font()
                        .color(&RGBColor(60, 60, 60))
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                )))
                .map_err(|e| err(&e))?;
        }
        // Legend.
        let items = [
            (
                colour(0.0, tol),
                format!("within {tol} of float ({float:.4})"),
            ),
            (colour(0.01, tol), "within 0.02".to_string()),
            (colour(0.05, tol), "within 0.1".to_string()),
            (colour(1.0, tol), "worse".to_string()),
        ];
        let mut x = 20i32;
        for (c, label) in items {
            bottom
                .draw(&Rectangle::new(
                    [(x, 12), (x + 18, 30)],
                    ShapeStyle::from(&c).filled(),
                ))
                .map_err(|e| err(&e))?;
            bottom
                .draw(&Text::new(
                    label.clone(),
                    (x + 24, 14),
                    (FAMILY, 14).into_font().color(&BLACK),
                ))
                .map_err(|e| err(&e))?;
            x += 34 + 8 * label.len() as i32;
        }
        bottom
            .draw(&Text::new(
                "cell: fixed-engine dec0 cosine against the U-Net (colour: its shortfall from float); g: against the golden engine; sat: saturated"
                    .to_string(),
                (20, 44),
                (FAMILY, 14).into_font().color(&BLACK),
            ))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    write_png(path, w, h, &buf)
}

/// One curve of a [`lines`] plot.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points `(x, y)`; non-finite or, on a log axis, non-positive points are skipped.
    pub points: Vec<(f64, f64)>,
}

/// Axes of a [`lines`] plot.
pub struct Axes<'a> {
    /// Title.
    pub title: &'a str,
    /// X axis label.
    pub x: &'a str,
    /// Y axis label.
    pub y: &'a str,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Legend in the upper left corner (else lower right).
    pub legend_upper_left: bool,
}

/// A tick label: up to 4 significant digits, exponent form outside `[1e-3, 1e4)`.
fn tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e4).contains(&a) {
        let t = format!("{:.*}", (3 - a.log10().floor() as i32).max(0) as usize, v);
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        }
    } else {
        let e = a.log10().floor();
        let m = v / 10f64.powf(e);
        if (m.abs() - 1.0).abs() < 1e-9 {
            format!("{}1e{}", if v < 0.0 { "-" } else { "" }, e as i32)
        } else {
            format!("{m:.2}e{}", e as i32)
        }
    }
}

/// Curves with markers and a legend, into a PNG file (900 x 560).
pub fn lines(axes: &Axes, series: &[Series], path: &Path) -> Result<(), String> {
    register()?;
    let (w, h) = (900u32, 560u32);
    let err = |e: &dyn std::fmt::Display| format!("plot {}: {e}", path.display());
    let keep = |&(x, y): &(f64, f64)| {
        x.is_finite() && y.is_finite() && (!axes.log_x || x > 0.0) && (!axes.log_y || y > 0.0)
    };
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(keep)
        .collect();
    if pts.is_empty() {
        return Err(format!("plot {}: no finite points to draw", path.display()));
    }
    let span = |v: Vec<f64>, log: bool| -> (f64, f64) {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if log {
            let (a, b) = (lo.log10().floor(), hi.log10().ceil());
            (10f64.powf(a), 10f64.powf(if b > a { b } else { a + 1.0 }))
        } else {
            let pad = ((hi - lo) * 0.05).max(1e-12);
            (lo - pad, hi + pad)
        }
    };
    let (x0, x1) = span(pts.iter().map(|p| p.0).collect(), axes.log_x);
    let (y0, y1) = span(pts.iter().map(|p| p.1).collect(), axes.log_y);
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(90, 90, 90),
    ];
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_label_formatter(&|v| tick(*v))
                    .y_label_formatter(&|v| tick(*v))
                    .x_desc(axes.x)
                    .y_desc(axes.y)
                    .label_style((FAMILY, 14))
                    .axis_desc_style((FAMILY, 15))
                    .draw()
                    .map_err(|e| err(&e))?;
                for (k, s) in series.iter().enumerate() {
                    if s.points.is_empty() {
                        continue;
                    }
                    let c = palette[k % palette.len()];
                    let p: Vec<(f64, f64)> = s.points.iter().copied().filter(keep).collect();
                    chart
                        .draw_series(LineSeries::new(p.clone(), c.stroke_width(2)))
                        .map_err(|e| err(&e))?
                        .label(s.label.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                        });
                    chart
                        .draw_series(p.into_iter().map(|q| Circle::new(q, 3, c.filled())))
                        .map_err(|e| err(&e))?;
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font((FAMILY, 14))
                    .position(if axes.legend_upper_left {
                        SeriesLabelPosition::UpperLeft
                    } else {
                        SeriesLabelPosition::LowerRight
                    })
                    .draw()
                    .map_err(|e| err(&e))?;
            }};
        }
        let mut b = ChartBuilder::on(&root);
        b.caption(axes.title, (FAMILY, 18))
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(70);
        match (axes.log_x, axes.log_y) {
            (false, false) => draw!(b.build_cartesian_2d(x0..x1, y0..y1).map_err(|e| err(&e))?),
            (true, false) => {
                draw!(b
                    .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                    .map_err(|e| err(&e))?)
            }
            (false, true) => {
                draw!(b
                    .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                    .map_err(|e| err(&e))?)
            }
            (true, true) => draw!(b
                .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                .map_err(|e| err(&e))?),
        }
        root.present().map_err(|e| err(&e))?;
    }
    write_png(path, w, h, &buf)
}
