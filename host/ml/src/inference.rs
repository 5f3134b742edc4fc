//! Inference for ONNX models: the types that cross the API, and [`Model`],
//! which runs a model with tract (the `onnx-engine` feature, on by default:
//! any ONNX model, the exported ones and the ones a user brings, such as
//! scikit-learn via skl2onnx or PyTorch) or, in a build without it, with the
//! lite evaluator (`lite.rs`: the graphs sluice's own exporter writes).

use serde::Serialize;

use crate::error::{MlError, Result};
use crate::onnx_pb as pb;

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

/// A declared input or output as [`TensorSpec`].
pub(crate) fn spec(v: &pb::ValueInfoProto) -> TensorSpec {
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

/// The engine a build runs models with.
#[cfg(feature = "onnx-engine")]
type Engine = crate::tract_engine::TractModel;
#[cfg(not(feature = "onnx-engine"))]
type Engine = std::sync::Arc<crate::lite::LiteGraph>;

/// An ONNX model ready to run, prepared once for any number of rows.
///
/// With the `onnx-engine` feature (the default) tract decodes, types and
/// optimises the graph once, with a symbolic batch dimension; any ONNX
/// model runs. Without it (the lite `sluice-edge`) the lite evaluator runs
/// the graphs sluice's own exporter writes ([`LITE_OPERATORS`]) and
/// refuses any other at load, naming the operator.
///
/// `Send + Sync`: a server shares one `Model` between threads; each call
/// runs in its own state. tract's states are pooled and reused, so that its
/// scratch buffers are not allocated anew on every call.
///
/// tract allocates each call's intermediate tensors. With glibc's default
/// malloc, blocks over 128 KiB go back to the kernel when freed, so large
/// batches take fresh page faults on every call (bench/README.md measured
/// about 2× slower and erratic MLP inference at 569 rows); a server should
/// raise `M_MMAP_THRESHOLD`/`M_TRIM_THRESHOLD` or use a caching allocator.
///
/// [`LITE_OPERATORS`]: crate::LITE_OPERATORS
#[derive(Debug, Clone)]
pub struct Model {
    engine: Engine,
    signature: Signature,
    metadata: Vec<(String, String)>,
}

const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
};

impl Model {
    /// Loads an ONNX model from its bytes and prepares it for inference.
    ///
    /// With tract: input dimensions the model leaves open without a name
    /// get one (the first `N`, the others `<input>_d<axis>`), so that tract
    /// can optimise the graph once for any batch size. Declared output
    /// shapes are not trusted (exporters get them wrong); tract infers
    /// them. When tract cannot optimise a graph with symbolic dimensions,
    /// the decluttered typed graph is run instead ([`Model::is_optimized`]
    /// says which).
    ///
    /// Without tract: every operator must be one of [`LITE_OPERATORS`] and
    /// every input dimension but the first fixed; the graph is run once on
    /// zeros to check it. Otherwise [`MlError::ModelLoad`] names what is
    /// missing and how to get a build that runs the model.
    ///
    /// [`LITE_OPERATORS`]: crate::LITE_OPERATORS
    pub fn from_onnx(bytes: &[u8]) -> Result<Model> {
        #[cfg(feature = "onnx-engine")]
        {
            let (engine, signature, metadata) = crate::tract_engine::TractModel::load(bytes)?;
            Ok(Model {
                engine,
                signature,
                metadata,
            })
        }
        #[cfg(not(feature = "onnx-engine"))]
        {
            let proto = crate::lite::decode(bytes)?;
            let graph = crate::lite::LiteGraph::load(&proto)?;
            let initialisers: Vec<&str> = proto
                .graph
                .iter()
                .flat_map(|g| &g.initializer)
                .map(|t| t.name.as_str())
                .collect();
            let g = proto.graph.as_ref().expect("checked by LiteGraph::load");
            let signature = Signature {
                inputs: g
                    .input
                    .iter()
                    .filter(|i| !initialisers.contains(&i.name.as_str()))
                    .map(spec)
                    .collect(),
                outputs: g.output.iter().map(spec).collect(),
            };
            let metadata = proto
                .metadata_props
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect();
            Ok(Model {
                engine: std::sync::Arc::new(graph),
                signature,
                metadata,
            })
        }
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

    /// Whether tract's optimiser ran (otherwise the decluttered graph
    /// runs). Always `true` for the lite evaluator, which has nothing to
    /// optimise.
    pub fn is_optimized(&self) -> bool {
        #[cfg(feature = "onnx-engine")]
        {
            self.engine.is_optimized()
        }
        #[cfg(not(feature = "onnx-engine"))]
        {
            true
        }
    }

    /// Predicts a row-major `rows × cols` float32 feature matrix with a
    /// single-input model. The matrix is cast to the input's element type
    /// when that is another number type (float64 for instance).
    pub fn predict(&self, features: &[f32], rows: usize, cols: usize) -> Result<Outputs> {
        if rows.checked_mul(cols) != Some(features.len()) {
            return Err(MlError::Inference(format!(
                "a {rows}×{cols} matrix needs {} values, got {}",
                rows.saturating_mul(cols),
                features.len()
            )));
        }
        #[cfg(feature = "onnx-engine")]
        {
            self.engine.predict(features, rows, cols)
        }
        #[cfg(not(feature = "onnx-engine"))]
        {
            let inputs = &self.engine.inputs;
            if inputs.len() != 1 {
                return Err(MlError::Inference(format!(
                    "the model has {} inputs ({}); pass them by name with `run`",
                    inputs.len(),
                    inputs
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let tensor = Tensor::matrix_f32(rows, cols, features.to_vec())?;
            self.run_lite(vec![(inputs[0].name.as_str(), &tensor)])
        }
    }

    /// Runs the model on named inputs (every model input exactly once).
    /// Inputs are cast to the element type the model declares when both are
    /// numbers.
    pub fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Outputs> {
        #[cfg(feature = "onnx-engine")]
        {
            self.engine.run(inputs)
        }
        #[cfg(not(feature = "onnx-engine"))]
        {
            self.run_lite(inputs.iter().map(|(n, t)| (*n, t)).collect())
        }
    }

    /// An upper bound of the bytes of intermediate tensors one run on
    /// `rows` rows holds: every node's outputs, each symbolic dimension
    /// taken as `rows` (most are freed as soon as they are used, so the
    /// real peak is lower). What a caller reserves before a run, so that a
    /// graph built to blow up (a `Tile` to gigabytes, a layer of a million
    /// units) is refused instead of allocated.
    pub fn scratch_bytes(&self, rows: usize) -> u64 {
        self.engine.scratch_bytes(rows)
    }

    /// The lite evaluator's `run`: inputs checked against the declared
    /// element types and fixed dimensions, cast between numbers.
    #[cfg(not(feature = "onnx-engine"))]
    fn run_lite(&self, given: Vec<(&str, &Tensor)>) -> Result<Outputs> {
        use crate::lite::{Arr, Data, Elem};
        let graph = &self.engine;
        if let Some((extra, _)) = given
            .iter()
            .find(|(n, _)| !graph.inputs.iter().any(|i| i.name == *n))
        {
            return Err(MlError::Inference(format!(
                "the model has no input `{extra}`; inputs: {}",
                graph
                    .inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut values = Vec::with_capacity(graph.inputs.len());
        for input in &graph.inputs {
            let name = &input.name;
            let mut found = given.iter().filter(|(n, _)| n == name);
            let (Some((_, t)), None) = (found.next(), found.next()) else {
                return Err(MlError::Inference(format!(
                    "input `{name}` must be given exactly once"
                )));
            };
            let fits = t.shape.len() == input.dims.len()
                && t.shape
                    .iter()
                    .zip(&input.dims)
                    .all(|(g, d)| d.is_none_or(|d| d == *g));
            if !fits {
                let want: Vec<String> = input
                    .dims
                    .iter()
                    .map(|d| d.map_or("N".to_owned(), |d| d.to_string()))
                    .collect();
                return Err(MlError::Inference(format!(
                    "input `{name}` takes shape [{}], got {:?}",
                    want.join(", "),
                    t.shape
                )));
            }
            let data = match &t.data {
                TensorData::F32(v) => Data::F32(v.clone()),
                TensorData::F64(v) => Data::F32(v.iter().map(|&x| x as f32).collect()),
                TensorData::I64(v) => Data::I64(v.clone()),
                TensorData::I32(v) => Data::I64(v.iter().map(|&x| i64::from(x)).collect()),
                TensorData::Bool(v) => Data::Bool(v.clone()),
                TensorData::String(_) => {
                    return Err(MlError::Inference(format!(
                        "input `{name}` takes {:?}, got strings",
                        input.elem
                    )));
                }
            };
            let data = match (data.elem(), input.elem) {
                (a, b) if a == b => data,
                (Elem::Bool, _) | (_, Elem::Bool) => {
                    return Err(MlError::Inference(format!(
                        "input `{name}` takes {:?}, got {:?}",
                        input.elem,
                        data.elem()
                    )));
                }
                _ => data.cast(input.elem),
            };
            values.push(Arr {
                shape: t.shape.clone(),
                data,
            });
        }
        let outputs = graph.run(values)?;
        let tensors = outputs
            .into_iter()
            .map(|a| {
                let data = match a.data {
                    Data::F32(v) => TensorData::F32(v),
                    Data::I64(v) => TensorData::I64(v),
                    Data::Bool(v) => TensorData::Bool(v),
                };
                Tensor::new(a.shape, data)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Outputs(
            graph
                .outputs
                .iter()
                .map(|(n, _)| n.clone())
                .zip(tensors)
                .collect(),
        ))
    }
}
