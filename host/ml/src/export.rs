//! ONNX export of the native models.
//!
//! The messages are sluice-ml's own ONNX protobuf types ([`crate::onnx_pb`],
//! field for field tract's prost-generated `tract_onnx::pb`), encoded with
//! `prost::Message`, so that a build without tract exports the same bytes.
//! The encoding is deterministic (fields in tag order, no maps), so the same
//! model always gives the same bytes.
//!
//! See the crate documentation for the graph conventions.

use crate::onnx_pb as pb;
use crate::onnx_pb::tensor_proto::DataType;
use prost::Message;

use crate::forest::{EnsembleHead, TreeEnsembleModel, TreeNode};
use crate::linear::{LinearKind, LinearModel};
use crate::mlp::{Mlp, MlpOutput};
use crate::native::NativeModel;

/// The ONNX IR version written (ONNX 1.10+; onnxruntime ≥ 1.10 and tract
/// read it).
pub const IR_VERSION: i64 = 8;
/// The ONNX operator set written (the default domain only).
pub const OPSET: i64 = 13;
/// Name of the single input: float32 `[N, F]`.
pub const INPUT: &str = "input";
/// Name of a classifier's class-index output: int64 `[N]`.
pub const LABEL: &str = "label";
/// Name of a classifier's probability output: float32 `[N, C]`.
pub const PROBABILITIES: &str = "probabilities";
/// Name of a regressor's output: float32 `[N, 1]`.
pub const VARIABLE: &str = "variable";
/// Name of the symbolic batch dimension.
pub const BATCH_DIM: &str = "N";

/// What the exporter records in the model's `metadata_props` besides the
/// graph: the algorithm, feature names, class names and parameters (JSON).
pub(crate) struct ExportInfo<'a> {
    pub algorithm: &'a str,
    pub feature_names: &'a [String],
    pub classes: &'a [String],
    pub params_json: &'a str,
}

#[derive(Default)]
struct Graph {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
}

impl Graph {
    fn constant(&mut self, name: &str, dims: &[usize], values: &[f64]) -> String {
        let raw: Vec<u8> = values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        self.initializers.push(pb::TensorProto {
            name: name.to_owned(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            raw_data: raw,
            ..Default::default()
        });
        name.to_owned()
    }

    fn constant_i64(&mut self, name: &str, dims: &[usize], values: &[i64]) -> String {
        self.initializers.push(pb::TensorProto {
            name: name.to_owned(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Int64 as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.to_owned()
    }

    fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: &str,
        attributes: Vec<pb::AttributeProto>,
    ) -> String {
        self.nodes.push(pb::NodeProto {
            name: format!("{op}_{}", self.nodes.len()),
            op_type: op.to_owned(),
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![output.to_owned()],
            attribute: attributes,
            ..Default::default()
        });
        output.to_owned()
    }

    /// `Gemm(x, W, b)` with W stored `[out, in]` (`transB = 1`), the layout
    /// tract runs fastest.
    fn gemm(&mut self, x: &str, w: &str, b: &str, out: &str) -> String {
        self.node("Gemm", &[x, w, b], out, vec![int_attr("transB", 1)])
    }

    /// Softmax over classes, then ArgMax: the outputs of a classifier with
    /// three or more classes.
    fn multiclass_head(&mut self, logits: &str) {
        self.node(
            "Softmax",
            &[logits],
            PROBABILITIES,
            vec![int_attr("axis", 1)],
        );
        self.node(
            "ArgMax",
            &[PROBABILITIES],
            LABEL,
            vec![int_attr("axis", 1), int_attr("keepdims", 0)],
        );
    }

    /// The outputs of a binary classifier from its score `d` (`[N, 1]`, the
    /// log-odds of class 1): `probabilities = [1 − σ(d), σ(d)]`, `label =
    /// d > 0`. Equal to softmax and ArgMax over two logits whose difference
    /// is `d`, and much cheaper for tract than a reduction over rows of two.
    fn binary_head(&mut self, d: &str) {
        let p1 = self.node("Sigmoid", &[d], "p1", vec![]);
        let one = self.constant("one", &[1], &[1.0]);
        let p0 = self.node("Sub", &[&one, &p1], "p0", vec![]);
        self.node(
            "Concat",
            &[&p0, &p1],
            PROBABILITIES,
            vec![int_attr("axis", 1)],
        );
        let zero = self.constant("zero", &[1], &[0.0]);
        let positive = self.node("Greater", &[d, &zero], "positive", vec![]);
        let index = self.node(
            "Cast",
            &[&positive],
            "label_column",
            vec![int_attr("to", DataType::Int64 as i64)],
        );
        let flat = self.constant_i64("flat", &[1], &[-1]);
        self.node("Reshape", &[&index, &flat], LABEL, vec![]);
    }
}

fn int_attr(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn attr(name: &str, kind: pb::attribute_proto::AttributeType) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: kind as i32,
        ..Default::default()
    }
}

fn ints_attr(name: &str, values: Vec<i64>) -> pb::AttributeProto {
    pb::AttributeProto {
        ints: values,
        ..attr(name, pb::attribute_proto::AttributeType::Ints)
    }
}

fn floats_attr(name: &str, values: Vec<f32>) -> pb::AttributeProto {
    pb::AttributeProto {
        floats: values,
        ..attr(name, pb::attribute_proto::AttributeType::Floats)
    }
}

fn string_attr(name: &str, value: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        s: value.as_bytes().to_vec(),
        ..attr(name, pb::attribute_proto::AttributeType::String)
    }
}

fn strings_attr(name: &str, values: Vec<&str>) -> pb::AttributeProto {
    pb::AttributeProto {
        strings: values.into_iter().map(|v| v.as_bytes().to_vec()).collect(),
        ..attr(name, pb::attribute_proto::AttributeType::Strings)
    }
}

/// The ONNX-ML domain, for the tree ensembles.
const ML_DOMAIN: &str = "ai.onnx.ml";

/// One ONNX-ML `TreeEnsembleRegressor` holding every tree (its outputs are
/// raw scores, class proportions or values), then the head.
fn trees_graph(g: &mut Graph, m: &TreeEnsembleModel) -> usize {
    // The node attributes, one entry per node of every tree…
    let (mut tree_ids, mut node_ids, mut features) = (vec![], vec![], vec![]);
    let (mut modes, mut values, mut trues, mut falses) = (vec![], vec![], vec![], vec![]);
    // …and the leaf weights, one entry per (leaf, output).
    let (mut t_tree, mut t_node, mut t_id, mut t_w) = (vec![], vec![], vec![], vec![]);
    for (t, (tree, output)) in m.trees.iter().zip(&m.tree_output).enumerate() {
        for (i, node) in tree.nodes.iter().enumerate() {
            tree_ids.push(t as i64);
            node_ids.push(i as i64);
            match node {
                TreeNode::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    features.push(*feature as i64);
                    modes.push("BRANCH_LEQ");
                    values.push(*threshold);
                    trues.push(*left as i64);
                    falses.push(*right as i64);
                }
                TreeNode::Leaf(leaf) => {
                    features.push(0);
                    modes.push("LEAF");
                    values.push(0.0);
                    trues.push(0);
                    falses.push(0);
                    let targets: Vec<(usize, f64)> = match output {
                        Some(class) => vec![(*class, leaf[0])],
                        None => leaf.iter().copied().enumerate().collect(),
                    };
                    for (target, w) in targets {
                        t_tree.push(t as i64);
                        t_node.push(i as i64);
                        t_id.push(target as i64);
                        t_w.push(w as f32);
                    }
                }
            }
        }
    }
    let (output, classes) = match m.head {
        EnsembleHead::Binary => ("logit", 2),
        EnsembleHead::Softmax => ("logits", m.n_outputs),
        EnsembleHead::Probabilities => (PROBABILITIES, m.n_outputs),
        EnsembleHead::Value => (VARIABLE, 0),
    };
    let mut attributes = vec![
        string_attr(
            "aggregate_function",
            if m.average { "AVERAGE" } else { "SUM" },
        ),
        ints_attr("n_targets", vec![]),
        ints_attr("nodes_falsenodeids", falses),
        ints_attr("nodes_featureids", features),
        strings_attr("nodes_modes", modes),
        ints_attr("nodes_nodeids", node_ids),
        ints_attr("nodes_treeids", tree_ids),
        ints_attr("nodes_truenodeids", trues),
        floats_attr("nodes_values", values),
        string_attr("post_transform", "NONE"),
        ints_attr("target_ids", t_id),
        ints_attr("target_nodeids", t_node),
        ints_attr("target_treeids", t_tree),
        floats_attr("target_weights", t_w),
    ];
    attributes[1] = pb::AttributeProto {
        i: m.n_outputs as i64,
        ..attr("n_targets", pb::attribute_proto::AttributeType::Int)
    };
    if m.base.iter().any(|b| *b != 0.0) {
        attributes.insert(
            1,
            floats_attr("base_values", m.base.iter().map(|b| *b as f32).collect()),
        );
    }
    g.nodes.push(pb::NodeProto {
        name: format!("TreeEnsembleRegressor_{}", g.nodes.len()),
        op_type: "TreeEnsembleRegressor".into(),
        domain: ML_DOMAIN.into(),
        input: vec![INPUT.to_owned()],
        output: vec![output.to_owned()],
        attribute: attributes,
        ..Default::default()
    });
    match m.head {
        EnsembleHead::Binary => g.binary_head(output),
        EnsembleHead::Softmax => g.multiclass_head(output),
        EnsembleHead::Probabilities => {
            g.node(
                "ArgMax",
                &[PROBABILITIES],
                LABEL,
                vec![int_attr("axis", 1), int_attr("keepdims", 0)],
            );
        }
        EnsembleHead::Value => {}
    }
    classes
}

fn value_info(name: &str, elem: DataType, dims: &[Option<usize>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => Value::DimValue(*v as i64),
                None => Value::DimParam(BATCH_DIM.to_owned()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn linear_graph(g: &mut Graph, m: &LinearModel) -> usize {
    let (k, f) = (m.coefficients.rows(), m.coefficients.cols());
    let w = g.constant("coefficients", &[k, f], m.coefficients.as_slice());
    let b = g.constant("intercepts", &[k], &m.intercepts);
    match m.kind {
        LinearKind::Regression => {
            g.gemm(INPUT, &w, &b, VARIABLE);
            0
        }
        LinearKind::Binary => {
            let d = g.gemm(INPUT, &w, &b, "logit");
            g.binary_head(&d);
            2
        }
        LinearKind::Multinomial => {
            let z = g.gemm(INPUT, &w, &b, "logits");
            g.multiclass_head(&z);
            k
        }
    }
}

fn mlp_graph(g: &mut Graph, m: &Mlp) -> usize {
    let mut x = INPUT.to_owned();
    let last = m.layers.len() - 1;
    for (l, layer) in m.layers.iter().enumerate() {
        let (fan_in, fan_out) = (layer.weights.rows(), layer.weights.cols());
        // [out, in]: the transpose of the native layout.
        let mut wt = layer.weights.transpose().into_vec();
        let mut bias = layer.bias.clone();
        let binary = l == last && m.output == MlpOutput::Softmax && fan_out == 2;
        let outs = if binary {
            // One score, the difference of the two logits.
            let (w0, w1) = wt.split_at(fan_in);
            wt = w1.iter().zip(w0).map(|(a, b)| a - b).collect();
            bias = vec![bias[1] - bias[0]];
            1
        } else {
            fan_out
        };
        let w = g.constant(&format!("dense{l}_weights"), &[outs, fan_in], &wt);
        let b = g.constant(&format!("dense{l}_bias"), &[outs], &bias);
        if l < last {
            let z = g.gemm(&x, &w, &b, &format!("dense{l}"));
            x = g.node("Relu", &[&z], &format!("relu{l}"), vec![]);
        } else if m.output == MlpOutput::Identity {
            g.gemm(&x, &w, &b, VARIABLE);
        } else if binary {
            let d = g.gemm(&x, &w, &b, "logit");
            g.binary_head(&d);
        } else {
            let z = g.gemm(&x, &w, &b, "logits");
            g.multiclass_head(&z);
        }
    }
    match m.output {
        MlpOutput::Softmax => m.layers[last].bias.len(),
        MlpOutput::Identity => 0,
    }
}

/// Writes `model` as ONNX bytes.
pub(crate) fn to_onnx(model: &NativeModel, info: &ExportInfo<'_>) -> Vec<u8> {
    let mut g = Graph::default();
    let classes = match model {
        NativeModel::Linear(m) => linear_graph(&mut g, m),
        NativeModel::Mlp(m) => mlp_graph(&mut g, m),
        NativeModel::Trees(m) => trees_graph(&mut g, m),
    };
    let mut opset_import = vec![pb::OperatorSetIdProto {
        domain: String::new(),
        version: OPSET,
    }];
    if matches!(model, NativeModel::Trees(_)) {
        opset_import.push(pb::OperatorSetIdProto {
            domain: ML_DOMAIN.into(),
            version: 1,
        });
    }
    let features = model.n_features();
    let outputs = if classes == 0 {
        vec![value_info(VARIABLE, DataType::Float, &[None, Some(1)])]
    } else {
        vec![
            value_info(LABEL, DataType::Int64, &[None]),
            value_info(PROBABILITIES, DataType::Float, &[None, Some(classes)]),
        ]
    };
    let meta = |key: &str, value: String| pb::StringStringEntryProto {
        key: key.to_owned(),
        value,
    };
    let json = |v: &[String]| serde_json::to_string(v).expect("strings serialise");
    let proto = pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import,
        producer_name: "sluice-ml".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{} trained by sluice-ml. Input `{INPUT}`: float32 [{BATCH_DIM}, {features}]. {}",
            info.algorithm,
            if classes == 0 {
                format!("Output `{VARIABLE}`: float32 [{BATCH_DIM}, 1].")
            } else {
                format!(
                    "Outputs `{LABEL}`: int64 [{BATCH_DIM}], the class index into \
                     metadata `classes`; `{PROBABILITIES}`: float32 [{BATCH_DIM}, {classes}]."
                )
            }
        ),
        graph: Some(pb::GraphProto {
            name: info.algorithm.to_owned(),
            node: g.nodes,
            initializer: g.initializers,
            input: vec![value_info(INPUT, DataType::Float, &[None, Some(features)])],
            output: outputs,
            ..Default::default()
        }),
        metadata_props: vec![
            meta("algorithm", info.algorithm.to_owned()),
            meta("feature_names", json(info.feature_names)),
            meta("classes", json(info.classes)),
            meta("params", info.params_json.to_owned()),
        ],
        ..Default::default()
    };
    proto.encode_to_vec()
}
