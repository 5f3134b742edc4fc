//! `std:split`: splits a table's rows into `train`, `eval` and `test`
//! tables — at random (optionally stratified by a label), by a hash of key
//! columns, or by time — deterministically. The host does the work
//! natively (`table.split`); this step reads its params and names the
//! outputs.
//!
//! At random: the rows are shuffled with a Fisher–Yates shuffle driven by
//! SplitMix64 seeded with `seed` (the host's randomness is not used, so
//! the split depends on the seed alone). The first `round(n × train)`
//! shuffled rows go to `train`, up to `round(n × (train + eval))` to
//! `eval`, the rest to `test`. With `stratify`, rows are grouped by the
//! label's value (groups in ascending order of the value as text, nulls
//! first), each group is shuffled in turn from the same generator, and the
//! groups are cut at the same cumulative boundaries, so every class is
//! split in the given proportions (±1 row) and the totals are exactly those
//! of the unstratified split. With `hash-by`, rows whose key columns are
//! equal land in the same split (a user's rows never straddle train and
//! test). With `order-by` (a time, date or number column), `train` gets
//! the earliest rows, `eval` the next, `test` the latest — train on the
//! past, test on the future; equal values never straddle two splits. Each
//! output keeps every column, its type and its nulls; rows keep their
//! original order (with `order-by`, they are in that column's order).

use sluice_sdk::{Context, Manifest, Param, Port, SplitBy, Step, StepError, Value, export_step};

/// The three outputs, in order.
pub const SPLITS: [&str; 3] = ["train", "eval", "test"];

struct Split;

impl Step for Split {
    fn describe() -> Manifest {
        Manifest::new("split", "0.2.0")
            .doc("Splits a table's rows into train, eval and test tables: seeded, deterministic, optionally stratified by a label, by a hash of key columns, or by time.")
            .input(Port::table("data").doc("The rows to split."))
            .output(Port::table("train").doc("The training rows."))
            .output(Port::table("eval").doc("The evaluation (validation) rows."))
            .output(Port::table("test").doc("The test rows."))
            .param(
                Param::json("fractions")
                    .default(Value::Json(r#"{"train": 0.7, "eval": 0.15, "test": 0.15}"#.into()))
                    .doc("The share of rows in each split: an object with keys train, eval, test (missing keys are 0), each in [0, 1], summing to 1."),
            )
            .param(
                Param::integer("seed")
                    .default(0)
                    .doc("Seed of the shuffle (and of the hash); the same seed and data give the same split."),
            )
            .param(
                Param::text("stratify")
                    .doc("A column (e.g. the label) whose every value is split in the same proportions. Optional."),
            )
            .param(
                Param::json("hash-by")
                    .doc("Key columns (a list, e.g. [\"user_id\"]): rows with equal keys land in the same split. Optional; not with stratify or order-by."),
            )
            .param(
                Param::text("order-by")
                    .doc("A time, date or number column: train gets the earliest rows, test the latest (train on the past, test on the future). Optional; not with stratify or hash-by."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let fractions_json: serde_json::Value = ctx.param("fractions")?;
        let fractions = Fractions::parse(&fractions_json).map_err(StepError::invalid_input)?;
        let seed: i64 = ctx.param("seed")?;
        let stratify: Option<String> = ctx.param("stratify")?;
        let hash_by: Option<serde_json::Value> = ctx.param("hash-by")?;
        let order_by: Option<String> = ctx.param("order-by")?;
        let by = split_by(stratify, hash_by, order_by).map_err(StepError::invalid_input)?;
        let data = ctx.input_table("data")?;
        let rows = data.num_rows();
        let parts = data
            .split(
                &by,
                &[fractions.train, fractions.eval, fractions.test],
                seed as u64,
            )
            .map_err(|e| StepError::invalid_input(e.to_string()))?;
        let mut sizes = Vec::new();
        for (name, part) in SPLITS.iter().zip(&parts) {
            ctx.output_table(name, part)?;
            ctx.metric(&format!("{name}_rows"), part.num_rows() as f64);
            sizes.push(part.num_rows());
        }
        ctx.info(format!(
            "split {rows} rows into train {}, eval {}, test {}{}",
            sizes[0],
            sizes[1],
            sizes[2],
            match &by {
                SplitBy::Random => String::new(),
                SplitBy::Stratified(c) => format!(", stratified by `{c}`"),
                SplitBy::Hash(cs) => format!(", by a hash of {}", cs.join(", ")),
                SplitBy::Ordered(c) => format!(", in the order of `{c}`"),
            }
        ));
        Ok(())
    }
}

export_step!(Split);

/// How to split, from the params (at most one of them set).
pub fn split_by(
    stratify: Option<String>,
    hash_by: Option<serde_json::Value>,
    order_by: Option<String>,
) -> Result<SplitBy, String> {
    let hash_by = match hash_by {
        None => None,
        Some(v) => {
            let keys: Vec<String> = serde_json::from_value(v.clone()).map_err(|_| {
                format!("parameter `hash-by` must be a list of column names, like [\"user_id\"], found {v}")
            })?;
            if keys.is_empty() {
                return Err("parameter `hash-by` names no columns; give at least one".into());
            }
            Some(keys)
        }
    };
    match (stratify, hash_by, order_by) {
        (None, None, None) => Ok(SplitBy::Random),
        (Some(c), None, None) => Ok(SplitBy::Stratified(c)),
        (None, Some(keys), None) => Ok(SplitBy::Hash(keys)),
        (None, None, Some(c)) => Ok(SplitBy::Ordered(c)),
        _ => Err("parameters `stratify`, `hash-by` and `order-by` choose how to split; set at most one of them".into()),
    }
}

/// The share of rows in each split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fractions {
    /// Share of `train`.
    pub train: f64,
    /// Share of `eval`.
    pub eval: f64,
    /// Share of `test`.
    pub test: f64,
}

impl Fractions {
    /// Reads `{"train": .., "eval": .., "test": ..}` (missing keys are 0):
    /// each in [0, 1], summing to 1 (within 1e-6).
    pub fn parse(v: &serde_json::Value) -> Result<Self, String> {
        let obj = v.as_object().ok_or_else(|| {
            format!(
                "parameter `fractions` must be an object like \
                 {{\"train\": 0.7, \"eval\": 0.15, \"test\": 0.15}}, found {v}"
            )
        })?;
        let mut shares = [0.0; 3];
        for (key, value) in obj {
            let i = SPLITS.iter().position(|s| s == key).ok_or_else(|| {
                format!(
                    "parameter `fractions` has an unknown key `{key}`; the keys are train, \
                     eval and test"
                )
            })?;
            shares[i] = value
                .as_f64()
                .filter(|f| (0.0..=1.0).contains(f))
                .ok_or_else(|| {
                    format!(
                        "parameter `fractions`: `{key}` must be a number in [0, 1], found {value}"
                    )
                })?;
        }
        let sum: f64 = shares.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(format!(
                "parameter `fractions` must sum to 1, but train {} + eval {} + test {} = {sum}",
                shares[0], shares[1], shares[2]
            ));
        }
        Ok(Self {
            train: shares[0],
            eval: shares[1],
            test: shares[2],
        })
    }
}

impl Default for Fractions {
    fn default() -> Self {
        Self {
            train: 0.7,
            eval: 0.15,
            test: 0.15,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fractions_are_parsed_and_checked() {
        let f = Fractions::parse(&json!({"train": 0.8, "test": 0.2})).unwrap();
        assert_eq!(
            f,
            Fractions {
                train: 0.8,
                eval: 0.0,
                test: 0.2
            }
        );
        let e = Fractions::parse(&json!({"train": 0.8, "eval": 0.1})).unwrap_err();
        assert!(e.contains("sum to 1") && e.contains("0.9"), "{e}");
        let e = Fractions::parse(&json!({"training": 1.0})).unwrap_err();
        assert!(e.contains("unknown key `training`"), "{e}");
        let e = Fractions::parse(&json!({"train": 1.5, "eval": -0.5})).unwrap_err();
        assert!(
            e.contains("`eval` must be a number in [0, 1], found -0.5"),
            "{e}"
        );
        assert!(Fractions::parse(&json!([0.7, 0.3])).is_err());
    }

    #[test]
    fn at_most_one_way_to_split_is_chosen() {
        assert!(matches!(split_by(None, None, None), Ok(SplitBy::Random)));
        assert!(matches!(
            split_by(Some("y".into()), None, None),
            Ok(SplitBy::Stratified(c)) if c == "y"
        ));
        assert!(matches!(
            split_by(None, Some(json!(["user", "day"])), None),
            Ok(SplitBy::Hash(k)) if k == ["user", "day"]
        ));
        assert!(matches!(
            split_by(None, None, Some("ts".into())),
            Ok(SplitBy::Ordered(c)) if c == "ts"
        ));
        let e = split_by(Some("y".into()), None, Some("ts".into())).unwrap_err();
        assert!(e.contains("set at most one"), "{e}");
        let e = split_by(None, Some(json!("user")), None).unwrap_err();
        assert!(e.contains("must be a list of column names"), "{e}");
        let e = split_by(None, Some(json!([])), None).unwrap_err();
        assert!(e.contains("names no columns"), "{e}");
    }
}
