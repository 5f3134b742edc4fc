//! `std:split`: splits a table's rows into `train`, `eval` and `test`
//! tables, at random but deterministically for a seed, optionally stratified
//! by a label column.
//!
//! The rows are shuffled with a Fisher–Yates shuffle driven by SplitMix64
//! seeded with `seed` (the host's randomness is not used, so the split
//! depends on the seed alone). The first `round(n × train)` shuffled rows go
//! to `train`, up to `round(n × (train + eval))` to `eval`, the rest to
//! `test`. With `stratify`, rows are grouped by the label's value (groups in
//! ascending order of the value as text, nulls first), each group is
//! shuffled in turn from the same generator, and the groups are cut at the
//! same cumulative boundaries, so every class is split in the given
//! proportions (±1 row) and the totals are exactly those of the unstratified
//! split. Each output keeps every column, its type and its nulls, with its
//! rows in their original order.

use std::collections::BTreeMap;

use sluice_sdk::rng::SplitMix64;

use sluice_sdk::{
    Column, Context, Manifest, Param, Port, Step, StepError, TableBuilder, Value, export_step,
};

/// The three outputs, in order.
pub const SPLITS: [&str; 3] = ["train", "eval", "test"];

struct Split;

impl Step for Split {
    fn describe() -> Manifest {
        Manifest::new("split", "0.1.0")
            .doc("Splits a table's rows into train, eval and test tables: seeded, deterministic, optionally stratified by a label.")
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
                    .doc("Seed of the shuffle; the same seed and data give the same split."),
            )
            .param(
                Param::text("stratify")
                    .doc("A column (e.g. the label) whose every value is split in the same proportions. Optional."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let fractions_json: serde_json::Value = ctx.param("fractions")?;
        let fractions = Fractions::parse(&fractions_json).map_err(StepError::invalid_input)?;
        let seed: i64 = ctx.param("seed")?;
        let stratify: Option<String> = ctx.param("stratify")?;
        let data = ctx.input_table("data")?;
        let rows = usize::try_from(data.num_rows())
            .map_err(|_| StepError::failed("the table has more rows than this step can address"))?;
        let groups = match &stratify {
            Some(name) => {
                let column = data
                    .column(name)
                    .map_err(|e| StepError::invalid_input(format!("parameter `stratify`: {e}")))?;
                Some(group_keys(&column))
            }
            None => None,
        };
        let parts = assign(rows, groups.as_deref(), &fractions, seed as u64);
        let fields = data.fields();
        let mut builders = [
            TableBuilder::new(),
            TableBuilder::new(),
            TableBuilder::new(),
        ];
        for (i, field) in fields.iter().enumerate() {
            ctx.progress(
                i as u64,
                fields.len() as u64,
                &format!("column `{}`", field.name),
            );
            let column = data.column(&field.name)?;
            for (builder, part) in builders.iter_mut().zip(&parts) {
                builder.add_column(&field.name, take(&column, part))?;
            }
        }
        ctx.progress(fields.len() as u64, fields.len() as u64, "done");
        for ((name, builder), part) in SPLITS.iter().zip(&mut builders).zip(&parts) {
            let table = builder.finish()?;
            ctx.output_table(name, &table)?;
            ctx.metric(&format!("{name}_rows"), part.len() as f64);
        }
        ctx.info(format!(
            "split {rows} rows into train {}, eval {}, test {}{}",
            parts[0].len(),
            parts[1].len(),
            parts[2].len(),
            stratify.map_or_else(String::new, |s| format!(", stratified by `{s}`"))
        ));
        Ok(())
    }
}

export_step!(Split);

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

    /// The number of rows in `train`, and in `train` and `eval` together,
    /// of the first `n` shuffled rows; monotone in `n`.
    fn cuts(&self, n: usize) -> (usize, usize) {
        let n = n as f64;
        let train = (n * self.train).round() as usize;
        let train_eval = ((n * (self.train + self.eval)).round() as usize).max(train);
        (train, train_eval.min(n as usize))
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

/// A stratification key per row: the value as text, `None` for null.
pub fn group_keys(column: &Column) -> Vec<Option<String>> {
    fn text<T: ToString>(v: &[Option<T>]) -> Vec<Option<String>> {
        v.iter().map(|x| x.as_ref().map(T::to_string)).collect()
    }
    match column {
        Column::Boolean(v) => text(v),
        Column::Int64(v) => text(v),
        Column::Float64(v) => text(v),
        Column::Utf8(v) => v.clone(),
    }
}

/// The row indices of `train`, `eval` and `test` (each ascending) for a
/// table of `rows` rows, stratified by `groups` (one key per row) if given.
///
/// The split sizes are `round(n × train)` and `round(n × (train + eval))`
/// minus that for `eval`; `test` takes the rest. With groups, each group
/// first gets `floor(m × fraction)` rows of each split (m = its size), and
/// the rows left over go, one at a time, to the (group, split) pairs with
/// the largest fractional parts — ties in random (seeded) group order —
/// while the split still has room: every group is split in the given
/// proportions to within a row or two, and the totals are those above.
pub fn assign(
    rows: usize,
    groups: Option<&[Option<String>]>,
    fractions: &Fractions,
    seed: u64,
) -> [Vec<usize>; 3] {
    let mut rng = SplitMix64::new(seed);
    let mut by_group: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    match groups {
        Some(keys) => {
            for (row, key) in keys.iter().enumerate().take(rows) {
                by_group.entry(key.as_deref()).or_default().push(row);
            }
        }
        None => {
            by_group.insert(None, (0..rows).collect());
        }
    }
    let mut members: Vec<Vec<usize>> = by_group.into_values().collect();
    for m in &mut members {
        rng.shuffle(m);
    }
    let shares = [fractions.train, fractions.eval, fractions.test];
    let (train, train_eval) = fractions.cuts(rows);
    let mut room = [train, train_eval - train, rows - train_eval];
    // Floors first.
    let mut counts: Vec<[usize; 3]> = members
        .iter()
        .map(|m| shares.map(|f| (m.len() as f64 * f).floor() as usize))
        .collect();
    let mut left: Vec<usize> = Vec::with_capacity(members.len());
    for (m, c) in members.iter().zip(&mut counts) {
        for s in 0..3 {
            c[s] = c[s].min(room[s]);
            room[s] -= c[s];
        }
        let given: usize = c.iter().sum();
        // Rounding in the floors above can overshoot a group by one.
        if given > m.len() {
            let s = (0..3).rev().find(|&s| c[s] > 0).unwrap_or(0);
            c[s] -= given - m.len();
            room[s] += given - m.len();
        }
        left.push(m.len() - c.iter().sum::<usize>());
    }
    // Then the rows left over, largest fractional part first.
    let ties: Vec<u64> = members.iter().map(|_| rng.next_u64()).collect();
    let mut candidates: Vec<(f64, u64, usize, usize)> = Vec::new();
    for (g, m) in members.iter().enumerate() {
        if left[g] == 0 {
            continue;
        }
        for (s, f) in shares.iter().enumerate() {
            let exact = m.len() as f64 * f;
            candidates.push((exact - exact.floor(), ties[g], g, s));
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.3.cmp(&b.3)));
    for &(fraction, _, g, s) in &candidates {
        if fraction > 0.0 && left[g] > 0 && room[s] > 0 {
            counts[g][s] += 1;
            left[g] -= 1;
            room[s] -= 1;
        }
    }
    // Whatever is still left (rare) fills the splits that have room.
    for (g, c) in counts.iter_mut().enumerate() {
        for s in 0..3 {
            let n = left[g].min(room[s]);
            c[s] += n;
            left[g] -= n;
            room[s] -= n;
        }
    }
    let mut parts: [Vec<usize>; 3] = Default::default();
    for (m, c) in members.iter().zip(&counts) {
        let (a, rest) = m.split_at(c[0]);
        let (b, rest) = rest.split_at(c[1]);
        parts[0].extend_from_slice(a);
        parts[1].extend_from_slice(b);
        parts[2].extend_from_slice(rest);
    }
    for p in &mut parts {
        p.sort_unstable();
    }
    parts
}

/// The rows `rows` of `column`, in that order, nulls kept.
pub fn take(column: &Column, rows: &[usize]) -> Column {
    fn pick<T: Clone>(v: &[Option<T>], rows: &[usize]) -> Vec<Option<T>> {
        rows.iter().map(|&r| v[r].clone()).collect()
    }
    match column {
        Column::Boolean(v) => Column::Boolean(pick(v, rows)),
        Column::Int64(v) => Column::Int64(pick(v, rows)),
        Column::Float64(v) => Column::Float64(pick(v, rows)),
        Column::Utf8(v) => Column::Utf8(pick(v, rows)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sizes(p: &[Vec<usize>; 3]) -> [usize; 3] {
        [p[0].len(), p[1].len(), p[2].len()]
    }

    #[test]
    fn splitmix64_reference_values() {
        // The reference outputs of SplitMix64 seeded with 1234567
        // (from the C implementation by Sebastiano Vigna).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        assert_eq!(r.next_u64(), 9817491932198370423);
    }

    #[test]
    fn below_is_in_range_and_shuffle_is_a_permutation() {
        let mut r = SplitMix64::new(7);
        assert!((0..1000).all(|_| r.below(3) < 3));
        let mut v: Vec<usize> = (0..50).collect();
        r.shuffle(&mut v);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
    }

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
    fn sizes_follow_fractions() {
        let f = Fractions::default();
        // 100 rows: 70 / 15 / 15.
        let p = assign(100, None, &f, 0);
        assert_eq!(sizes(&p), [70, 15, 15]);
        // 10 rows: round(7) = 7 train, round(8.5) = 9 → 2 eval, 1 test.
        assert_eq!(sizes(&assign(10, None, &f, 0)), [7, 2, 1]);
        assert_eq!(sizes(&assign(0, None, &f, 0)), [0, 0, 0]);
        let all_train = Fractions {
            train: 1.0,
            eval: 0.0,
            test: 0.0,
        };
        assert_eq!(sizes(&assign(9, None, &all_train, 3)), [9, 0, 0]);
        // Every row exactly once, each part ascending.
        let mut rows: Vec<usize> = p.concat();
        assert!(p.iter().all(|x| x.windows(2).all(|w| w[0] < w[1])));
        rows.sort();
        assert_eq!(rows, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn deterministic_for_a_seed() {
        let f = Fractions::default();
        assert_eq!(assign(500, None, &f, 42), assign(500, None, &f, 42));
        assert_ne!(assign(500, None, &f, 42), assign(500, None, &f, 43));
    }

    #[test]
    fn stratified_classes_keep_their_proportions() {
        // 80 "a", 20 "b", 10 null.
        let keys: Vec<Option<String>> = (0..110)
            .map(|i| match i % 11 {
                0 => None,
                1 | 2 => Some("b".to_owned()),
                _ => Some("a".to_owned()),
            })
            .collect();
        let f = Fractions {
            train: 0.5,
            eval: 0.25,
            test: 0.25,
        };
        let p = assign(keys.len(), Some(&keys), &f, 9);
        assert_eq!(sizes(&p), [55, 28, 27]);
        let count = |part: &[usize], key: Option<&str>| {
            part.iter().filter(|&&r| keys[r].as_deref() == key).count()
        };
        // null: 10 → 5 / 2-3 / 2-3; a: 80 → 40 / 20 / 20; b: 20 → 10 / 5 / 5.
        assert_eq!(count(&p[0], None), 5);
        assert_eq!(count(&p[0], Some("a")), 40);
        assert_eq!(count(&p[1], Some("a")), 20);
        assert_eq!(count(&p[0], Some("b")), 10);
        assert_eq!(count(&p[1], Some("b")), 5);
        assert_eq!(count(&p[2], Some("b")), 5);
        assert_eq!(assign(keys.len(), Some(&keys), &f, 9), p);
    }

    #[test]
    fn take_keeps_types_and_nulls() {
        let c = Column::Float64(vec![Some(1.0), None, Some(3.0)]);
        assert_eq!(take(&c, &[1, 2]), Column::Float64(vec![None, Some(3.0)]));
        let c = Column::Utf8(vec![Some("x".into()), None]);
        assert_eq!(take(&c, &[]), Column::Utf8(vec![]));
        assert_eq!(
            group_keys(&Column::Int64(vec![Some(3), None])),
            vec![Some("3".to_owned()), None]
        );
        assert_eq!(
            group_keys(&Column::Boolean(vec![Some(true)])),
            vec![Some("true".to_owned())]
        );
    }
}
