//! A line plot as hand-written SVG: sizes on a log2 x axis, nanoseconds on a log10 y
//! axis, one polyline with markers per series, and a legend.

use std::fmt::Write as _;

use crate::units;

/// One line of the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(size in bytes, ns per page)`, in increasing size.
    pub points: Vec<(u64, f64)>,
}

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 500.0;
/// Plot area: left, top, right, bottom edges.
const LEFT: f64 = 70.0;
const TOP: f64 = 50.0;
const RIGHT: f64 = 650.0;
const BOTTOM: f64 = 440.0;
/// Line colours, one per series (cycled).
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG document of `series` under `title`.
pub fn svg(title: &str, series: &[Series]) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let xs: Vec<f64> = all().map(|p| (p.0 as f64).log2()).collect();
    let ys: Vec<f64> = all().map(|p| p.1.max(1e-3)).collect();
    let (x0, x1) = bounds(&xs, 1.0);
    // The y axis spans whole decades around the data.
    let (ylo, yhi) = bounds(&ys, 10.0);
    let (y0, y1) = (
        ylo.log10().floor(),
        yhi.log10().ceil().max(ylo.log10().floor() + 1.0),
    );
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0).max(1e-9) * (RIGHT - LEFT);
    let py = |y: f64| BOTTOM - (y.max(1e-3).log10() - y0) / (y1 - y0) * (BOTTOM - TOP);

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="25" text-anchor="middle" font-size="15">{}</text>"#,
        (LEFT + RIGHT) / 2.0,
        esc(title)
    );

    // Grid and y labels: 1, 2, 5 per decade.
    let mut decade = y0;
    while decade <= y1 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powf(decade);
            if v.log10() > y1 + 1e-9 {
                break;
            }
            let y = py(v);
            let (stroke, width) = if m == 1.0 {
                ("#bbb", 1.0)
            } else {
                ("#e5e5e5", 0.7)
            };
            let _ = writeln!(
                out,
                r#"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="{stroke}" stroke-width="{width}"/>"#
            );
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y + 4.0,
                number(v)
            );
        }
        decade += 1.0;
    }
    // x ticks at every size that has a point.
    let mut sizes: Vec<u64> = all().map(|p| p.0).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for s in &sizes {
        let x = px((*s as f64).log2());
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="#eee"/>"##
        );
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            BOTTOM + 18.0,
            units::size(*s)
        );
    }
    // Axes and their titles.
    let _ = writeln!(
        out,
        r#"<path d="M{LEFT} {TOP} V{BOTTOM} H{RIGHT}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">bytes mapped in one call (4K pages)</text>"#,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 42.0
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{0}" text-anchor="middle" transform="rotate(-90 18 {0})">ns per page (log scale)</text>"#,
        (TOP + BOTTOM) / 2.0
    );

    // The lines, then the legend.
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(size, v)| format!("{:.1},{:.1}", px((size as f64).log2()), py(v)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            pts.join(" ")
        );
        for &(size, v) in &s.points {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{} {}: {} ns/page</title></circle>"#,
                px((size as f64).log2()),
                py(v),
                esc(&s.name),
                units::size(size),
                number(v)
            );
        }
        let y = TOP + 10.0 + 22.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{colour}" stroke-width="2"/>"#,
            RIGHT + 20.0,
            RIGHT + 50.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}">{}</text>"#,
            RIGHT + 58.0,
            y + 4.0,
            esc(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The smallest and largest of `v` (or `(1, default_hi)` when empty).
fn bounds(v: &[f64], default_hi: f64) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (1.0, default_hi)
    }
}

/// A tick label: no trailing zeros.
fn number(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_has_every_series_and_point() {
        let series = vec![
            Series {
                name: "a<b".to_owned(),
                points: vec![(64 << 10, 120.0), (1 << 20, 20.0), (1 << 30, 5.5)],
            },
            Series {
                name: "peer".to_owned(),
                points: vec![(64 << 10, 300.0), (1 << 30, 25.0)],
            },
        ];
        let svg = svg("t & u", &series);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains(">a&lt;b</text>"));
        assert!(svg.contains(">t &amp; u</text>"));
        // Decades 1..1000 are labelled, and every size.
        for label in [">1</text>", ">10</text>", ">100</text>", ">1000</text>"] {
            assert!(svg.contains(label), "{label}");
        }
        for label in [">64K</text>", ">1M</text>", ">1G</text>"] {
            assert!(svg.contains(label), "{label}");
        }
    }

    #[test]
    fn empty_plot_is_still_a_document() {
        let svg = svg("nothing", &[]);
        assert!(svg.contains("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 0);
    }

    #[test]
    fn labels() {
        assert_eq!(number(5.0), "5");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(0.02), "0.02");
    }
}
