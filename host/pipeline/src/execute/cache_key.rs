//! The cache key of a step: the digest of everything that determines its
//! result — component digest, contract (WIT) version, canonical params,
//! input digests by port, native backend versions — and the explanation of
//! why two executions of a step had different keys.

use sluice_runtime::{Digest, Value, WIT_PACKAGE};
use sluice_store::metadata::{ExecutionRecord, ExecutionState};
use std::collections::BTreeMap;

/// Params as a JSON object, keys sorted: their canonical form.
pub(crate) fn params_json(params: &[(String, Value)]) -> serde_json::Value {
    serde_json::Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    )
}

/// Versions of the native backends steps may call; part of every cache key
/// so that a change of backend invalidates results. (No backend yet.)
const BACKENDS: &[(&str, &str)] = &[];

/// The ingredients of a cache key, kept with the execution so that a later
/// run can say which one changed.
pub fn key_parts(
    component: &Digest,
    params: &[(String, Value)],
    inputs: &BTreeMap<String, Digest>,
) -> serde_json::Value {
    serde_json::json!({
        "component": component.to_hex(),
        "wit": WIT_PACKAGE,
        "params": params_json(params),
        "inputs": inputs.iter().map(|(p, d)| (p.clone(), serde_json::Value::String(d.to_hex()))).collect::<serde_json::Map<_, _>>(),
        "backends": BACKENDS.iter().map(|(n, v)| (n.to_string(), serde_json::Value::String(v.to_string()))).collect::<serde_json::Map<_, _>>(),
    })
}

/// The cache key of a step: SHA-256 over its key parts in canonical form
/// (component digest, contract version, params, input digests by port,
/// backend versions).
pub fn step_key(
    component: &Digest,
    params: &[(String, Value)],
    inputs: &BTreeMap<String, Digest>,
) -> Digest {
    key_of(&key_parts(component, params, inputs))
}

/// The cache key of already computed key parts.
pub(crate) fn key_of(parts: &serde_json::Value) -> Digest {
    // serde_json maps are sorted by key (no `preserve_order`), so the text is canonical.
    Digest::of(parts.to_string().as_bytes())
}

/// Why a step ran (or did not), compared with the previous execution of
/// the same step: one line per difference in its cache key.
pub fn explain(current: &ExecutionRecord, previous: Option<&ExecutionRecord>) -> Vec<String> {
    if current.state == ExecutionState::Cached {
        return vec![format!(
            "cache hit: reused execution #{} (same component, params and inputs)",
            current.cached_from.unwrap_or_default()
        )];
    }
    if current.state == ExecutionState::Skipped {
        return vec![current.error.clone().unwrap_or_else(|| "skipped".into())];
    }
    let Some(prev) = previous else {
        return vec!["ran: first execution of this step in this store".into()];
    };
    let (a, b) = (&prev.key_parts, &current.key_parts);
    let mut why = Vec::new();
    if a["component"] != b["component"] {
        why.push(format!(
            "component changed: {} → {}",
            short(&a["component"]),
            short(&b["component"])
        ));
    }
    if a["wit"] != b["wit"] {
        why.push(format!(
            "contract version changed: {} → {}",
            a["wit"], b["wit"]
        ));
    }
    diff_maps(&a["params"], &b["params"], "param", &mut why, |v| {
        v.to_string()
    });
    diff_maps(&a["inputs"], &b["inputs"], "input", &mut why, short);
    diff_maps(&a["backends"], &b["backends"], "backend", &mut why, |v| {
        v.to_string()
    });
    if why.is_empty() {
        why.push(match prev.state {
            ExecutionState::Failed => "ran: the previous execution with this key failed".into(),
            _ => "ran: the cache was not used (--no-cache, `cache = false`, or the reused outputs were gone)".into(),
        });
    } else {
        for w in &mut why {
            w.insert_str(0, "ran: ");
        }
    }
    why
}

fn short(v: &serde_json::Value) -> String {
    v.as_str()
        .map(|s| s[..12.min(s.len())].to_string())
        .unwrap_or_else(|| "none".into())
}

fn diff_maps(
    a: &serde_json::Value,
    b: &serde_json::Value,
    what: &str,
    out: &mut Vec<String>,
    show: impl Fn(&serde_json::Value) -> String,
) {
    let empty = serde_json::Map::new();
    let a = a.as_object().unwrap_or(&empty);
    let b = b.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x != y => {
                out.push(format!("{what} `{k}` changed: {} → {}", show(x), show(y)))
            }
            (None, Some(y)) => out.push(format!("{what} `{k}` added: {}", show(y))),
            (Some(_), None) => out.push(format!("{what} `{k}` removed")),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_keys_change_with_each_ingredient() {
        let c = Digest::of(b"component");
        let p = vec![("bins".to_string(), Value::Integer(10))];
        let mut i = BTreeMap::new();
        i.insert("data".to_string(), Digest::of(b"table"));
        let base = step_key(&c, &p, &i);
        assert_eq!(base, step_key(&c, &p, &i));
        assert_ne!(base, step_key(&Digest::of(b"other"), &p, &i));
        assert_ne!(
            base,
            step_key(&c, &[("bins".to_string(), Value::Integer(11))], &i)
        );
        let mut i2 = i.clone();
        i2.insert("data".to_string(), Digest::of(b"table2"));
        assert_ne!(base, step_key(&c, &p, &i2));
    }
}
