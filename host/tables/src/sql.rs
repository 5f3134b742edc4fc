//! SQL over named host tables: [`sql`], the `tables.sql` function of the
//! component contract, run by Apache DataFusion in the step's memory pool.
//!
//! Each input is registered as an in-memory table (its batches shared, not
//! copied) under exactly the name given, and the query may only read:
//! DDL (`CREATE`, `DROP`), DML (`INSERT`, `COPY … TO`, which would write
//! files) and statements (`SET`, transactions) are refused. The result is
//! brought to the column types host tables hold by [`normalize`].

use crate::engine::Session;
use crate::ops::OpError;
#[cfg(feature = "sql")]
use crate::ops::{assemble, df_error, normalize, provider};
use crate::table::Table;
#[cfg(feature = "sql")]
use arrow_schema::SchemaRef;
#[cfg(feature = "sql")]
use datafusion::common::TableReference;
#[cfg(feature = "sql")]
use datafusion::prelude::SQLOptions;
#[cfg(feature = "sql")]
use std::sync::Arc;

/// Runs `query` (a single query in DataFusion's SQL dialect) over `inputs`,
/// each registered as a table under its name, and returns its result with
/// types as [`normalize`] gives them.
///
/// Names are taken exactly: SQL lower-cases unquoted identifiers, so an
/// input or column named with capitals or spaces is written in double
/// quotes (`SELECT "Age" FROM "Train"`). Rows come in the order the query's
/// `ORDER BY` gives; without one, in an order that is not specified but is
/// the same on every run, as are the bits of every value (queries run on
/// one partition; see [`Session::context`]). Large sorts, aggregations and joins spill to disk under
/// the step's memory limit; a query that cannot fit is [`OpError::Memory`].
/// Parse and planning errors (an unknown table or column, a type
/// mismatch, a write) are [`OpError::Invalid`].
#[cfg(feature = "sql")]
pub async fn sql(s: &Session, query: &str, inputs: &[(String, Table)]) -> Result<Table, OpError> {
    for (i, (name, _)) in inputs.iter().enumerate() {
        if name.is_empty() {
            return Err(OpError::Invalid(format!(
                "sql: input {} has an empty name; name every input table",
                i + 1
            )));
        }
        if inputs[..i].iter().any(|(n, _)| n == name) {
            return Err(OpError::Invalid(format!(
                "sql: two inputs are named `{name}`; name each input once"
            )));
        }
    }
    let (query, inputs2, session) = (query.to_string(), inputs.to_vec(), s.clone());
    let result = s
        .run(async move {
            let ctx = session.context();
            for (name, t) in &inputs2 {
                ctx.register_table(TableReference::bare(name.as_str()), provider(t, None)?)?;
            }
            let options = SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            let df = ctx.sql_with_options(&query, options).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            Ok::<_, datafusion::error::DataFusionError>((schema, batches))
        })
        .await;
    let (schema, batches) = result.map_err(|e| {
        let error = df_error("a SQL query", s, &e, None);
        match error {
            OpError::Invalid(m) if m.contains("table") && m.contains("not found") => {
                let m = m.replace("'datafusion.public.", "'");
                let names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
                OpError::Invalid(format!(
                    "sql: {m}; the input tables are: {} (names are case-sensitive when quoted, \
                     lower-cased when not)",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            }
            other => other.context("sql"),
        }
    })?;
    normalize(assemble(schema, batches)?)
}

/// Without SQL, every query is refused: in a build with the query engine
/// but no SQL planner, and in the edge runtime's, which has neither (see
/// [`crate::ops::unavailable`]).
#[cfg(not(feature = "sql"))]
pub async fn sql(_: &Session, _: &str, _: &[(String, Table)]) -> Result<Table, OpError> {
    #[cfg(feature = "operators")]
    return Err(OpError::Invalid(format!("sql: {}", crate::ops::NO_SQL)));
    #[cfg(not(feature = "operators"))]
    Err(OpError::Invalid(crate::ops::unavailable("sql")))
}

#[cfg(all(test, feature = "sql"))]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow_schema::DataType;
    use futures::executor::block_on;

    fn table(columns: Vec<(&str, ArrayRef)>) -> Table {
        Table::from_batch(RecordBatch::try_from_iter(columns).unwrap())
    }

    fn orders() -> Table {
        let t = table(vec![
            (
                "customer_id",
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    Some(2),
                    Some(1),
                    None,
                    Some(3),
                    Some(1),
                ])) as ArrayRef,
            ),
            (
                "amount",
                Arc::new(Float64Array::from(vec![
                    Some(10.0),
                    Some(5.5),
                    None,
                    Some(7.0),
                    Some(1.0),
                    Some(2.5),
                ])),
            ),
        ]);
        // Two batches.
        let b = t.to_batch().unwrap();
        Table::new(t.schema().clone(), vec![b.slice(0, 4), b.slice(4, 2)]).unwrap()
    }

    fn customers() -> Table {
        table(vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["Ada", "Bo", "Cy"]))),
        ])
    }

    fn inputs() -> Vec<(String, Table)> {
        vec![
            ("orders".into(), orders()),
            ("customers".into(), customers()),
        ]
    }

    fn invalid(e: OpError) -> String {
        match e {
            OpError::Invalid(m) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn run(query: &str, inputs: &[(String, Table)]) -> Result<Table, OpError> {
        block_on(sql(&Session::unlimited(), query, inputs))
    }

    fn column(t: &Table, name: &str) -> ArrayRef {
        t.column_chunk(name, 0, t.num_rows()).unwrap()
    }

    #[test]
    fn sql_joins_two_named_inputs_and_groups() {
        let r = run(
            "SELECT c.name, count(*) AS n, sum(o.amount) AS total, avg(o.amount) AS mean \
             FROM orders o JOIN customers c ON o.customer_id = c.id \
             GROUP BY c.name ORDER BY c.name",
            &inputs(),
        )
        .unwrap();
        assert_eq!(r.column_names(), ["name", "n", "total", "mean"]);
        let types: Vec<&DataType> = r.schema().fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types,
            [
                &DataType::Utf8,
                &DataType::Int64,
                &DataType::Float64,
                &DataType::Float64
            ]
        );
        let name = column(&r, "name");
        let name: Vec<&str> = name.as_string::<i32>().iter().flatten().collect();
        assert_eq!(name, ["Ada", "Bo", "Cy"]);
        let n: Vec<i64> = column(&r, "n")
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(n, [3, 1, 1]);
        let total: Vec<Option<f64>> = column(&r, "total")
            .as_primitive::<Float64Type>()
            .iter()
            .collect();
        assert_eq!(total, [Some(12.5), Some(5.5), Some(1.0)]);
        let mean: Vec<Option<f64>> = column(&r, "mean")
            .as_primitive::<Float64Type>()
            .iter()
            .collect();
        assert_eq!(mean, [Some(6.25), Some(5.5), Some(1.0)]);
    }

    #[test]
    fn sql_results_are_normalised_and_may_be_empty() {
        let r = run(
            "SELECT NULL AS nothing, CAST(1 AS INT) AS small, arrow_cast('x', 'LargeUtf8') AS big \
             FROM customers WHERE id < 3",
            &inputs(),
        )
        .unwrap();
        let types: Vec<&DataType> = r.schema().fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types,
            [&DataType::Float64, &DataType::Int64, &DataType::Utf8]
        );
        assert_eq!(r.num_rows(), 2);
        assert_eq!(column(&r, "nothing").null_count(), 2);
        let r = run("SELECT id FROM customers WHERE id > 10", &inputs()).unwrap();
        assert_eq!((r.num_rows(), r.column_names().len()), (0, 1));
        let r = run("SELECT 1 AS one", &[]).unwrap();
        assert_eq!(
            column(&r, "one")
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            [1]
        );
        let empty = Table::empty(customers().schema().clone());
        let r = run("SELECT count(*) AS n FROM t", &[("t".into(), empty)]).unwrap();
        assert_eq!(
            column(&r, "n")
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            [0]
        );
    }

    #[test]
    fn sql_names_are_exact_and_quoted_when_not_lower_case() {
        let t = table(vec![(
            "Age",
            Arc::new(Int64Array::from(vec![3, 4])) as ArrayRef,
        )]);
        let inputs = vec![("Train".to_string(), t)];
        let r = run("SELECT \"Age\" * 2 AS twice FROM \"Train\"", &inputs).unwrap();
        assert_eq!(
            column(&r, "twice")
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            [6, 8]
        );
        let e = invalid(run("SELECT 1 FROM Train", &inputs).unwrap_err());
        assert!(e.starts_with("sql: ") && e.contains("train"), "{e}");
        assert!(
            e.ends_with(
                "; the input tables are: Train (names are case-sensitive when quoted, \
                 lower-cased when not)"
            ),
            "{e}"
        );
        let e = invalid(run("SELECT Age FROM \"Train\"", &inputs).unwrap_err());
        assert!(e.starts_with("sql: ") && e.contains("age"), "{e}");
    }

    #[test]
    fn sql_refuses_writes_bad_queries_and_repeated_names() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.csv");
        let copy = format!("COPY (SELECT * FROM customers) TO '{}'", target.display());
        let e = invalid(run(&copy, &inputs()).unwrap_err());
        assert_eq!(e, "sql: DML not supported: COPY");
        assert!(!target.exists());
        let e = invalid(run("CREATE TABLE x AS SELECT 1", &inputs()).unwrap_err());
        assert!(e.starts_with("sql: DDL not supported"), "{e}");
        let e = invalid(run("SET datafusion.execution.batch_size = 1", &inputs()).unwrap_err());
        assert!(e.starts_with("sql: Statement not supported"), "{e}");
        let e = invalid(run("SELEC 1", &inputs()).unwrap_err());
        assert!(e.starts_with("sql: "), "{e}");
        let e = invalid(run("SELECT nope FROM customers", &inputs()).unwrap_err());
        assert!(e.contains("nope"), "{e}");
        let e = invalid(
            run(
                "SELECT 1",
                &[("a".into(), customers()), ("a".into(), orders())],
            )
            .unwrap_err(),
        );
        assert_eq!(e, "sql: two inputs are named `a`; name each input once");
        let e = invalid(run("SELECT CAST(1.5 AS DECIMAL(10, 2)) AS d", &[]).unwrap_err());
        assert!(
            e.starts_with("column `d` has type Decimal128(10, 2)"),
            "{e}"
        );
    }

    #[test]
    fn queries_give_the_same_rows_and_bits_every_time() {
        // Many batches of floats whose sums depend on the order of
        // addition: a parallel plan that merged partitions as they finished
        // would change the rows' order and the sums' last bits between runs.
        let batches: Vec<RecordBatch> = (0..64)
            .map(|b| {
                let keys: Int64Array = (0..1000).map(|i| Some((i * 7 + b) % 13)).collect();
                let values: Float64Array = (0..1000)
                    .map(|i| Some(((i * 31 + b * 17) % 101) as f64 * 0.1 + 1e-9 * i as f64))
                    .collect();
                RecordBatch::try_from_iter(vec![
                    ("k", Arc::new(keys) as ArrayRef),
                    ("v", Arc::new(values) as ArrayRef),
                ])
                .unwrap()
            })
            .collect();
        let t = Table::new(batches[0].schema(), batches).unwrap();
        let inputs = vec![("t".to_string(), t)];
        let s = Session::new(1 << 30);
        for query in [
            "SELECT k, SUM(v) AS s, COUNT(*) AS n FROM t GROUP BY k",
            "SELECT * FROM t WHERE v > 5",
            "SELECT a.k, SUM(a.v * b.v) AS s FROM t a JOIN (SELECT k, AVG(v) AS v FROM t GROUP BY k) b ON a.k = b.k GROUP BY a.k",
        ] {
            let first = block_on(sql(&s, query, &inputs))
                .unwrap()
                .to_batch()
                .unwrap();
            for _ in 0..20 {
                let again = block_on(sql(&s, query, &inputs))
                    .unwrap()
                    .to_batch()
                    .unwrap();
                assert_eq!(again, first, "{query}");
            }
        }
    }
}
