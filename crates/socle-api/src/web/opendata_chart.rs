//! The portal's chart: the groups of a `group_by` query laid out as an SVG bar or
//! line chart, computed here and written by the template (no script, so it works in
//! every browser and in an embedded frame). The template names the chart with
//! `<title>`/`<desc>` and always prints the same values as a table.

/// Width and height of the drawing, in SVG units (it scales with the page).
pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 340.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 96.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Bars,
    Line,
}

impl Shape {
    pub fn parse(s: &str) -> Shape {
        if s == "courbe" {
            Shape::Line
        } else {
            Shape::Bars
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Shape::Bars => "barres",
            Shape::Line => "courbe",
        }
    }
}

pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    /// The label and formatted value, for the bar's tooltip.
    pub title: String,
}

pub struct Dot {
    pub cx: String,
    pub cy: String,
    pub title: String,
}

pub struct Tick {
    pub y: String,
    pub label: String,
}

pub struct XLabel {
    pub x: String,
    pub y: String,
    pub text: String,
    /// `rotate(…)` when labels are many: they would overlap if written flat.
    pub transform: String,
}

/// What the template draws.
pub struct Drawing {
    pub shape: Shape,
    pub view_box: String,
    pub bars: Vec<Bar>,
    pub dots: Vec<Dot>,
    pub polyline: String,
    pub ticks: Vec<Tick>,
    pub labels: Vec<XLabel>,
    pub axis_y: String,
    pub axis_x1: String,
    pub axis_x2: String,
    pub left: String,
}

fn n(v: f64) -> String {
    format!("{v:.1}")
}

/// A round step for about five ticks over `span`.
fn nice_step(span: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let unit = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().find(|u| u * magnitude >= raw).unwrap_or(10.0);
    unit * magnitude
}

/// A number as the page's language writes it: French decimal comma and
/// thin spaces between thousands, at most two decimals.
pub fn number(v: f64, lang: &str) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let rounded = (v * 100.0).round() / 100.0;
    let text = if rounded.fract() == 0.0 { format!("{rounded:.0}") } else { format!("{rounded:.2}") };
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text };
    let (sign, rest) = text.strip_prefix('-').map_or(("", text.as_str()), |r| ("-", r));
    let (int, frac) = rest.split_once('.').map_or((rest, None), |(i, f)| (i, Some(f)));
    let sep = if lang == "fr" { '\u{202f}' } else { ',' };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(sep);
        }
        grouped.push(c);
    }
    let point = if lang == "fr" { "," } else { "." };
    match frac {
        Some(f) => format!("{sign}{grouped}{point}{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn short(label: &str) -> String {
    if label.chars().count() <= 16 {
        label.to_owned()
    } else {
        format!("{}…", label.chars().take(15).collect::<String>())
    }
}

/// Lays out `groups` (label, value); `None` when there is nothing to draw.
pub fn draw(groups: &[(String, f64)], shape: Shape, lang: &str) -> Option<Drawing> {
    let values: Vec<f64> = groups.iter().map(|g| g.1).filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    let lo = values.iter().copied().fold(0.0_f64, f64::min);
    let hi = values.iter().copied().fold(0.0_f64, f64::max);
    let step = nice_step(hi - lo);
    let (lo, hi) = ((lo / step).floor() * step, ((hi / step).ceil() * step).max(step));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y_of = |v: f64| TOP + plot_h * (hi - v) / (hi - lo);
    let slot = plot_w / groups.len() as f64;
    let x_mid = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let mut ticks = Vec::new();
    let mut t = lo;
    while t <= hi + step / 2.0 {
        ticks.push(Tick { y: n(y_of(t)), label: number(t, lang) });
        t += step;
    }
    let rotate = groups.len() > 6;
    let base = y_of(0.0);
    let mut bars = Vec::new();
    let mut dots = Vec::new();
    let mut points = Vec::new();
    let mut labels = Vec::new();
    for (i, (label, v)) in groups.iter().enumerate() {
        let title = format!("{label} : {}", number(*v, lang));
        let (lx, ly) = (x_mid(i), HEIGHT - BOTTOM + 16.0);
        labels.push(XLabel {
            x: n(lx),
            y: n(ly),
            text: short(label),
            transform: if rotate { format!("rotate(-40 {} {})", n(lx), n(ly)) } else { String::new() },
        });
        if !v.is_finite() {
            continue;
        }
        match shape {
            Shape::Bars => {
                let w = (slot * 0.7).max(1.0);
                let top = y_of(v.max(0.0));
                bars.push(Bar {
                    x: n(x_mid(i) - w / 2.0),
                    y: n(top),
                    width: n(w),
                    height: n((y_of(v.min(0.0)) - top).max(0.5)),
                    title,
                });
            }
            Shape::Line => {
                points.push(format!("{},{}", n(x_mid(i)), n(y_of(*v))));
                dots.push(Dot { cx: n(x_mid(i)), cy: n(y_of(*v)), title });
            }
        }
    }
    Some(Drawing {
        shape,
        view_box: format!("0 0 {WIDTH} {HEIGHT}"),
        bars,
        dots,
        polyline: points.join(" "),
        ticks,
        labels,
        axis_y: n(base),
        axis_x1: n(LEFT),
        axis_x2: n(WIDTH - RIGHT),
        left: n(LEFT - 8.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_each_language_does() {
        assert_eq!(number(1234567.891, "fr"), "1\u{202f}234\u{202f}567,89");
        assert_eq!(number(1234567.891, "en"), "1,234,567.89");
        assert_eq!(number(-0.5, "fr"), "-0,5");
        assert_eq!(number(42.0, "fr"), "42");
        assert_eq!(number(f64::NAN, "fr"), "—");
    }

    #[test]
    fn bars_stand_on_zero_and_fit_the_frame() {
        let groups = vec![("Piscine".to_owned(), 2.0), ("Gymnase".to_owned(), 5.0), ("Stade".to_owned(), 1.0)];
        let d = draw(&groups, Shape::Bars, "fr").unwrap();
        assert_eq!(d.bars.len(), 3);
        let num = |s: &str| s.parse::<f64>().unwrap();
        for b in &d.bars {
            assert!(num(&b.y) >= TOP - 0.1 && num(&b.y) + num(&b.height) <= HEIGHT - BOTTOM + 0.1);
            // Every bar ends on the zero line.
            assert!((num(&b.y) + num(&b.height) - num(&d.axis_y)).abs() < 0.2, "{}", b.title);
        }
        // The tallest bar is the largest value.
        let tallest = d.bars.iter().max_by(|a, b| num(&a.height).total_cmp(&num(&b.height))).unwrap();
        assert_eq!(tallest.title, "Gymnase : 5");
        assert_eq!(d.ticks.first().unwrap().label, "0");
        assert!(d.labels.iter().all(|l| l.transform.is_empty()));
    }

    #[test]
    fn a_line_has_one_point_per_group_and_nothing_is_drawn_without_values() {
        let groups: Vec<(String, f64)> = (0..10).map(|i| (format!("{}", 2015 + i), f64::from(i * i))).collect();
        let d = draw(&groups, Shape::Line, "en").unwrap();
        assert_eq!(d.dots.len(), 10);
        assert_eq!(d.polyline.split(' ').count(), 10);
        assert!(d.labels.iter().all(|l| l.transform.starts_with("rotate(")));
        assert!(draw(&[("a".into(), f64::NAN)], Shape::Bars, "fr").is_none());
        assert!(draw(&[], Shape::Line, "fr").is_none());
    }
}
