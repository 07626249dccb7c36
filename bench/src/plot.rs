//! The latency percentile plot: one curve per path, latency against
//! percentile on HdrHistogram's usual log scale (50%, 90%, 99%, 99.9%, …).
//!
//! Written by hand as SVG: a plotting crate (plotters) would pull in font
//! rendering and a dozen dependencies for a few polylines and labels.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Deepest percentile shown: 99.999% (x = 5 nines).
const MAX_NINES: f64 = 5.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// x: "nines" of a quantile, log10(1 / (1 - q)), capped.
fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        MAX_NINES
    } else {
        (1.0 / (1.0 - q)).log10().clamp(0.0, MAX_NINES)
    }
}

/// Points (nines, µs) of a histogram in nanoseconds.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<(f64, f64)> = h
        .iter_quantiles(4)
        .map(|v| {
            (
                nines(v.quantile_iterated_to()),
                v.value_iterated_to() as f64 / 1000.0,
            )
        })
        .collect();
    points.push((MAX_NINES, h.max() as f64 / 1000.0));
    points
}

/// An SVG with one curve per `(label, histogram)`, latency on a log axis.
pub fn percentile_svg(title: &str, curves: &[(String, Histogram<u64>)]) -> String {
    let data: Vec<(&str, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|(label, h)| (label.as_str(), curve(h)))
        .collect();
    let all = data.iter().flat_map(|(_, c)| c.iter().map(|p| p.1));
    let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi <= 0.0 {
        (1.0, 10.0)
    } else {
        (lo.max(0.1), hi.max(lo * 1.5))
    };
    // Decades covering the data.
    let y0 = lo.log10().floor();
    let y1 = hi.log10().ceil().max(y0 + 1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |n: f64| LEFT + n / MAX_NINES * plot_w;
    let y = |us: f64| TOP + plot_h - (us.max(0.1).log10() - y0) / (y1 - y0) * plot_h;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    // Axes and grid.
    for (n, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ] {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{label}</text>"##,
            x(n),
            TOP + plot_h,
            TOP + plot_h + 16.0
        );
    }
    let mut decade = y0;
    while decade <= y1 {
        let v = 10f64.powf(decade);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#ddd"/><text x="{2:.1}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            y(v),
            LEFT + plot_w,
            LEFT - 6.0,
            y(v) + 4.0,
            if v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        );
        decade += 1.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">round trip, µs (log)</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    // Curves and legend.
    for (i, (label, points)) in data.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(n, us)| format!("{:.1},{:.1}", x(*n), y(*us)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let ly = TOP + 10.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="{colour}" stroke-width="3"/><text x="{3}" y="{4}">{5}</text>"#,
            LEFT + 10.0,
            ly,
            LEFT + 30.0,
            LEFT + 36.0,
            ly + 4.0,
            escape(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn histogram(values_us: impl Iterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for v in values_us {
            h.record(v * 1000).unwrap();
        }
        h
    }

    #[test]
    fn curves_rise_and_end_at_the_maximum() {
        let h = histogram(1..=10_000);
        let c = curve(&h);
        assert!(c.windows(2).all(|w| w[0].1 <= w[1].1 && w[0].0 <= w[1].0));
        let last = c.last().unwrap();
        assert_eq!(last.0, MAX_NINES);
        assert!((last.1 - 10_000.0).abs() < 10.0, "{last:?}");
        assert!(curve(&Histogram::new(3).unwrap()).is_empty());
    }

    #[test]
    fn the_svg_has_a_curve_and_a_label_per_path() {
        let svg = percentile_svg(
            "t <1>",
            &[
                ("kxdp".into(), histogram(10..100)),
                ("kernel-vxlan".into(), histogram(20..400)),
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">kxdp<") && svg.contains(">kernel-vxlan<"));
        assert!(svg.contains("t &lt;1&gt;"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
