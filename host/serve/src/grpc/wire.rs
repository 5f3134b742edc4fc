//! A `ModelInferRequest` read in place from its protobuf bytes, and a
//! `ModelInferResponse` written straight to them.
//!
//! prost decodes a message into owned values: for a one-row request of 30
//! inputs that is 60 strings, 30 shape lists, 30 copies of the raw
//! contents, and an `inputs` list grown by doubling a large struct, all
//! made to be turned into a request table and dropped. On the serving
//! path this was about a tenth of a gRPC request's CPU. [`ModelInfer`]
//! borrows the names and raw contents from the message's bytes instead,
//! and decodes the rarely sent parts (parameters, typed `contents`) with
//! prost's own types, so it accepts and refuses what prost does: the
//! `grpc_request` fuzz target and the tests below check the two against
//! each other. The one difference: prost stops nesting at 100 levels
//! counted from the top message, while the parts decoded with prost here
//! start their own count, so a message nesting unknown groups about a
//! hundred deep inside an input's `contents` is read here and refused by
//! prost.

use super::inference::model_infer_request::InferInputTensor;
use super::inference::{InferParameter, InferTensorContents, ModelInferRequest};
use crate::protocol::{OutputTensor, Shape, encode_binary};
use crate::signature::DataError;
use prost::Message;
use prost::encoding::{
    WireType, decode_varint, encode_key, encode_varint, encoded_len_varint, key_len,
};
use std::collections::HashMap;
use std::io::Write;

/// How deep messages and groups may nest: prost's limit.
const RECURSION_LIMIT: u32 = 100;

/// A `ModelInferRequest` whose strings and raw contents are borrowed from
/// the bytes it was read from.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ModelInfer<'a> {
    /// The model's name.
    pub model_name: &'a str,
    /// The version asked for; empty: the server picks.
    pub model_version: &'a str,
    /// The request's id, echoed in the response; may be empty.
    pub id: &'a str,
    /// Request parameters.
    pub parameters: HashMap<String, InferParameter>,
    /// The input tensors, in message order.
    pub inputs: Vec<Input<'a>>,
    /// The names of the outputs asked for (their parameters are read, to
    /// refuse what prost refuses, and not kept: this server uses none).
    pub outputs: Vec<&'a str>,
    /// Each input's values as raw little-endian bytes, in input order.
    pub raw_input_contents: Vec<&'a [u8]>,
}

/// An input tensor of a [`ModelInfer`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Input<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its datatype (`FP32`, `INT64`, `BYTES`, …).
    pub datatype: &'a str,
    /// Its dimensions.
    pub shape: Shape,
    /// Tensor parameters.
    pub parameters: HashMap<String, InferParameter>,
    /// Typed values, when they are not in `raw_input_contents` (boxed: an
    /// unused `InferTensorContents` is eight lists wide).
    pub contents: Option<Box<InferTensorContents>>,
}

impl<'a> ModelInfer<'a> {
    /// Reads a serialized `ModelInferRequest`, or says why it is not one.
    pub fn read(message: &'a [u8]) -> Result<Self, DataError> {
        let mut m = ModelInfer::default();
        let mut r = Reader::new(message);
        while let Some((tag, wire)) = r.key()? {
            match tag {
                1 => m.model_name = r.text(wire, "model_name")?,
                2 => m.model_version = r.text(wire, "model_version")?,
                3 => m.id = r.text(wire, "id")?,
                4 => r.parameter(wire, "parameters", &mut m.parameters)?,
                5 => m.inputs.push(Input::read(r.delimited(wire, "inputs")?)?),
                6 => m.outputs.push(read_output(r.delimited(wire, "outputs")?)?),
                7 => m
                    .raw_input_contents
                    .push(r.delimited(wire, "raw_input_contents")?),
                _ => r.skip(wire, tag, RECURSION_LIMIT)?,
            }
        }
        Ok(m)
    }
}

impl<'a> Input<'a> {
    fn read(message: &'a [u8]) -> Result<Self, DataError> {
        let mut t = Input::default();
        let mut r = Reader::new(message);
        while let Some((tag, wire)) = r.key()? {
            match tag {
                1 => t.name = r.text(wire, "inputs.name")?,
                2 => t.datatype = r.text(wire, "inputs.datatype")?,
                3 => r.int64s(wire, "inputs.shape", &mut t.shape)?,
                4 => r.parameter(wire, "inputs.parameters", &mut t.parameters)?,
                5 => {
                    let bytes = r.delimited(wire, "inputs.contents")?;
                    t.contents
                        .get_or_insert_default()
                        .merge(bytes)
                        .map_err(|e| invalid(format!("`inputs.contents`: {e}")))?;
                }
                _ => r.skip(wire, tag, RECURSION_LIMIT - 1)?,
            }
        }
        Ok(t)
    }
}

/// A requested output's name; its parameters are checked, not kept.
fn read_output(message: &[u8]) -> Result<&str, DataError> {
    let mut name = "";
    let mut r = Reader::new(message);
    while let Some((tag, wire)) = r.key()? {
        match tag {
            1 => name = r.text(wire, "outputs.name")?,
            2 => r.parameter(wire, "outputs.parameters", &mut HashMap::new())?,
            _ => r.skip(wire, tag, RECURSION_LIMIT - 1)?,
        }
    }
    Ok(name)
}

impl<'a> From<&'a ModelInferRequest> for ModelInfer<'a> {
    /// The same view of a message prost decoded (what the generated
    /// service hands over, and what tests compare [`ModelInfer::read`]
    /// with).
    fn from(m: &'a ModelInferRequest) -> Self {
        let input = |t: &'a InferInputTensor| Input {
            name: &t.name,
            datatype: &t.datatype,
            shape: t.shape.iter().copied().collect(),
            parameters: t.parameters.clone(),
            contents: t.contents.clone().map(Box::new),
        };
        ModelInfer {
            model_name: &m.model_name,
            model_version: &m.model_version,
            id: &m.id,
            parameters: m.parameters.clone(),
            inputs: m.inputs.iter().map(input).collect(),
            outputs: m.outputs.iter().map(|o| o.name.as_str()).collect(),
            raw_input_contents: m.raw_input_contents.iter().map(|b| &b[..]).collect(),
        }
    }
}

/// A `map<string, InferParameter>` entry, decoded by prost as it decodes
/// map entries (a missing key or value is its default).
#[derive(Clone, PartialEq, Message)]
struct ParameterEntry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, required, tag = "2")]
    value: InferParameter,
}

/// The message is not a `ModelInferRequest`.
fn invalid(why: String) -> DataError {
    DataError(format!(
        "the ModelInfer message is not valid protobuf: {why}"
    ))
}

/// Reads the fields of one message, front to back.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(message: &'a [u8]) -> Self {
        Reader { rest: message }
    }

    /// The next field's number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u32, WireType)>, DataError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let key =
            u32::try_from(key).map_err(|_| invalid(format!("field key {key} is too large")))?;
        let wire = WireType::try_from(u64::from(key & 7))
            .map_err(|_| invalid(format!("wire type {} does not exist", key & 7)))?;
        let tag = key >> 3;
        if tag == 0 {
            return Err(invalid("field number 0".into()));
        }
        Ok(Some((tag, wire)))
    }

    /// A base-128 varint of at most ten bytes (prost's own reading).
    fn varint(&mut self) -> Result<u64, DataError> {
        decode_varint(&mut self.rest)
            .map_err(|_| invalid("a varint is cut short or longer than 64 bits".into()))
    }

    /// The next `n` bytes.
    fn take(&mut self, n: u64) -> Result<&'a [u8], DataError> {
        match usize::try_from(n) {
            Ok(n) if n <= self.rest.len() => {
                let (taken, rest) = self.rest.split_at(n);
                self.rest = rest;
                Ok(taken)
            }
            _ => Err(invalid(format!(
                "a field claims {n} bytes where {} are left",
                self.rest.len()
            ))),
        }
    }

    /// A length-delimited field's bytes: a string's, a `bytes` field's or an
    /// embedded message's.
    fn delimited(&mut self, wire: WireType, field: &str) -> Result<&'a [u8], DataError> {
        if wire != WireType::LengthDelimited {
            return Err(invalid(format!(
                "`{field}` has wire type {}, not {} (length-delimited)",
                wire as u8,
                WireType::LengthDelimited as u8
            )));
        }
        let n = self.varint()?;
        self.take(n)
    }

    /// A string field.
    fn text(&mut self, wire: WireType, field: &str) -> Result<&'a str, DataError> {
        std::str::from_utf8(self.delimited(wire, field)?)
            .map_err(|_| invalid(format!("`{field}` is not UTF-8 text")))
    }

    /// A `repeated int64`, packed or one value per field.
    fn int64s(&mut self, wire: WireType, field: &str, out: &mut Shape) -> Result<(), DataError> {
        if wire == WireType::Varint {
            out.push(self.varint()? as i64);
            return Ok(());
        }
        let mut packed = Reader::new(self.delimited(wire, field)?);
        while !packed.rest.is_empty() {
            out.push(packed.varint()? as i64);
        }
        Ok(())
    }

    /// One entry of a `map<string, InferParameter>`: a later entry for a
    /// key replaces an earlier one.
    fn parameter(
        &mut self,
        wire: WireType,
        field: &str,
        map: &mut HashMap<String, InferParameter>,
    ) -> Result<(), DataError> {
        let entry = ParameterEntry::decode(self.delimited(wire, field)?)
            .map_err(|e| invalid(format!("`{field}`: {e}")))?;
        map.insert(entry.key, entry.value);
        Ok(())
    }

    /// Skips an unknown field (groups included, as deep as `budget`
    /// allows, as prost does).
    fn skip(&mut self, wire: WireType, tag: u32, budget: u32) -> Result<(), DataError> {
        if budget == 0 {
            return Err(invalid("messages or groups nest too deeply".into()));
        }
        match wire {
            WireType::Varint => {
                self.varint()?;
            }
            WireType::SixtyFourBit => {
                self.take(8)?;
            }
            WireType::LengthDelimited => {
                let n = self.varint()?;
                self.take(n)?;
            }
            WireType::ThirtyTwoBit => {
                self.take(4)?;
            }
            WireType::StartGroup => loop {
                match self.key()? {
                    None => return Err(invalid(format!("group {tag} has no end"))),
                    Some((inner, WireType::EndGroup)) if inner == tag => break,
                    Some((_, WireType::EndGroup)) => {
                        return Err(invalid(format!("group {tag} ends with another's tag")));
                    }
                    Some((inner, wire)) => self.skip(wire, inner, budget - 1)?,
                }
            },
            WireType::EndGroup => {
                return Err(invalid(format!(
                    "field {tag} ends a group that never began"
                )));
            }
        }
        Ok(())
    }
}

/// A `ModelInferResponse` serialized straight from the prediction columns,
/// byte for byte as prost encodes the same message (a test checks), but
/// without building prost's owned message first: three strings, a shape
/// list and a content buffer per output, and the response's own strings.
/// Every output goes as `raw_output_contents`.
pub fn write_infer_response(
    model_name: &str,
    model_version: i64,
    id: &str,
    rows: usize,
    outputs: &[OutputTensor<'_>],
) -> Vec<u8> {
    let mut version = [0u8; 20];
    let version = {
        let mut w = &mut version[..];
        write!(w, "{model_version}").expect("an i64 fits in 20 digits");
        let n = 20 - w.len();
        std::str::from_utf8(&version[..n]).expect("digits are UTF-8")
    };
    let rows = rows as u64;
    let shape = encoded_len_varint(rows);
    let tensor_len = |o: &OutputTensor<'_>| {
        text_len(1, o.name)
            + text_len(2, o.datatype)
            + key_len(3)
            + encoded_len_varint(shape as u64)
            + shape
    };
    let values: usize = outputs.iter().map(|o| 16 + o.column.len() * 8).sum();
    let guess = 32 + model_name.len() + id.len() + values;
    let mut out = Vec::with_capacity(guess + outputs.iter().map(tensor_len).sum::<usize>());
    text(&mut out, 1, model_name);
    text(&mut out, 2, version);
    text(&mut out, 3, id);
    for o in outputs {
        encode_key(5, WireType::LengthDelimited, &mut out);
        encode_varint(tensor_len(o) as u64, &mut out);
        text(&mut out, 1, o.name);
        text(&mut out, 2, o.datatype);
        encode_key(3, WireType::LengthDelimited, &mut out);
        encode_varint(shape as u64, &mut out);
        encode_varint(rows, &mut out);
    }
    let mut raw = Vec::new();
    for o in outputs {
        raw.clear();
        encode_binary(o.column, &mut raw);
        encode_key(6, WireType::LengthDelimited, &mut out);
        encode_varint(raw.len() as u64, &mut out);
        out.extend_from_slice(&raw);
    }
    out
}

/// A string field, left out when empty (as proto3 and prost do).
fn text(out: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        encode_key(field, WireType::LengthDelimited, out);
        encode_varint(value.len() as u64, out);
        out.extend_from_slice(value.as_bytes());
    }
}

/// The bytes [`text`] writes.
fn text_len(field: u32, value: &str) -> usize {
    match value.len() {
        0 => 0,
        n => key_len(field) + encoded_len_varint(n as u64) + n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::inference::ModelInferResponse;
    use crate::grpc::inference::model_infer_response::InferOutputTensor;
    use arrow_array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};

    #[test]
    fn a_response_is_written_byte_for_byte_as_prost_encodes_it() {
        let rows = 300; // a shape and contents whose lengths take two-byte varints
        let labels = StringArray::from_iter_values((0..rows).map(|i| "B".repeat(i % 3)));
        let scores = Float64Array::from_iter_values((0..rows).map(|i| i as f64 / 7.0));
        let counts = Int64Array::from_iter_values((0..rows as i64).map(|i| i - 150));
        let flags = BooleanArray::from_iter((0..rows).map(|i| Some(i % 2 == 0)));
        for (id, version, n) in [("req-1", 3, rows), ("", 1_234_567_890_123, 2), ("x", -2, 0)] {
            let (labels, scores) = (labels.slice(0, n), scores.slice(0, n));
            let (counts, flags) = (counts.slice(0, n), flags.slice(0, n));
            let columns: [(&str, &'static str, &dyn Array); 4] = [
                ("prediction", "BYTES", &labels),
                ("probability_B", "FP32", &scores),
                ("count", "INT64", &counts),
                ("", "BOOL", &flags),
            ];
            let outputs: Vec<OutputTensor<'_>> = columns
                .iter()
                .map(|&(name, datatype, column)| OutputTensor {
                    name,
                    datatype,
                    column,
                    binary: true,
                })
                .collect();
            let outputs = &outputs[..];
            let prost = ModelInferResponse {
                model_name: "cancer".into(),
                model_version: version.to_string(),
                id: id.into(),
                outputs: outputs
                    .iter()
                    .map(|o| InferOutputTensor {
                        name: o.name.into(),
                        datatype: o.datatype.into(),
                        shape: vec![n as i64],
                        ..Default::default()
                    })
                    .collect(),
                raw_output_contents: outputs
                    .iter()
                    .map(|o| {
                        let mut raw = Vec::new();
                        encode_binary(o.column, &mut raw);
                        raw.into()
                    })
                    .collect(),
                ..Default::default()
            };
            let written = write_infer_response("cancer", version, id, n, outputs);
            assert_eq!(
                written,
                prost.encode_to_vec(),
                "id {id:?}, version {version}"
            );
        }
    }
    use crate::grpc::inference::infer_parameter::ParameterChoice;
    use crate::grpc::inference::model_infer_request::InferRequestedOutputTensor;

    /// A request using every field, some twice.
    fn full() -> ModelInferRequest {
        let parameter = |p: ParameterChoice| InferParameter {
            parameter_choice: Some(p),
        };
        ModelInferRequest {
            model_name: "cancer".into(),
            model_version: "3".into(),
            id: "r-1".into(),
            parameters: [(
                "binary_data_output".to_string(),
                parameter(ParameterChoice::BoolParam(true)),
            )]
            .into(),
            inputs: vec![
                InferInputTensor {
                    name: "radius".into(),
                    datatype: "FP64".into(),
                    shape: vec![2, 1],
                    ..Default::default()
                },
                InferInputTensor {
                    name: "label".into(),
                    datatype: "BYTES".into(),
                    shape: vec![2],
                    parameters: [(
                        "x".to_string(),
                        parameter(ParameterChoice::StringParam("y".into())),
                    )]
                    .into(),
                    contents: Some(InferTensorContents {
                        bytes_contents: vec![b"a".to_vec().into(), b"bc".to_vec().into()],
                        ..Default::default()
                    }),
                },
            ],
            outputs: vec![InferRequestedOutputTensor {
                name: "prediction".into(),
                parameters: [(
                    "binary_data".to_string(),
                    parameter(ParameterChoice::BoolParam(false)),
                )]
                .into(),
            }],
            raw_input_contents: vec![[1.5f64.to_le_bytes(), 2.5f64.to_le_bytes()].concat().into()],
        }
    }

    #[test]
    fn a_message_reads_the_same_in_place_as_through_prost() {
        let message = full();
        let bytes = message.encode_to_vec();
        assert_eq!(
            ModelInfer::read(&bytes).unwrap(),
            ModelInfer::from(&message)
        );
        let empty = ModelInferRequest::default();
        assert_eq!(ModelInfer::read(&[]).unwrap(), ModelInfer::from(&empty));
    }

    #[test]
    fn unpacked_shapes_unknown_fields_and_repeated_scalars_read_as_prost_reads_them() {
        // Input: name "a", shape 2 and 3 unpacked (tag 3, varint), an
        // unknown fixed32 field 9, a group 10 holding a varint, and the
        // name again (the last one wins).
        let input = [
            &[0x0a, 1, b'a'][..],
            &[0x18, 2, 0x18, 3],
            &[0x4d, 1, 2, 3, 4],
            &[0x53, 0x08, 7, 0x54],
            &[0x0a, 1, b'b'],
        ]
        .concat();
        let mut bytes = vec![0x2a, input.len() as u8];
        bytes.extend(&input);
        // An unknown fixed64 field 15 at the top.
        bytes.extend([0x79, 0, 0, 0, 0, 0, 0, 0, 0]);
        let read = ModelInfer::read(&bytes).unwrap();
        let decoded = ModelInferRequest::decode(&bytes[..]).unwrap();
        assert_eq!(read, ModelInfer::from(&decoded));
        assert_eq!(read.inputs[0].name, "b");
        assert_eq!(&*read.inputs[0].shape, &[2, 3]);
    }

    #[test]
    fn malformed_messages_are_refused_where_prost_refuses_them() {
        let refused: [(&[u8], &str); 9] = [
            (&[0x0a, 5, b'a'], "claims 5 bytes"),
            (&[0x0a, 1, 0xff], "`model_name` is not UTF-8"),
            (&[0x08, 1], "`model_name` has wire type 0"),
            (&[0x00, 1], "field number 0"),
            (&[0x0e], "wire type 6"),
            (&[0x7c], "ends a group that never began"),
            (&[0x7b, 0x08, 1], "group 15 has no end"),
            (&[0x7b, 0x84, 0x01], "ends with another's tag"),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
                "varint",
            ),
        ];
        for (bytes, why) in refused {
            assert!(
                ModelInferRequest::decode(bytes).is_err(),
                "prost reads {bytes:?}"
            );
            let e = ModelInfer::read(bytes).unwrap_err();
            assert!(e.0.contains(why), "{bytes:?}: {e}");
        }
        // Groups nested past prost's limit.
        let deep = [vec![0x7b; 101], vec![0x7c; 101]].concat();
        assert!(ModelInferRequest::decode(&deep[..]).is_err());
        assert!(
            ModelInfer::read(&deep)
                .unwrap_err()
                .0
                .contains("nest too deeply")
        );
        let fine = [vec![0x7b; 99], vec![0x7c; 99]].concat();
        assert!(ModelInferRequest::decode(&fine[..]).is_ok());
        assert!(ModelInfer::read(&fine).is_ok());
    }
}
