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
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().map_err(|e| err(&e))?;
    wr.write_image_data(&buf).map_err(|e| err(&e))?;
    wr.finish().map_err(|e| err(&e))
}
