//! An MLflow scoring request body (`dataframe_split`, `dataframe_records`,
//! `instances`, `inputs`), decoded with and without a model signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_contract::DType;
use sluice_serve::protocol::invocations_table;
use sluice_serve::signature::{ColumnSpec, Signature};

fuzz_target!(|data: &[u8]| {
    let signature = Signature::new(
        [
            ("a", DType::Float64),
            ("b", DType::Int64),
            ("c", DType::Utf8),
            ("d", DType::Boolean),
        ]
        .iter()
        .map(|(n, t)| ColumnSpec {
            name: n.to_string(),
            column_type: *t,
        })
        .collect(),
    );
    let table = invocations_table(data, Some(&signature));
    let _ = invocations_table(data, None);
    // A lone `dataframe_split` is read without a JSON tree; with a second
    // key it is read the general way. Both must take and refuse the same.
    if let Ok(serde_json::Value::Object(mut top)) = serde_json::from_slice(data)
        && top.len() == 1
        && top.contains_key("dataframe_split")
    {
        top.insert("params".into(), serde_json::json!({}));
        let general = invocations_table(&serde_json::to_vec(&top).unwrap(), Some(&signature));
        assert_eq!(
            table.as_ref().map(|t| t.num_rows()).ok(),
            general.as_ref().map(|t| t.num_rows()).ok(),
            "{table:?} vs {general:?}"
        );
    }
});
