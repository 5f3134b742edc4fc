//! A gRPC ModelInfer message (protobuf bytes, as a client sends them):
//! read in place as the server reads it, checked against prost's decoding
//! of the same bytes (same fields, same refusals), then turned into a table
//! for a model of four float inputs and for a model without a signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sluice_contract::DType;
use sluice_serve::grpc::inference::{InferParameter, ModelInferRequest};
use std::collections::{BTreeMap, HashMap};
use sluice_serve::grpc::{ModelInfer, infer_request};
use sluice_serve::protocol::infer_table;
use sluice_serve::signature::{ColumnSpec, Signature};

fuzz_target!(|data: &[u8]| {
    let read = ModelInfer::read(data);
    match (ModelInferRequest::decode(data), &read) {
        (Ok(decoded), Ok(read)) => {
            let decoded = ModelInfer::from(&decoded);
            assert_eq!(canonical(read), canonical(&decoded), "read in place ≠ prost");
        }
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("prost reads the message; ModelInfer::read refuses it: {e}"),
        // The one known difference (grpc/wire.rs): nesting limits of the
        // parts decoded with prost count from those parts.
        (Err(e), Ok(_)) => assert!(
            e.to_string().contains("recursion limit"),
            "ModelInfer::read reads a message prost refuses: {e}"
        ),
    }
    let Ok(message) = read else {
        return;
    };
    let Ok(request) = infer_request(message) else {
        return;
    };
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

/// A message's fields with the typed parts as their protobuf encoding, so
/// that a NaN compares equal to itself (a float field holds any bits).
fn canonical<'a>(m: &'a ModelInfer<'a>) -> impl PartialEq + std::fmt::Debug + 'a {
    fn parameters(p: &HashMap<String, InferParameter>) -> BTreeMap<&str, Vec<u8>> {
        p.iter()
            .map(|(k, v)| (k.as_str(), v.encode_to_vec()))
            .collect()
    }
    let inputs: Vec<_> = m
        .inputs
        .iter()
        .map(|t| {
            (
                t.name,
                t.datatype,
                t.shape.to_vec(),
                parameters(&t.parameters),
                t.contents.as_ref().map(|c| c.encode_to_vec()),
            )
        })
        .collect();
    (
        (m.model_name, m.model_version, m.id),
        parameters(&m.parameters),
        inputs,
        m.outputs.clone(),
        m.raw_input_contents.clone(),
    )
}
