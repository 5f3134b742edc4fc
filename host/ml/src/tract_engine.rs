//! The ONNX engine (the `onnx-engine` feature): tract runs any ONNX model,
//! the exported ones and the ones a user brings (scikit-learn via skl2onnx,
//! PyTorch, …), with the ONNX-ML operators of [`crate::onnx_ml`].

use std::collections::HashSet;
use std::sync::Mutex;

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::{
    Datum, DatumType, Framework, InferenceModelExt, IntoRunnable, IntoTValue, SymbolValues, TValue,
    Tensor as TractTensor, TypedRunnableModel, TypedSimpleState, tract_ndarray,
};

use crate::error::{MlError, Result, chain};
use crate::inference::{Outputs, Signature, Tensor, TensorData};
use crate::onnx_pb;

/// A model decoded, typed and optimised by tract, with its pooled states.
#[derive(Debug)]
pub(crate) struct TractModel {
    plan: std::sync::Arc<TypedRunnableModel>,
    states: Mutex<Vec<TypedSimpleState>>,
    input_names: Vec<String>,
    input_types: Vec<DatumType>,
    output_names: Vec<String>,
    optimized: bool,
}

/// What [`TractModel::load`] gives: the engine, the signature and the
/// metadata.
pub(crate) type Loaded = (TractModel, Signature, Vec<(String, String)>);

/// Idle states kept per model (about one per thread that predicts at once).
const POOLED_STATES: usize = 16;

impl Clone for TractModel {
    fn clone(&self) -> Self {
        TractModel {
            plan: self.plan.clone(),
            states: Mutex::new(Vec::new()),
            input_names: self.input_names.clone(),
            input_types: self.input_types.clone(),
            output_names: self.output_names.clone(),
            optimized: self.optimized,
        }
    }
}

/// The graph's inputs and outputs as [`onnx_pb`] declares them (tract's
/// messages re-read as sluice-ml's own: the same fields).
fn own(v: &pb::ValueInfoProto) -> onnx_pb::ValueInfoProto {
    onnx_pb::ValueInfoProto::decode(v.encode_to_vec().as_slice())
        .expect("the same message, re-encoded")
}

impl TractModel {
    /// Loads a model: the engine, the signature (after the ONNX-ML
    /// rewrites) and the metadata.
    pub(crate) fn load(bytes: &[u8]) -> Result<Loaded> {
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
                .map(|i| crate::inference::spec(&own(i)))
                .collect(),
            outputs: graph
                .output
                .iter()
                .map(|o| crate::inference::spec(&own(o)))
                .collect(),
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
        let engine = TractModel {
            plan,
            states: Mutex::new(Vec::new()),
            input_names,
            input_types,
            output_names,
            optimized,
        };
        Ok((engine, signature, metadata))
    }

    /// Whether tract's optimiser ran (otherwise the decluttered graph runs).
    pub(crate) fn is_optimized(&self) -> bool {
        self.optimized
    }

    /// See [`crate::Model::predict`].
    pub(crate) fn predict(&self, features: &[f32], rows: usize, cols: usize) -> Result<Outputs> {
        if self.input_names.len() != 1 {
            return Err(MlError::Inference(format!(
                "the model has {} inputs ({}); pass them by name with `run`",
                self.input_names.len(),
                self.input_names.join(", ")
            )));
        }
        // Straight into a tract tensor: one copy of the features.
        let tensor = TractTensor::from_shape(&[rows, cols], features)
            .map_err(|e| MlError::Inference(chain(e)))?;
        let value = self.conform(&self.input_names[0], self.input_types[0], tensor)?;
        self.execute(vec![value])
    }

    /// See [`crate::Model::run`].
    pub(crate) fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Outputs> {
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
            values.push(self.conform(name, *dt, to_tract(t)?)?);
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

    /// See [`crate::Model::scratch_bytes`].
    pub(crate) fn scratch_bytes(&self, rows: usize) -> u64 {
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
            .map(|v| from_tract(v))
            .collect::<Result<Vec<_>>>()?;
        Ok(Outputs(
            self.output_names.iter().cloned().zip(tensors).collect(),
        ))
    }
}

fn to_tract(t: &Tensor) -> Result<TractTensor> {
    fn arr<T: Datum + Clone>(shape: &[usize], v: &[T]) -> Result<TractTensor> {
        tract_ndarray::ArrayD::from_shape_vec(shape, v.to_vec())
            .map(TractTensor::from)
            .map_err(|e| MlError::Inference(e.to_string()))
    }
    match &t.data {
        TensorData::F32(v) => arr(&t.shape, v),
        TensorData::F64(v) => arr(&t.shape, v),
        TensorData::I64(v) => arr(&t.shape, v),
        TensorData::I32(v) => arr(&t.shape, v),
        TensorData::Bool(v) => arr(&t.shape, v),
        TensorData::String(v) => arr(&t.shape, v),
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
