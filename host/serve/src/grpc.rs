//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`,
//! as Triton's and KServe's gRPC clients call it): its messages, and their
//! conversion to and from the same request and prediction types the HTTP
//! endpoints use, so both transports accept and refuse exactly the same
//! data.
//!
//! Tensor values arrive either typed (`contents`) or as raw little-endian
//! bytes (`raw_input_contents`, what `tritonclient.grpc` sends); they are
//! decoded straight into typed columns. Outputs always go back as
//! `raw_output_contents`, the form both clients read first.

use crate::protocol::{
    BinaryInputs, InferRequest, InputTensor, PLATFORM, RequestedOutput, TensorData,
    metadata_tensors, requested_outputs,
};
use crate::signature::{DataError, Signature};
use arrow_array::RecordBatch;
use serde_json::{Map, Value, json};
use std::borrow::Cow;

/// The protocol's messages and service, generated from
/// `host/serve/proto/inference.proto` by `scripts/gen-grpc`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod inference {
    include!("grpc/inference.rs");
}

mod wire;
pub use wire::{Input, ModelInfer};

use inference::infer_parameter::ParameterChoice;
use inference::{InferParameter, InferTensorContents};

/// gRPC parameters as the JSON parameters of the HTTP protocol.
fn parameters(
    map: &std::collections::HashMap<String, InferParameter>,
) -> Option<Map<String, Value>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .filter_map(|(k, p)| {
                let v = match p.parameter_choice.as_ref()? {
                    ParameterChoice::BoolParam(b) => json!(b),
                    ParameterChoice::Int64Param(i) => json!(i),
                    ParameterChoice::StringParam(s) => json!(s),
                    ParameterChoice::DoubleParam(d) => json!(d),
                    ParameterChoice::Uint64Param(u) => json!(u),
                };
                Some((k.clone(), v))
            })
            .collect()
    })
}

/// The request as the HTTP protocol's [`InferRequest`], names borrowed
/// from the message, each input's values decoded from its typed contents
/// or its raw bytes; or why it cannot be.
pub fn infer_request(request: ModelInfer<'_>) -> Result<InferRequest<'_>, DataError> {
    let raw = request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(DataError(format!(
            "the request has {} inputs but {} `raw_input_contents` entries; send one entry per input, in input order",
            request.inputs.len(),
            raw.len()
        )));
    }
    let mut decoded = BinaryInputs::new(
        request
            .inputs
            .iter()
            .zip(&raw)
            .map(|(t, bytes)| (t.datatype, bytes.len())),
        raw.iter().map(|b| b.len()).sum(),
    );
    let mut inputs = request
        .inputs
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let mut tensor = InputTensor {
                name: Cow::Borrowed(t.name),
                shape: t.shape,
                datatype: Cow::Borrowed(t.datatype),
                parameters: parameters(&t.parameters),
                data: None,
            };
            tensor.data = match (raw.get(i), t.contents) {
                (Some(_), Some(c)) if !contents_empty(&c) => {
                    return Err(DataError(format!(
                        "input `{}` has both `contents` and raw contents; send one",
                        tensor.name
                    )));
                }
                (Some(bytes), _) => decoded.decode(i, &tensor, bytes)?,
                (None, Some(c)) => Some(typed_contents(&tensor, *c)?),
                (None, None) => {
                    return Err(DataError(format!(
                        "input `{}` has no `contents` (nor an entry in `raw_input_contents`)",
                        tensor.name
                    )));
                }
            };
            Ok(tensor)
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    decoded.finish(&mut inputs);
    Ok(InferRequest {
        id: (!request.id.is_empty()).then(|| request.id.to_string()),
        parameters: parameters(&request.parameters),
        inputs,
        outputs: Some(
            request
                .outputs
                .into_iter()
                .map(|name| RequestedOutput {
                    name: Cow::Borrowed(name),
                    parameters: None,
                })
                .collect(),
        ),
    })
}

fn contents_empty(c: &InferTensorContents) -> bool {
    c.bool_contents.is_empty()
        && c.int_contents.is_empty()
        && c.int64_contents.is_empty()
        && c.uint_contents.is_empty()
        && c.uint64_contents.is_empty()
        && c.fp32_contents.is_empty()
        && c.fp64_contents.is_empty()
        && c.bytes_contents.is_empty()
}

/// The values in the `contents` field that the tensor's datatype uses.
fn typed_contents(t: &InputTensor, c: InferTensorContents) -> Result<TensorData, DataError> {
    Ok(match &*t.datatype {
        "FP32" => TensorData::Float(c.fp32_contents.into_iter().map(f64::from).collect()),
        "FP64" => TensorData::Float(c.fp64_contents.into()),
        "INT8" | "INT16" | "INT32" => {
            TensorData::Int(c.int_contents.into_iter().map(i64::from).collect())
        }
        "INT64" => TensorData::Int(c.int64_contents.into()),
        "UINT8" | "UINT16" | "UINT32" => {
            TensorData::UInt(c.uint_contents.into_iter().map(u64::from).collect())
        }
        "UINT64" => TensorData::UInt(c.uint64_contents),
        "BOOL" => TensorData::Bool(c.bool_contents),
        "BYTES" => TensorData::Text(
            c.bytes_contents
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    String::from_utf8(b.to_vec()).map_err(|_| {
                        DataError(format!(
                            "input `{}` (BYTES): element {i} is not UTF-8 text",
                            t.name
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(DataError(format!(
                "input `{}`: datatype `{other}` has no `contents` field; send it in `raw_input_contents`",
                t.name
            )));
        }
    })
}

/// The response, serialized: the requested prediction columns, each as
/// raw bytes.
pub fn infer_response(
    model: &str,
    version: i64,
    id: &str,
    predictions: &RecordBatch,
    request: &InferRequest<'_>,
) -> Result<Vec<u8>, DataError> {
    let outputs = requested_outputs(predictions, request)?;
    Ok(wire::write_infer_response(
        model,
        version,
        id,
        predictions.num_rows(),
        &outputs,
    ))
}

/// Model metadata: the same tensors as the HTTP endpoint's document.
pub fn model_metadata(
    name: &str,
    versions: &[i64],
    inputs: Option<&Signature>,
    outputs: &Signature,
) -> inference::ModelMetadataResponse {
    use inference::model_metadata_response::TensorMetadata;
    let tensors = |t: Vec<(&str, &str)>| -> Vec<TensorMetadata> {
        t.into_iter()
            .map(|(name, datatype)| TensorMetadata {
                name: name.to_string(),
                datatype: datatype.to_string(),
                shape: vec![-1],
            })
            .collect()
    };
    let (inputs, outputs) = metadata_tensors(inputs, outputs);
    inference::ModelMetadataResponse {
        name: name.to_string(),
        versions: versions.iter().map(i64::to_string).collect(),
        platform: PLATFORM.to_string(),
        inputs: tensors(inputs),
        outputs: tensors(outputs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{infer_table, parse_infer};
    use crate::signature::{ColumnSpec, DType, Signature};
    use arrow_array::{Array, Float64Array, StringArray};
    use inference::ModelInferRequest;
    use inference::model_infer_request::InferInputTensor;
    use prost::Message;
    use std::sync::Arc;

    /// The request a client's message makes, read as the server reads it.
    fn request(message: ModelInferRequest) -> Result<InferRequest<'static>, DataError> {
        let bytes = message.encode_to_vec();
        infer_request(ModelInfer::read(&bytes)?).map(InferRequest::into_owned)
    }

    fn sig() -> Signature {
        Signature::new(vec![
            ColumnSpec {
                name: "a".into(),
                column_type: DType::Float64,
            },
            ColumnSpec {
                name: "n".into(),
                column_type: DType::Int64,
            },
        ])
    }

    fn input(
        name: &str,
        datatype: &str,
        contents: Option<InferTensorContents>,
    ) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape: vec![2],
            contents,
            ..Default::default()
        }
    }

    #[test]
    fn typed_raw_and_json_requests_give_the_same_table() {
        let json = parse_infer(
            br#"{"inputs": [
                {"name": "a", "shape": [2], "datatype": "FP32", "data": [1.5, -2]},
                {"name": "n", "shape": [2], "datatype": "INT64", "data": [3, 4]}]}"#,
        )
        .unwrap();
        let typed = request(ModelInferRequest {
            inputs: vec![
                input(
                    "a",
                    "FP32",
                    Some(InferTensorContents {
                        fp32_contents: vec![1.5, -2.0],
                        ..Default::default()
                    }),
                ),
                input(
                    "n",
                    "INT64",
                    Some(InferTensorContents {
                        int64_contents: vec![3, 4],
                        ..Default::default()
                    }),
                ),
            ],
            ..Default::default()
        })
        .unwrap();
        let raw = request(ModelInferRequest {
            inputs: vec![input("a", "FP32", None), input("n", "INT64", None)],
            raw_input_contents: vec![
                [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()]
                    .concat()
                    .into(),
                [3i64.to_le_bytes(), 4i64.to_le_bytes()].concat().into(),
            ],
            ..Default::default()
        })
        .unwrap();
        let expected = infer_table(&json, Some(&sig())).unwrap();
        for r in [typed, raw] {
            assert_eq!(infer_table(&r, Some(&sig())).unwrap(), expected);
        }
    }

    #[test]
    fn malformed_grpc_requests_are_refused_with_the_reason() {
        let e = request(ModelInferRequest {
            inputs: vec![input("a", "FP32", None), input("n", "INT64", None)],
            raw_input_contents: vec![vec![0u8; 8].into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("2 inputs but 1 `raw_input_contents`"), "{e}");
        let e = request(ModelInferRequest {
            inputs: vec![input("a", "FP32", None)],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("input `a` has no `contents`"), "{e}");
        let e = request(ModelInferRequest {
            inputs: vec![input("a", "FP32", None)],
            raw_input_contents: vec![vec![0u8; 7].into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("not a whole number of 4-byte values"), "{e}");
        let e = request(ModelInferRequest {
            inputs: vec![input(
                "a",
                "BYTES",
                Some(InferTensorContents {
                    bytes_contents: vec![vec![0xff].into()],
                    ..Default::default()
                }),
            )],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("element 0 is not UTF-8"), "{e}");
    }

    #[test]
    fn responses_carry_raw_outputs_in_the_requested_order() {
        let p = RecordBatch::try_from_iter([
            (
                "prediction",
                Arc::new(StringArray::from(vec!["M", "Bee"])) as arrow_array::ArrayRef,
            ),
            (
                "probability_M",
                Arc::new(Float64Array::from(vec![0.9, 0.2])) as _,
            ),
        ])
        .unwrap();
        let all = request(ModelInferRequest::default()).unwrap();
        let response = |r: &InferRequest<'_>| {
            let bytes = infer_response("cancer", 3, "x", &p, r).unwrap();
            inference::ModelInferResponse::decode(&bytes[..]).unwrap()
        };
        let r = response(&all);
        assert_eq!(r.model_version, "3");
        assert_eq!(r.outputs.len(), 2);
        assert_eq!(r.outputs[1].datatype, "FP32");
        assert_eq!(r.outputs[1].shape, vec![2]);
        assert_eq!(&r.raw_output_contents[0][..], b"\x01\0\0\0M\x03\0\0\0Bee");
        let floats: Vec<f32> = r.raw_output_contents[1]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(floats, [0.9, 0.2]);
        let one = request(ModelInferRequest {
            outputs: vec![inference::model_infer_request::InferRequestedOutputTensor {
                name: "probability_M".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
        let r = response(&one);
        assert_eq!(r.outputs.len(), 1);
        assert_eq!(r.raw_output_contents.len(), 1);
        assert_eq!(p.column(1).len(), 2);
    }
}
