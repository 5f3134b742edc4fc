//! Non-finite numbers in a trained graph: what pipeline CI (`sluice test`)
//! checks to say "training produced no NaN". A model that learned a NaN or
//! an infinity still loads and answers — with NaN or the same class for
//! every row — so the weights themselves are read.

use crate::onnx_pb as pb;
use crate::onnx_pb::tensor_proto::DataType;
use prost::Message;

use crate::error::{MlError, Result};

/// One tensor or attribute of a graph holding NaN or infinite values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonFinite {
    /// Where: `initializer W`, or `node N attribute A` (nodes by name, or
    /// by their index when unnamed).
    pub place: String,
    /// How many of its values are NaN or infinite.
    pub count: usize,
    /// How many values it holds.
    pub of: usize,
}

/// Every initializer and every float attribute (tree ensembles keep their
/// thresholds and leaf weights there) of the ONNX model in `bytes` that
/// holds a NaN or an infinity, in graph order; empty for a sound model.
///
/// Thresholds of `±inf` are legitimate in some exports (a split no value
/// passes), so attributes named `nodes_values` count only NaN.
pub fn non_finite(bytes: &[u8]) -> Result<Vec<NonFinite>> {
    let proto = pb::ModelProto::decode(bytes)
        .map_err(|e| MlError::ModelLoad(format!("not an ONNX model: {e}")))?;
    let graph = proto
        .graph
        .ok_or_else(|| MlError::ModelLoad("the model has no graph".into()))?;
    let mut found = Vec::new();
    let mut note = |place: String, (count, of): (usize, usize)| {
        if count > 0 {
            found.push(NonFinite { place, count, of });
        }
    };
    for t in &graph.initializer {
        note(format!("initializer {}", t.name), tensor(t, f64::is_finite));
    }
    for (i, node) in graph.node.iter().enumerate() {
        let node_name = if node.name.is_empty() {
            format!("#{i} ({})", node.op_type)
        } else {
            node.name.clone()
        };
        for a in &node.attribute {
            let ok: fn(f64) -> bool = if a.name == "nodes_values" {
                |v| !v.is_nan()
            } else {
                f64::is_finite
            };
            let place = format!("node {node_name} attribute {}", a.name);
            let mut counts = count(a.floats.iter().map(|&v| f64::from(v)), ok);
            if a.r#type == pb::attribute_proto::AttributeType::Float as i32 {
                counts = add(counts, count([f64::from(a.f)], ok));
            }
            if let Some(t) = &a.t {
                counts = add(counts, tensor(t, ok));
            }
            note(place, counts);
        }
    }
    Ok(found)
}

/// (values failing `ok`, values) of a float or double tensor; (0, n) for
/// other element types.
fn tensor(t: &pb::TensorProto, ok: fn(f64) -> bool) -> (usize, usize) {
    let float = t.data_type == DataType::Float as i32;
    let double = t.data_type == DataType::Double as i32;
    if !t.raw_data.is_empty() {
        if float {
            let (chunks, _) = t.raw_data.as_chunks::<4>();
            return count(chunks.iter().map(|b| f64::from(f32::from_le_bytes(*b))), ok);
        }
        if double {
            let (chunks, _) = t.raw_data.as_chunks::<8>();
            return count(chunks.iter().map(|b| f64::from_le_bytes(*b)), ok);
        }
        return (0, 0);
    }
    add(
        count(t.float_data.iter().map(|&v| f64::from(v)), ok),
        count(t.double_data.iter().copied(), ok),
    )
}

fn count(values: impl IntoIterator<Item = f64>, ok: fn(f64) -> bool) -> (usize, usize) {
    values
        .into_iter()
        .fold((0, 0), |(bad, n), v| (bad + usize::from(!ok(v)), n + 1))
}

fn add(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    (a.0 + b.0, a.1 + b.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, Dataset, Matrix, Target, TrainParams, train};

    fn trained_onnx() -> Vec<u8> {
        let x = Matrix::new(6, 1, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let data = Dataset::new(
            x,
            vec!["x".into()],
            Target::Values(vec![1.0, 3.0, 5.0, 7.0, 9.0, 11.0]),
        )
        .unwrap();
        let params = TrainParams::from_json(Algorithm::LinearRegression, "{}").unwrap();
        train(&data, &params).unwrap().onnx
    }

    #[test]
    fn a_trained_model_has_no_non_finite_weights() {
        assert_eq!(non_finite(&trained_onnx()).unwrap(), vec![]);
    }

    #[test]
    fn a_nan_weight_is_named_with_its_tensor_and_counted() {
        let mut proto = pb::ModelProto::decode(trained_onnx().as_slice()).unwrap();
        let graph = proto.graph.as_mut().unwrap();
        let w = &mut graph.initializer[0];
        let name = w.name.clone();
        assert_eq!(w.data_type, DataType::Float as i32);
        let n = w.raw_data.len() / 4;
        w.raw_data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        let found = non_finite(&proto.encode_to_vec()).unwrap();
        assert_eq!(
            found,
            vec![NonFinite {
                place: format!("initializer {name}"),
                count: 1,
                of: n
            }]
        );
    }

    #[test]
    fn bytes_that_are_not_onnx_are_an_error() {
        assert!(non_finite(b"not a model").is_err());
    }
}
