//! The sweep chart: per rules file, alerts per week (left axis) and precision and recall
//! (right axis) against the threshold, with each target's pick marked.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::chart::DualCoordChartContext;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::VariantResult;

/// Draws one panel per rules file into a PNG at `path` (1000 px wide, 420 px per panel).
pub fn write_png(results: &[VariantResult], path: &Path) -> Result<()> {
    draw(results, path).map_err(|e| anyhow!("cannot draw {}: {e}", path.display()))
}

fn draw(results: &[VariantResult], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut files: Vec<&str> = results.iter().map(|r| r.rules.as_str()).collect();
    files.dedup();
    let root = BitMapBackend::new(path, (1000, 420 * files.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    for (file, area) in files.iter().zip(root.split_evenly((files.len(), 1))) {
        let rows: Vec<&VariantResult> = results.iter().filter(|r| r.rules == *file).collect();
        panel(file, &rows, &area)?;
    }
    root.present()?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn panel(
    file: &str,
    rows: &[&VariantResult],
    area: &Area<'_>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (lo, hi) = rows.iter().fold((f64::MAX, f64::MIN), |(a, b), r| {
        (a.min(r.threshold), b.max(r.threshold))
    });
    let (lo, hi) = if lo < hi {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let max_volume = rows.iter().map(|r| r.alerts_per_week).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{file}: alerts vs precision and recall by threshold"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .right_y_label_area_size(60)
        .build_cartesian_2d(lo..hi, 0.0..max_volume)?
        .set_secondary_coord(lo..hi, 0.0..1.0);
    chart
        .configure_mesh()
        .x_desc("sales_ready threshold")
        .y_desc("alerts per week")
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("precision / recall")
        .draw()?;
    series(&mut chart, rows, max_volume)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

type Coord = Cartesian2d<RangedCoordf64, RangedCoordf64>;

/// Alerts per week (left axis), precision and recall (right axis), and a vertical line at
/// each target's pick.
fn series(
    chart: &mut DualCoordChartContext<'_, BitMapBackend<'_>, Coord, Coord>,
    rows: &[&VariantResult],
    max_volume: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let line =
        |c: RGBColor| move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2));
    chart
        .draw_series(LineSeries::new(
            rows.iter().map(|r| (r.threshold, r.alerts_per_week)),
            BLUE.stroke_width(2),
        ))?
        .label("alerts per week")
        .legend(line(BLUE));
    let share = |f: fn(&VariantResult) -> Option<f64>| {
        rows.iter()
            .filter_map(move |r| f(r).map(|v| (r.threshold, v)))
            .collect::<Vec<_>>()
    };
    chart
        .draw_secondary_series(LineSeries::new(
            share(|r| r.precision),
            GREEN.stroke_width(2),
        ))?
        .label("precision")
        .legend(line(GREEN));
    chart
        .draw_secondary_series(LineSeries::new(share(|r| r.recall), RED.stroke_width(2)))?
        .label("recall")
        .legend(line(RED));
    for r in rows.iter().filter(|r| !r.meets.is_empty()) {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(r.threshold, 0.0), (r.threshold, max_volume)],
                BLACK.stroke_width(1),
            )))?
            .label(format!("target {}: {}", r.meets.join(", "), r.threshold))
            .legend(line(BLACK));
    }
    Ok(())
}
