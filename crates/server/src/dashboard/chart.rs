//! Bar charts drawn as SVG on the server: no script, no other origin, readable by a
//! screen reader (a summary label and one `<title>` per bar).

use maud::{Markup, html};

/// One stacked layer of a chart: a name for the legend and a value per bar.
pub struct Series<'a> {
    pub name: &'a str,
    /// `bar1` or `bar2` (colours that follow the light or dark theme).
    pub class: &'static str,
    pub values: Vec<i64>,
}

/// One layer of one bar: its class, top and height.
type Stack<'a> = (&'a str, i64, i64);

const WIDTH: i64 = 720;
const HEIGHT: i64 = 150;
const TOP: i64 = 14;
const BOTTOM: i64 = 18;

/// Stacked bars, one per label; `format` writes a value for tooltips and the axis.
pub fn bars(labels: &[String], series: &[Series<'_>], format: &dyn Fn(i64) -> String, summary: &str) -> Markup {
    let totals: Vec<i64> =
        (0..labels.len()).map(|i| series.iter().map(|s| s.values.get(i).copied().unwrap_or(0).max(0)).sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let n = i64::try_from(labels.len()).unwrap_or(1).max(1);
    let slot = WIDTH / n;
    let bar = (slot * 7 / 10).max(1);
    let plot = HEIGHT - TOP - BOTTOM;
    let height = |v: i64| -> i64 { i64::try_from(i128::from(v) * i128::from(plot) / i128::from(max)).unwrap_or(plot) };
    let columns: Vec<(i64, Vec<Stack<'_>>)> = (0..labels.len())
        .map(|i| {
            let x = i64::try_from(i).unwrap_or(0) * slot + (slot - bar) / 2;
            let mut base = HEIGHT - BOTTOM;
            let mut rects = Vec::new();
            for s in series {
                let h = height(s.values.get(i).copied().unwrap_or(0).max(0));
                if h > 0 {
                    rects.push((s.class, base - h, h));
                    base -= h;
                }
            }
            (x, rects)
        })
        .collect();
    let tip = |i: usize| -> String {
        let parts: Vec<String> =
            series.iter().map(|s| format!("{} {}", s.name, format(s.values.get(i).copied().unwrap_or(0)))).collect();
        format!("{}: {}", labels[i], parts.join(", "))
    };
    html! {
        @if series.len() > 1 {
            p.legend { @for s in series { span class=(if s.class == "bar1" { "sw1" } else { "sw2" }) { (s.name) } } }
        }
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(summary) preserveAspectRatio="none" {
            line.axis x1="0" y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
            text x="2" y="10" { (format(max)) }
            @for (i, (x, rects)) in columns.iter().enumerate() {
                g {
                    title { (tip(i)) }
                    @for (class, y, h) in rects {
                        rect class=(class) x=(x) y=(y) width=(bar) height=(h) {}
                    }
                    // An invisible full-height target, so the tooltip works on empty days too.
                    rect x=(x) y=(TOP) width=(bar) height=(plot) fill="transparent" {}
                }
            }
            @if let (Some(first), Some(last)) = (labels.first(), labels.last()) {
                text x="2" y=(HEIGHT - 4) { (first) }
                text x=(WIDTH - 2) y=(HEIGHT - 4) text-anchor="end" { (last) }
            }
        }
    }
}

const ROW: i64 = 24;
const LABEL: i64 = 230;

/// Horizontal bars, one per item (a model, key or provider), longest first as given;
/// each bar is labelled with its value.
pub fn shares(items: &[(String, i64)], format: &dyn Fn(i64) -> String, summary: &str) -> Markup {
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let span = WIDTH - LABEL - 110;
    let height = i64::try_from(items.len()).unwrap_or(0) * ROW + 4;
    let width =
        |v: i64| -> i64 { i64::try_from(i128::from(v.max(0)) * i128::from(span) / i128::from(max)).unwrap_or(span) };
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-label=(summary) {
            @for (i, (label, value)) in items.iter().enumerate() {
                @let y = i64::try_from(i).unwrap_or(0) * ROW;
                @let shown: String = if label.chars().count() > 34 { label.chars().take(33).chain(['…']).collect() } else { label.clone() };
                g {
                    title { (label) ": " (format(*value)) }
                    text x="0" y=(y + 16) { (shown) }
                    rect class="bar1" x=(LABEL) y=(y + 5) width=(width(*value).max(1)) height=(ROW - 8) {}
                    text x=(LABEL + width(*value) + 6) y=(y + 16) { (format(*value)) }
                }
            }
        }
    }
}
