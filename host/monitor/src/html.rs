//! The report as one self-contained HTML page: inline CSS and SVG charts,
//! no scripts, nothing fetched, so it opens offline in any browser and can
//! be attached to a ticket.

use crate::drift::ColumnDrift;
use crate::report::Report;
use crate::rollouts;
use std::fmt::Write;

const WIDTH: f64 = 420.0;
const HEIGHT: f64 = 150.0;
const TRAINING: &str = "#4c78a8";
const SERVING: &str = "#f58518";

/// The report as an HTML document.
pub fn render(report: &Report) -> String {
    let mut h = String::new();
    let title = format!("{}:{} — monitoring", report.model, report.version);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>",
        esc(&title)
    );
    let _ = write!(h, "<h1>{}</h1>", esc(&title));
    let status = if !report.drifted.is_empty() || report.degraded {
        ("alert", "attention needed")
    } else {
        ("ok", "no drift over the thresholds")
    };
    let _ = write!(
        h,
        "<p class=\"status {}\">{}</p><table class=\"meta\">\
         <tr><th>requested</th><td>{}</td></tr>\
         <tr><th>training rows</th><td>{} ({})</td></tr>\
         <tr><th>served rows</th><td>{} ({}; {} to {})</td></tr>\
         <tr><th>thresholds</th><td>Jensen–Shannon &gt; {} (numeric), L-infinity &gt; {} (categorical)</td></tr>\
         <tr><th>generated</th><td>{}</td></tr></table>",
        status.0,
        status.1,
        esc(&report.reference),
        report.training.rows,
        esc(&report.training.description),
        report.serving.rows,
        esc(&report.serving.description),
        esc(report.serving.from.as_deref().unwrap_or("?")),
        esc(report.serving.to.as_deref().unwrap_or("?")),
        report.thresholds.numeric,
        report.thresholds.categorical,
        esc(&report.generated_at)
    );
    if !report.alerts.is_empty() {
        h.push_str("<h2>Findings</h2><ul class=\"alerts\">");
        for a in &report.alerts {
            let _ = write!(h, "<li>{}</li>", esc(a));
        }
        h.push_str("</ul>");
    }
    if let Some(live) = &report.live {
        h.push_str("<h2>Live quality</h2><table class=\"scores\"><tr><th>metric</th><th>evaluation</th><th>live</th></tr>");
        for name in [
            "accuracy",
            "f1",
            "precision",
            "recall",
            "roc_auc",
            "log_loss",
            "rmse",
            "mae",
            "r2",
        ] {
            if let Some(v) = live.metrics.get(name).and_then(|v| v.as_f64()) {
                let e = live.evaluation.get(name).and_then(|v| v.as_f64());
                let bad = live.degraded.contains_key(name);
                let _ = write!(
                    h,
                    "<tr{}><td>{name}</td><td>{}</td><td>{v:.4}</td></tr>",
                    if bad { " class=\"drifted\"" } else { "" },
                    e.map(|e| format!("{e:.4}")).unwrap_or_else(|| "–".into())
                );
            }
        }
        let _ = write!(
            h,
            "</table><p>{} served rows had a label.</p>",
            live.joined_rows
        );
    }
    h.push_str(&rollouts_section(report));
    h.push_str("<h2>Drift scores</h2><table class=\"scores\"><tr><th>column</th><th>kind</th><th>score</th><th>Jensen–Shannon</th><th>L-infinity</th><th>PSI</th><th>missing (train / served)</th><th>out of domain</th></tr>");
    for d in report.features.iter().chain(&report.predictions) {
        let _ = write!(
            h,
            "<tr{}><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.1}% / {:.1}%</td><td>{:.1}%</td></tr>",
            if d.drifted { " class=\"drifted\"" } else { "" },
            esc(&d.name),
            d.kind,
            d.score,
            d.jensen_shannon,
            d.l_infinity,
            d.psi,
            100.0 * d.missing_reference,
            100.0 * d.missing_served,
            100.0 * d.out_of_domain
        );
    }
    h.push_str("</table>");
    if report.over_time.len() > 1 {
        h.push_str("<h2>Drift over time</h2>");
        h.push_str(&over_time_chart(report));
    }
    let _ = write!(
        h,
        "<h2>Distributions</h2><p class=\"legend\"><span style=\"background:{TRAINING}\"></span> training <span style=\"background:{SERVING}\"></span> served</p><div class=\"grid\">"
    );
    for d in &report.features {
        h.push_str(&histogram(d, "feature-chart"));
    }
    for d in &report.predictions {
        h.push_str(&histogram(d, "prediction-chart"));
    }
    h.push_str("</div></body></html>\n");
    h
}

/// The model's rollouts: each with its plan, then a row per decision with
/// its evidence and tests (rows of rollbacks and aborts marked).
fn rollouts_section(report: &Report) -> String {
    let mut s = String::from("<h2>Rollouts</h2>");
    if report.rollouts.is_empty() {
        let _ = write!(s, "<p>{} has had no rollouts.</p>", esc(&report.model));
        return s;
    }
    for history in &report.rollouts {
        let r = &history.rollout;
        let _ = write!(
            s,
            "<div class=\"rollout\" data-rollout=\"{}\"><p><strong>{}</strong><br><small>{}</small><br><small>plan: {}</small>",
            esc(&r.id),
            esc(&rollouts::headline(r)),
            esc(&rollouts::timeline(r)),
            esc(&rollouts::plan_summary(&r.plan))
        );
        if !r.reason.is_empty() {
            let _ = write!(s, "<br><small>{}</small>", esc(&r.reason));
        }
        s.push_str("</p>");
        if history.decisions.is_empty() {
            s.push_str("<p>No decision yet.</p></div>");
            continue;
        }
        s.push_str("<table class=\"scores decisions\"><tr><th>when</th><th>stage</th><th>decision</th><th>by</th><th>evidence</th></tr>");
        for d in &history.decisions {
            let bad = matches!(d.decision.as_str(), "rollback" | "abort");
            let _ = write!(
                s,
                "<tr data-stage=\"{}\" data-decision=\"{}\"{}><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}",
                d.stage + 1,
                esc(&d.decision),
                if bad { " class=\"drifted\"" } else { "" },
                esc(&d.at),
                d.stage + 1,
                rollouts::stage_share(&r.plan, d.stage)
                    .map(|x| format!(" ({x}%)"))
                    .unwrap_or_default(),
                esc(&d.decision),
                esc(&d.holder),
                esc(&rollouts::evidence_line(&d.evidence).unwrap_or_default())
            );
            for t in rollouts::test_lines(&d.evidence) {
                let _ = write!(s, "<br><small>{}</small>", esc(&t));
            }
            s.push_str("</td></tr>");
        }
        s.push_str("</table></div>");
    }
    s
}

/// Training and served shares per bin, side by side.
fn histogram(d: &ColumnDrift, class: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<figure class=\"{class}{}\" data-column=\"{}\"><figcaption>{} <small>score {:.3}</small></figcaption>",
        if d.drifted { " drifted" } else { "" },
        esc(&d.name),
        esc(&d.name),
        d.score
    );
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {}\" width=\"{WIDTH}\" height=\"{}\" role=\"img\">",
        HEIGHT + 20.0,
        HEIGHT + 20.0
    );
    let n = d.bins.len().max(1) as f64;
    let top = d
        .reference
        .iter()
        .chain(&d.served)
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1e-9);
    let slot = WIDTH / n;
    let bar = (slot / 2.0 - 1.0).max(0.5);
    for (i, label) in d.bins.iter().enumerate() {
        for (k, (shares, colour)) in [(&d.reference, TRAINING), (&d.served, SERVING)]
            .iter()
            .enumerate()
        {
            let v = shares.get(i).copied().unwrap_or(0.0);
            let height = v / top * HEIGHT;
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{height:.1}\" fill=\"{colour}\"><title>{}: {} {:.1}%</title></rect>",
                i as f64 * slot + k as f64 * (bar + 1.0),
                HEIGHT - height,
                esc(label),
                if k == 0 { "training" } else { "served" },
                100.0 * v
            );
        }
    }
    let _ = write!(
        s,
        "<line x1=\"0\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\" stroke=\"#999\"/><text x=\"0\" y=\"{}\" class=\"axis\">{}</text><text x=\"{WIDTH}\" y=\"{}\" class=\"axis\" text-anchor=\"end\">{}</text></svg></figure>",
        HEIGHT + 14.0,
        esc(d.bins.first().map(String::as_str).unwrap_or("")),
        HEIGHT + 14.0,
        esc(d.bins.last().map(String::as_str).unwrap_or(""))
    );
    s
}

/// One line per column: its drift score in each window.
fn over_time_chart(report: &Report) -> String {
    let w = 860.0;
    let h = 220.0;
    let windows = &report.over_time;
    let mut columns: Vec<&String> = windows[0].scores.keys().collect();
    columns.sort();
    let top = windows
        .iter()
        .flat_map(|x| x.scores.values())
        .fold(report.thresholds.numeric, |a, &b| a.max(b))
        * 1.1;
    let x = |i: usize| 40.0 + i as f64 * (w - 60.0) / (windows.len() - 1) as f64;
    let y = |v: f64| 10.0 + (1.0 - v / top) * (h - 40.0);
    let mut s = format!(
        "<svg class=\"over-time\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">"
    );
    let t = y(report.thresholds.numeric);
    let _ = write!(
        s,
        "<line x1=\"40\" y1=\"{t:.1}\" x2=\"{}\" y2=\"{t:.1}\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/><text x=\"42\" y=\"{:.1}\" class=\"axis\">threshold {}</text>",
        w - 20.0,
        t - 3.0,
        report.thresholds.numeric
    );
    for (k, c) in columns.iter().enumerate() {
        let points: Vec<String> = windows
            .iter()
            .enumerate()
            .map(|(i, win)| format!("{:.1},{:.1}", x(i), y(*win.scores.get(*c).unwrap_or(&0.0))))
            .collect();
        let drifted = report.drifted.contains(c);
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" points=\"{}\"><title>{}</title></polyline>",
            if drifted {
                SERVING
            } else {
                PALETTE[k % PALETTE.len()]
            },
            if drifted { 2.5 } else { 1.0 },
            points.join(" "),
            esc(c)
        );
    }
    let _ = write!(
        s,
        "<text x=\"40\" y=\"{}\" class=\"axis\">{}</text><text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"end\">{}</text></svg>",
        h - 8.0,
        esc(&windows[0].from),
        w - 20.0,
        h - 8.0,
        esc(&windows[windows.len() - 1].to)
    );
    s
}

const PALETTE: &[&str] = &["#9ecae1", "#a1d99b", "#bcbddc", "#c7c7c7", "#fdd0a2"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse;font-size:.9em}td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left}\
tr.drifted td{background:#fde0dd}.status{font-weight:bold;padding:.4em .8em;display:inline-block;border-radius:4px}\
.status.ok{background:#e5f5e0}.status.alert{background:#fde0dd}\
.grid{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;border:1px solid #eee;padding:.5em}\
figure.drifted{border-color:#d62728}figcaption{font-size:.9em;margin-bottom:.3em}\
.axis{font-size:10px;fill:#666}.rollout{margin-bottom:1em}table.decisions td{vertical-align:top}.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Source;
    use crate::rollouts::RolloutHistory;
    use sluice_store::rollout::{Rollout, RolloutDecision};

    fn report(rollouts: Vec<RolloutHistory>) -> Report {
        let source = Source {
            description: "d".into(),
            rows: 0,
            from: None,
            to: None,
        };
        Report {
            model: "m".into(),
            version: 2,
            reference: "m@production".into(),
            generated_at: "t".into(),
            thresholds: Default::default(),
            training: source.clone(),
            serving: source,
            features: vec![],
            predictions: vec![],
            over_time: vec![],
            live: None,
            drifted: vec![],
            degraded: false,
            alerts: vec![],
            rollouts,
        }
    }

    #[test]
    fn rollouts_are_listed_with_each_decision_and_its_evidence_escaped() {
        let rollout = Rollout {
            id: "m-3-x".into(),
            name: "m".into(),
            alias: "production".into(),
            baseline: 2,
            candidate: 3,
            plan: serde_json::json!({"steps": [20.0, 50.0], "window_ms": 1000}),
            stage: 0,
            share: 0.0,
            state: "rolled-back".into(),
            started_at: "t0".into(),
            stage_started_at: "t0".into(),
            updated_at: "t1".into(),
            who: "ann".into(),
            reason: "rolled back at stage 1 (20%): <bad>".into(),
        };
        let decision = RolloutDecision {
            rollout_id: "m-3-x".into(),
            stage: 0,
            at: "t1".into(),
            decision: "rollback".into(),
            evidence: serde_json::json!({
                "candidate": {"version": 3, "requests": 40, "errors_4xx": 40, "errors_5xx": 0, "error_rate": 1.0},
                "baseline": {"version": 2, "requests": 160, "errors_4xx": 0, "errors_5xx": 0, "error_rate": 0.0},
                "tests": [{"criterion": "error-rate", "passed": false, "detail": "a < b"}],
            }),
            holder: "sluice rollout (ann)".into(),
        };
        let page = render(&report(vec![RolloutHistory {
            rollout,
            decisions: vec![decision],
        }]));
        assert!(page.contains("<h2>Rollouts</h2>"), "{page}");
        assert!(page.contains("data-rollout=\"m-3-x\""));
        assert!(page.contains(
            "<tr data-stage=\"1\" data-decision=\"rollback\" class=\"drifted\"><td>t1</td><td>1 (20%)</td><td>rollback</td>"
        ));
        assert!(page.contains("candidate v3: 40 requests, 40 errors (100.00%)"));
        assert!(page.contains("error-rate FAILED: a &lt; b"));
        assert!(page.contains("(20%): &lt;bad&gt;"));
        assert!(!page.contains("<bad>"));
        let empty = render(&report(vec![]));
        assert!(empty.contains("<p>m has had no rollouts.</p>"));
    }
}
