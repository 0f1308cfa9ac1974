//! Charts drawn on the server as inline SVG: vertical bars stacked by
//! series, and horizontal percentage bars. No script is needed to see them.
//! Each is an image to assistive technology (`role="img"`) named by its
//! `<title>` and described by a `<desc>` that states the numbers; every bar
//! carries its own `<title>` (a tooltip). Text is escaped and coordinates
//! are printed with fixed precision, so the same data draws the same bytes.

use std::fmt::Write;

/// One series of a chart: its name (in the legend) and colour.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    pub label: &'a str,
    pub color: &'a str,
}

/// Text for SVG (XML) content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// At most `n` characters, with an ellipsis when cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A round axis step: 1, 2 or 5 times a power of ten, so that at most five
/// steps reach `max`.
fn nice_step(max: i64) -> i64 {
    let mut magnitude = 1i64;
    loop {
        for m in [1, 2, 5] {
            let step = magnitude.saturating_mul(m);
            if max <= step.saturating_mul(5) {
                return step;
            }
        }
        if magnitude > i64::MAX / 10 {
            return magnitude;
        }
        magnitude *= 10;
    }
}

const FONT: &str = r#"font-family="system-ui,sans-serif""#;
const INK: &str = "#1d2330";
const MUTED: &str = "#5b6475";
const GRID: &str = "#d9dde5";

fn open_svg(s: &mut String, id: &str, title: &str, desc: &str, w: f64, h: f64) {
    let id = esc(id);
    let _ = write!(
        s,
        r#"<svg class="chart" id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-labelledby="{id}-title {id}-desc"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        esc(title),
        esc(desc)
    );
}

fn legend(s: &mut String, series: &[Series<'_>], x0: f64, y: f64) {
    let mut x = x0;
    let _ = write!(
        s,
        r#"<g class="legend" font-size="12" fill="{INK}" {FONT}>"#
    );
    for se in series {
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            y - 10.0,
            esc(se.color),
            x + 16.0,
            y,
            esc(se.label)
        );
        x += 16.0 + 7.0 * se.label.chars().count() as f64 + 18.0;
    }
    s.push_str("</g>");
}

/// Vertical bars, one per category, each stacked from its series' values:
/// `values[series][category]` (missing values count as zero).
pub fn stacked_bars(
    id: &str,
    title: &str,
    categories: &[String],
    series: &[Series<'_>],
    values: &[Vec<i64>],
) -> String {
    let value = |s: usize, c: usize| -> i64 {
        values
            .get(s)
            .and_then(|v| v.get(c))
            .copied()
            .unwrap_or(0)
            .max(0)
    };
    let totals: Vec<i64> = (0..categories.len())
        .map(|c| (0..series.len()).map(|s| value(s, c)).sum())
        .collect();
    let all: i64 = totals.iter().sum();
    let mut desc = format!("{all} in all.");
    // Many categories (days, say): only those with something in them.
    let skip_empty = categories.len() > 12;
    for (c, cat) in categories.iter().enumerate() {
        if skip_empty && totals[c] == 0 {
            continue;
        }
        let parts: Vec<String> = (0..series.len())
            .filter(|&s| value(s, c) > 0)
            .map(|s| format!("{} {}", series[s].label, value(s, c)))
            .collect();
        let _ = write!(desc, " {cat}: {}", totals[c]);
        if !parts.is_empty() {
            let _ = write!(desc, " ({})", parts.join(", "));
        }
        desc.push(';');
    }
    if desc.ends_with(';') {
        desc.pop();
        desc.push('.');
    }
    if skip_empty && totals.contains(&0) {
        desc.push_str(" None in the others.");
    }

    let (w, h) = (640.0, 300.0);
    let (left, right, top, bottom) = (44.0, w - 12.0, 40.0, h - 36.0);
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let step = nice_step(max);
    let y_top = ((max - 1) / step + 1).saturating_mul(step);
    let y = |v: i64| bottom - (bottom - top) * v as f64 / y_top as f64;

    let mut s = String::new();
    open_svg(&mut s, id, title, &desc, w, h);
    legend(&mut s, series, left, 18.0);
    // Axis: grid lines and their values.
    let _ = write!(
        s,
        r#"<g class="axis" font-size="11" fill="{MUTED}" {FONT} text-anchor="end">"#
    );
    let mut v = 0;
    while v <= y_top {
        let yy = y(v);
        let _ = write!(
            s,
            r#"<line x1="{left:.1}" y1="{yy:.1}" x2="{right:.1}" y2="{yy:.1}" stroke="{GRID}"/><text x="{:.1}" y="{:.1}">{v}</text>"#,
            left - 6.0,
            yy + 4.0
        );
        v += step;
    }
    s.push_str("</g>");
    // Bars.
    let n = categories.len().max(1);
    let slot = (right - left) / n as f64;
    let bar = (slot * 0.6).max(1.0);
    // Label every k-th category so that at most 12 labels fit.
    let every = n.div_ceil(12);
    for (c, cat) in categories.iter().enumerate() {
        let x = left + slot * c as f64 + (slot - bar) / 2.0;
        let mut base = 0;
        let _ = write!(s, r#"<g class="bar" data-total="{}">"#, totals[c]);
        for (si, se) in series.iter().enumerate() {
            let v = value(si, c);
            if v == 0 {
                continue;
            }
            let (y1, y0) = (y(base + v), y(base));
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y1:.1}" width="{bar:.1}" height="{:.1}" fill="{}"><title>{}: {} {v}</title></rect>"#,
                y0 - y1,
                esc(se.color),
                esc(cat),
                esc(se.label)
            );
            base += v;
        }
        if totals[c] > 0 && n <= 12 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="12" font-weight="600" fill="{INK}" text-anchor="middle" {FONT}>{}</text>"#,
                x + bar / 2.0,
                y(totals[c]) - 4.0,
                totals[c]
            );
        }
        if c % every == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="12" fill="{INK}" text-anchor="middle" {FONT}>{}</text>"#,
                x + bar / 2.0,
                bottom + 18.0,
                esc(&clip(cat, 12))
            );
        }
        s.push_str("</g>");
    }
    let _ = write!(
        s,
        r#"<line x1="{left:.1}" y1="{bottom:.1}" x2="{right:.1}" y2="{bottom:.1}" stroke="{MUTED}"/>"#
    );
    s.push_str("</svg>");
    s
}

/// A percentage as words and in bars: "87%".
fn pct(p: f64) -> String {
    format!("{:.0}%", p.clamp(0.0, 100.0))
}

/// Horizontal bars from 0 to 100 %, one row per label with one bar per
/// series (`None`: nothing to measure yet).
pub fn percent_bars(
    id: &str,
    title: &str,
    rows: &[(String, Vec<Option<f64>>)],
    series: &[Series<'_>],
) -> String {
    let mut desc = String::new();
    for (label, vals) in rows {
        let parts: Vec<String> = series
            .iter()
            .enumerate()
            .map(|(i, se)| match vals.get(i).copied().flatten() {
                Some(p) => format!("{} {}", se.label, pct(p)),
                None => format!("{} no data", se.label),
            })
            .collect();
        let _ = write!(desc, "{label}: {}. ", parts.join(", "));
    }
    if rows.is_empty() {
        desc.push_str("Nothing to show.");
    }
    let desc = desc.trim_end().to_string();

    let bar_h = 12.0;
    let row_h = series.len().max(1) as f64 * (bar_h + 3.0) + 12.0;
    let (w, left, right, top) = (640.0, 170.0, 640.0 - 56.0, 36.0);
    let h = top + row_h * rows.len().max(1) as f64 + 28.0;
    let bottom = h - 28.0;
    let x = |p: f64| left + (right - left) * p.clamp(0.0, 100.0) / 100.0;

    let mut s = String::new();
    open_svg(&mut s, id, title, &desc, w, h);
    legend(&mut s, series, left, 18.0);
    let _ = write!(
        s,
        r#"<g class="axis" font-size="11" fill="{MUTED}" {FONT} text-anchor="middle">"#
    );
    for p in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let xx = x(p);
        let _ = write!(
            s,
            r#"<line x1="{xx:.1}" y1="{top:.1}" x2="{xx:.1}" y2="{bottom:.1}" stroke="{GRID}"/><text x="{xx:.1}" y="{:.1}">{}</text>"#,
            bottom + 16.0,
            pct(p)
        );
    }
    s.push_str("</g>");
    if rows.is_empty() {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="13" fill="{MUTED}" text-anchor="middle" {FONT}>Nothing to show.</text>"#,
            (left + right) / 2.0,
            top + row_h / 2.0
        );
    }
    for (r, (label, vals)) in rows.iter().enumerate() {
        let y0 = top + row_h * r as f64 + 6.0;
        let _ = write!(
            s,
            r#"<g class="row"><text x="{:.1}" y="{:.1}" font-size="12" fill="{INK}" text-anchor="end" {FONT}><title>{}</title>{}</text>"#,
            left - 8.0,
            y0 + (row_h - 12.0) / 2.0 + 4.0,
            esc(label),
            esc(&clip(label, 24))
        );
        for (i, se) in series.iter().enumerate() {
            let yy = y0 + i as f64 * (bar_h + 3.0);
            match vals.get(i).copied().flatten() {
                Some(p) => {
                    let _ = write!(
                        s,
                        r#"<rect x="{left:.1}" y="{yy:.1}" width="{:.1}" height="{bar_h:.1}" fill="{}"><title>{}, {}: {}</title></rect><text x="{:.1}" y="{:.1}" font-size="11" fill="{INK}" {FONT}>{}</text>"#,
                        x(p) - left,
                        esc(se.color),
                        esc(label),
                        esc(se.label),
                        pct(p),
                        x(p) + 4.0,
                        yy + bar_h - 2.0,
                        pct(p)
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        r#"<text x="{:.1}" y="{:.1}" font-size="11" fill="{MUTED}" {FONT}>{}: no data</text>"#,
                        left + 4.0,
                        yy + bar_h - 2.0,
                        esc(se.label)
                    );
                }
            }
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: [Series<'static>; 2] = [
        Series {
            label: "P1",
            color: "#b00020",
        },
        Series {
            label: "P2",
            color: "#d35400",
        },
    ];

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("a\u{7}b"), "ab");
        let svg = stacked_bars(
            "c",
            "Open <cases>",
            &["<1h".into(), "A&B".into()],
            &TWO,
            &[vec![1, 0], vec![2, 3]],
        );
        assert!(svg.contains("<title id=\"c-title\">Open &lt;cases&gt;</title>"));
        assert!(
            svg.contains("&lt;1h: 3 (P1 1, P2 2); A&amp;B: 3 (P2 3)."),
            "{svg}"
        );
        assert!(!svg.contains("<1h"));
        let svg = percent_bars(
            "p",
            "t",
            &[("K-<1>\"".into(), vec![Some(50.0), None])],
            &TWO,
        );
        assert!(
            svg.contains("K-&lt;1&gt;&quot;: P1 50%, P2 no data."),
            "{svg}"
        );
        assert!(!svg.contains("K-<1>"));
    }

    #[test]
    fn charts_are_accessible_images() {
        let svg = stacked_bars(
            "open",
            "Open cases",
            &["x".into()],
            &TWO,
            &[vec![4], vec![1]],
        );
        assert!(svg.starts_with("<svg class=\"chart\" id=\"open\""));
        assert!(svg.contains("role=\"img\" aria-labelledby=\"open-title open-desc\""));
        assert!(svg.contains("<desc id=\"open-desc\">5 in all. x: 5 (P1 4, P2 1).</desc>"));
        assert!(svg.contains("<title>x: P1 4</title>"));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn output_is_deterministic_and_scaled() {
        let cats: Vec<String> = (1..=30).map(|d| format!("03-{d:02}")).collect();
        let vals = vec![(0..30).map(|i| i % 4).collect::<Vec<_>>(), vec![1; 30]];
        let a = stacked_bars("d", "Per day", &cats, &TWO, &vals);
        let b = stacked_bars("d", "Per day", &cats, &TWO, &vals);
        assert_eq!(a, b);
        // Only the categories with something in them are described.
        assert!(a.contains("03-30: 2 (P1 1, P2 1)."), "{a}");
        let sparse = stacked_bars(
            "s",
            "t",
            &cats,
            &TWO,
            &[vec![0; 30], {
                let mut v = vec![0; 30];
                v[4] = 2;
                v
            }],
        );
        assert!(
            sparse.contains(
                "<desc id=\"s-desc\">2 in all. 03-05: 2 (P2 2). None in the others.</desc>"
            ),
            "{sparse}"
        );
        // 30 categories: every third labelled.
        assert!(a.contains(">03-01</text>") && a.contains(">03-04</text>"));
        assert!(!a.contains(">03-02</text>"));
        // The tallest bar (4) reaches a round axis top of 4 (steps of 1).
        assert!(a.contains(">4</text>"));
        let p = percent_bars(
            "p",
            "t",
            &[("A".into(), vec![Some(100.0), Some(0.0)])],
            &TWO,
        );
        assert_eq!(
            p,
            percent_bars(
                "p",
                "t",
                &[("A".into(), vec![Some(100.0), Some(0.0)])],
                &TWO
            )
        );
        assert!(p.contains("width=\"414.0\""), "{p}");
        assert!(p.contains("width=\"0.0\""));
        // Nothing at all still draws, and says so.
        let e = stacked_bars("e", "Empty", &[], &TWO, &[]);
        assert!(e.contains("<desc id=\"e-desc\">0 in all.</desc>"));
        assert!(percent_bars("e", "t", &[], &TWO).contains("Nothing to show."));
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_step(1), 1);
        assert_eq!(nice_step(5), 1);
        assert_eq!(nice_step(6), 2);
        assert_eq!(nice_step(10), 2);
        assert_eq!(nice_step(11), 5);
        assert_eq!(nice_step(26), 10);
        assert_eq!(nice_step(999), 200);
        assert!(nice_step(i64::MAX) > 0);
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
