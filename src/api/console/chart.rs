//! Charts drawn on the server as inline SVG (no script, nothing inline for the CSP to allow):
//! requests per hour as bars, latency p50/p95/p99 as lines. Only numbers and fixed words go
//! into the markup, so it needs no escaping.

use std::fmt::Write as _;

/// One bucket of the timeline.
pub struct Point {
    /// Unix seconds at the start of the bucket.
    pub at: i64,
    pub total: u64,
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
}

/// Reads one percentile of a point.
type Percentile = fn(&Point) -> Option<u64>;

const W: f64 = 720.0;
const H: f64 = 180.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 20.0;

fn hour_label(at: i64) -> String {
    let h = at.rem_euclid(86_400) / 3600;
    format!("{h:02}:00")
}

fn frame(title: &str, max: u64, unit: &str, points: &[Point]) -> String {
    let mut s = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{title}\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>{title}</title>"
    );
    let base = H - BOTTOM;
    let _ = write!(
        s,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{base}\" x2=\"{W}\" y2=\"{base}\"/>\
         <text x=\"0\" y=\"12\">{max} {unit}</text><text x=\"0\" y=\"{base}\">0</text>"
    );
    let step = (points.len() / 6).max(1);
    for (i, p) in points.iter().enumerate().step_by(step) {
        let x = x_of(i, points.len());
        let _ = write!(s, "<text x=\"{x:.1}\" y=\"{H}\">{}</text>", hour_label(p.at));
    }
    s
}

fn x_of(i: usize, n: usize) -> f64 {
    let slot = (W - LEFT) / n.max(1) as f64;
    LEFT + slot * i as f64
}

fn y_of(v: u64, max: u64) -> f64 {
    let base = H - BOTTOM;
    base - (v as f64 / max.max(1) as f64) * (base - 16.0)
}

/// Requests per bucket as bars.
pub fn requests(points: &[Point]) -> String {
    let max = points.iter().map(|p| p.total).max().unwrap_or(0);
    let mut s = frame("Requests per hour", max, "req", points);
    let slot = (W - LEFT) / points.len().max(1) as f64;
    for (i, p) in points.iter().enumerate() {
        let (x, y) = (x_of(i, points.len()), y_of(p.total, max));
        let h = (H - BOTTOM) - y;
        let _ = write!(
            s,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\">\
             <title>{} requests at {}</title></rect>",
            x + 1.0,
            (slot - 2.0).max(1.0),
            p.total,
            hour_label(p.at)
        );
    }
    s.push_str("</svg>");
    s
}

/// Latency percentiles per bucket as three lines (buckets without traffic are skipped).
pub fn latency(points: &[Point]) -> String {
    let max = points.iter().filter_map(|p| p.p99.or(p.p95).or(p.p50)).max().unwrap_or(0);
    let mut s = frame("Latency p50, p95, p99 per hour", max, "ms", points);
    let series: [(&str, Percentile); 3] =
        [("p50", |p| p.p50), ("p95", |p| p.p95), ("p99", |p| p.p99)];
    for (class, get) in series {
        let coords: Vec<String> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| get(p).map(|v| (i, v)))
            .map(|(i, v)| format!("{:.1},{:.1}", x_of(i, points.len()), y_of(v, max)))
            .collect();
        if !coords.is_empty() {
            let _ = write!(s, "<polyline class=\"{class}\" points=\"{}\"/>", coords.join(" "));
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts() -> Vec<Point> {
        (0..3)
            .map(|i| Point {
                at: 3600 * i,
                total: (i as u64 + 1) * 10,
                p50: Some(5),
                p95: (i > 0).then_some(20),
                p99: Some(40),
            })
            .collect()
    }

    #[test]
    fn bars_scale_to_the_busiest_bucket() {
        let svg = requests(&pts());
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("30 req") && svg.contains("30 requests at 02:00"), "{svg}");
        assert!(!svg.contains("style="), "no inline style: the CSP forbids it");
    }

    #[test]
    fn lines_skip_empty_buckets_and_an_empty_chart_still_draws() {
        let svg = latency(&pts());
        assert!(svg.contains("class=\"p95\"") && svg.contains("40 ms"), "{svg}");
        let p95 = svg.split("class=\"p95\" points=\"").nth(1).unwrap();
        assert_eq!(p95.split('"').next().unwrap().split(' ').count(), 2);
        let empty = latency(&[]);
        assert!(empty.starts_with("<svg") && empty.ends_with("</svg>"));
    }
}
