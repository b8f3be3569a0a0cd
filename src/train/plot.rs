//! The report's PNG: ROC curves (learned and base rules) and the calibration curve.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::Report;

/// Draws `report` into a 1200×560 PNG at `path`.
pub fn write_png(report: &Report, path: &Path) -> Result<()> {
    draw(report, path).map_err(|e| anyhow!("cannot draw {}: {e}", path.display()))
}

fn draw(report: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);

    let mut roc = ChartBuilder::on(&left)
        .caption("ROC (holdout)", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
    roc.configure_mesh()
        .x_desc("false positive rate")
        .y_desc("true positive rate")
        .draw()?;
    roc.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))?;
    let m = &report.model;
    roc.draw_series(LineSeries::new(
        m.roc_curve.iter().copied(),
        BLUE.stroke_width(2),
    ))?
    .label(format!("learned AUC {:.3}", m.roc_auc))
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if let Some(b) = &report.base {
        roc.draw_series(LineSeries::new(
            b.roc_curve.iter().copied(),
            RED.stroke_width(2),
        ))?
        .label(format!("base rules AUC {:.3}", b.roc_auc))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    }
    roc.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let mut cal = ChartBuilder::on(&right)
        .caption("Calibration (holdout)", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
    cal.configure_mesh()
        .x_desc("predicted conversion probability")
        .y_desc("observed conversion rate")
        .draw()?;
    cal.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))?;
    for (e, color) in std::iter::once((m, BLUE)).chain(report.base.iter().map(|b| (b, RED))) {
        let Some(bins) = &e.calibration else {
            continue;
        };
        let pts: Vec<(f64, f64)> = bins.iter().map(|b| (b.predicted, b.observed)).collect();
        cal.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(e.scorer.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        cal.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    cal.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
