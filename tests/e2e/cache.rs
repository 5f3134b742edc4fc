//! The compiled-component cache, observed through `component inspect --json`.

use crate::support::*;

fn inspect(cache: &std::path::Path, component: &str) -> serde_json::Value {
    let out = sluice()
        .env("SLUICE_CACHE_DIR", cache)
        // The key lives outside the cache folder (see the trust model).
        .env("SLUICE_CACHE_KEY", cache.with_extension("key"))
        .args(["component", "inspect", component, "--json"])
        .output()
        .unwrap();
    let r: Run = out.into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()
}

#[test]
fn the_second_load_comes_from_the_compiled_cache_and_corruption_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let first = inspect(cache.path(), "std:statistics");
    assert_eq!(first["compiled_cache"]["outcome"], "compiled");
    let second = inspect(cache.path(), "std:statistics");
    assert_eq!(second["compiled_cache"]["outcome"], "hit");
    assert_eq!(first["digest"], second["digest"]);

    // Truncate the entry: detected and recompiled, never a crash.
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("compiled"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1);
    let bytes = std::fs::read(&entries[0]).unwrap();
    std::fs::write(&entries[0], &bytes[..bytes.len() / 2]).unwrap();
    let third = inspect(cache.path(), "std:statistics");
    assert_eq!(third["compiled_cache"]["outcome"], "recompiled");
    assert!(
        third["compiled_cache"]["reason"]
            .as_str()
            .unwrap()
            .contains("truncated")
    );

    // Flip a byte in the middle: the authentication code catches it.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&entries[0], &bytes).unwrap();
    let fourth = inspect(cache.path(), "std:statistics");
    assert_eq!(fourth["compiled_cache"]["outcome"], "recompiled");
    assert!(
        fourth["compiled_cache"]["reason"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );

    assert_eq!(
        inspect(cache.path(), "std:statistics")["compiled_cache"]["outcome"],
        "hit"
    );
}

#[test]
fn a_swapped_or_forged_cache_entry_is_recompiled_not_run() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let entry = |component: &serde_json::Value| {
        let digest = component["digest"].as_str().unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest).to_string();
        std::fs::read_dir(cache.join("compiled"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.extension().is_some_and(|e| e == "cwasm")
                    && p.file_name().unwrap().to_string_lossy().starts_with(&hex)
            })
            .unwrap()
    };
    let statistics = inspect(&cache, "std:statistics");
    let split = inspect(&cache, "std:split");
    let (from, to) = (entry(&statistics), entry(&split));
    // Whoever can write the cache folder copies one component's code and
    // check file over another's entry: the MAC covers the component's
    // digest, so the swap is caught and `split` is compiled from itself.
    std::fs::copy(&from, &to).unwrap();
    std::fs::copy(from.with_extension("check"), to.with_extension("check")).unwrap();
    let again = inspect(&cache, "std:split");
    assert_eq!(
        again["compiled_cache"]["outcome"], "recompiled",
        "{again:#}"
    );
    assert!(
        again["compiled_cache"]["reason"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{again:#}"
    );
    assert_eq!(again["manifest"]["name"], "split");
    // A check record forged the way the old format was made (length and
    // CRC-32, which anyone can compute) is not trusted either.
    let bytes = std::fs::read(&to).unwrap();
    let mut forged = b"SLUICE\x01\x00".to_vec();
    forged.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    forged.extend_from_slice(&crc32(&bytes).to_le_bytes());
    std::fs::write(to.with_extension("check"), &forged).unwrap();
    let again = inspect(&cache, "std:split");
    assert_eq!(again["compiled_cache"]["outcome"], "recompiled");
    // With another key (another user, a cache restored without its key),
    // nothing in the folder is trusted.
    let out = sluice()
        .env("SLUICE_CACHE_DIR", &cache)
        .env("SLUICE_CACHE_KEY", root.path().join("other.key"))
        .args(["component", "inspect", "std:statistics", "--json"])
        .output()
        .unwrap();
    let r: Run = out.into();
    assert_eq!(r.json()["compiled_cache"]["outcome"], "recompiled");
}

/// CRC-32 (IEEE), as the first cache format used.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn inspect_shows_manifest_ports_params_and_imports() {
    let v = inspect(&shared_cache(), "std:ingest-csv");
    assert_eq!(v["manifest"]["name"], "ingest-csv");
    assert_eq!(v["manifest"]["inputs"][0]["name"], "file");
    assert_eq!(v["manifest"]["inputs"][0]["kind"], "file");
    assert_eq!(v["manifest"]["outputs"][0]["kind"], "table");
    let delimiter = v["manifest"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "delimiter")
        .unwrap();
    assert_eq!(delimiter["default"]["value"], ",");
    let imports: Vec<&str> = v["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(imports.contains(&"sluice:pipeline/context@0.1.4"));
    assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
    // Starting a model server is an import of its own, which only the
    // step that does it has: inspect shows who may.
    assert!(
        !imports
            .iter()
            .any(|i| i.starts_with("sluice:pipeline/serving"))
    );
    let infra = run(&["component", "inspect", "std:infra-validate", "--json"]).json();
    assert!(
        infra["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "sluice:pipeline/serving@0.1.4"),
        "{infra:#}"
    );

    let text = run(&["component", "inspect", "std:statistics"]);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout.contains("output  statistics  statistics"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_component_that_is_not_a_step_is_rejected_with_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let r = run(&["component", "inspect", core.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("is a core WebAssembly module, not a component"),
        "{}",
        r.stderr
    );

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"hello").unwrap();
    let r = run(&["component", "inspect", junk.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("does not start with the WebAssembly magic number"),
        "{}",
        r.stderr
    );

    let r = run(&["component", "inspect", "std:nope"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(
            "no standard component `std:nope`; available: evaluate, import-model, infra-validate, ingest-csv,"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn component_list_names_the_standard_steps() {
    let r = run(&["component", "list", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let names: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["component"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "std:evaluate",
            "std:import-model",
            "std:infra-validate",
            "std:ingest-csv",
            "std:ingest-parquet",
            "std:model-validate",
            "std:push",
            "std:schema",
            "std:split",
            "std:statistics",
            "std:train",
            "std:transform",
            "std:validate",
        ]
    );
}
