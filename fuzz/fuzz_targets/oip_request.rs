//! An Open Inference Protocol v2 request body, decoded into a table for a
//! model of four float inputs and for a model without a signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_contract::DType;
use sluice_serve::protocol::{infer_table, parse_infer};
use sluice_serve::signature::{ColumnSpec, Signature};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse_infer(data) else {
        return;
    };
    let signature = Signature {
        columns: ["a", "b", "c", "d"]
            .iter()
            .map(|n| ColumnSpec {
                name: n.to_string(),
                column_type: DType::Float64,
            })
            .collect(),
    };
    let _ = infer_table(&request, Some(&signature));
    let _ = infer_table(&request, None);
});
