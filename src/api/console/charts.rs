//! Charts as server-rendered SVG (no script, no library): columns per minute, optionally in
//! two stacked series, and horizontal bars. Each chart has a title and a description for
//! screen readers; the pages print the same figures as text beside it.

use std::fmt::Write;

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The round number at or above `n` that the scale goes up to.
fn scale_top(n: u64) -> u64 {
    let mut top = 1;
    while top < n {
        top = match top {
            t if t.to_string().starts_with('1') => t * 2,
            t if t.to_string().starts_with('2') => t / 2 * 5,
            t => t * 2,
        };
    }
    top
}

/// A scale value: whole numbers as they are, halves with one decimal.
fn tick(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Columns, one per minute, of one or two stacked series (`a` below, `b` above), oldest left.
/// `labels` name the series for the legend; `title` says what the chart shows.
pub fn columns(title: &str, labels: (&str, Option<&str>), values: &[(u64, u64)]) -> String {
    let (w, h, left, bottom) = (420.0, 150.0, 36.0, 18.0);
    let top = scale_top(values.iter().map(|(a, b)| a + b).max().unwrap_or(0));
    let n = values.len().max(1) as f64;
    let step = (w - left) / n;
    let mut svg = String::new();
    let total_a: u64 = values.iter().map(|v| v.0).sum();
    let total_b: u64 = values.iter().map(|v| v.1).sum();
    let desc = match labels.1 {
        Some(b) => format!(
            "{total_a} {} and {total_b} {b} over {} minutes, at most {top} a minute on the scale",
            labels.0,
            values.len()
        ),
        None => format!(
            "{total_a} {} over {} minutes, at most {top} a minute on the scale",
            labels.0,
            values.len()
        ),
    };
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{}"><title>{}</title><desc>{}</desc>"#,
        esc(title),
        esc(title),
        esc(&desc)
    );
    let plot = h - bottom;
    for (i, frac) in [0.0, 0.5, 1.0].iter().enumerate() {
        let y = plot - plot * frac + if i == 2 { 6.0 } else { 0.0 };
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{left}" x2="{w}" y1="{:.1}" y2="{:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            plot - plot * frac,
            plot - plot * frac,
            left - 4.0,
            y + 3.0,
            tick(top as f64 * frac)
        );
    }
    for (i, (a, b)) in values.iter().enumerate() {
        let x = left + step * i as f64 + step * 0.1;
        let bw = (step * 0.8).max(1.0);
        let ha = plot * (*a as f64) / top as f64;
        let hb = plot * (*b as f64) / top as f64;
        if *a > 0 {
            let _ = write!(
                svg,
                r#"<rect class="series-a" x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{ha:.1}"/>"#,
                plot - ha
            );
        }
        if *b > 0 {
            let _ = write!(
                svg,
                r#"<rect class="series-b" x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{hb:.1}"/>"#,
                plot - ha - hb
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text class="axis" x="{left}" y="{h}">−{} min</text><text class="axis" x="{w}" y="{h}" text-anchor="end">now</text></svg>"#,
        values.len()
    );
    svg
}

/// One horizontal bar.
pub struct Bar<'a> {
    /// What it stands for.
    pub label: String,
    /// Its length.
    pub value: u64,
    /// Its CSS class (a state).
    pub class: &'a str,
}

/// Horizontal bars.
pub fn bars(title: &str, rows: &[Bar<'_>], unit: &str) -> String {
    let (w, row_h, label_w) = (420.0, 24.0, 130.0);
    let h = (rows.len().max(1) as f64) * row_h;
    let top = scale_top(rows.iter().map(|r| r.value).max().unwrap_or(0));
    let mut svg = String::new();
    let desc: Vec<String> = rows
        .iter()
        .map(|b| format!("{}: {}{unit}", b.label, b.value))
        .collect();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{}"><title>{}</title><desc>{}</desc>"#,
        esc(title),
        esc(title),
        esc(&desc.join("; "))
    );
    for (
        i,
        Bar {
            label,
            value,
            class,
        },
    ) in rows.iter().enumerate()
    {
        let y = i as f64 * row_h;
        let bw = (w - label_w - 70.0) * (*value as f64) / top as f64;
        let _ = write!(
            svg,
            r#"<text class="label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect class="bar {}" x="{label_w}" y="{:.1}" width="{bw:.1}" height="{:.1}"/><text class="value" x="{:.1}" y="{:.1}">{value}{}</text>"#,
            label_w - 8.0,
            y + row_h * 0.65,
            esc(label),
            esc(class),
            y + 4.0,
            row_h - 8.0,
            label_w + bw + 6.0,
            y + row_h * 0.65,
            esc(unit)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_goes_up_in_round_steps() {
        let tops: Vec<u64> = [0, 1, 3, 7, 12, 180, 201].map(scale_top).to_vec();
        assert_eq!(tops, [1, 1, 5, 10, 20, 200, 500]);
    }

    #[test]
    fn labels_are_escaped_and_the_chart_is_described() {
        let svg = bars(
            "Deliveries",
            &[Bar {
                label: "<x>".into(),
                value: 3,
                class: "ok",
            }],
            "",
        );
        assert!(svg.contains("&lt;x&gt;") && svg.contains("<desc>&lt;x&gt;: 3</desc>"));
        let svg = columns("Events", ("events", None), &[(1, 0), (2, 0)]);
        assert!(svg.contains("3 events over 2 minutes"));
    }
}
