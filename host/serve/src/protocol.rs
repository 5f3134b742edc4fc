//! The wire formats: the Open Inference Protocol v2 (KServe, Triton) and
//! MLflow's scoring API, parsed into request tables and written back from
//! prediction tables. Every refusal says what was wrong and where.

use crate::signature::{
    ArrowDType, ColumnValues, DType, DataError, Scalar, Signature, oip_datatype,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_buffer::ScalarBuffer;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::sync::Arc;

mod fast;

/// An Open Inference Protocol v2 inference request.
///
/// Fields the protocol does not define (KServe's client sends
/// `model_name`, for instance) are accepted and ignored, as the reference
/// servers do. Names and datatypes are borrowed from the body they were
/// read from (`'a`) when they hold no escapes: a 30-input request would
/// otherwise copy 60 strings out of a body that is still there.
/// [`InferRequest::into_owned`] lets the body go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InferRequest<'a> {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters; this server reads `binary_data_output`.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// One tensor per input column (or one `[rows, columns]` tensor).
    #[serde(borrow)]
    pub inputs: Vec<InputTensor<'a>>,
    /// Which outputs to return (all when absent or empty).
    #[serde(default, borrow)]
    pub outputs: Option<Vec<RequestedOutput<'a>>>,
}

impl InferRequest<'_> {
    /// Whether outputs come back as binary data unless an output says
    /// otherwise (`parameters.binary_data_output`).
    pub fn binary_output(&self) -> bool {
        flag(self.parameters.as_ref(), "binary_data_output").unwrap_or(false)
    }

    /// The request with its names copied, so that the body it was read
    /// from can be freed before the request is answered (a large body
    /// would otherwise be held through the prediction).
    pub fn into_owned(self) -> InferRequest<'static> {
        InferRequest {
            id: self.id,
            parameters: self.parameters,
            inputs: self
                .inputs
                .into_iter()
                .map(|t| InputTensor {
                    name: Cow::Owned(t.name.into_owned()),
                    shape: t.shape,
                    datatype: Cow::Owned(t.datatype.into_owned()),
                    parameters: t.parameters,
                    data: t.data,
                })
                .collect(),
            outputs: self.outputs.map(|outputs| {
                outputs
                    .into_iter()
                    .map(|o| RequestedOutput {
                        name: Cow::Owned(o.name.into_owned()),
                        parameters: o.parameters,
                    })
                    .collect()
            }),
        }
    }
}

/// An input tensor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InputTensor<'a> {
    /// Its name: a column of the model.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Its shape: `[rows]`, `[rows, 1]`, or `[rows, columns]` for one
    /// tensor holding every column.
    pub shape: Shape,
    /// `FP32`, `FP64`, `INT64`, `BOOL`, `BYTES`, …
    #[serde(borrow)]
    pub datatype: Cow<'a, str>,
    /// Tensor parameters; `binary_data_size` says the values follow the
    /// JSON header as binary data.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The values, row-major (nested lists flattened as they are read;
    /// absent when they come as binary data).
    #[serde(default)]
    pub data: Option<TensorData>,
}

/// A tensor's dimensions as the client sent them, not yet checked. Held
/// inline up to rank 2 (every shape this server accepts): a list per input
/// would be an allocation per column of every request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Shape(smallvec::SmallVec<[i64; 2]>);

impl std::ops::Deref for Shape {
    type Target = [i64];
    fn deref(&self) -> &[i64] {
        &self.0
    }
}

impl std::fmt::Debug for Shape {
    /// As a list: `[2, 30]`, the way error messages show a shape.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl Shape {
    /// Appends a dimension.
    pub fn push(&mut self, dim: i64) {
        self.0.push(dim);
    }
}

impl FromIterator<i64> for Shape {
    fn from_iter<I: IntoIterator<Item = i64>>(dims: I) -> Self {
        Shape(dims.into_iter().collect())
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Dims;
        impl<'de> serde::de::Visitor<'de> for Dims {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Shape, A::Error> {
                let mut dims = smallvec::SmallVec::new();
                while let Some(d) = seq.next_element::<i64>()? {
                    dims.push(d);
                }
                Ok(Shape(dims))
            }
        }
        deserializer.deserialize_seq(Dims)
    }
}

/// A tensor's values, flat and row-major, in the type they arrived in.
///
/// JSON `data` stays JSON values, checked against the model's column types
/// when the table is made; binary data and gRPC contents arrive typed and
/// are never turned into JSON values (a 50,000-row binary request would be
/// ten times its size as `serde_json::Value`s). Floats and 64-bit integers
/// are held in Arrow buffers, which become the request table's columns
/// without a copy.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// From JSON `data`.
    Json(Vec<Value>),
    /// FP16, FP32, FP64.
    Float(ScalarBuffer<f64>),
    /// INT8 to INT64.
    Int(ScalarBuffer<i64>),
    /// UINT8 to UINT64.
    UInt(Vec<u64>),
    /// BOOL.
    Bool(Vec<bool>),
    /// BYTES, as UTF-8 text.
    Text(Vec<String>),
}

impl TensorData {
    /// How many values.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Json(v) => v.len(),
            TensorData::Float(v) => v.len(),
            TensorData::Int(v) => v.len(),
            TensorData::UInt(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::Text(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every `step`-th value from `start`: one column of a row-major
    /// `[rows, step]` matrix.
    fn column_of(&self, start: usize, step: usize) -> TensorData {
        fn pick<T: Clone>(v: &[T], start: usize, step: usize) -> Vec<T> {
            v.iter().skip(start).step_by(step).cloned().collect()
        }
        match self {
            TensorData::Json(v) => TensorData::Json(pick(v, start, step)),
            TensorData::Float(v) => TensorData::Float(pick(v, start, step).into()),
            TensorData::Int(v) => TensorData::Int(pick(v, start, step).into()),
            TensorData::UInt(v) => TensorData::UInt(pick(v, start, step)),
            TensorData::Bool(v) => TensorData::Bool(pick(v, start, step)),
            TensorData::Text(v) => TensorData::Text(pick(v, start, step)),
        }
    }
}

impl ColumnValues for TensorData {
    fn count(&self) -> usize {
        self.len()
    }

    fn to_array(&self, name: &str, column_type: DType, what: &str) -> Result<ArrayRef, DataError> {
        let refused = |shown: String| {
            DataError(format!(
                "{what} `{name}` holds {shown}, but the model takes {} there",
                column_type.name()
            ))
        };
        Ok(match (self, column_type) {
            (TensorData::Json(v), _) => return v.to_array(name, column_type, what),
            // The decoded values become the column: no copy.
            (TensorData::Float(v), DType::Float64) => Arc::new(Float64Array::new(v.clone(), None)),
            (TensorData::Int(v), DType::Float64) => {
                Arc::new(Float64Array::from_iter_values(v.iter().map(|&x| x as f64)))
            }
            (TensorData::UInt(v), DType::Float64) => {
                Arc::new(Float64Array::from_iter_values(v.iter().map(|&x| x as f64)))
            }
            (TensorData::Int(v), DType::Int64) => Arc::new(Int64Array::new(v.clone(), None)),
            (TensorData::UInt(v), DType::Int64) => Arc::new(
                v.iter()
                    .enumerate()
                    .map(|(i, &x)| {
                        i64::try_from(x)
                            .map_err(|_| refused(format!("{x} at position {i}, beyond INT64")))
                    })
                    .collect::<Result<Int64Array, _>>()?,
            ),
            (TensorData::Bool(v), DType::Boolean) => Arc::new(BooleanArray::from(v.clone())),
            (TensorData::Text(v), DType::Utf8) => Arc::new(StringArray::from_iter_values(v.iter())),
            (other, _) => {
                return Err(refused(
                    match other {
                        TensorData::Float(_) => "floating-point numbers",
                        TensorData::Int(_) | TensorData::UInt(_) => "integers",
                        TensorData::Bool(_) => "true/false values",
                        _ => "text",
                    }
                    .into(),
                ));
            }
        })
    }

    fn numbers(&self) -> Option<impl Iterator<Item = Option<Option<f64>>> + '_> {
        // Decoded binary floats already are a buffer the column takes as
        // it is.
        match self {
            TensorData::Json(v) => v.numbers(),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for TensorData {
    /// A JSON list, nested lists flattened row-major as they are read (no
    /// nested tree is built); anything but a list is refused.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{DeserializeSeed, Error, SeqAccess, Visitor};
        use std::fmt;

        /// Appends a value, or each value of a (nested) list, to `.0`.
        struct Flatten<'a>(&'a mut Vec<Value>);

        impl<'de> DeserializeSeed<'de> for Flatten<'_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(self)
            }
        }

        macro_rules! scalar {
            ($name:ident, $ty:ty) => {
                fn $name<E: Error>(self, v: $ty) -> Result<(), E> {
                    self.0.push(json!(v));
                    Ok(())
                }
            };
        }

        impl<'de> Visitor<'de> for Flatten<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            scalar!(visit_bool, bool);
            scalar!(visit_i64, i64);
            scalar!(visit_u64, u64);
            scalar!(visit_f64, f64);
            scalar!(visit_str, &str);
            fn visit_string<E: Error>(self, v: String) -> Result<(), E> {
                self.0.push(Value::String(v));
                Ok(())
            }
            fn visit_unit<E: Error>(self) -> Result<(), E> {
                self.0.push(Value::Null);
                Ok(())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                while seq.next_element_seed(Flatten(self.0))?.is_some() {}
                Ok(())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
                // Kept, to be refused with its position by the column.
                let v = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                self.0.push(v);
                Ok(())
            }
        }

        /// The top level: a list, or a message naming what came instead.
        struct List;

        impl<'de> Visitor<'de> for List {
            type Value = Vec<Value>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`data` as a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while seq.next_element_seed(Flatten(&mut out))?.is_some() {}
                Ok(out)
            }
        }

        deserializer.deserialize_seq(List).map(TensorData::Json)
    }
}

/// A requested output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestedOutput<'a> {
    /// The output's name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Output parameters; `binary_data` asks for it as binary data.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

/// A boolean parameter, if given as one.
fn flag(parameters: Option<&Map<String, Value>>, name: &str) -> Option<bool> {
    parameters
        .and_then(|p| p.get(name))
        .and_then(Value::as_bool)
}

/// Parses an inference request body that is JSON only.
pub fn parse_infer(body: &[u8]) -> Result<InferRequest<'_>, DataError> {
    parse_infer_with(body, None)
}

/// Parses an inference request body. With `header_length` (the
/// `Inference-Header-Content-Length` header of the binary tensor data
/// extension) the body is that many bytes of JSON followed by the binary
/// values of the inputs whose `parameters` give a `binary_data_size`, in
/// input order; they are decoded into the inputs' `data`.
pub fn parse_infer_with(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<InferRequest<'_>, DataError> {
    let (header, mut binary) = match header_length {
        Some(n) if n > body.len() => {
            return Err(DataError(format!(
                "`Inference-Header-Content-Length` is {n}, but the body has only {} bytes",
                body.len()
            )));
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    // Checked as UTF-8 once, as a whole: read from a `&str`, the parser
    // then checks no string on its own (it did for each name and datatype).
    let header = std::str::from_utf8(header).map_err(|e| {
        DataError(format!(
            "invalid inference request: the JSON is not UTF-8 text (byte {} is not part of a UTF-8 character)",
            e.valid_up_to()
        ))
    })?;
    let mut request: InferRequest<'_> = match fast::parse(header) {
        Some(request) => request,
        None => serde_json::from_str(header)
            .map_err(|e| DataError(format!("invalid inference request: {e}")))?,
    };
    let mut decoded = BinaryInputs::new(
        request.inputs.iter().filter_map(|t| {
            let size = t.parameters.as_ref()?.get("binary_data_size")?.as_u64()?;
            Some((&*t.datatype, usize::try_from(size).ok()?))
        }),
        binary.len(),
    );
    for (i, t) in request.inputs.iter_mut().enumerate() {
        let size = match t.parameters.as_ref().and_then(|p| p.get("binary_data_size")) {
            None => None,
            Some(v) => Some(v.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
                DataError(format!(
                    "input `{}`: `binary_data_size` must be a whole number of bytes, not {v}",
                    t.name
                ))
            })?),
        };
        match (size, &t.data) {
            (Some(_), Some(_)) => {
                return Err(DataError(format!(
                    "input `{}` has both `data` and `binary_data_size`; send one",
                    t.name
                )));
            }
            (None, None) => {
                return Err(DataError(format!(
                    "input `{}` has no `data` (nor a `binary_data_size` for values sent as binary data)",
                    t.name
                )));
            }
            (None, Some(_)) => {}
            (Some(size), None) => {
                if header_length.is_none() {
                    return Err(DataError(format!(
                        "input `{}` says its values are binary data, but the request has no \
                         `Inference-Header-Content-Length` header saying where the JSON ends",
                        t.name
                    )));
                }
                if size > binary.len() {
                    return Err(DataError(format!(
                        "input `{}`: `binary_data_size` is {size}, but only {} bytes of binary data are left",
                        t.name,
                        binary.len()
                    )));
                }
                let (bytes, rest) = binary.split_at(size);
                binary = rest;
                t.data = decoded.decode(i, t, bytes)?;
            }
        }
    }
    if !binary.is_empty() {
        return Err(DataError(format!(
            "{} bytes of binary data follow the JSON header that no input claims (a `binary_data_size` too small?)",
            binary.len()
        )));
    }
    decoded.finish(&mut request.inputs);
    Ok(request)
}

/// The values of a binary-data input (also gRPC's raw contents):
/// little-endian, row-major; each `BYTES` element a 4-byte little-endian
/// length and then its bytes.
pub fn decode_binary(t: &InputTensor, bytes: &[u8]) -> Result<TensorData, DataError> {
    let mut floats = Vec::new();
    if decode_floats(t, bytes, &mut floats)? {
        return Ok(TensorData::Float(floats.into()));
    }
    let bad = |why: String| binary_error(t, why);
    let fixed = |width: usize| whole_values(t, bytes, width);
    // Collected into a `Vec` that becomes the buffer as it is: collecting
    // into a `ScalarBuffer` takes a 64-byte-aligned allocation, the
    // allocator's slow path.
    macro_rules! numbers {
        ($variant:ident, $ty:ty, $width:expr) => {
            TensorData::$variant(
                fixed($width)?
                    .map(|c| <$ty>::from_le_bytes(c.try_into().unwrap()).into())
                    .collect::<Vec<_>>()
                    .into(),
            )
        };
    }
    Ok(match &*t.datatype {
        "INT8" => numbers!(Int, i8, 1),
        "INT16" => numbers!(Int, i16, 2),
        "INT32" => numbers!(Int, i32, 4),
        "INT64" => numbers!(Int, i64, 8),
        "UINT8" => numbers!(UInt, u8, 1),
        "UINT16" => numbers!(UInt, u16, 2),
        "UINT32" => numbers!(UInt, u32, 4),
        "UINT64" => numbers!(UInt, u64, 8),
        "BOOL" => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        "BYTES" => {
            let mut out = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return Err(bad(format!(
                        "element {} is cut short: {} bytes where a 4-byte length belongs",
                        out.len(),
                        rest.len()
                    )));
                }
                let (len, tail) = rest.split_at(4);
                let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
                if len > tail.len() {
                    return Err(bad(format!(
                        "element {} claims {len} bytes but {} are left",
                        out.len(),
                        tail.len()
                    )));
                }
                let (text, tail) = tail.split_at(len);
                let text = std::str::from_utf8(text)
                    .map_err(|_| bad(format!("element {} is not UTF-8 text", out.len())))?;
                out.push(text.to_string());
                rest = tail;
            }
            TensorData::Text(out)
        }
        other => {
            return Err(bad(format!(
                "datatype `{other}` is not one this server reads; use one of {DATATYPES}"
            )));
        }
    })
}

/// A refusal of input `t`'s binary values.
fn binary_error(t: &InputTensor, why: String) -> DataError {
    DataError(format!("input `{}` ({}): {why}", t.name, t.datatype))
}

/// `bytes` as values of `width` bytes each, or why they are not.
fn whole_values<'b>(
    t: &InputTensor,
    bytes: &'b [u8],
    width: usize,
) -> Result<std::slice::ChunksExact<'b, u8>, DataError> {
    if !bytes.len().is_multiple_of(width) {
        return Err(binary_error(
            t,
            format!(
                "{} bytes of binary data is not a whole number of {width}-byte values",
                bytes.len()
            ),
        ));
    }
    Ok(bytes.chunks_exact(width))
}

/// The width of one binary value of a float `datatype`; `None` for others.
fn float_width(datatype: &str) -> Option<usize> {
    match datatype {
        "FP64" => Some(8),
        "FP32" => Some(4),
        "FP16" => Some(2),
        _ => None,
    }
}

/// Appends the binary values of a float input (FP16, FP32, FP64) to
/// `out`; `false`, appending nothing, for any other datatype.
fn decode_floats(t: &InputTensor, bytes: &[u8], out: &mut Vec<f64>) -> Result<bool, DataError> {
    let Some(width) = float_width(&t.datatype) else {
        return Ok(false);
    };
    let values = whole_values(t, bytes, width)?;
    out.reserve(values.len());
    match width {
        8 => out.extend(values.map(|c| f64::from_le_bytes(c.try_into().unwrap()))),
        4 => out.extend(values.map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))),
        _ => out.extend(values.map(|c| f16_to_f64(u16::from_le_bytes(c.try_into().unwrap())))),
    }
    Ok(true)
}

/// The binary values of a request's inputs, its float columns gathered in
/// one buffer of which each is a slice: one allocation for all of them,
/// where a buffer each took two per column (a one-row request of 30
/// columns made 60 allocations of 8 bytes).
pub(crate) struct BinaryInputs {
    floats: Vec<f64>,
    /// Input index and range in `floats` of each float input.
    ranges: Vec<(usize, std::ops::Range<usize>)>,
}

impl BinaryInputs {
    /// Room for the float values of `inputs` (each a datatype and the
    /// number of bytes its binary values take, as the client claims), in
    /// binary data `total` bytes long: a claim beyond it reserves nothing
    /// more, as it will be refused.
    pub(crate) fn new<'t>(inputs: impl Iterator<Item = (&'t str, usize)>, total: usize) -> Self {
        let floats = inputs
            .filter_map(|(datatype, bytes)| float_width(datatype).map(|w| bytes.min(total) / w))
            .fold(0usize, usize::saturating_add);
        BinaryInputs {
            floats: Vec::with_capacity(floats.min(total / 2)),
            ranges: Vec::new(),
        }
    }

    /// Decodes input number `index` from `bytes`: its values, or `None`
    /// for a float input, whose values [`BinaryInputs::finish`] gives it.
    pub(crate) fn decode(
        &mut self,
        index: usize,
        t: &InputTensor,
        bytes: &[u8],
    ) -> Result<Option<TensorData>, DataError> {
        let start = self.floats.len();
        if decode_floats(t, bytes, &mut self.floats)? {
            self.ranges.push((index, start..self.floats.len()));
            return Ok(None);
        }
        decode_binary(t, bytes).map(Some)
    }

    /// Gives each float input its slice of the shared buffer.
    pub(crate) fn finish(self, inputs: &mut [InputTensor]) {
        if self.ranges.is_empty() {
            return;
        }
        let buffer = arrow_buffer::Buffer::from_vec(self.floats);
        for (index, range) in self.ranges {
            inputs[index].data = Some(TensorData::Float(ScalarBuffer::new(
                buffer.clone(),
                range.start,
                range.len(),
            )));
        }
    }
}

/// An IEEE half-precision number's value.
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f64.powi(-24),
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
    }
}

/// The datatypes of the protocol this server reads, and which column type
/// each may fill.
fn datatype_fits(datatype: &str, column: DType) -> Option<bool> {
    let numeric = matches!(column, DType::Int64 | DType::Float64);
    Some(match datatype {
        "FP16" | "FP32" | "FP64" => column == DType::Float64,
        "INT8" | "INT16" | "INT32" | "INT64" | "UINT8" | "UINT16" | "UINT32" | "UINT64" => numeric,
        "BOOL" => column == DType::Boolean,
        "BYTES" => column == DType::Utf8,
        _ => return None,
    })
}

/// The column type a tensor of `datatype` makes when the model does not
/// say what it takes.
fn column_type_of(datatype: &str) -> Option<DType> {
    Some(match datatype {
        "FP16" | "FP32" | "FP64" => DType::Float64,
        "INT8" | "INT16" | "INT32" | "INT64" | "UINT8" | "UINT16" | "UINT32" | "UINT64" => {
            DType::Int64
        }
        "BOOL" => DType::Boolean,
        "BYTES" => DType::Utf8,
        _ => return None,
    })
}

const DATATYPES: &str = "FP32, FP64, INT8–INT64, UINT8–UINT64, BOOL, BYTES";

/// The request table of an inference request, for a model taking `inputs`
/// (`None`: whatever named columns it is given).
pub fn infer_table(
    request: &InferRequest<'_>,
    inputs: Option<&Signature>,
) -> Result<RecordBatch, DataError> {
    if request.inputs.is_empty() {
        return Err(DataError(match inputs {
            Some(s) => format!("the request has no inputs; the model takes: {}", s.names()),
            None => "the request has no inputs".into(),
        }));
    }
    let mut columns = Vec::new();
    let mut types = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut placed: SmallVec<[bool; 64]> =
        smallvec::smallvec![false; inputs.map_or(0, |s| s.columns().len())];
    for (i, t) in request.inputs.iter().enumerate() {
        let Some(values) = t.data.as_ref() else {
            return Err(DataError(format!("input `{}` has no `data`", t.name)));
        };
        if t.shape.iter().any(|&d| d < 0) {
            return Err(DataError(format!(
                "input `{}` has shape {:?}; dimensions must be zero or more",
                t.name, t.shape
            )));
        }
        // Each dimension, known to be zero or more (read without a list:
        // this runs for every input of every request).
        let dim = |i: usize| usize::try_from(t.shape[i]).unwrap_or(usize::MAX);
        let rank = t.shape.len();
        // A shape is the client's word: its product may not fit a usize.
        let Some(expected) = (0..rank).try_fold(1usize, |n, i| n.checked_mul(dim(i))) else {
            return Err(DataError(format!(
                "input `{}` has shape {:?}, more values than any request can hold; \
                 the product of the dimensions must equal the number of values in `data`",
                t.name, t.shape
            )));
        };
        if rank == 0 || expected != values.len() {
            return Err(DataError(format!(
                "input `{}` has shape {:?} ({expected} values) but {} values in `data`",
                t.name,
                t.shape,
                values.len()
            )));
        }
        // One `[rows, columns]` tensor holding every column, in order.
        let matrix = rank == 2
            && dim(1) > 1
            && request.inputs.len() == 1
            && inputs.is_some_and(|s| s.column(&t.name).is_none() && s.columns().len() == dim(1));
        if matrix {
            let s = inputs.unwrap();
            for (j, spec) in s.columns().iter().enumerate() {
                check_datatype(&t.name, &t.datatype, Some(spec.column_type))?;
                columns.push((spec.name.as_str(), Cow::Owned(values.column_of(j, dim(1)))));
            }
            continue;
        }
        if rank > 2 || (rank == 2 && dim(1) != 1) {
            return Err(DataError(format!(
                "input `{}` has shape {:?}; each input is one column, of shape [rows] or [rows, 1]{}",
                t.name,
                t.shape,
                match inputs {
                    Some(s) => format!(
                        ", or a single [rows, {}] tensor holds every column in this order: {}",
                        s.columns().len(),
                        s.names()
                    ),
                    None => String::new(),
                }
            )));
        }
        let known = inputs.and_then(|s| s.column_near(i, &t.name));
        check_datatype(&t.name, &t.datatype, known.map(|(_, c)| c.column_type))?;
        let again = match known {
            // A model's column: marked by its position, with no hashing.
            Some((at, _)) => std::mem::replace(&mut placed[at], true),
            // Without a signature, or a column the model does not take
            // (refused below, unless it is given twice).
            None => !seen.insert(&*t.name),
        };
        if again {
            return Err(DataError(format!("input `{}` is given twice", t.name)));
        }
        types.push(column_type_of(&t.datatype).unwrap());
        columns.push((&*t.name, Cow::Borrowed(values)));
    }
    match inputs {
        Some(s) => s.table_from(columns, "input"),
        None => {
            let s = Signature::new(
                columns
                    .iter()
                    .zip(types)
                    .map(|((name, _), column_type)| crate::signature::ColumnSpec {
                        name: name.to_string(),
                        column_type,
                    })
                    .collect(),
            );
            s.table_from(columns, "input")
        }
    }
}

fn check_datatype(name: &str, datatype: &str, column: Option<DType>) -> Result<(), DataError> {
    match (
        datatype_fits(datatype, column.unwrap_or(DType::Float64)),
        column,
    ) {
        (None, _) => Err(DataError(format!(
            "input `{name}` has datatype `{datatype}`, which this server does not read; use one of {DATATYPES}"
        ))),
        (Some(false), Some(c)) => Err(DataError(format!(
            "input `{name}` has datatype {datatype}, but the model takes {} ({}) there",
            c.name(),
            match c {
                DType::Float64 => "FP32 or FP64; integers too",
                DType::Int64 => "an INT type",
                DType::Boolean => "BOOL",
                DType::Utf8 => "BYTES",
            }
        ))),
        _ => Ok(()),
    }
}

/// An inference response: the JSON document and, when some outputs go as
/// binary data, their bytes (to follow the JSON, whose length goes in the
/// `Inference-Header-Content-Length` header).
#[derive(Debug)]
pub struct InferResponse {
    /// The response document, serialized.
    pub json: Vec<u8>,
    /// The binary values of the outputs whose `parameters` give a
    /// `binary_data_size`, in output order; empty when all are JSON.
    pub binary: Vec<u8>,
}

/// An output tensor of a response: a prediction column, and whether it
/// goes as binary data.
#[derive(Debug)]
pub struct OutputTensor<'a> {
    /// The column's name.
    pub name: &'a str,
    /// Its datatype on the wire ([`output_datatype`]).
    pub datatype: &'static str,
    /// Its values.
    pub column: &'a dyn Array,
    /// Whether the request asked for it as binary data.
    pub binary: bool,
}

/// The outputs a request asks for (all when it names none, or an empty
/// list), in the model's order, or which one the model does not give.
pub fn requested_outputs<'a>(
    predictions: &'a RecordBatch,
    request: &InferRequest<'_>,
) -> Result<Vec<OutputTensor<'a>>, DataError> {
    let schema = predictions.schema_ref();
    let requested = request.outputs.as_deref().filter(|r| !r.is_empty());
    if let Some(r) = requested
        && let Some(bad) = r
            .iter()
            .find(|o| schema.column_with_name(&o.name).is_none())
    {
        return Err(DataError(format!(
            "unknown output `{}`; the model gives: {}",
            bad.name,
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let binary_default = request.binary_output();
    Ok(schema
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let binary = match requested {
                None => binary_default,
                Some(r) => r.iter().find(|o| o.name == *f.name()).map(|o| {
                    flag(o.parameters.as_ref(), "binary_data").unwrap_or(binary_default)
                })?,
            };
            let column_type = DType::of_arrow(f.data_type()).unwrap_or(DType::Float64);
            Some(OutputTensor {
                name: f.name(),
                datatype: output_datatype(column_type),
                column: predictions.column(i).as_ref(),
                binary,
            })
        })
        .collect())
}

/// The response of an inference: one tensor per prediction column, those
/// the request names (all when it names none), each as JSON or binary data
/// as the request asks.
pub fn infer_response(
    model: &str,
    version: i64,
    id: &str,
    predictions: &RecordBatch,
    request: &InferRequest<'_>,
) -> Result<InferResponse, DataError> {
    /// The document, serialized as it is (no tree of JSON values is
    /// built: that was a map, its keys and every value allocated).
    #[derive(serde::Serialize)]
    struct Document<'a> {
        model_name: &'a str,
        #[serde(serialize_with = "as_text")]
        model_version: i64,
        id: &'a str,
        outputs: Vec<Output<'a>>,
    }
    #[derive(serde::Serialize)]
    struct Output<'a> {
        name: &'a str,
        datatype: &'static str,
        shape: [usize; 1],
        #[serde(skip_serializing_if = "Option::is_none")]
        parameters: Option<BinarySize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<JsonValues<'a>>,
    }
    #[derive(serde::Serialize)]
    struct BinarySize {
        binary_data_size: usize,
    }
    fn as_text<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    let rows = predictions.num_rows();
    let mut binary = Vec::new();
    let outputs = requested_outputs(predictions, request)?
        .into_iter()
        .map(|output| {
            let (parameters, data) = if output.binary {
                let before = binary.len();
                encode_binary(output.column, &mut binary);
                let binary_data_size = binary.len() - before;
                (Some(BinarySize { binary_data_size }), None)
            } else {
                // Floats at float32's precision: the shortest text that
                // reads back as the float32 the model gave.
                (None, Some(JsonValues::float32(output.column)))
            };
            Output {
                name: output.name,
                datatype: output.datatype,
                shape: [rows],
                parameters,
                data,
            }
        })
        .collect();
    let document = Document {
        model_name: model,
        model_version: version,
        id,
        outputs,
    };
    let json = serde_json::to_vec(&document).expect("a response document serialises");
    Ok(InferResponse { json, binary })
}

/// The datatype an output column is answered in. Models compute in
/// float32 (sluice's trainers export float32 graphs; other outputs are read
/// as float32), so float columns are `FP32`: claiming `FP64` would promise
/// digits the model never computed.
pub fn output_datatype(column: DType) -> &'static str {
    match column {
        DType::Float64 => "FP32",
        other => oip_datatype(other),
    }
}

/// A column's values as the binary tensor data extension writes them:
/// little-endian numbers, one byte per bool, each text a 4-byte
/// little-endian length and its UTF-8 bytes. Nulls (which predictions do
/// not have) become zeros and empty texts.
pub fn encode_binary(array: &dyn Array, out: &mut Vec<u8>) {
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<Float64Array>() {
        a.values()
            .iter()
            .for_each(|&v| out.extend((v as f32).to_le_bytes()));
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        a.values().iter().for_each(|v| out.extend(v.to_le_bytes()));
    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
        out.extend((0..a.len()).map(|i| u8::from(a.value(i))));
    } else if let Some(a) = any.downcast_ref::<StringArray>() {
        for i in 0..a.len() {
            let text = if a.is_null(i) { "" } else { a.value(i) };
            out.extend((text.len() as u32).to_le_bytes());
            out.extend(text.as_bytes());
        }
    }
}

/// A column's values as JSON.
pub fn column_json(array: &dyn Array) -> Vec<Value> {
    match serde_json::to_value(JsonValues::new(array)) {
        Ok(Value::Array(values)) => values,
        _ => unreachable!("a column serialises as a list"),
    }
}

/// A column's values as a JSON list, serialized straight from the array:
/// numbers, booleans and text, `null` for a null (and for a float JSON has
/// no number for, and for a column of another type).
#[derive(Clone, Copy)]
pub struct JsonValues<'a> {
    array: &'a dyn Array,
    float32: bool,
}

impl<'a> JsonValues<'a> {
    /// The values as they are.
    pub fn new(array: &'a dyn Array) -> Self {
        JsonValues {
            array,
            float32: false,
        }
    }

    /// Floats at float32's precision (what the models computed): the
    /// shortest text that reads back as the float32, so `0.9`, not
    /// `0.8999999761581421`.
    pub fn float32(array: &'a dyn Array) -> Self {
        JsonValues {
            array,
            float32: true,
        }
    }
}

impl serde::Serialize for JsonValues<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let (array, n) = (self.array, self.array.len());
        let any = array.as_any();
        let mut seq = s.serialize_seq(Some(n))?;
        let valid = |i: usize| array.is_valid(i);
        if let Some(a) = any.downcast_ref::<Float64Array>() {
            for (i, &v) in a.values().iter().enumerate() {
                match self.float32 {
                    true => seq.serialize_element(&valid(i).then_some(v as f32))?,
                    false => seq.serialize_element(&valid(i).then_some(v))?,
                }
            }
        } else if let Some(a) = any.downcast_ref::<Int64Array>() {
            for (i, v) in a.values().iter().enumerate() {
                seq.serialize_element(&valid(i).then_some(v))?;
            }
        } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
            for i in 0..n {
                seq.serialize_element(&valid(i).then(|| a.value(i)))?;
            }
        } else if let Some(a) = any.downcast_ref::<StringArray>() {
            for i in 0..n {
                seq.serialize_element(&valid(i).then(|| a.value(i)))?;
            }
        } else {
            for _ in 0..n {
                seq.serialize_element(&())?;
            }
        }
        seq.end()
    }
}

/// The request table of an MLflow scoring request (`dataframe_split`,
/// `dataframe_records`, `instances` or `inputs`).
pub fn invocations_table(
    body: &[u8],
    inputs: Option<&Signature>,
) -> Result<RecordBatch, DataError> {
    if let Some(table) = inputs.and_then(|s| split_table(body, s)) {
        return Ok(table);
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DataError(format!("invalid JSON: {e}")))?;
    let Value::Object(mut top) = value else {
        return Err(DataError(
            "the body must be a JSON object with one of `dataframe_split`, `dataframe_records`, `instances`, `inputs`".into(),
        ));
    };
    let formats = [
        "dataframe_split",
        "dataframe_records",
        "instances",
        "inputs",
    ];
    let given: Vec<&str> = formats
        .iter()
        .copied()
        .filter(|k| top.contains_key(*k))
        .collect();
    let [format] = given[..] else {
        return Err(DataError(format!(
            "the body must hold exactly one of `dataframe_split`, `dataframe_records`, `instances`, `inputs`; it holds {}",
            if given.is_empty() {
                "none".to_string()
            } else {
                given.join(", ")
            }
        )));
    };
    let payload = top.remove(format).unwrap();
    let columns = match (format, payload) {
        ("dataframe_split", Value::Object(mut split)) => {
            let names: Vec<String> = match split.remove("columns") {
                Some(Value::Array(c)) => c
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        other => Err(DataError(format!(
                            "`dataframe_split.columns` must be names, found {other}"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                None => match inputs {
                    Some(s) => s.columns().iter().map(|c| c.name.clone()).collect(),
                    None => {
                        return Err(DataError("`dataframe_split` needs `columns`".into()));
                    }
                },
                Some(_) => {
                    return Err(DataError("`dataframe_split.columns` must be a list".into()));
                }
            };
            let Some(Value::Array(rows)) = split.remove("data") else {
                return Err(DataError(
                    "`dataframe_split` needs `data`: a list of rows".into(),
                ));
            };
            rows_to_columns(&names, rows)?
        }
        ("dataframe_records" | "instances" | "inputs", Value::Array(items)) => {
            match items.first() {
                Some(Value::Object(_)) => records_to_columns(items)?,
                Some(Value::Array(_)) => {
                    let names: Vec<String> = match inputs {
                        Some(s) => s.columns().iter().map(|c| c.name.clone()).collect(),
                        None => {
                            return Err(DataError(format!(
                                "`{format}` holds rows without column names; send records (objects) instead"
                            )));
                        }
                    };
                    rows_to_columns(&names, items)?
                }
                Some(_) if inputs.is_some_and(|s| s.columns().len() == 1) => {
                    vec![(inputs.unwrap().columns()[0].name.clone(), items)]
                }
                None => return Err(DataError(format!("`{format}` is empty"))),
                Some(_) => {
                    return Err(DataError(format!(
                        "`{format}` must hold records (objects) or rows (lists)"
                    )));
                }
            }
        }
        ("inputs" | "instances", Value::Object(cols)) => cols
            .into_iter()
            .map(|(k, v)| match v {
                Value::Array(values) => Ok((k, values)),
                other => Ok((k, vec![other])),
            })
            .collect::<Result<_, DataError>>()?,
        (format, _) => {
            return Err(DataError(format!(
                "`{format}` has the wrong shape; see https://mlflow.org/docs/latest/deployment/deploy-model-locally"
            )));
        }
    };
    match inputs {
        Some(s) => s.table_from_json(columns, "column"),
        None => Err(DataError(
            "this model does not record its input columns, so it is served through /v2 only".into(),
        )),
    }
}

/// The request table of the commonest MLflow body, a `dataframe_split` and
/// nothing else, read without building a JSON tree (which cost more than
/// the prediction of a one-row request). `None` for any other body, and
/// for one whose data does not fit: [`invocations_table`] then reads it
/// the general way, and says what is wrong.
fn split_table(body: &[u8], signature: &Signature) -> Option<RecordBatch> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body<'a> {
        #[serde(borrow)]
        dataframe_split: Split<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Split<'a> {
        /// Names, as scalars so that they borrow from the body. Absent is
        /// the signature's order; `null` is declined (the general reader
        /// refuses it).
        #[serde(borrow, default, deserialize_with = "present")]
        columns: Option<Vec<Scalar<'a>>>,
        #[serde(borrow)]
        data: Vec<Vec<Scalar<'a>>>,
    }
    fn present<'de: 'a, 'a, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<Scalar<'a>>>, D::Error> {
        Vec::deserialize(d).map(Some)
    }
    let split = serde_json::from_slice::<Body>(body).ok()?.dataframe_split;
    let names: Vec<&str> = match &split.columns {
        Some(c) => c
            .iter()
            .map(|n| match n {
                Scalar::Text(t) => Some(t.as_ref()),
                _ => None,
            })
            .collect::<Option<_>>()?,
        None => signature
            .columns()
            .iter()
            .map(|c| c.name.as_str())
            .collect(),
    };
    signature.table_from_rows(&names, &split.data)
}

/// The request table of an MLflow scoring request sent as CSV
/// (`Content-Type: text/csv`): a header row naming the columns, then one
/// line per row. Values are read as the model's column types; an empty
/// field is a missing value.
pub fn invocations_csv_table(
    body: &[u8],
    inputs: Option<&Signature>,
) -> Result<RecordBatch, DataError> {
    let Some(signature) = inputs else {
        return Err(DataError(
            "this model does not record its input columns, so it is served through /v2 only".into(),
        ));
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| DataError(format!("invalid CSV header row: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let types: Vec<Option<DType>> = names
        .iter()
        .map(|n| signature.column(n).map(|c| c.column_type))
        .collect();
    let mut columns: Vec<(String, Vec<Value>)> =
        names.iter().map(|n| (n.clone(), Vec::new())).collect();
    for (i, record) in reader.records().enumerate() {
        // Line numbers count the header as line 1.
        let record =
            record.map_err(|e| DataError(format!("invalid CSV at line {}: {e}", i + 2)))?;
        for ((column, kind), field) in columns.iter_mut().zip(&types).zip(record.iter()) {
            let field = field.trim();
            column.1.push(match kind {
                _ if field.is_empty() => Value::Null,
                Some(DType::Float64 | DType::Int64) => field
                    .parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| field.parse::<f64>().map(|v| json!(v)))
                    .unwrap_or_else(|_| json!(field)),
                Some(DType::Boolean) => match field.to_ascii_lowercase().as_str() {
                    "true" | "1" => json!(true),
                    "false" | "0" => json!(false),
                    _ => json!(field),
                },
                _ => json!(field),
            });
        }
    }
    signature.table_from_json(columns, "column")
}

fn rows_to_columns(
    names: &[String],
    rows: Vec<Value>,
) -> Result<Vec<(String, Vec<Value>)>, DataError> {
    let mut columns: Vec<(String, Vec<Value>)> =
        names.iter().map(|n| (n.clone(), Vec::new())).collect();
    for (i, row) in rows.into_iter().enumerate() {
        let Value::Array(values) = row else {
            return Err(DataError(format!("row {i} is not a list of values")));
        };
        if values.len() != names.len() {
            return Err(DataError(format!(
                "row {i} has {} values but there are {} columns",
                values.len(),
                names.len()
            )));
        }
        for (c, v) in columns.iter_mut().zip(values) {
            c.1.push(v);
        }
    }
    Ok(columns)
}

fn records_to_columns(records: Vec<Value>) -> Result<Vec<(String, Vec<Value>)>, DataError> {
    let mut columns: Vec<(String, Vec<Value>)> = Vec::new();
    // Each column's position by name, made when a record's keys first
    // differ from the columns so far (records of one shape never need it):
    // searching the list instead cost the square of the width.
    let mut positions: Option<std::collections::HashMap<String, usize>> = None;
    let n = records.len();
    for (i, record) in records.into_iter().enumerate() {
        let Value::Object(fields) = record else {
            return Err(DataError(format!("record {i} is not an object")));
        };
        for (j, (k, v)) in fields.into_iter().enumerate() {
            // A record's keys are distinct: the first one's are all new.
            let at = if i == 0 {
                None
            } else if columns.get(j).is_some_and(|(name, _)| *name == k) {
                Some(j)
            } else {
                positions
                    .get_or_insert_with(|| {
                        columns
                            .iter()
                            .enumerate()
                            .map(|(at, (name, _))| (name.clone(), at))
                            .collect()
                    })
                    .get(&k)
                    .copied()
            };
            match at {
                Some(at) => {
                    let values = &mut columns[at].1;
                    values.resize(i, Value::Null);
                    values.push(v);
                }
                None => {
                    let mut values = vec![Value::Null; i];
                    values.push(v);
                    if let Some(p) = &mut positions {
                        p.insert(k.clone(), columns.len());
                    }
                    columns.push((k, values));
                }
            }
        }
    }
    for (_, values) in &mut columns {
        values.resize(n, Value::Null);
    }
    Ok(columns)
}

/// MLflow's response: `{"predictions": [...]}`, the predicted label or
/// value of each row.
pub fn invocations_response(predictions: &RecordBatch) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Document<'a> {
        predictions: JsonValues<'a>,
    }
    let empty = arrow_array::new_empty_array(&arrow_schema::DataType::Null);
    let column = predictions.column_by_name("prediction").unwrap_or(&empty);
    let document = Document {
        predictions: JsonValues::new(column.as_ref()),
    };
    serde_json::to_vec(&document).expect("a response document serialises")
}

/// Model metadata (`GET /v2/models/{name}`).
pub fn model_metadata(
    name: &str,
    versions: &[i64],
    inputs: Option<&Signature>,
    outputs: &Signature,
) -> Value {
    let tensors = |t: Vec<(&str, &str)>| -> Vec<Value> {
        t.into_iter()
            .map(|(name, datatype)| json!({"name": name, "datatype": datatype, "shape": [-1]}))
            .collect()
    };
    let (inputs, outputs) = metadata_tensors(inputs, outputs);
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert(
        "versions".into(),
        json!(versions.iter().map(|v| v.to_string()).collect::<Vec<_>>()),
    );
    m.insert("platform".into(), json!(PLATFORM));
    m.insert("inputs".into(), json!(tensors(inputs)));
    m.insert("outputs".into(), json!(tensors(outputs)));
    Value::Object(m)
}

/// The platform model metadata names.
pub const PLATFORM: &str = "sluice_onnx";

/// A tensor of model metadata: its name and datatype (of any length:
/// shape `[-1]`).
pub type MetadataTensor<'a> = (&'a str, &'static str);

/// The input and the output tensors of model metadata, for both
/// transports.
pub fn metadata_tensors<'a>(
    inputs: Option<&'a Signature>,
    outputs: &'a Signature,
) -> (Vec<MetadataTensor<'a>>, Vec<MetadataTensor<'a>>) {
    let tensors = |s: &'a Signature, datatype: fn(DType) -> &'static str| {
        s.columns()
            .iter()
            .map(|c| (c.name.as_str(), datatype(c.column_type)))
            .collect::<Vec<_>>()
    };
    (
        inputs.map(|s| tensors(s, oip_datatype)).unwrap_or_default(),
        tensors(outputs, output_datatype),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::ColumnSpec;

    /// A response's JSON document, read back.
    fn document(r: &InferResponse) -> Value {
        serde_json::from_slice(&r.json).expect("the response is JSON")
    }

    fn sig() -> Signature {
        Signature::new(vec![
            ColumnSpec {
                name: "a".into(),
                column_type: DType::Float64,
            },
            ColumnSpec {
                name: "b".into(),
                column_type: DType::Float64,
            },
        ])
    }

    fn floats(t: &RecordBatch, i: usize) -> Vec<f64> {
        t.column(i)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .values()
            .to_vec()
    }

    #[test]
    fn per_column_and_matrix_tensors_give_the_same_table() {
        let per_column = parse_infer(
            br#"{"inputs": [
                {"name": "b", "shape": [2], "datatype": "FP32", "data": [3, 4]},
                {"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [[1], [2]]}]}"#,
        )
        .unwrap();
        let matrix = parse_infer(
            br#"{"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [[1, 3], [2, 4]]}]}"#,
        )
        .unwrap();
        for r in [per_column, matrix] {
            let t = infer_table(&r, Some(&sig())).unwrap();
            assert_eq!(floats(&t, 0), vec![1.0, 2.0]);
            assert_eq!(floats(&t, 1), vec![3.0, 4.0]);
        }
    }

    #[test]
    fn names_are_borrowed_from_the_body_unless_they_hold_escapes() {
        let body = br#"{"inputs": [
            {"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
            {"name": "\u0062", "shape": [1], "datatype": "FP\u0033\u0032", "data": [2]}],
            "outputs": [{"name": "p"}]}"#;
        let r = parse_infer(body).unwrap();
        assert!(matches!(r.inputs[0].name, Cow::Borrowed("a")));
        assert!(matches!(r.inputs[1].name, Cow::Owned(ref n) if n == "b"));
        assert_eq!(r.inputs[1].datatype, "FP32");
        assert!(matches!(r.outputs.as_deref(), Some([o]) if matches!(o.name, Cow::Borrowed("p"))));
        // The owned copy reads the same, and outlives the body.
        let owned = r.clone().into_owned();
        assert_eq!(owned, r);
        let t = infer_table(&owned, Some(&sig())).unwrap();
        assert_eq!(floats(&t, 1), vec![2.0]);
    }

    #[test]
    fn binary_float_inputs_are_slices_of_one_buffer_and_read_their_own_values() {
        let header = br#"{"inputs": [
            {"name": "a", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}},
            {"name": "n", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": 16}},
            {"name": "b", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}"#;
        let mut body = header.to_vec();
        for v in [1.5f64, -2.0] {
            body.extend(v.to_le_bytes());
        }
        for v in [7i64, 8] {
            body.extend(v.to_le_bytes());
        }
        for v in [0.25f32, 4.0] {
            body.extend(v.to_le_bytes());
        }
        let r = parse_infer_with(&body, Some(header.len())).unwrap();
        let floats_of = |i: usize| match r.inputs[i].data.as_ref().unwrap() {
            TensorData::Float(v) => v.clone(),
            other => panic!("input {i}: {other:?}"),
        };
        let (a, b) = (floats_of(0), floats_of(2));
        assert_eq!((&a[..], &b[..]), (&[1.5, -2.0][..], &[0.25, 4.0][..]));
        assert_eq!(r.inputs[1].data, Some(TensorData::Int(vec![7, 8].into())));
        // `b` follows `a` in the same allocation.
        assert_eq!(b.as_ptr(), a.as_ptr().wrapping_add(2));
        let t = infer_table(&r, None).unwrap();
        assert_eq!(floats(&t, 2), vec![0.25, 4.0]);
        // A size claimed beyond the body reserves nothing and is refused.
        let huge = br#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 18446744073709551615}}]}"#;
        let e = parse_infer_with(huge, Some(huge.len())).unwrap_err();
        assert!(e.0.contains("only 0 bytes of binary data are left"), "{e}");
    }

    #[test]
    fn malformed_tensors_are_refused_with_the_reason() {
        let err = |body: &str| {
            let r = parse_infer(body.as_bytes())?;
            infer_table(&r, Some(&sig())).map(|_| ())
        };
        let e =
            err(r#"{"inputs": [{"name": "a", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}"#)
                .unwrap_err();
        assert!(e.0.contains("shape [3] (3 values) but 2 values"), "{e}");
        let e = err(r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["x"]},
                                    {"name": "b", "shape": [1], "datatype": "FP32", "data": [1]}]}"#)
            .unwrap_err();
        assert!(
            e.0.contains("datatype BYTES, but the model takes float64"),
            "{e}"
        );
        let e =
            err(r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}]}"#)
                .unwrap_err();
        assert!(e.0.contains("missing input `b`"), "{e}");
        let e =
            err(r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "COMPLEX", "data": [1]}]}"#)
                .unwrap_err();
        assert!(e.0.contains("does not read"), "{e}");
        let e = err(r#"{"inputz": []}"#).unwrap_err();
        assert!(e.0.contains("invalid inference request"), "{e}");
        // A byte that is not UTF-8, inside a name: the JSON is refused
        // whole, saying where.
        let mut body = br#"{"inputs": [{"name": "a"#.to_vec();
        body.push(0xff);
        body.extend_from_slice(br#"", "shape": [1], "datatype": "FP32", "data": [1]}]}"#);
        let e = parse_infer(&body).unwrap_err();
        assert_eq!(
            e.0,
            "invalid inference request: the JSON is not UTF-8 text (byte 23 is not part of a UTF-8 character)"
        );
        // A shape whose product overflows (found by the grpc_request fuzz
        // target): with overflow unchecked, 2^62 × 4 wrapped to the 0
        // values sent.
        let e = err(
            r#"{"inputs": [{"name": "a", "shape": [4611686018427387904, 4], "datatype": "FP32", "data": []}]}"#,
        )
        .unwrap_err();
        assert!(e.0.contains("more values than any request can hold"), "{e}");
    }

    /// The general way to an `/invocations` table: through a JSON tree.
    fn general_table(body: &str, s: &Signature) -> Result<RecordBatch, DataError> {
        let mut top: Map<String, Value> = serde_json::from_str(body).unwrap();
        // A second key makes the fast reader decline; the general one
        // ignores it.
        top.insert("params".into(), json!({}));
        invocations_table(&serde_json::to_vec(&top).unwrap(), Some(s))
    }

    /// A model of `width` float columns `f0`, `f1`, ….
    fn wide(width: usize) -> Signature {
        Signature::new(
            (0..width)
                .map(|i| ColumnSpec {
                    name: format!("f{i}"),
                    column_type: DType::Float64,
                })
                .collect(),
        )
    }

    /// Column `f{i}` of `table` holds `i + row / 10` in each row.
    fn assert_each_column_holds_its_number(table: &RecordBatch, rows: usize) {
        for (i, column) in table.columns().iter().enumerate() {
            let column = column.as_any().downcast_ref::<Float64Array>().unwrap();
            let expected: Vec<f64> = (0..rows).map(|r| i as f64 + r as f64 / 10.0).collect();
            assert_eq!(column.values().to_vec(), expected, "column f{i}");
        }
    }

    #[test]
    fn records_with_different_keys_leave_the_missing_values_null() {
        let s = Signature::new(
            ["a", "b", "c"]
                .map(|n| ColumnSpec {
                    name: n.into(),
                    column_type: DType::Float64,
                })
                .to_vec(),
        );
        let body = br#"{"dataframe_records": [{"a": 1, "b": 2}, {"b": 3, "c": 4}, {"c": 6, "a": 5, "b": 7}, {}]}"#;
        let t = invocations_table(body, Some(&s)).unwrap();
        let column = |i: usize| -> Vec<Option<f64>> {
            let c = t.column(i).as_any().downcast_ref::<Float64Array>().unwrap();
            c.iter().collect()
        };
        assert_eq!(column(0), [Some(1.0), None, Some(5.0), None]);
        assert_eq!(column(1), [Some(2.0), Some(3.0), Some(7.0), None]);
        assert_eq!(column(2), [None, Some(4.0), Some(6.0), None]);
    }

    #[test]
    fn wide_requests_find_every_column_by_name_in_any_order() {
        let width = 2_000;
        let s = wide(width);
        let reversed: Vec<usize> = (0..width).rev().collect();
        // v2: one tensor per column, in reverse order.
        let tensors: Vec<String> = reversed
            .iter()
            .map(|i| {
                format!(
                    r#"{{"name": "f{i}", "shape": [2], "datatype": "FP64", "data": [{i}, {i}.1]}}"#
                )
            })
            .collect();
        let body = format!(r#"{{"inputs": [{}]}}"#, tensors.join(","));
        let table = infer_table(&parse_infer(body.as_bytes()).unwrap(), Some(&s)).unwrap();
        assert_each_column_holds_its_number(&table, 2);
        // MLflow's split (the fast reader and the general one) and records.
        let names: Vec<String> = reversed.iter().map(|i| format!("\"f{i}\"")).collect();
        let row = |r: usize| -> Vec<String> {
            reversed
                .iter()
                .map(|i| format!("{}", *i as f64 + r as f64 / 10.0))
                .collect()
        };
        let split = format!(
            r#"{{"dataframe_split": {{"columns": [{}], "data": [[{}], [{}]]}}}}"#,
            names.join(","),
            row(0).join(","),
            row(1).join(",")
        );
        let fast = split_table(split.as_bytes(), &s).unwrap();
        assert_each_column_holds_its_number(&fast, 2);
        assert_eq!(fast, general_table(&split, &s).unwrap());
        let record = |r: usize| -> String {
            let fields: Vec<String> = names
                .iter()
                .zip(row(r))
                .map(|(n, v)| format!("{n}: {v}"))
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        let records = format!(r#"{{"dataframe_records": [{}, {}]}}"#, record(0), record(1));
        let table = invocations_table(records.as_bytes(), Some(&s)).unwrap();
        assert_each_column_holds_its_number(&table, 2);

        // The errors still name the columns, at any width.
        let e = infer_table(
            &parse_infer(body.replace("\"f7\"", "\"g7\"").as_bytes()).unwrap(),
            Some(&s),
        )
        .unwrap_err();
        assert_eq!(
            e.0.split(';').next().unwrap(),
            "unknown input `g7`",
            "{}",
            &e.0[..200]
        );
        let e = infer_table(
            &parse_infer(body.replace("\"f7\"", "\"f8\"").as_bytes()).unwrap(),
            Some(&s),
        )
        .unwrap_err();
        assert_eq!(e.0, "input `f8` is given twice");
        let short = format!(r#"{{"inputs": [{}]}}"#, tensors[1..].join(","));
        let e = infer_table(&parse_infer(short.as_bytes()).unwrap(), Some(&s)).unwrap_err();
        assert_eq!(
            e.0.split(';').next().unwrap(),
            format!("missing input `f{}`", width - 1)
        );
        // Long lists of names are cut after 32, saying how many more.
        let half = format!(r#"{{"inputs": [{}]}}"#, tensors[..width / 2].join(","));
        let e = infer_table(&parse_infer(half.as_bytes()).unwrap(), Some(&s)).unwrap_err();
        let first: Vec<String> = (0..32).map(|i| format!("`f{i}`")).collect();
        let all: Vec<String> = (0..32).map(|i| format!("f{i}")).collect();
        assert_eq!(
            e.0,
            format!(
                "missing inputs {} and 968 more; the model takes: {} and 1968 more",
                first.join(", "),
                all.join(", ")
            )
        );
    }

    #[test]
    fn dataframe_split_read_fast_gives_the_general_table_and_errors() {
        let typed = Signature::new(vec![
            ColumnSpec {
                name: "x".into(),
                column_type: DType::Float64,
            },
            ColumnSpec {
                name: "n".into(),
                column_type: DType::Int64,
            },
            ColumnSpec {
                name: "ok".into(),
                column_type: DType::Boolean,
            },
            ColumnSpec {
                name: "site".into(),
                column_type: DType::Utf8,
            },
        ]);
        for body in [
            r#"{"dataframe_split": {"columns": ["x", "n", "ok", "site"], "data": [[1.5, 3, true, "a"], [null, 4.0, null, null]]}}"#,
            r#"{"dataframe_split": {"columns": ["site", "ok", "n", "x"], "index": [7], "data": [["caf\u00e9", false, -2, 18446744073709551615]]}}"#,
            r#"{"dataframe_split": {"data": [[-0.0, 9007199254740991, true, "b"]]}}"#,
        ] {
            let fast = split_table(body.as_bytes(), &typed).expect(body);
            assert_eq!(fast, general_table(body, &typed).unwrap(), "{body}");
            assert_eq!(
                fast,
                invocations_table(body.as_bytes(), Some(&typed)).unwrap()
            );
        }
        // Declined by the fast reader, answered (or refused) by the general
        // one with the same words as before.
        for (body, error) in [
            (
                r#"{"dataframe_split": {"columns": ["x", "n", "ok"], "data": [[1, 2, true]]}}"#,
                "missing column `site`",
            ),
            (
                r#"{"dataframe_split": {"columns": ["x", "n", "ok", "site", "y"], "data": [[1, 2, true, "a", 1]]}}"#,
                "unknown column `y`",
            ),
            (
                r#"{"dataframe_split": {"columns": ["x", "n", "ok", "x"], "data": [[1, 2, true, 1]]}}"#,
                "missing column `site`",
            ),
            (
                r#"{"dataframe_split": {"columns": ["x", "n", "ok", "site"], "data": [[1, 2, true]]}}"#,
                "row 0 has 3 values but there are 4 columns",
            ),
            (
                r#"{"dataframe_split": {"columns": ["x", "n", "ok", "site"], "data": [[true, 2, true, "a"]]}}"#,
                "`x` holds true at position 0",
            ),
            (
                r#"{"dataframe_split": {"columns": ["x", "n", "ok", "site"], "data": [[1, 2.5, true, "a"]]}}"#,
                "`n` holds 2.5 at position 0",
            ),
            (
                r#"{"dataframe_split": {"columns": ["x", "n", "ok", "site"], "data": [[1, 2, true, ["a"]]]}}"#,
                "`site` holds a list at position 0",
            ),
            (
                r#"{"dataframe_split": {"columns": ["x", "n", "ok", "site"], "data": [[1, 2, true, 5]]}}"#,
                "`site` holds 5 at position 0",
            ),
            (
                r#"{"dataframe_split": {"columns": null, "data": [[1, 2, true, "a"]]}}"#,
                "`dataframe_split.columns` must be a list",
            ),
        ] {
            assert!(split_table(body.as_bytes(), &typed).is_none(), "{body}");
            let e = invocations_table(body.as_bytes(), Some(&typed)).unwrap_err();
            assert!(e.0.contains(error), "{body}: {e}");
        }
        let empty = r#"{"dataframe_split": {"columns": ["x", "n", "ok", "site"], "data": []}}"#;
        assert!(split_table(empty.as_bytes(), &typed).is_none());
        assert_eq!(
            invocations_table(empty.as_bytes(), Some(&typed))
                .unwrap()
                .num_rows(),
            0
        );
    }

    #[test]
    fn mlflow_formats_give_the_same_table() {
        for body in [
            r#"{"dataframe_split": {"columns": ["b", "a"], "data": [[3, 1], [4, 2]]}}"#,
            r#"{"dataframe_records": [{"a": 1, "b": 3}, {"b": 4, "a": 2}]}"#,
            r#"{"instances": [[1, 3], [2, 4]]}"#,
            r#"{"inputs": {"a": [1, 2], "b": [3, 4]}}"#,
        ] {
            let t = invocations_table(body.as_bytes(), Some(&sig())).unwrap();
            assert_eq!(floats(&t, 0), vec![1.0, 2.0], "{body}");
            assert_eq!(floats(&t, 1), vec![3.0, 4.0], "{body}");
        }
        let e = invocations_table(br#"{"data": []}"#, Some(&sig())).unwrap_err();
        assert!(e.0.contains("exactly one of"), "{e}");
        let t = invocations_csv_table(b"b,a\n3,1\n4.0,2\n", Some(&sig())).unwrap();
        assert_eq!(floats(&t, 0), vec![1.0, 2.0]);
        assert_eq!(floats(&t, 1), vec![3.0, 4.0]);
        let e = invocations_csv_table(b"a,b\n1,2\n3\n", Some(&sig())).unwrap_err();
        assert!(e.0.contains("invalid CSV at line 3"), "{e}");
    }

    #[test]
    fn responses_carry_one_tensor_per_prediction_column() {
        let p = RecordBatch::try_from_iter([
            (
                "prediction",
                std::sync::Arc::new(StringArray::from(vec!["M", "B"])) as arrow_array::ArrayRef,
            ),
            (
                "probability_M",
                std::sync::Arc::new(Float64Array::from(vec![0.9, 0.2])) as _,
            ),
        ])
        .unwrap();
        let request = |outputs: &str| {
            parse_infer(format!(r#"{{"inputs": [], {outputs}}}"#).as_bytes())
                .unwrap()
                .into_owned()
        };
        let r = infer_response("cancer", 3, "req-1", &p, &request(r#""id": "x""#)).unwrap();
        assert!(r.binary.is_empty());
        let r = document(&r);
        assert_eq!(r["model_version"], "3");
        assert_eq!(r["outputs"][0]["datatype"], "BYTES");
        assert_eq!(r["outputs"][0]["data"], json!(["M", "B"]));
        assert_eq!(r["outputs"][1]["shape"], json!([2]));
        let only = request(r#""outputs": [{"name": "probability_M"}]"#);
        let r = infer_response("cancer", 3, "x", &p, &only).unwrap();
        assert_eq!(document(&r)["outputs"].as_array().unwrap().len(), 1);
        // An empty list asks for every output, as no list does.
        let r = infer_response("cancer", 3, "x", &p, &request(r#""outputs": []"#)).unwrap();
        assert_eq!(document(&r)["outputs"].as_array().unwrap().len(), 2);
        assert_eq!(invocations_response(&p), br#"{"predictions":["M","B"]}"#);
    }

    #[test]
    fn json_float_outputs_are_the_shortest_text_of_the_float32_the_model_gave() {
        // Pseudo-random float32s over the whole range, and a few known ones.
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut values: Vec<f64> = vec![0.9, 0.1, 1.0 / 3.0, 1e-7, 4145253.25, -0.0, 1e30];
        values.extend((0..20_000).filter_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f32::from_bits((x >> 32) as u32);
            v.is_finite().then_some(f64::from(v))
        }));
        let column = Float64Array::from(values.clone());
        let text = serde_json::to_string(&JsonValues::float32(&column)).unwrap();
        let read: Vec<f64> = serde_json::from_str(&text).unwrap();
        let shown = text[1..text.len() - 1].split(',');
        for ((v, r), shown) in values.iter().zip(&read).zip(shown) {
            let v = *v as f32;
            // Reads back as the float32 itself, in no more digits than
            // Rust's shortest display of it.
            assert_eq!(*r as f32, v, "{v}");
            let digits = |t: &str| {
                let mantissa = t.split(['e', 'E']).next().unwrap();
                mantissa
                    .trim_matches(|c: char| !c.is_ascii_digit() || c == '0')
                    .len()
            };
            assert!(digits(shown) <= digits(&format!("{v:e}")), "{v}: {shown}");
        }
        // Values JSON has no number for, and nulls, are null.
        let odd = Float64Array::from(vec![Some(f64::NAN), Some(1e300), None, Some(f64::INFINITY)]);
        let text = serde_json::to_string(&JsonValues::float32(&odd)).unwrap();
        assert_eq!(text, "[null,null,null,null]");
        assert_eq!(
            column_json(&odd),
            [Value::Null, json!(1e300), Value::Null, Value::Null]
        );
    }

    #[test]
    fn binary_outputs_follow_the_json_in_output_order() {
        let p = RecordBatch::try_from_iter([
            (
                "prediction",
                std::sync::Arc::new(StringArray::from(vec!["M", "Bee"])) as arrow_array::ArrayRef,
            ),
            (
                "probability_M",
                std::sync::Arc::new(Float64Array::from(vec![0.9, 0.2])) as _,
            ),
        ])
        .unwrap();
        // All binary by default; one output asks for JSON.
        let request = parse_infer(
            br#"{"inputs": [], "parameters": {"binary_data_output": true},
                 "outputs": [{"name": "prediction"}, {"name": "probability_M", "parameters": {"binary_data": false}}]}"#,
        )
        .unwrap();
        let r = infer_response("cancer", 3, "x", &p, &request).unwrap();
        let doc = document(&r);
        assert_eq!(
            doc["outputs"][0]["parameters"]["binary_data_size"],
            4 + 1 + 4 + 3
        );
        assert!(doc["outputs"][0].get("data").is_none());
        assert_eq!(r.binary, b"\x01\0\0\0M\x03\0\0\0Bee");
        // JSON floats at float32 precision: 0.9f32, not 0.899999976158…
        assert_eq!(doc["outputs"][1]["data"], json!([0.9, 0.2]));
        let request =
            parse_infer(br#"{"inputs": [], "parameters": {"binary_data_output": true}}"#).unwrap();
        let r = infer_response("cancer", 3, "x", &p, &request).unwrap();
        let doc = document(&r);
        let floats: Vec<f32> = r.binary[12..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(floats, [0.9, 0.2]);
        assert_eq!(doc["outputs"][1]["datatype"], "FP32");
    }

    #[test]
    fn binary_inputs_decode_to_the_same_table_as_json() {
        let json = parse_infer(
            br#"{"model_name": "m", "inputs": [
                {"name": "a", "shape": [2], "datatype": "FP32", "data": [1.5, -2]},
                {"name": "b", "shape": [2, 1], "datatype": "INT32", "data": [[3], [4]]}]}"#,
        )
        .unwrap();
        let header = br#"{"inputs": [
            {"name": "a", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
            {"name": "b", "shape": [2, 1], "datatype": "INT32", "parameters": {"binary_data_size": 8}}]}"#;
        let mut body = header.to_vec();
        for v in [1.5f32, -2.0] {
            body.extend(v.to_le_bytes());
        }
        for v in [3i32, 4] {
            body.extend(v.to_le_bytes());
        }
        let binary = parse_infer_with(&body, Some(header.len())).unwrap();
        for r in [json, binary] {
            let t = infer_table(&r, Some(&sig())).unwrap();
            assert_eq!(floats(&t, 0), vec![1.5, -2.0]);
            assert_eq!(floats(&t, 1), vec![3.0, 4.0]);
        }
        // Sizes that do not add up are refused, saying which.
        let e = parse_infer_with(&body[..body.len() - 1], Some(header.len())).unwrap_err();
        assert!(
            e.0.contains("input `b`: `binary_data_size` is 8, but only 7 bytes"),
            "{e}"
        );
        let mut longer = body.clone();
        longer.push(0);
        let e = parse_infer_with(&longer, Some(header.len())).unwrap_err();
        assert!(e.0.contains("1 bytes of binary data follow"), "{e}");
        let e = parse_infer_with(&body, None).unwrap_err();
        assert!(e.0.contains("invalid inference request"), "{e}");
        let e = parse_infer_with(header, None).unwrap_err();
        assert!(e.0.contains("no `Inference-Header-Content-Length`"), "{e}");
        let e = parse_infer_with(&body, Some(body.len() + 1)).unwrap_err();
        assert!(e.0.contains("has only"), "{e}");
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
    }
}
