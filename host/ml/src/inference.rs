//! Inference with tract for any ONNX model: the exported ones and the ones a
//! user brings (scikit-learn via skl2onnx, PyTorch, …).

use std::collections::HashSet;
use std::sync::Mutex;

use prost::Message;
use serde::Serialize;
use tract_onnx::pb;
use tract_onnx::prelude::{
    Datum, DatumType, Framework, InferenceModelExt, IntoRunnable, IntoTValue, SymbolValues, TValue,
    Tensor as TractTensor, TypedRunnableModel, TypedSimpleState, tract_ndarray,
};

use crate::error::{MlError, Result, chain};

/// The element type of a tensor, as ONNX names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ElemType {
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// 16-bit float.
    Float16,
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// Unsigned 8-bit integer.
    Uint8,
    /// Unsigned 16-bit integer.
    Uint16,
    /// Unsigned 32-bit integer.
    Uint32,
    /// Unsigned 64-bit integer.
    Uint64,
    /// Boolean.
    Bool,
    /// UTF-8 string.
    String,
    /// Not a tensor, or a type this crate does not name (bfloat16, complex,
    /// float8, sequences, maps).
    Other,
}

impl ElemType {
    fn from_onnx(code: i32) -> ElemType {
        match code {
            1 => ElemType::Float32,
            2 => ElemType::Uint8,
            3 => ElemType::Int8,
            4 => ElemType::Uint16,
            5 => ElemType::Int16,
            6 => ElemType::Int32,
            7 => ElemType::Int64,
            8 => ElemType::String,
            9 => ElemType::Bool,
            10 => ElemType::Float16,
            11 => ElemType::Float64,
            12 => ElemType::Uint32,
            13 => ElemType::Uint64,
            _ => ElemType::Other,
        }
    }
}

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size.
    Fixed(u64),
    /// A named symbolic size (e.g. the batch dimension `N`).
    Symbolic(String),
    /// A size the model leaves open without naming it.
    Unknown,
}

/// Name, element type and declared shape of a model input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorSpec {
    /// The tensor's name in the graph.
    pub name: String,
    /// Its element type.
    pub elem_type: ElemType,
    /// Its declared shape; `None` when the model declares none.
    pub shape: Option<Vec<Dim>>,
}

/// A model's inputs and outputs, as the ONNX file declares them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// Graph inputs (initialisers excluded).
    pub inputs: Vec<TensorSpec>,
    /// Graph outputs.
    pub outputs: Vec<TensorSpec>,
}

/// The values of a [`Tensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
    /// 64-bit integers (other integer outputs are widened to these).
    I64(Vec<i64>),
    /// 32-bit integers (inputs only).
    I32(Vec<i32>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Strings.
    String(Vec<String>),
}

impl TensorData {
    fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::String(v) => v.len(),
        }
    }
}

/// A dense row-major tensor crossing the inference API.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: TensorData,
}

impl Tensor {
    /// A tensor, checked: the values must fill the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor> {
        let volume: usize = shape.iter().product();
        if volume != data.len() {
            return Err(MlError::Inference(format!(
                "a tensor of shape {shape:?} needs {volume} values, got {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// A row-major `rows × cols` float32 matrix: the usual feature input.
    pub fn matrix_f32(rows: usize, cols: usize, data: Vec<f32>) -> Result<Tensor> {
        Tensor::new(vec![rows, cols], TensorData::F32(data))
    }

    /// The values if they are float32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The values if they are int64.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The values if they are strings.
    pub fn as_strings(&self) -> Option<&[String]> {
        match &self.data {
            TensorData::String(v) => Some(v),
            _ => None,
        }
    }

    fn to_tract(&self) -> Result<TractTensor> {
        fn arr<T: Datum + Clone>(shape: &[usize], v: &[T]) -> Result<TractTensor> {
            tract_ndarray::ArrayD::from_shape_vec(shape, v.to_vec())
                .map(TractTensor::from)
                .map_err(|e| MlError::Inference(e.to_string()))
        }
        match &self.data {
            TensorData::F32(v) => arr(&self.shape, v),
            TensorData::F64(v) => arr(&self.shape, v),
            TensorData::I64(v) => arr(&self.shape, v),
            TensorData::I32(v) => arr(&self.shape, v),
            TensorData::Bool(v) => arr(&self.shape, v),
            TensorData::String(v) => arr(&self.shape, v),
        }
    }

    fn from_tract(t: &TractTensor) -> Result<Tensor> {
        fn read<T: Datum + Clone>(t: &TractTensor) -> Result<Vec<T>> {
            Ok(t.try_as_plain_ram()
                .and_then(|v| v.as_slice::<T>())
                .map_err(|e| MlError::Inference(chain(e)))?
                .to_vec())
        }
        fn cast<T: Datum + Clone>(t: &TractTensor) -> Result<Vec<T>> {
            read(&*t.cast_to::<T>().map_err(|e| MlError::Inference(chain(e)))?)
        }
        let data = match t.datum_type() {
            DatumType::F32 => TensorData::F32(read(t)?),
            DatumType::F64 => TensorData::F64(read(t)?),
            DatumType::I64 => TensorData::I64(read(t)?),
            DatumType::Bool => TensorData::Bool(read(t)?),
            DatumType::String => TensorData::String(read(t)?),
            dt if dt.is_float() => TensorData::F32(cast(t)?),
            // Symbolic-dimension integers: tract computes some index paths
            // (ArrayFeatureExtractor + Reshape, say) in them.
            dt if dt.is_integer() || dt == DatumType::TDim => TensorData::I64(cast(t)?),
            dt => {
                return Err(MlError::Inference(format!(
                    "cannot return an output of type {dt:?}"
                )));
            }
        };
        Tensor::new(t.shape().to_vec(), data)
    }
}

/// A model's outputs by name, in the order the model declares them.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs(pub Vec<(String, Tensor)>);

impl Outputs {
    /// The output called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }
}

/// An ONNX model ready to run: decoded, typed and optimised by tract once,
/// with a symbolic batch dimension so any number of rows can be predicted.
///
/// `Send + Sync`: a server shares one `Model` between threads; each call
/// runs in its own state. States are pooled and reused, so that tract's
/// scratch buffers are not allocated anew on every call.
///
/// tract allocates each call's intermediate tensors. With glibc's default
/// malloc, blocks over 128 KiB go back to the kernel when freed, so large
/// batches take fresh page faults on every call (bench/README.md measured
/// about 2× slower and erratic MLP inference at 569 rows); a server should
/// raise `M_MMAP_THRESHOLD`/`M_TRIM_THRESHOLD` or use a caching allocator.
#[derive(Debug)]
pub struct Model {
    plan: std::sync::Arc<TypedRunnableModel>,
    states: Mutex<Vec<TypedSimpleState>>,
    input_names: Vec<String>,
    input_types: Vec<DatumType>,
    output_names: Vec<String>,
    signature: Signature,
    metadata: Vec<(String, String)>,
    optimized: bool,
}

/// Idle states kept per model (about one per thread that predicts at once).
const POOLED_STATES: usize = 16;

impl Clone for Model {
    fn clone(&self) -> Self {
        Model {
            plan: self.plan.clone(),
            states: Mutex::new(Vec::new()),
            input_names: self.input_names.clone(),
            input_types: self.input_types.clone(),
            output_names: self.output_names.clone(),
            signature: self.signature.clone(),
            metadata: self.metadata.clone(),
            optimized: self.optimized,
        }
    }
}

const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
};

fn spec(v: &pb::ValueInfoProto) -> TensorSpec {
    use pb::tensor_shape_proto::dimension::Value;
    let tensor = v
        .r#type
        .as_ref()
        .and_then(|t| t.value.as_ref())
        .map(|pb::type_proto::Value::TensorType(t)| t);
    TensorSpec {
        name: v.name.clone(),
        elem_type: tensor.map_or(ElemType::Other, |t| ElemType::from_onnx(t.elem_type)),
        shape: tensor.and_then(|t| t.shape.as_ref()).map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(Value::DimValue(v)) if *v >= 0 => Dim::Fixed(*v as u64),
                    Some(Value::DimParam(p)) if !p.is_empty() && p != "?" => {
                        Dim::Symbolic(p.clone())
                    }
                    _ => Dim::Unknown,
                })
                .collect()
        }),
    }
}

impl Model {
    /// Loads an ONNX model from its bytes and prepares it for inference.
    ///
    /// Input dimensions the model leaves open without a name get one (the
    /// first `N`, the others `<input>_d<axis>`), so that tract can optimise
    /// the graph once for any batch size. Declared output shapes are not
    /// trusted (exporters get them wrong); tract infers them. When tract
    /// cannot optimise a graph with symbolic dimensions, the decluttered
    /// typed graph is run instead ([`Model::is_optimized`] says which).
    pub fn from_onnx(bytes: &[u8]) -> Result<Model> {
        let mut proto = pb::ModelProto::decode(bytes)
            .map_err(|e| MlError::ModelLoad(format!("not an ONNX model: {e}")))?;
        crate::onnx_ml::rewrite(&mut proto).map_err(MlError::ModelLoad)?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| MlError::ModelLoad("the model has no graph".into()))?;
        let initialisers: HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let signature = Signature {
            inputs: graph
                .input
                .iter()
                .filter(|i| !initialisers.contains(i.name.as_str()))
                .map(spec)
                .collect(),
            outputs: graph.output.iter().map(spec).collect(),
        };
        let metadata = proto
            .metadata_props
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect();

        let mut patched = proto.clone();
        if let Some(g) = patched.graph.as_mut() {
            for input in g
                .input
                .iter_mut()
                .filter(|i| !initialisers.contains(i.name.as_str()))
            {
                name_open_dims(input);
            }
        }
        let inference = crate::onnx_ml::framework()
            .with_ignore_output_shapes(true)
            .model_for_proto_model(&patched)
            .map_err(|e| MlError::ModelLoad(chain(e)))?;
        let typed = inference
            .into_typed()
            .map_err(|e| MlError::ModelLoad(chain(e)))?;
        let (model, optimized) = match typed.clone().into_optimized() {
            Ok(m) => (m, true),
            Err(_) => (
                typed
                    .into_decluttered()
                    .map_err(|e| MlError::ModelLoad(chain(e)))?,
                false,
            ),
        };
        let input_names = model
            .input_outlets()
            .map_err(|e| MlError::ModelLoad(chain(e)))?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let input_types = (0..model.inputs.len())
            .map(|i| model.input_fact(i).map(|f| f.datum_type))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| MlError::ModelLoad(chain(e)))?;
        let output_names = if signature.outputs.len() == model.outputs.len() {
            signature.outputs.iter().map(|o| o.name.clone()).collect()
        } else {
            model
                .outputs
                .iter()
                .map(|o| {
                    model
                        .outlet_label(*o)
                        .map_or_else(|| model.node(o.node).name.clone(), str::to_owned)
                })
                .collect()
        };
        let plan = model
            .into_runnable()
            .map_err(|e| MlError::ModelLoad(chain(e)))?;
        Ok(Model {
            plan,
            states: Mutex::new(Vec::new()),
            input_names,
            input_types,
            output_names,
            signature,
            metadata,
            optimized,
        })
    }

    /// The inputs and outputs the model declares.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The ONNX `metadata_props` (sluice-ml records `algorithm`,
    /// `feature_names`, `classes` and `params` there).
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }

    /// One `metadata_props` value.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether tract's optimiser ran (otherwise the decluttered graph runs).
    pub fn is_optimized(&self) -> bool {
        self.optimized
    }

    /// Predicts a row-major `rows × cols` float32 feature matrix with a
    /// single-input model. The matrix is cast to the input's element type
    /// when that is another number type (float64 for instance).
    pub fn predict(&self, features: &[f32], rows: usize, cols: usize) -> Result<Outputs> {
        if self.input_names.len() != 1 {
            return Err(MlError::Inference(format!(
                "the model has {} inputs ({}); pass them by name with `run`",
                self.input_names.len(),
                self.input_names.join(", ")
            )));
        }
        if rows.checked_mul(cols) != Some(features.len()) {
            return Err(MlError::Inference(format!(
                "a {rows}×{cols} matrix needs {} values, got {}",
                rows.saturating_mul(cols),
                features.len()
            )));
        }
        // Straight into a tract tensor: one copy of the features.
        let tensor = TractTensor::from_shape(&[rows, cols], features)
            .map_err(|e| MlError::Inference(chain(e)))?;
        let value = self.conform(&self.input_names[0], self.input_types[0], tensor)?;
        self.execute(vec![value])
    }

    /// Runs the model on named inputs (every model input exactly once).
    /// Inputs are cast to the element type the model declares when both are
    /// numbers.
    pub fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Outputs> {
        if let Some((extra, _)) = inputs
            .iter()
            .find(|(n, _)| !self.input_names.iter().any(|m| m == n))
        {
            return Err(MlError::Inference(format!(
                "the model has no input `{extra}`; inputs: {}",
                self.input_names.join(", ")
            )));
        }
        let mut values: Vec<TValue> = Vec::with_capacity(self.input_names.len());
        for (name, dt) in self.input_names.iter().zip(&self.input_types) {
            let mut given = inputs.iter().filter(|(n, _)| n == name);
            let (Some((_, t)), None) = (given.next(), given.next()) else {
                return Err(MlError::Inference(format!(
                    "input `{name}` must be given exactly once"
                )));
            };
            values.push(self.conform(name, *dt, t.to_tract()?)?);
        }
        self.execute(values)
    }

    /// Casts an input to the element type the model declares, when both are
    /// numbers.
    fn conform(&self, name: &str, dt: DatumType, tensor: TractTensor) -> Result<TValue> {
        if tensor.datum_type() == dt {
            return Ok(tensor.into_tvalue());
        }
        if !(tensor.datum_type().is_number() && dt.is_number()) {
            return Err(MlError::Inference(format!(
                "input `{name}` takes {dt:?}, got {:?}",
                tensor.datum_type()
            )));
        }
        Ok(tensor
            .cast_to_dt(dt)
            .map_err(|e| MlError::Inference(chain(e)))?
            .into_owned()
            .into_tvalue())
    }

    /// An upper bound of the bytes of intermediate tensors one run on
    /// `rows` rows holds: every node's outputs, each symbolic dimension
    /// taken as `rows` (tract frees most of them as soon as they are used,
    /// so the real peak is lower). What a caller reserves before a run, so
    /// that a graph built to blow up (a `Tile` to gigabytes, a layer of a
    /// million units) is refused instead of allocated.
    pub fn scratch_bytes(&self, rows: usize) -> u64 {
        let rows = i64::try_from(rows).unwrap_or(i64::MAX);
        let mut total: u64 = 0;
        for node in self.plan.model().nodes() {
            for output in &node.outputs {
                let fact = &output.fact;
                let mut elements: u64 = 1;
                for dim in fact.shape.iter() {
                    let values = dim
                        .symbols()
                        .iter()
                        .fold(SymbolValues::default(), |v, s| v.with(s, rows));
                    // A dimension that does not evaluate counts as `rows`.
                    let n = dim.eval_to_i64(&values).unwrap_or(rows).max(0) as u64;
                    elements = elements.saturating_mul(n);
                }
                let width = fact.datum_type.size_of() as u64;
                total = total.saturating_add(elements.saturating_mul(width));
            }
        }
        total
    }

    fn execute(&self, values: Vec<TValue>) -> Result<Outputs> {
        let pooled = self
            .states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let mut state = match pooled {
            Some(state) => state,
            None => self
                .plan
                .spawn()
                .map_err(|e| MlError::Inference(chain(e)))?,
        };
        let outputs = state
            .run(values.into())
            .map_err(|e| MlError::Inference(chain(e)))?;
        {
            let mut pool = self
                .states
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if pool.len() < POOLED_STATES {
                pool.push(state);
            }
        }
        let tensors = outputs
            .iter()
            .map(|v| Tensor::from_tract(v))
            .collect::<Result<Vec<_>>>()?;
        Ok(Outputs(
            self.output_names.iter().cloned().zip(tensors).collect(),
        ))
    }
}

/// Names the open dimensions of an input's declared shape.
fn name_open_dims(input: &mut pb::ValueInfoProto) {
    use pb::tensor_shape_proto::dimension::Value;
    let name = input.name.clone();
    let Some(pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(t)),
        ..
    }) = input.r#type.as_mut()
    else {
        return;
    };
    let Some(shape) = t.shape.as_mut() else {
        return;
    };
    for (axis, d) in shape.dim.iter_mut().enumerate() {
        let open = match &d.value {
            None => true,
            Some(Value::DimValue(v)) => *v < 0,
            Some(Value::DimParam(p)) => p.is_empty() || p == "?" || p.starts_with("unk__"),
        };
        if open {
            d.value = Some(Value::DimParam(if axis == 0 {
                "N".to_owned()
            } else {
                format!("d{axis}_{}", sanitize(&name))
            }));
        }
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
