//! A chaos run as one self-contained HTML page: a header with the verdict, a chart of latency and errors
//! over time with the fault windows and open circuit breakers shaded on it, and tables of the phases, the
//! breaker transitions and the SLA checks. Inline CSS and SVG only: no script, no external resource.

use super::report::*;

/// Renders `report` as a complete HTML document.
pub fn render(report: &Report) -> String {
    let title = format!("Chaos run: {}", escape(display_name(report)));
    [
        format!("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n"),
        format!("<style>{STYLE}</style>\n</head>\n<body>\n"),
        header(report),
        section("Latency and errors over time", &chart(report)),
        section("Phases", &phases_table(&report.phases)),
        section("Circuit breakers", &breakers_table(&report.breakers)),
        section("SLA", &format!("{}\n{}", sla_table(&report.sla), recovery(report))),
        "</body>\n</html>\n".to_string(),
    ]
    .concat()
}

/// The page's stylesheet: layout, tables, and the chart's colours by class.
const STYLE: &str = "
body { font: 14px/1.45 system-ui, sans-serif; color: #212529; max-width: 1000px; margin: 2em auto; padding: 0 1em; }
h1 { margin: 0; font-size: 1.8em; overflow-wrap: anywhere; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #dee2e6; }
header { display: flex; justify-content: space-between; align-items: flex-start; gap: 1em; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; margin: 0.8em 0 0; }
dt { color: #6c757d; }
dd { margin: 0; overflow-wrap: anywhere; }
.badge { font-size: 2.2em; font-weight: 700; color: #fff; padding: 0.15em 0.6em; border-radius: 0.3em; }
.badge.pass { background: #2f9e44; }
.badge.fail { background: #e03131; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 0.25em 0.6em; border-bottom: 1px solid #e9ecef; }
th { background: #f8f9fa; }
td.empty { color: #6c757d; font-style: italic; }
span.pass { color: #2f9e44; font-weight: 600; }
span.fail { color: #e03131; font-weight: 600; }
svg { width: 100%; height: auto; background: #fff; }
svg text { font: 11px system-ui, sans-serif; fill: #495057; }
svg .axis-label { font-size: 12px; fill: #212529; }
svg .grid { stroke: #e9ecef; }
svg .axis { stroke: #868e96; }
svg .series { fill: none; stroke-width: 1.8; stroke-linejoin: round; }
svg .p50 { stroke: #1c7ed6; }
svg .p95 { stroke: #7048e8; }
svg .p99 { stroke: #212529; }
svg .error-rate { stroke: #c2255c; stroke-dasharray: 6 4; }
svg rect.fault { fill: #e03131; fill-opacity: 0.13; }
svg rect.breaker-open { fill: #f76707; fill-opacity: 0.5; }
svg rect.breaker-half-open { fill: #fab005; fill-opacity: 0.4; }
svg text.fault-label { fill: #c92a2a; }
svg text.breaker-label { fill: #7f3a00; font-size: 10px; }
svg text.no-data { font-size: 14px; fill: #868e96; }
";

/// A `<section>` with a heading.
fn section(heading: &str, body: &str) -> String {
    format!("<section>\n<h2>{}</h2>\n{body}\n</section>\n", escape(heading))
}

/// The experiment, its load and the verdict.
fn header(report: &Report) -> String {
    let load = &report.load;
    let seed = report
        .seed
        .map_or_else(|| "no faults injected".to_string(), |s| s.to_string());
    let facts = [
        ("Target", report.target.clone()),
        ("Started", report.started_at.clone()),
        ("Duration", format!("{} s", seconds(report.duration_s))),
        (
            "Load",
            format!(
                "{} req/s, concurrency {}, {} for {} s",
                number(load.rate),
                load.concurrency,
                load.request,
                seconds(load.duration_s)
            ),
        ),
        ("Seed", seed),
    ];
    let facts: String = facts
        .iter()
        .map(|(term, value)| format!("<dt>{term}</dt><dd>{}</dd>\n", escape(value)))
        .collect();
    let (class, verdict) = if report.passed {
        ("pass", "PASS")
    } else {
        ("fail", "FAIL")
    };
    format!(
        "<header>\n<div>\n<h1>{}</h1>\n<dl>\n{facts}</dl>\n</div>\n\
         <div class=\"badge {class}\">{verdict}</div>\n</header>\n",
        escape(display_name(report))
    )
}

/// The experiment's name, or a stand-in when it has none.
fn display_name(report: &Report) -> &str {
    if report.name.trim().is_empty() {
        "unnamed experiment"
    } else {
        &report.name
    }
}

/// The phases: requests, errors and latency of each stretch of the run.
fn phases_table(phases: &[Phase]) -> String {
    let rows: Vec<Vec<String>> = phases
        .iter()
        .map(|p| {
            vec![
                escape(&p.name),
                format!("{}–{} s", seconds(p.start_s), seconds(p.end_s)),
                p.requests.to_string(),
                p.errors.to_string(),
                percent(p.error_rate),
                number(p.p50_ms),
                number(p.p95_ms),
                number(p.p99_ms),
                number(p.max_ms),
            ]
        })
        .collect();
    let headers = [
        "Phase",
        "Time",
        "Requests",
        "Errors",
        "Error rate",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
    ];
    table(&headers, &rows, "no phases")
}

/// Every breaker transition, in the order seen.
fn breakers_table(events: &[BreakerEvent]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                format!("{} s", seconds(e.t_s)),
                escape(&e.function),
                escape(&e.host),
                format!("{} → {}", escape(&e.from), escape(&e.to)),
            ]
        })
        .collect();
    table(
        &["Time", "Function", "Host", "Transition"],
        &rows,
        "no breaker transitions",
    )
}

/// The SLA targets and how the run did against each.
fn sla_table(checks: &[SlaCheck]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let verdict = if c.passed {
                "<span class=\"pass\">pass</span>"
            } else {
                "<span class=\"fail\">fail</span>"
            };
            vec![
                escape(&c.name),
                escape(&c.target),
                escape(&c.actual),
                verdict.to_string(),
            ]
        })
        .collect();
    table(&["Check", "Target", "Actual", "Result"], &rows, "no SLA targets")
}

/// How long the service took to come back after the faults.
fn recovery(report: &Report) -> String {
    let text = match report.recovery_s {
        Some(s) => format!("Recovered in {} s after the last fault window ended.", seconds(s)),
        None if report.faults.iter().any(|f| f.end_s.is_some()) => "Did not recover.".to_string(),
        None => "Did not recover: no fault window ended during the run.".to_string(),
    };
    format!("<p class=\"recovery\">{text}</p>")
}

/// A table of already-escaped cells; `empty` stands in a single row when there are none.
fn table(headers: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    let head: String = headers.iter().map(|h| format!("<th>{}</th>", escape(h))).collect();
    let body: String = if rows.is_empty() {
        format!(
            "<tr><td class=\"empty\" colspan=\"{}\">{}</td></tr>\n",
            headers.len(),
            escape(empty)
        )
    } else {
        rows.iter()
            .map(|cells| {
                let cells: String = cells.iter().map(|c| format!("<td>{c}</td>")).collect();
                format!("<tr>{cells}</tr>\n")
            })
            .collect()
    };
    format!("<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>")
}

// ---- The chart ----

// The SVG's size and the plot area's margins, in pixels.
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 64.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 46.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;
/// The height of one breaker strip along the top of the plot, and how many stack before they wrap.
const LANE_H: f64 = 14.0;
const MAX_LANES: usize = 4;

/// Maps run time, latency and error rate to pixels.
struct Scale {
    /// The run's end in seconds: the right edge.
    t_max: f64,
    /// The latency at the top edge, in milliseconds.
    ms_max: f64,
}

impl Scale {
    /// The run's length across; the highest latency, rounded up to a tick and at least 1 ms, up.
    fn new(report: &Report) -> Self {
        let ms_peak = report
            .timeline
            .iter()
            .flat_map(|s| [s.p50_ms, s.p95_ms, s.p99_ms])
            .filter(|ms| ms.is_finite())
            .fold(1.0, f64::max);
        let step = nice_step(ms_peak, 5.0);
        Scale {
            t_max: run_end(report).max(1.0),
            ms_max: (ms_peak / step).ceil() * step,
        }
    }

    fn x(&self, t_s: f64) -> f64 {
        LEFT + PLOT_W * unit(t_s / self.t_max)
    }

    fn y_ms(&self, ms: f64) -> f64 {
        TOP + PLOT_H * (1.0 - unit(ms / self.ms_max))
    }

    fn y_rate(&self, rate: f64) -> f64 {
        TOP + PLOT_H * (1.0 - unit(rate))
    }
}

/// The SVG chart: shading first, then grid and axes, then the series on top.
fn chart(report: &Report) -> String {
    let scale = Scale::new(report);
    let bands = breaker_bands(&report.breakers, run_end(report));
    let lanes = bands.iter().map(|b| b.lane + 1).max().unwrap_or(0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" role=\"img\" aria-label=\"latency percentiles and error rate over time\">\n"
    );
    svg += &fault_shading(report, &scale, lanes);
    svg += &bands.iter().map(|b| breaker_band(b, &scale)).collect::<String>();
    svg += &axes(&scale);
    svg += &series(report, &scale);
    if report.timeline.is_empty() {
        svg += &format!(
            "<text class=\"no-data\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">no requests recorded</text>\n",
            LEFT + PLOT_W / 2.0,
            TOP + PLOT_H / 2.0
        );
    }
    svg += &legend();
    svg + "</svg>"
}

/// The run's end: its duration, or the end of its last recorded second if that is later.
fn run_end(report: &Report) -> f64 {
    report
        .timeline
        .iter()
        .map(|s| s.t_s + 1.0)
        .fold(finite(report.duration_s), f64::max)
        .max(0.0)
}

/// Each fault window as a translucent red rectangle, labelled with its rule below the breaker strips.
fn fault_shading(report: &Report, scale: &Scale, lanes: usize) -> String {
    let end_of_run = run_end(report);
    report
        .faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (x0, x1) = (scale.x(f.start_s), scale.x(f.end_s.unwrap_or(end_of_run)));
            let label_y = TOP + lanes as f64 * LANE_H + 12.0 + (i % 3) as f64 * 13.0;
            let what = escape(&format!("{}: {} {}", f.rule, f.kind, f.target));
            format!(
                "<rect class=\"fault\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{PLOT_H}\">\
                 <title>{what}</title></rect>\n\
                 <text class=\"fault-label\" x=\"{:.1}\" y=\"{label_y:.1}\">{}</text>\n",
                (x1 - x0).max(0.0),
                x0 + 3.0,
                escape(&f.rule)
            )
        })
        .collect()
}

/// A breaker state that the chart shows as a band.
#[derive(Clone, Copy, PartialEq)]
enum Tripped {
    Open,
    HalfOpen,
}

impl Tripped {
    /// The state a transition's `to` names, if it is one drawn as a band.
    fn from_state(to: &str) -> Option<Self> {
        match to {
            "open" => Some(Tripped::Open),
            "half_open" => Some(Tripped::HalfOpen),
            _ => None,
        }
    }
}

/// A breaker open or half-open from `start_s` to `end_s`.
struct Band {
    function: String,
    host: String,
    state: Tripped,
    start_s: f64,
    end_s: f64,
    /// Which strip along the top of the plot: one per function and host.
    lane: usize,
}

/// When each breaker was open or half-open: a band starts at a transition into that state and ends at the
/// next transition of the same function and host into another state, or at `end_s`.
fn breaker_bands(events: &[BreakerEvent], end_s: f64) -> Vec<Band> {
    let mut sorted: Vec<&BreakerEvent> = events.iter().collect();
    sorted.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let mut bands: Vec<Band> = Vec::new();
    let mut ongoing: Vec<usize> = Vec::new(); // indices into `bands` not yet ended
    for e in sorted {
        let key = (e.function.as_str(), e.host.as_str());
        let lane = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
            keys.push(key);
            keys.len() - 1
        }) % MAX_LANES;
        let current = ongoing
            .iter()
            .position(|&i| (bands[i].function.as_str(), bands[i].host.as_str()) == key);
        if let Some(pos) = current {
            let band = &mut bands[ongoing[pos]];
            if Tripped::from_state(&e.to) == Some(band.state) {
                continue; // still in the same state
            }
            band.end_s = e.t_s;
            ongoing.swap_remove(pos);
        }
        if let Some(state) = Tripped::from_state(&e.to) {
            ongoing.push(bands.len());
            bands.push(Band {
                function: e.function.clone(),
                host: e.host.clone(),
                state,
                start_s: e.t_s,
                end_s: end_s.max(e.t_s), // until a later transition says otherwise
                lane,
            });
        }
    }
    merge_blips(bands)
}

/// Below this, a half-open spell is a blip: a probe that failed at once.
const BLIP_S: f64 = 0.05;

/// Drops half-open blips and joins the open bands they separated, so a breaker that probes and reopens
/// reads as one open band with one label.
fn merge_blips(bands: Vec<Band>) -> Vec<Band> {
    let mut out: Vec<Band> = Vec::with_capacity(bands.len());
    for band in bands {
        if band.state == Tripped::HalfOpen && band.end_s - band.start_s < BLIP_S {
            continue;
        }
        let joins = out
            .iter_mut()
            .rev()
            .find(|b| b.function == band.function && b.host == band.host);
        match joins {
            Some(prev)
                if prev.state == Tripped::Open && band.state == Tripped::Open && band.start_s - prev.end_s < BLIP_S =>
            {
                prev.end_s = band.end_s;
            }
            _ => out.push(band),
        }
    }
    out
}

/// A breaker band as a strip in its lane along the top of the plot; open ones are labelled.
fn breaker_band(band: &Band, scale: &Scale) -> String {
    let (x0, x1) = (scale.x(band.start_s), scale.x(band.end_s));
    let y = TOP + band.lane as f64 * LANE_H;
    let (class, state) = match band.state {
        Tripped::Open => ("breaker-open", "open"),
        Tripped::HalfOpen => ("breaker-half-open", "half-open"),
    };
    let what = escape(&format!("breaker {state}: {} ({})", band.host, band.function));
    let label = if band.state == Tripped::HalfOpen {
        String::new() // usually too short to hold one; the tooltip and the legend say what it is
    } else {
        format!(
            "<text class=\"breaker-label\" x=\"{:.1}\" y=\"{:.1}\">breaker open: {}</text>\n",
            x0 + 3.0,
            y + LANE_H - 3.5,
            escape(&band.host)
        )
    };
    format!(
        "<rect class=\"{class}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{LANE_H}\">\
         <title>{what}</title></rect>\n{label}",
        (x1 - x0).max(0.0)
    )
}

/// The grid, the three axes with their ticks, and the axis labels.
fn axes(scale: &Scale) -> String {
    let (bottom, right) = (TOP + PLOT_H, LEFT + PLOT_W);
    let mut svg = String::new();
    let ms_step = nice_step(scale.ms_max, 5.0);
    for ms in ticks(scale.ms_max, ms_step) {
        let y = scale.y_ms(ms);
        svg += &format!(
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\"/>\n\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            LEFT - 6.0,
            y + 4.0,
            tick_label(ms, ms_step)
        );
    }
    for pct in [0.0, 25.0, 50.0, 75.0, 100.0] {
        svg += &format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"start\">{pct}%</text>\n",
            right + 6.0,
            scale.y_rate(pct / 100.0) + 4.0
        );
    }
    let t_step = nice_step(scale.t_max, 10.0);
    for t in ticks(scale.t_max, t_step) {
        let x = scale.x(t);
        svg += &format!(
            "<line class=\"axis\" x1=\"{x:.1}\" y1=\"{bottom}\" x2=\"{x:.1}\" y2=\"{}\"/>\n\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            bottom + 4.0,
            bottom + 16.0,
            tick_label(t, t_step)
        );
    }
    svg += &format!(
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\"/>\n\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{bottom}\"/>\n\
         <line class=\"axis\" x1=\"{right}\" y1=\"{TOP}\" x2=\"{right}\" y2=\"{bottom}\"/>\n\
         <text class=\"axis-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">time (s)</text>\n\
         <text class=\"axis-label\" transform=\"translate(16 {mid}) rotate(-90)\" text-anchor=\"middle\">\
         latency (ms)</text>\n\
         <text class=\"axis-label\" transform=\"translate({} {mid}) rotate(90)\" text-anchor=\"middle\">\
         error rate (%)</text>\n",
        LEFT + PLOT_W / 2.0,
        HEIGHT - 8.0,
        WIDTH - 14.0,
        mid = TOP + PLOT_H / 2.0,
    );
    svg
}

/// The p50, p95 and p99 polylines against the left axis and the error rate against the right one.
fn series(report: &Report, scale: &Scale) -> String {
    let latency = |class: &str, ms: fn(&Second) -> f64| {
        polyline(
            class,
            report.timeline.iter().map(|s| (scale.x(s.t_s), scale.y_ms(ms(s)))),
        )
    };
    let error_rate = report.timeline.iter().map(|s| {
        let rate = if s.requests == 0 {
            0.0
        } else {
            s.errors as f64 / s.requests as f64
        };
        (scale.x(s.t_s), scale.y_rate(rate))
    });
    [
        latency("p50", |s| s.p50_ms),
        latency("p95", |s| s.p95_ms),
        latency("p99", |s| s.p99_ms),
        polyline("error-rate", error_rate),
    ]
    .concat()
}

/// One series as a `<polyline>` of pixel coordinates.
fn polyline(class: &str, points: impl Iterator<Item = (f64, f64)>) -> String {
    let points: Vec<String> = points.map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    format!("<polyline class=\"series {class}\" points=\"{}\"/>\n", points.join(" "))
}

/// How the legend shows a colour: as a line (a series) or as an area (shading).
#[derive(Clone, Copy, PartialEq)]
enum Swatch {
    Line,
    Area,
}

/// What each colour means, in a row above the plot. Swatches carry the class `swatch` besides the one that
/// colours them, so the shading's own shapes can be told apart.
fn legend() -> String {
    let entries = [
        (Swatch::Line, "series p50", "p50"),
        (Swatch::Line, "series p95", "p95"),
        (Swatch::Line, "series p99", "p99"),
        (Swatch::Line, "series error-rate", "error rate"),
        (Swatch::Area, "fault", "fault window"),
        (Swatch::Area, "breaker-open", "breaker open"),
        (Swatch::Area, "breaker-half-open", "breaker half-open"),
    ];
    let mut x = LEFT;
    let mut svg = String::from("<g class=\"legend\">\n");
    for (swatch, class, label) in entries {
        svg += &match swatch {
            Swatch::Line => format!(
                "<line class=\"swatch {class}\" x1=\"{x}\" y1=\"14\" x2=\"{}\" y2=\"14\"/>",
                x + 22.0
            ),
            Swatch::Area => format!("<rect class=\"swatch {class}\" x=\"{x}\" y=\"8\" width=\"22\" height=\"12\"/>"),
        };
        svg += &format!("<text x=\"{}\" y=\"18\">{label}</text>\n", x + 27.0);
        x += 36.0 + 7.0 * label.len() as f64;
    }
    svg + "</g>\n"
}

/// A round step (1, 2 or 5 times a power of ten) that cuts `0..max` into about `count` pieces.
fn nice_step(max: f64, count: f64) -> f64 {
    let raw = finite(max).max(f64::MIN_POSITIVE) / count;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(raw);
    if step.is_finite() && step > 0.0 { step } else { 1.0 }
}

/// The multiples of `step` from 0 to `max`.
fn ticks(max: f64, step: f64) -> impl Iterator<Item = f64> {
    let count = ((max / step + 1e-9).floor() as usize).min(100);
    (0..=count).map(move |i| i as f64 * step)
}

/// A tick's value with as many decimals as its step needs.
fn tick_label(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil().clamp(0.0, 6.0) as usize
    };
    format!("{value:.decimals$}")
}

/// A measurement with sensible precision: whole numbers from 100, one decimal from 10, else two.
fn number(x: f64) -> String {
    let decimals = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    fixed(x, decimals)
}

/// Seconds: whole from 100, else one decimal.
fn seconds(x: f64) -> String {
    fixed(x, if x.abs() >= 100.0 { 0 } else { 1 })
}

/// `x` with `decimals` decimals; 0 as `0`, and a dash for NaN or infinity.
fn fixed(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        "–".to_string()
    } else if x == 0.0 {
        "0".to_string()
    } else {
        format!("{x:.decimals$}")
    }
}

/// A fraction as a percentage with one decimal.
fn percent(fraction: f64) -> String {
    if fraction.is_finite() {
        format!("{:.1}%", fraction * 100.0)
    } else {
        "–".to_string()
    }
}

/// `x`, or 0 when it is NaN or infinite.
fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// `x` clamped to `0..=1`, NaN as 0.
fn unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// `s` safe as HTML text and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const NAME: &str = "kill <b>&\"db\"";

    fn second(t_s: f64, requests: u64, errors: u64, p50_ms: f64) -> Second {
        Second {
            t_s,
            requests,
            errors,
            p50_ms,
            p95_ms: p50_ms * 2.0,
            p99_ms: p50_ms * 3.0,
        }
    }

    fn phase(name: &str, start_s: f64, end_s: f64, requests: u64, errors: u64) -> Phase {
        let error_rate = errors as f64 / requests as f64;
        Phase {
            name: name.into(),
            start_s,
            end_s,
            requests,
            errors,
            error_rate,
            p50_ms: 12.5,
            p95_ms: 40.0,
            p99_ms: 180.25,
            max_ms: 950.0,
        }
    }

    fn transition(t_s: f64, from: &str, to: &str) -> BreakerEvent {
        BreakerEvent {
            t_s,
            function: "api".into(),
            host: "db.internal:5432".into(),
            from: from.into(),
            to: to.into(),
        }
    }

    fn sla(name: &str, target: &str, actual: &str, passed: bool) -> SlaCheck {
        SlaCheck {
            name: name.into(),
            target: target.into(),
            actual: actual.into(),
            passed,
        }
    }

    /// Ten seconds of load, a fault from 3 s to 6 s, a breaker open 4–7 s, half-open 7–8 s.
    fn sample() -> Report {
        let timeline = (0..10)
            .map(|t| {
                let faulty = (3..6).contains(&t);
                second(
                    t as f64,
                    50,
                    if faulty { 20 } else { 0 },
                    if faulty { 90.0 } else { 10.0 },
                )
            })
            .collect();
        Report {
            name: NAME.into(),
            target: "http://127.0.0.1:3000/orders?a=1&b=2".into(),
            started_at: "2024-05-01T12:00:00Z".into(),
            duration_s: 10.0,
            load: Load {
                rate: 50.0,
                concurrency: 8,
                duration_s: 10.0,
                request: "GET /orders".into(),
            },
            seed: Some(42),
            faults: vec![FaultWindow {
                rule: "db-down".into(),
                target: "outbound db.internal:5432".into(),
                kind: "error 100%".into(),
                start_s: 3.0,
                end_s: Some(6.0),
            }],
            timeline,
            phases: vec![
                phase("before faults", 0.0, 3.0, 150, 0),
                phase("during db-down", 3.0, 6.0, 150, 60),
            ],
            breakers: vec![
                transition(4.0, "closed", "open"),
                transition(7.0, "open", "half_open"),
                transition(8.0, "half_open", "closed"),
            ],
            recovery_s: Some(2.5),
            sla: vec![
                sla("p99", "250ms", "270.0ms", false),
                sla("error_rate", "5%", "13.3%", true),
            ],
            passed: false,
        }
    }

    fn empty() -> Report {
        Report {
            name: String::new(),
            target: String::new(),
            started_at: String::new(),
            duration_s: 0.0,
            load: Load {
                rate: 0.0,
                concurrency: 0,
                duration_s: 0.0,
                request: String::new(),
            },
            seed: None,
            faults: vec![],
            timeline: vec![],
            phases: vec![],
            breakers: vec![],
            recovery_s: None,
            sla: vec![],
            passed: true,
        }
    }

    #[test]
    fn a_probe_that_fails_at_once_leaves_one_open_band() {
        let events = [
            transition(4.0, "closed", "open"),
            transition(6.0, "open", "half_open"),
            transition(6.001, "half_open", "open"),
            transition(9.0, "open", "half_open"),
            transition(9.5, "half_open", "closed"),
        ];
        let bands = breaker_bands(&events, 12.0);
        let spans: Vec<(f64, f64, bool)> = bands
            .iter()
            .map(|b| (b.start_s, b.end_s, b.state == Tripped::Open))
            .collect();
        assert_eq!(spans, [(4.0, 9.0, true), (9.0, 9.5, false)]);
    }

    #[test]
    fn draws_the_chart() {
        let html = render(&sample());
        assert!(html.contains("<svg"));
        assert_eq!(html.matches("<polyline").count(), 4, "p50, p95, p99 and the error rate");
        for class in ["series p50", "series p95", "series p99", "series error-rate"] {
            assert_eq!(
                html.matches(&format!("<polyline class=\"{class}\"")).count(),
                1,
                "{class}"
            );
        }
        assert_eq!(html.matches("<rect class=\"fault\"").count(), 1);
        assert!(html.contains(">db-down</text>"), "the fault window is labelled");
        assert_eq!(html.matches("<rect class=\"breaker-open\"").count(), 1);
        assert_eq!(html.matches("<rect class=\"breaker-half-open\"").count(), 1);
        assert!(html.contains("breaker open: db.internal:5432</text>"));
        assert!(html.contains("latency (ms)") && html.contains("error rate (%)") && html.contains("time (s)"));
        assert!(
            !html.contains("NaN") && !html.contains("inf"),
            "finite coordinates only"
        );
    }

    #[test]
    fn shades_the_fault_and_the_open_breaker_where_they_were() {
        let html = render(&sample());
        let scale = Scale::new(&sample());
        let (x3, x4, x6, x7) = (scale.x(3.0), scale.x(4.0), scale.x(6.0), scale.x(7.0));
        assert!(html.contains(&format!(
            "class=\"fault\" x=\"{x3:.1}\" y=\"{TOP}\" width=\"{:.1}\"",
            x6 - x3
        )));
        assert!(html.contains(&format!(
            "class=\"breaker-open\" x=\"{x4:.1}\" y=\"{TOP:.1}\" width=\"{:.1}\"",
            x7 - x4
        )));
    }

    #[test]
    fn escapes_the_report_strings() {
        let html = render(&sample());
        assert!(!html.contains(NAME));
        assert!(!html.contains("<b>"));
        assert!(html.contains("<h1>kill &lt;b&gt;&amp;&quot;db&quot;</h1>"));
        assert!(html.contains("<title>Chaos run: kill &lt;b&gt;&amp;&quot;db&quot;</title>"));
        assert!(html.contains("orders?a=1&amp;b=2"));
    }

    #[test]
    fn lists_the_header_and_the_tables() {
        let html = render(&sample());
        assert!(html.contains("<div class=\"badge fail\">FAIL</div>"));
        assert!(html.contains("<dd>50.0 req/s, concurrency 8, GET /orders for 10.0 s</dd>"));
        assert!(html.contains("<dt>Seed</dt><dd>42</dd>"));
        assert!(html.contains(
            "<tr><td>during db-down</td><td>3.0–6.0 s</td><td>150</td><td>60</td><td>40.0%</td>\
             <td>12.5</td><td>40.0</td><td>180</td><td>950</td></tr>"
        ));
        assert!(html.contains("<td>before faults</td>"));
        assert!(html.contains("<tr><td>4.0 s</td><td>api</td><td>db.internal:5432</td><td>closed → open</td></tr>"));
        assert!(html.contains("<td>half_open → closed</td>"));
        assert!(
            html.contains(
                "<tr><td>p99</td><td>250ms</td><td>270.0ms</td><td><span class=\"fail\">fail</span></td></tr>"
            )
        );
        assert!(html.contains(
            "<tr><td>error_rate</td><td>5%</td><td>13.3%</td><td><span class=\"pass\">pass</span></td></tr>"
        ));
        assert!(html.contains("Recovered in 2.5 s"));
    }

    #[test]
    fn says_when_the_service_did_not_recover() {
        let report = Report {
            recovery_s: None,
            ..sample()
        };
        assert!(render(&report).contains("Did not recover."));
    }

    #[test]
    fn renders_an_empty_report() {
        let html = render(&empty());
        assert!(html.contains("<svg"));
        assert!(html.contains("<div class=\"badge pass\">PASS</div>"));
        assert!(html.contains("<dd>no faults injected</dd>"));
        assert!(html.contains("<h1>unnamed experiment</h1>"));
        assert!(html.contains("no requests recorded"));
        assert!(html.contains("no breaker transitions"));
        assert!(!html.contains("<rect class=\"fault\"") && !html.contains("<rect class=\"breaker-open\""));
        assert!(!html.contains("NaN") && !html.contains("inf"));
    }

    #[test]
    fn survives_odd_numbers_and_long_runs() {
        let mut report = sample();
        report.duration_s = 7200.0;
        report.timeline = (0..7200).map(|t| second(t as f64, 0, 0, 0.0)).collect();
        report.timeline.push(second(7200.0, 3, 3, f64::NAN));
        report.faults[0].end_s = None;
        report.breakers.truncate(1);
        report.phases[0].error_rate = f64::NAN;
        let html = render(&report);
        assert!(!html.contains("NaN") && !html.contains("inf"));
        assert_eq!(html.matches("<rect class=\"breaker-open\"").count(), 1);
        // The fault and the breaker last to the end of the run: the plot's right edge.
        let scale = Scale::new(&report);
        let (x3, x4, right) = (scale.x(3.0), scale.x(4.0), LEFT + PLOT_W);
        assert!(html.contains(&format!(
            "class=\"fault\" x=\"{x3:.1}\" y=\"{TOP}\" width=\"{:.1}\"",
            right - x3
        )));
        assert!(html.contains(&format!(
            "class=\"breaker-open\" x=\"{x4:.1}\" y=\"{TOP:.1}\" width=\"{:.1}\"",
            right - x4
        )));
        assert!(html.contains(">7000</text>"), "time ticks stay readable");
    }

    #[test]
    fn bands_follow_each_breaker_separately() {
        let mut other = transition(5.0, "closed", "open");
        other.host = "cache:6379".into();
        let events = [
            transition(4.0, "closed", "open"),
            other,
            transition(4.5, "open", "open"),
            transition(6.0, "open", "closed"),
        ];
        let bands = breaker_bands(&events, 10.0);
        let spans: Vec<(&str, f64, f64, usize)> = bands
            .iter()
            .map(|b| (b.host.as_str(), b.start_s, b.end_s, b.lane))
            .collect();
        assert_eq!(spans, [("db.internal:5432", 4.0, 6.0, 0), ("cache:6379", 5.0, 10.0, 1)]);
    }

    #[test]
    fn picks_round_ticks() {
        assert_eq!(nice_step(1.0, 5.0), 0.2);
        assert_eq!(nice_step(270.0, 5.0), 100.0);
        assert_eq!(nice_step(7200.0, 10.0), 1000.0);
        assert_eq!(nice_step(0.0, 5.0), nice_step(f64::MIN_POSITIVE, 5.0));
        assert_eq!(
            ticks(1.0, 0.2).map(|t| tick_label(t, 0.2)).collect::<Vec<_>>(),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        assert_eq!(number(0.0), "0");
        assert_eq!(number(4.256), "4.26");
        assert_eq!(number(1234.5), "1234");
        assert_eq!(number(f64::NAN), "–");
        assert_eq!(
            (seconds(3.0), seconds(2100.4), seconds(0.0)),
            ("3.0".into(), "2100".into(), "0".into())
        );
    }

    /// Where `scripts/setup` installs Chromium.
    const CHROMIUM: &str = "/usr/bin/chromium";

    /// Runs headless Chromium with `args` and the page, its output to `stdout`; fails after a minute.
    fn chromium(dir: &Path, args: &[&str], page: &Path, stdout: &Path) {
        let mut child = Command::new(CHROMIUM)
            .args(["--headless=new", "--no-sandbox", "--disable-gpu"])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .args(args)
            .arg(format!("file://{}", page.display()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(stdout).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                panic!("chromium {args:?} took over a minute");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let stderr = std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
        assert!(status.success(), "chromium {args:?} failed ({status}): {stderr}");
    }

    #[test]
    fn renders_in_headless_chromium() {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} not found: this test draws the page in headless Chromium; `scripts/setup` installs it \
             (Debian package `chromium`)"
        );
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("report.html");
        std::fs::write(&page, render(&sample())).unwrap();

        let shot: PathBuf = dir.path().join("shot.png");
        let screenshot = format!("--screenshot={}", shot.display());
        chromium(
            dir.path(),
            &[&screenshot, "--window-size=1100,1400"],
            &page,
            &dir.path().join("out.txt"),
        );
        let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        assert!(
            png.len() > 5_000,
            "a {} byte screenshot is too small to hold the page",
            png.len()
        );

        let dom_file = dir.path().join("dom.html");
        chromium(dir.path(), &["--dump-dom"], &page, &dom_file);
        let dom = std::fs::read_to_string(&dom_file).unwrap();
        assert!(dom.contains("<svg"), "no chart in the DOM: {dom}");
        assert!(dom.contains("breaker-open"), "no breaker band in the DOM");
        assert!(dom.contains("db-down"), "no fault label in the DOM");
    }
}
