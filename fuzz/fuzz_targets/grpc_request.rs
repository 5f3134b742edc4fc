//! A gRPC ModelInfer message (protobuf bytes, as a client sends them),
//! decoded and turned into a table for a model of four float inputs and
//! for a model without a signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sluice_contract::DType;
use sluice_serve::grpc::infer_request;
use sluice_serve::grpc::inference::ModelInferRequest;
use sluice_serve::protocol::infer_table;
use sluice_serve::signature::{ColumnSpec, Signature};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = ModelInferRequest::decode(data) else {
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
