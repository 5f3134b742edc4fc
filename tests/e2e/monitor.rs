//! Monitoring, end to end: traffic is served and logged by `sluice serve`,
//! then `sluice monitor` compares it with the training rows. Unshifted
//! traffic is not flagged, shifted traffic is (on the shifted columns
//! only); true labels fed back give live metrics, and wrong predictions
//! show as degradation; the HTML report renders in headless Chromium with
//! one chart per feature.

use crate::serve::{Data, Server, data, http, trained_store};
use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Sends every row of the data set in requests of ten rows (ids
/// `PREFIX-K`) to the server at `addr` (`sluice serve` or `sluice-edge
/// serve`), the columns in `shifted` multiplied by `factor`.
pub(crate) fn send(addr: &str, data: &Data, prefix: &str, shifted: &[&str], factor: f64) {
    let mut d = Data {
        features: data.features.clone(),
        rows: data.rows.clone(),
    };
    for (j, name) in d.features.iter().enumerate() {
        if shifted.contains(&name.as_str()) {
            for row in &mut d.rows {
                row[j] *= factor;
            }
        }
    }
    for k in (0..d.rows.len()).step_by(10) {
        let end = (k + 10).min(d.rows.len());
        let body = d.infer_body(k..end, Some(&format!("{prefix}-{k}")));
        let (status, body) = http(
            addr,
            "POST",
            "/v2/models/breast-cancer/infer",
            body.to_string().as_bytes(),
            false,
        );
        assert_eq!(status, 200, "{body}");
    }
}

pub(crate) fn monitor(store: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "monitor",
        "--model",
        "breast-cancer@production",
        "--store",
        store.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn now() -> String {
    // The server stamps requests in UTC with milliseconds; a second's
    // margin keeps earlier requests out.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.000Z"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn column<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["features"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["predictions"].as_array().unwrap())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name} in the report"))
}

#[test]
fn shifted_traffic_is_flagged_unshifted_is_not_and_feedback_gives_live_quality() {
    let (dir, store) = trained_store(false);
    let data = data();

    // Before any traffic: nothing to compare, said plainly.
    let r = monitor(&store, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no logged requests of breast-cancer:1"),
        "{}",
        r.stderr
    );

    let server = Server::production(&store);
    send(&server.addr, &data, "plain", &[], 1.0);
    assert_eq!(server.stop().0, 0);

    let r = monitor(&store, &["--json", "--fail-on-alert"]);
    assert_eq!(
        r.code, 0,
        "unshifted traffic must not alert: {}{}",
        r.stdout, r.stderr
    );
    let report = r.json();
    assert_eq!(report["serving"]["rows"], data.rows.len());
    assert_eq!(report["features"].as_array().unwrap().len(), 30);
    assert_eq!(report["drifted"], serde_json::json!([]));
    assert!(
        report["training"]["description"]
            .as_str()
            .unwrap()
            .ends_with("/transform/train")
    );
    assert!(
        column(&report, "mean_radius")["jensen_shannon"]
            .as_f64()
            .unwrap()
            < 0.02
    );

    // Shifted traffic, monitored on its own with --since.
    let since = now();
    let server = Server::production(&store);
    send(
        &server.addr,
        &data,
        "shifted",
        &["mean_radius", "mean_texture"],
        1.6,
    );
    assert_eq!(server.stop().0, 0);
    let html = dir.path().join("report.html");
    let r = monitor(
        &store,
        &[
            "--since",
            &since,
            "--json",
            "--fail-on-alert",
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.json();
    assert_eq!(report["serving"]["rows"], data.rows.len());
    let drifted: Vec<&str> = report["drifted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(drifted.contains(&"mean_radius"), "{drifted:?}");
    let texture = column(&report, "mean_texture");
    assert!(texture["drifted"].as_bool().unwrap());
    assert!(texture["psi"].as_f64().unwrap() > 0.25);
    assert!(texture["out_of_domain"].as_f64().unwrap() > 0.05);
    assert!(
        !column(&report, "worst_symmetry")["drifted"]
            .as_bool()
            .unwrap()
    );
    assert!(report["over_time"].as_array().unwrap().len() > 1);

    // The page: one chart per feature, no scripts, opens offline.
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<figure class=\"feature-chart").count(), 30);
    assert!(page.contains("<figure class=\"feature-chart drifted\" data-column=\"mean_radius\""));
    assert!(
        !page.contains("<script") && !page.contains(" src=") && !page.contains(" href="),
        "the page fetches nothing"
    );
    render_in_chromium(&html, 30);

    // Feedback: the true labels of the unshifted requests.
    let text = std::fs::read_to_string(crate::serve::csv_path()).unwrap();
    let labels: Vec<String> = text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.rsplit(',').next().unwrap().to_string())
        .collect();
    assert!(
        labels.iter().all(|l| l == "benign" || l == "malignant"),
        "label is the last column"
    );
    let feedback = |flip: bool| {
        let mut csv = String::from("request_id,row,diagnosis\n");
        for (i, l) in labels.iter().enumerate() {
            let l = match (flip, l.as_str()) {
                (true, "benign") => "malignant",
                (true, _) => "benign",
                (false, l) => l,
            };
            csv.push_str(&format!("plain-{},{},{l}\n", i / 10 * 10, i % 10));
        }
        let path = dir.path().join(format!("feedback-{flip}.csv"));
        std::fs::write(&path, csv).unwrap();
        path
    };
    let right = feedback(false);
    let r = monitor(&store, &["--json", "--feedback", right.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let live = &r.json()["live"];
    assert_eq!(live["joined_rows"], data.rows.len());
    assert!(
        live["metrics"]["accuracy"].as_f64().unwrap() > 0.95,
        "{live}"
    );
    assert_eq!(r.json()["degraded"], false);

    let wrong = feedback(true);
    let r = monitor(
        &store,
        &["--feedback", wrong.to_str().unwrap(), "--fail-on-alert"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains("alert: live accuracy"), "{}", r.stdout);
    let r = monitor(&store, &["--json", "--feedback", wrong.to_str().unwrap()]);
    assert_eq!(r.code, 0);
    assert_eq!(r.json()["degraded"], true);
    assert!(r.json()["live"]["metrics"]["accuracy"].as_f64().unwrap() < 0.1);
}

/// Renders the page in headless Chromium and checks the DOM it built: the
/// charts are there and nothing was reported on the console. Skipped (with
/// a notice) without Chromium unless `SLUICE_REQUIRE_CHROMIUM=1`.
fn render_in_chromium(page: &Path, charts: usize) {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        assert!(
            std::env::var("SLUICE_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "SLUICE_REQUIRE_CHROMIUM=1 but no chromium on PATH"
        );
        eprintln!("NOTICE: no chromium on PATH; the HTML report was not rendered");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    assert_eq!(
        dom.matches("class=\"feature-chart").count(),
        charts,
        "{log}"
    );
    assert!(dom.matches("<rect").count() >= 2 * charts);
    assert!(
        !log.contains("CONSOLE"),
        "the page logged to the console: {log}"
    );
}
