//! Line charts written as SVG and PNG (plotters), with the font loaded from the system.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

/// Where a sans-serif TrueType font is looked for (Debian's fonts-dejavu-core first).
const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// One line of a chart.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points in data coordinates, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart: title, axis labels, scales and series.
pub struct LineChart {
    /// Title drawn above the plot.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Logarithmic horizontal axis.
    pub x_log: bool,
    /// Logarithmic vertical axis.
    pub y_log: bool,
    /// The lines.
    pub series: Vec<Series>,
}

impl LineChart {
    /// Writes `<stem>.svg` and `<stem>.png` into `dir`; returns the two paths.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
        register_font()?;
        let svg = dir.join(format!("{stem}.svg"));
        let png = dir.join(format!("{stem}.png"));
        {
            let root = SVGBackend::new(&svg, (900, 600)).into_drawing_area();
            self.draw(&root)?;
            root.present()
                .map_err(|error| anyhow!("cannot write {}: {error}", svg.display()))?;
        }
        {
            let root = BitMapBackend::new(&png, (900, 600)).into_drawing_area();
            self.draw(&root)?;
            root.present()
                .map_err(|error| anyhow!("cannot write {}: {error}", png.display()))?;
        }
        Ok(vec![svg, png])
    }

    fn bounds(&self) -> ((f64, f64), (f64, f64)) {
        let points = self.series.iter().flat_map(|series| series.points.iter());
        let finite = points.filter(|(x, y)| {
            x.is_finite() && y.is_finite() && (!self.x_log || *x > 0.0) && (!self.y_log || *y > 0.0)
        });
        let (mut x_min, mut x_max, mut y_min, mut y_max) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in finite {
            x_min = x_min.min(x);
            x_max = x_max.max(x);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
        if !x_min.is_finite() {
            return ((1.0, 10.0), (1.0, 10.0));
        }
        (pad(x_min, x_max, self.x_log), pad(y_min, y_max, self.y_log))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(plot_error)?;
        let ((x0, x1), (y0, y1)) = self.bounds();
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(&self.title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(65);
        // The four scale combinations have different coordinate types.
        match (self.x_log, self.y_log) {
            (false, false) => self.finish(builder.build_cartesian_2d(x0..x1, y0..y1)),
            (true, false) => self.finish(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1)),
            (false, true) => self.finish(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())),
            (true, true) => {
                self.finish(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()))
            }
        }
    }

    fn finish<'a, DB, X, Y>(&self, chart: BuiltChart<'a, DB, X, Y>) -> Result<()>
    where
        DB: DrawingBackend + 'a,
        DB::ErrorType: 'static,
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut chart = chart.map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(plot_error)?;
        for (index, series) in self.series.iter().enumerate() {
            let color = Palette99::pick(index).to_rgba();
            let points: Vec<(f64, f64)> = series
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(&series.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|point| Circle::new(point, 3, color.filled())),
                )
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    }
}

/// What `ChartBuilder::build_cartesian_2d` returns.
type BuiltChart<'a, DB, X, Y> = Result<
    ChartContext<'a, DB, Cartesian2d<X, Y>>,
    DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>,
>;

/// Widens `[min, max]` a little so that points do not sit on the frame.
fn pad(min: f64, max: f64, log: bool) -> (f64, f64) {
    if log {
        let (min, max) = if min == max {
            (min / 2.0, max * 2.0)
        } else {
            (min, max)
        };
        (min / 1.2, max * 1.2)
    } else {
        let span = if max > min {
            max - min
        } else {
            max.abs().max(1.0)
        };
        (min - 0.05 * span, max + 0.05 * span)
    }
}

fn plot_error<E: std::error::Error + Send + Sync + 'static>(error: E) -> anyhow::Error {
    anyhow!("plotting failed: {error}")
}

/// Registers a system sans-serif font with plotters, once per process.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let explicit = std::env::var("DP_RS_FONT").ok();
            let path = explicit
                .iter()
                .map(String::as_str)
                .chain(FONT_CANDIDATES)
                .find(|path| Path::new(path).is_file())
                .ok_or_else(|| {
                    format!(
                        "no TrueType font found for the plots (looked for {}): install one \
                         (`apt-get install fonts-dejavu-core`) or set DP_RS_FONT to a .ttf file",
                        FONT_CANDIDATES.join(", ")
                    )
                })?;
            let bytes =
                std::fs::read(path).map_err(|error| format!("cannot read {path}: {error}"))?;
            plotters::style::register_font(
                "sans-serif",
                FontStyle::Normal,
                Box::leak(bytes.into_boxed_slice()),
            )
            .map_err(|_| format!("{path} is not a usable TrueType font"))
        })
        .clone()
        .map_err(|message| anyhow!(message))
        .context("cannot draw the plots")
}
