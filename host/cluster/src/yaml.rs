//! A YAML writer for JSON values: block style, keys sorted, every string
//! double-quoted unless it is plainly safe — enough to write pipeline
//! definitions people read and engines parse, without a YAML library.
//!
//! Strings are written plain only when no YAML 1.1 or 1.2 reader could take
//! them for anything else (a number, a boolean, null, a date, an
//! indicator); otherwise double-quoted with JSON's escapes, which are valid
//! YAML escapes.

use serde_json::Value;
use std::fmt::Write as _;

/// `value` as a YAML document (no `---`), ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let value = &map[key];
        let _ = write!(out, "{:indent$}{}:", "", scalar_string(key));
        write_value(out, value, indent);
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        let _ = write!(out, "{:indent$}-", "");
        match item {
            // A map in a sequence starts on the dash's line.
            Value::Object(map) if !map.is_empty() => {
                let mut nested = String::new();
                write_map(&mut nested, map, indent + 2);
                out.push(' ');
                out.push_str(&nested[indent + 2..]);
            }
            other => write_value(out, other, indent + 2),
        }
    }
}

/// Writes what follows `key:` or `-`, the key or dash being at `indent`.
/// A sequence under a key is at the key's indentation, as PyYAML and the
/// KFP compiler write it.
fn write_value(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent);
        }
        scalar => {
            out.push(' ');
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
}

/// A scalar, or an empty collection, on one line.
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// `s` plain when that is unambiguous, else double-quoted.
fn scalar_string(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serialises")
    }
}

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    // Letters, digits and a few inner punctuation marks only; never
    // starting with a digit, sign or dot (numbers, dates, versions), and
    // never a word some YAML reads as a boolean or null.
    let reserved = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    first.is_ascii_alphabetic()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !reserved.contains(&s.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_and_sequences_nest_in_block_style_with_sorted_keys() {
        let v = json!({
            "b": {"list": [1, "two", {"k": "v", "a": [true]}], "empty": {}, "none": []},
            "a": "plain",
        });
        assert_eq!(
            to_yaml(&v),
            "a: plain\nb:\n  empty: {}\n  list:\n  - 1\n  - two\n  - a:\n    - true\n    k: v\n  none: []\n"
        );
    }

    #[test]
    fn strings_another_reader_could_mistake_are_quoted() {
        for s in [
            "",
            "true",
            "No",
            "null",
            "1.0",
            "2.1.0",
            "-x",
            "0s",
            "{{$.inputs.parameters['run_id']}}",
            "a: b",
            "a #b",
            "line\nbreak",
            "tab\there",
            "é",
            " lead",
            "trail ",
            "*alias",
            "1Gi",
        ] {
            let text = to_yaml(&json!({ "k": s }));
            let quoted = serde_json::to_string(s).unwrap();
            assert_eq!(text, format!("k: {quoted}\n"), "{s:?}");
        }
        for s in [
            "sluice",
            "exec-train",
            "s3://bucket/prefix",
            "nvidia.com/gpu",
            "a_b",
        ] {
            let text = to_yaml(&json!({ "k": s }));
            let plain = if s.contains(':') {
                serde_json::to_string(s).unwrap()
            } else {
                s.to_string()
            };
            assert_eq!(text, format!("k: {plain}\n"), "{s:?}");
        }
    }
}
