//! An MLflow scoring request body (`dataframe_split`, `dataframe_records`,
//! `instances`, `inputs`), decoded with and without a model signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_contract::DType;
use sluice_serve::protocol::invocations_table;
use sluice_serve::signature::{ColumnSpec, Signature};

fuzz_target!(|data: &[u8]| {
    let signature = Signature {
        columns: [
            ("a", DType::Float64),
            ("b", DType::Int64),
            ("c", DType::Utf8),
        ]
        .iter()
        .map(|(n, t)| ColumnSpec {
            name: n.to_string(),
            column_type: *t,
        })
        .collect(),
    };
    let _ = invocations_table(data, Some(&signature));
    let _ = invocations_table(data, None);
});
