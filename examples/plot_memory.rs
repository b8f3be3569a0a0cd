//! Draws scripts/bench-memory.sh's CSV: peak RSS and throughput against the number of leads,
//! one line per memory budget.
//!
//! `plot_memory IN.csv OUT.png`

use std::collections::BTreeMap;

use plotters::prelude::*;

/// (leads, peak RSS MB, events/s) per budget label.
type Series = BTreeMap<String, Vec<(f64, f64, f64)>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, csv, png] = args.as_slice() else {
        eprintln!("usage: plot_memory IN.csv OUT.png");
        std::process::exit(2);
    };
    let series = read(csv)?;
    let root = BitMapBackend::new(png, (1000, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    panel(&left, &series, "peak RSS (MB)", |r| r.1)?;
    panel(&right, &series, "events/s reading the topic", |r| r.2)?;
    root.present()?;
    println!("plot_memory: wrote {png}");
    Ok(())
}

fn read(csv: &str) -> Result<Series, Box<dyn std::error::Error>> {
    let mut series = Series::new();
    for line in std::fs::read_to_string(csv)?.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let label = match f[1] {
            "none" => "all in memory".to_string(),
            b => format!("budget {} leads", b.parse::<f64>()? as u64),
        };
        let point = (f[0].parse()?, f[4].parse()?, f[3].parse()?);
        series.entry(label).or_default().push(point);
    }
    Ok(series)
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    series: &Series,
    what: &str,
    value: impl Fn(&(f64, f64, f64)) -> f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let max = series.values().flatten().map(&value).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{what} by leads"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((50_000f64..20_000_000f64).log_scale(), 0.0..max)?;
    chart
        .configure_mesh()
        .x_desc("leads (log scale)")
        .y_desc(what)
        .x_label_formatter(&|x| format!("{:.0}k", x / 1000.0))
        .draw()?;
    for (i, (label, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line: Vec<(f64, f64)> = points.iter().map(|p| (p.0, value(p))).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
