//! The report's PNG: ROC curves (learned and base rules) and the calibration curve.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{Evaluation, Report};

/// Draws `report` into a 1200×560 PNG at `path`.
pub fn write_png(report: &Report, path: &Path) -> Result<()> {
    draw(report, path).map_err(|e| anyhow!("cannot draw {}: {e}", path.display()))
}

fn draw(report: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    let scorers: Vec<(&Evaluation, RGBColor)> = std::iter::once((&report.model, BLUE))
        .chain(report.base.iter().map(|b| (b, RED)))
        .collect();
    let line = |color: RGBColor| {
        move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
    };

    let mut roc = unit_square(
        &left,
        "ROC (holdout)",
        "false positive rate",
        "true positive rate",
    )?;
    for &(e, color) in &scorers {
        roc.draw_series(LineSeries::new(
            e.roc_curve.iter().copied(),
            color.stroke_width(2),
        ))?
        .label(format!("{} AUC {:.3}", e.scorer, e.roc_auc))
        .legend(line(color));
    }
    legend(&mut roc, SeriesLabelPosition::LowerRight)?;

    let mut cal = unit_square(
        &right,
        "Calibration (holdout)",
        "predicted conversion probability",
        "observed conversion rate",
    )?;
    for &(e, color) in &scorers {
        let Some(bins) = &e.calibration else {
            continue;
        };
        let pts: Vec<(f64, f64)> = bins.iter().map(|b| (b.predicted, b.observed)).collect();
        cal.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(e.scorer.clone())
            .legend(line(color));
        cal.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    legend(&mut cal, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}

fn legend(
    chart: &mut Square<'_>,
    at: SeriesLabelPosition,
) -> Result<(), Box<dyn std::error::Error>> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type Square<'a> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A [0, 1]² chart with a caption, axis labels, a grid and the diagonal.
fn unit_square<'a>(
    area: &Area<'a>,
    caption: &str,
    x: &str,
    y: &str,
) -> Result<Square<'a>, Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
    chart.configure_mesh().x_desc(x).y_desc(y).draw()?;
    chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))?;
    Ok(chart)
}
