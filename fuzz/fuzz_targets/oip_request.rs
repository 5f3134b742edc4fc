//! An Open Inference Protocol v2 request body (JSON, or JSON followed by
//! binary tensor data), decoded into a table for a model of four float
//! inputs and for a model without a signature. A JSON-only body is read
//! as serde alone reads it, whether or not the fast reader took it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_contract::DType;
use sluice_serve::protocol::{InferRequest, infer_table, parse_infer, parse_infer_with};
use sluice_serve::signature::{ColumnSpec, Signature};

fuzz_target!(|data: &[u8]| {
    // The first two bytes, when there are more, are the length of the JSON
    // header of a binary-data request (`Inference-Header-Content-Length`).
    if let [a, b, body @ ..] = data
        && let Ok(request) = parse_infer_with(body, Some(usize::from(u16::from_le_bytes([*a, *b]))))
    {
        let _ = infer_table(&request, None);
    }
    let Ok(request) = parse_infer(data) else {
        return;
    };
    // Without binary data, the request is what serde reads from the JSON.
    if request.inputs.iter().all(|t| t.parameters.is_none()) {
        let by_serde: InferRequest<'_> =
            serde_json::from_slice(data).expect("serde reads what parse_infer read");
        assert_eq!(request, by_serde);
    }
    let signature = Signature::new(
        ["a", "b", "c", "d"]
            .iter()
            .map(|n| ColumnSpec {
                name: n.to_string(),
                column_type: DType::Float64,
            })
            .collect(),
    );
    let _ = infer_table(&request, Some(&signature));
    let _ = infer_table(&request, None);
});
