//! Promotion gates (issue 22): a spec's `[promotion]` policy stored with
//! the model, `sluice models promote` refusing a move whose gates are
//! unmet and naming them, live gates measured from what `sluice serve`
//! recorded while the version held the environment before, and `--force`
//! recorded in the history.

use crate::serve::{Data, Server, data, train};
use crate::support::run;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const POLICY: &str = r#"
[promotion]
model = "breast-cancer"
environments = ["staging", "production"]

[promotion.require.staging]
blessing = true

[promotion.require.production]
blessing = true
soak = "3s"
min-requests = 20
max-error-rate = 0.25
max-p99-ms = 10000
"#;

fn models(store: &Path, args: &[&str]) -> crate::support::Run {
    let mut all = vec!["models"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--store", store.to_str().unwrap()]);
    run(&all)
}

fn history(store: &Path) -> Vec<Value> {
    let r = models(store, &["show", "breast-cancer", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()["history"].as_array().unwrap().clone()
}

/// Sends `good` valid one-row requests and `bad` ones missing a column.
fn traffic(server: &Server, data: &Data, good: usize, bad: usize) {
    for i in 0..good {
        let (code, body) = server.post(
            "/v2/models/breast-cancer/infer",
            &data.infer_body(i..i + 1, None),
        );
        assert_eq!(code, 200, "{body}");
    }
    for i in 0..bad {
        let mut body = data.infer_body(i..i + 1, None);
        body["inputs"].as_array_mut().unwrap().remove(0);
        let (code, _) = server.post("/v2/models/breast-cancer/infer", &body);
        assert_eq!(code, 400);
    }
}

#[test]
fn promotion_gates_refuse_name_and_record_moves_and_force_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    train(&store, |s| format!("{s}{POLICY}"));

    // The run stored the spec's policy with the model.
    let r = models(&store, &["policy", "breast-cancer", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let policy = &r.json()["policy"];
    assert_eq!(
        policy["environments"],
        serde_json::json!(["staging", "production"])
    );
    assert_eq!(policy["require"]["production"]["soak-ms"], 3000);

    // Straight to production: it never held staging.
    let r = models(
        &store,
        &["promote", "breast-cancer", "1", "--alias", "production"],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("breast-cancer:1 cannot move to production; 4 gate(s) unmet"),
        "{}",
        r.stderr
    );
    for gate in ["soak", "min-requests", "max-error-rate", "max-p99-ms"] {
        assert!(
            r.stderr.contains(&format!(
                "  {gate}: version 1 has never held `breast-cancer@staging`"
            )),
            "{gate}: {}",
            r.stderr
        );
    }
    assert!(
        !r.stderr.contains("  blessing:"),
        "the blessing gate passed: {}",
        r.stderr
    );
    assert!(history(&store).is_empty(), "nothing moved");

    // Staging needs only the blessing, which the flagship's push carried.
    let r = models(
        &store,
        &[
            "promote",
            "breast-cancer",
            "1",
            "--alias",
            "staging",
            "--reason",
            "blessed",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("gate blessing passed: version 1 was pushed with a blessing (`blessing` of step `push` of run"), "{}", r.stderr);
    let staged_at = Instant::now();

    // Traffic on staging: 24 answered, 4 refused (14% errors).
    let data = data();
    let server = Server::start(
        &store,
        &["--model", "breast-cancer@staging", "--stats-every", "200ms"],
    );
    traffic(&server, &data, 24, 4);
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log}");

    // Too early: the soak is not over yet (unless the machine was slow).
    if staged_at.elapsed() < Duration::from_millis(2500) {
        let r = models(
            &store,
            &["promote", "breast-cancer", "1", "--alias", "production"],
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("1 gate(s) unmet"), "{}", r.stderr);
        assert!(
            r.stderr.contains("  soak: held staging for "),
            "{}",
            r.stderr
        );
    }
    while staged_at.elapsed() < Duration::from_millis(3200) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = models(
        &store,
        &[
            "promote",
            "breast-cancer",
            "1",
            "--alias",
            "production",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let moved = r.json();
    assert_eq!(moved["version"], 1);
    assert!(moved.get("forced").is_none(), "{moved}");
    let gates = moved["gates"].as_array().unwrap();
    let names: Vec<&str> = gates.iter().map(|g| g["gate"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "blessing",
            "soak",
            "min-requests",
            "max-error-rate",
            "max-p99-ms"
        ]
    );
    assert!(gates.iter().all(|g| g["passed"] == true), "{gates:#?}");
    let detail = |name: &str| {
        gates.iter().find(|g| g["gate"] == name).unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        detail("min-requests")
            .starts_with("28 request(s) answered by version 1 as breast-cancer@staging"),
        "{}",
        detail("min-requests")
    );
    assert!(
        detail("max-error-rate").starts_with("14.29% of 28 answered 4xx/5xx (4 + 0)"),
        "{}",
        detail("max-error-rate")
    );

    // Version 2, forced past its gates: refused without a reason, recorded with one.
    train(&store, |s| {
        format!("{}{POLICY}", s.replace("c = 1.0", "c = 0.05"))
    });
    let r = models(
        &store,
        &[
            "promote",
            "breast-cancer",
            "2",
            "--alias",
            "production",
            "--force",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--force needs --reason"), "{}", r.stderr);
    let r = models(
        &store,
        &[
            "promote",
            "breast-cancer",
            "2",
            "--alias",
            "production",
            "--force",
            "--reason",
            "hotfix #231",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("gate soak UNMET (forced): version 2 has never held `breast-cancer@staging`"),
        "{}",
        r.stderr
    );
    let last = history(&store).last().unwrap().clone();
    assert_eq!(
        (last["version"].as_i64(), last["forced"].as_bool()),
        (Some(2), Some(true)),
        "{last}"
    );
    assert_eq!(last["reason"], "hotfix #231");
    let unmet: Vec<&str> = last["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["passed"] == false)
        .map(|g| g["gate"].as_str().unwrap())
        .collect();
    assert_eq!(
        unmet,
        ["soak", "min-requests", "max-error-rate", "max-p99-ms"]
    );
    let text = models(&store, &["show", "breast-cancer"]).stdout;
    assert!(
        text.contains(
            "(hotfix #231)  FORCED past unmet gates: soak, min-requests, max-error-rate, max-p99-ms"
        ),
        "{text}"
    );
    assert!(
        text.contains("gates passed: blessing, soak, min-requests, max-error-rate, max-p99-ms"),
        "{text}"
    );

    // Without a policy, moves are ungated again.
    let r = models(&store, &["policy", "breast-cancer", "--clear"]);
    assert_eq!(r.code, 0);
    let r = models(
        &store,
        &["promote", "breast-cancer", "2", "--alias", "staging"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("gate "), "{}", r.stderr);
}

#[test]
fn a_policy_file_with_mistakes_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, "environments = [\"staging\", \"production\"]\n[require.production]\nsoak = \"ten minutes\"\n").unwrap();
    let r = models(
        &store,
        &["policy", "breast-cancer", "--set", file.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("invalid `soak` in [require.production] of the policy file"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("policy.toml:3:"), "{}", r.stderr);
    std::fs::write(&file, "[require.staging]\nblessing = true\n").unwrap();
    let r = models(
        &store,
        &["policy", "breast-cancer", "--set", file.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("environments: staging → production"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("into staging: blessing"), "{}", r.stdout);
    assert!(
        r.stdout.contains("into production: no gates"),
        "{}",
        r.stdout
    );
}
