//! The lite evaluator: runs, without tract, the ONNX graphs sluice's own
//! exporter writes (linear and logistic regression, MLPs, gradient-boosted
//! trees and random forests; see [`crate::export`]), and refuses any other
//! at load, naming the operator.
//!
//! It is what a build without the `onnx-engine` feature (the lite
//! `sluice-edge`) predicts with: tract, its kernels and ndarray are most of
//! that binary otherwise. The operators ([`OPERATORS`]) are the exporter's
//! plus a few basic ones of the same kind (`MatMul`, `Add`, `Mul`, `Div`,
//! `Less`, `Equal`, `Tanh`, `Identity`), on float32, int64 and bool
//! tensors with numpy broadcasting.
//!
//! Arithmetic: `Gemm` and `MatMul` sum each output in `k` order with fused
//! multiply-adds and add the bias after, as tract's kernels do; `Sigmoid`
//! is `1 / (1 + e^-x)` and `Softmax` `e^(x - max) / Σ`, where tract uses
//! approximations of its own. Results agree with tract's within
//! [`sluice_contract`'s prediction tolerance] (tests compare every exported
//! family), not always bit for bit; tree ensembles are evaluated by
//! [`crate::trees`] in both builds, so their raw scores are the same bits.
//!
//! [`sluice_contract`'s prediction tolerance]: https://docs.rs/sluice-contract

// With the ONNX engine, `Model` runs tract: the evaluator is then compiled
// for its operator check (`unsupported_operators`) and its tests only.
#![cfg_attr(feature = "onnx-engine", allow(dead_code))]

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;

use crate::error::{MlError, Result};
use crate::onnx_pb as pb;
use crate::trees::{TreeAttributes, TreeEnsemble};

/// The ONNX-ML domain.
const ML: &str = "ai.onnx.ml";

/// The operators the lite evaluator runs: `(domain, op_type)`, the default
/// domain written as `""`.
pub const OPERATORS: &[(&str, &str)] = &[
    ("", "Gemm"),
    ("", "MatMul"),
    ("", "Add"),
    ("", "Sub"),
    ("", "Mul"),
    ("", "Div"),
    ("", "Greater"),
    ("", "Less"),
    ("", "Equal"),
    ("", "Relu"),
    ("", "Sigmoid"),
    ("", "Tanh"),
    ("", "Identity"),
    ("", "Softmax"),
    ("", "ArgMax"),
    ("", "Cast"),
    ("", "Concat"),
    ("", "Reshape"),
    (ML, "TreeEnsembleRegressor"),
];

fn supported(domain: &str, op: &str) -> bool {
    let domain = if domain == "ai.onnx" { "" } else { domain };
    OPERATORS.iter().any(|(d, o)| *d == domain && *o == op)
}

/// The operators of the ONNX model in `bytes` that the lite evaluator does
/// not run (`domain:op` for other domains than the default one), each once,
/// in graph order: empty when a lite build can run the model. What `sluice
/// bundle` checks before it writes a bundle for a lite device.
pub fn unsupported_operators(bytes: &[u8]) -> Result<Vec<String>> {
    let proto = decode(bytes)?;
    let graph = proto
        .graph
        .ok_or_else(|| MlError::ModelLoad("the model has no graph".into()))?;
    let mut missing: Vec<String> = Vec::new();
    for node in &graph.node {
        if !supported(&node.domain, &node.op_type) {
            let name = qualified(&node.domain, &node.op_type);
            if !missing.contains(&name) {
                missing.push(name);
            }
        }
    }
    Ok(missing)
}

fn qualified(domain: &str, op: &str) -> String {
    if domain.is_empty() || domain == "ai.onnx" {
        op.to_owned()
    } else {
        format!("{domain}:{op}")
    }
}

/// The lite operators as a readable list, for messages.
fn operator_list() -> String {
    OPERATORS
        .iter()
        .map(|(d, o)| qualified(d, o))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn decode(bytes: &[u8]) -> Result<pb::ModelProto> {
    pb::ModelProto::decode(bytes).map_err(|e| MlError::ModelLoad(format!("not an ONNX model: {e}")))
}

/// A dense row-major tensor of the evaluator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arr {
    pub shape: Vec<usize>,
    pub data: Data,
}

/// The values of an [`Arr`]: the element types the evaluator computes in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

/// An element type of the evaluator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    F32,
    I64,
    Bool,
}

impl Elem {
    fn from_onnx(code: i32) -> Option<Elem> {
        match code {
            1 => Some(Elem::F32),
            7 => Some(Elem::I64),
            9 => Some(Elem::Bool),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::I64 => 8,
            Elem::Bool => 1,
        }
    }
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::Bool(v) => v.len(),
        }
    }

    pub(crate) fn elem(&self) -> Elem {
        match self {
            Data::F32(_) => Elem::F32,
            Data::I64(_) => Elem::I64,
            Data::Bool(_) => Elem::Bool,
        }
    }

    pub(crate) fn cast(&self, to: Elem) -> Data {
        match (self, to) {
            (Data::F32(v), Elem::F32) => Data::F32(v.clone()),
            (Data::F32(v), Elem::I64) => Data::I64(v.iter().map(|&x| x as i64).collect()),
            (Data::F32(v), Elem::Bool) => Data::Bool(v.iter().map(|&x| x != 0.0).collect()),
            (Data::I64(v), Elem::F32) => Data::F32(v.iter().map(|&x| x as f32).collect()),
            (Data::I64(v), Elem::I64) => Data::I64(v.clone()),
            (Data::I64(v), Elem::Bool) => Data::Bool(v.iter().map(|&x| x != 0).collect()),
            (Data::Bool(v), Elem::F32) => {
                Data::F32(v.iter().map(|&x| f32::from(u8::from(x))).collect())
            }
            (Data::Bool(v), Elem::I64) => Data::I64(v.iter().map(|&x| i64::from(x)).collect()),
            (Data::Bool(v), Elem::Bool) => Data::Bool(v.clone()),
        }
    }
}

impl Arr {
    fn bytes(&self) -> u64 {
        (self.data.len() * self.data.elem().size()) as u64
    }

    fn f32(&self, what: &str) -> std::result::Result<&[f32], String> {
        match &self.data {
            Data::F32(v) => Ok(v),
            d => Err(format!("{what} must be float32, got {:?}", d.elem())),
        }
    }
}

/// Binary element-wise operators (numpy broadcasting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Greater,
    Less,
    Equal,
}

/// Unary element-wise float operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unary {
    Relu,
    Sigmoid,
    Tanh,
}

#[derive(Debug, Clone)]
enum Op {
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    MatMul,
    Binary(Binary),
    Unary(Unary),
    Identity,
    Softmax {
        axis: i64,
    },
    ArgMax {
        axis: i64,
        keepdims: bool,
        last: bool,
    },
    Cast(Elem),
    Concat {
        axis: i64,
    },
    Reshape {
        allow_zero: bool,
    },
    Trees(Arc<TreeEnsemble>),
}

/// Where a node's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// An initialiser.
    Const(usize),
    /// A graph input or a node's output, computed per run.
    Value(usize),
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    op_type: String,
    op: Op,
    /// `None`: an optional input left out (an empty name).
    inputs: Vec<Option<Slot>>,
    outputs: Vec<usize>,
    /// Values no later node reads, freed after this node.
    last_use: Vec<usize>,
}

/// A graph input the evaluator takes.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub name: String,
    pub elem: Elem,
    /// The declared dimensions (`None`: symbolic or open).
    pub dims: Vec<Option<usize>>,
}

/// A graph loaded for the lite evaluator: nodes in order, constants
/// decoded once, every value a numbered slot.
#[derive(Debug, Clone)]
pub(crate) struct LiteGraph {
    pub inputs: Vec<Input>,
    /// Output names with their value slots.
    pub outputs: Vec<(String, usize)>,
    consts: Vec<Arr>,
    nodes: Vec<Node>,
    n_values: usize,
    /// Bytes of every value of a run, `(at one row, more per extra row)`:
    /// see [`LiteGraph::scratch_bytes`].
    scratch: (u64, u64),
}

fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn int(node: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

fn float(node: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f)
}

fn ints(node: &pb::NodeProto, name: &str) -> Vec<i64> {
    attr(node, name).map(|a| a.ints.clone()).unwrap_or_default()
}

fn string(node: &pb::NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// A float list attribute, or its opset 3 `<name>_as_tensor` form.
fn floats(node: &pb::NodeProto, name: &str) -> Result<Vec<f32>, String> {
    if let Some(t) = attr(node, &format!("{name}_as_tensor")).and_then(|a| a.t.as_ref()) {
        return match tensor(t)?.data {
            Data::F32(v) => Ok(v),
            d => Err(format!(
                "attribute {name}_as_tensor has element type {:?}; expected float",
                d.elem()
            )),
        };
    }
    Ok(attr(node, name)
        .map(|a| a.floats.clone())
        .unwrap_or_default())
}

/// Decodes a constant tensor: float, double (read as float32, as tract
/// does for these attributes), int32/int64 (as int64) or bool.
fn tensor(t: &pb::TensorProto) -> Result<Arr, String> {
    if t.data_location == Some(1) {
        return Err(format!(
            "tensor `{}` keeps its values in an external file, which sluice does not read",
            t.name
        ));
    }
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("tensor `{}` has dimension {d}", t.name)))
        .collect::<Result<Vec<_>, _>>()?;
    let raw = &t.raw_data;
    let data = match t.data_type {
        1 if !raw.is_empty() => Data::F32(
            raw.as_chunks::<4>()
                .0
                .iter()
                .map(|b| f32::from_le_bytes(*b))
                .collect(),
        ),
        1 => Data::F32(t.float_data.clone()),
        11 if !raw.is_empty() => Data::F32(
            raw.as_chunks::<8>()
                .0
                .iter()
                .map(|b| f64::from_le_bytes(*b) as f32)
                .collect(),
        ),
        11 => Data::F32(t.double_data.iter().map(|&v| v as f32).collect()),
        7 if !raw.is_empty() => Data::I64(
            raw.as_chunks::<8>()
                .0
                .iter()
                .map(|b| i64::from_le_bytes(*b))
                .collect(),
        ),
        7 => Data::I64(t.int64_data.clone()),
        6 if !raw.is_empty() => Data::I64(
            raw.as_chunks::<4>()
                .0
                .iter()
                .map(|b| i64::from(i32::from_le_bytes(*b)))
                .collect(),
        ),
        6 => Data::I64(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
        9 if !raw.is_empty() => Data::Bool(raw.iter().map(|&b| b != 0).collect()),
        9 => Data::Bool(t.int32_data.iter().map(|&v| v != 0).collect()),
        other => {
            return Err(format!(
                "tensor `{}` has ONNX element type {other}; the lite evaluator computes in \
                 float32, int64 and bool only",
                t.name
            ));
        }
    };
    let volume: usize = shape.iter().product();
    if volume != data.len() {
        return Err(format!(
            "tensor `{}` of shape {shape:?} holds {} values",
            t.name,
            data.len()
        ));
    }
    Ok(Arr { shape, data })
}

fn tree_regressor(node: &pb::NodeProto) -> Result<TreeEnsemble, String> {
    let attrs = TreeAttributes {
        tree_ids: ints(node, "nodes_treeids"),
        node_ids: ints(node, "nodes_nodeids"),
        feature_ids: ints(node, "nodes_featureids"),
        modes: attr(node, "nodes_modes")
            .map(|a| {
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default(),
        values: floats(node, "nodes_values")?,
        true_ids: ints(node, "nodes_truenodeids"),
        false_ids: ints(node, "nodes_falsenodeids"),
        missing_tracks_true: ints(node, "nodes_missing_value_tracks_true"),
        leaf_tree_ids: ints(node, "target_treeids"),
        leaf_node_ids: ints(node, "target_nodeids"),
        leaf_targets: ints(node, "target_ids"),
        leaf_weights: floats(node, "target_weights")?,
        base_values: floats(node, "base_values")?,
        post_transform: string(node, "post_transform"),
        aggregate: string(node, "aggregate_function"),
    };
    let n_targets = int(node, "n_targets", 1);
    let n_targets = usize::try_from(n_targets).map_err(|_| format!("n_targets is {n_targets}"))?;
    TreeEnsemble::regressor(&attrs, n_targets).map_err(|e| e.to_string())
}

fn compile(node: &pb::NodeProto) -> Result<Op, String> {
    let bin = Op::Binary;
    Ok(match node.op_type.as_str() {
        "Gemm" => Op::Gemm {
            alpha: float(node, "alpha", 1.0),
            beta: float(node, "beta", 1.0),
            trans_a: int(node, "transA", 0) != 0,
            trans_b: int(node, "transB", 0) != 0,
        },
        "MatMul" => Op::MatMul,
        "Add" => bin(Binary::Add),
        "Sub" => bin(Binary::Sub),
        "Mul" => bin(Binary::Mul),
        "Div" => bin(Binary::Div),
        "Greater" => bin(Binary::Greater),
        "Less" => bin(Binary::Less),
        "Equal" => bin(Binary::Equal),
        "Relu" => Op::Unary(Unary::Relu),
        "Sigmoid" => Op::Unary(Unary::Sigmoid),
        "Tanh" => Op::Unary(Unary::Tanh),
        "Identity" => Op::Identity,
        "Softmax" => Op::Softmax {
            axis: int(node, "axis", -1),
        },
        "ArgMax" => Op::ArgMax {
            axis: int(node, "axis", 0),
            keepdims: int(node, "keepdims", 1) != 0,
            last: int(node, "select_last_index", 0) != 0,
        },
        "Cast" => {
            let to = int(node, "to", 0);
            Op::Cast(
                i32::try_from(to)
                    .ok()
                    .and_then(Elem::from_onnx)
                    .ok_or_else(|| {
                        format!(
                            "Cast to ONNX element type {to}; the lite evaluator casts to \
                             float32 (1), int64 (7) and bool (9) only"
                        )
                    })?,
            )
        }
        "Concat" => Op::Concat {
            axis: attr(node, "axis")
                .map(|a| a.i)
                .ok_or("Concat needs its `axis` attribute")?,
        },
        "Reshape" => Op::Reshape {
            allow_zero: int(node, "allowzero", 0) != 0,
        },
        "TreeEnsembleRegressor" => Op::Trees(Arc::new(tree_regressor(node)?)),
        other => {
            return Err(format!(
                "operator {other} is not one of the lite evaluator's"
            ));
        }
    })
}

impl LiteGraph {
    /// Loads a graph, or says which operator (or tensor) it cannot run.
    pub(crate) fn load(proto: &pb::ModelProto) -> Result<LiteGraph> {
        let load_err = MlError::ModelLoad;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| load_err("the model has no graph".into()))?;
        if let Some(node) = graph
            .node
            .iter()
            .find(|n| !supported(&n.domain, &n.op_type))
        {
            return Err(load_err(format!(
                "the model uses the ONNX operator `{}` (node `{}`), which this build cannot run: \
                 it has no ONNX engine (sluice-ml's `onnx-engine` feature is off, as in the lite \
                 sluice-edge) and runs only the operators sluice's own exporter writes ({}). \
                 Rebuild with the ONNX engine (`cargo build --profile edge -p sluice-edge \
                 --features onnx-engine`), or serve this model with `sluice serve`",
                qualified(&node.domain, &node.op_type),
                node.name,
                operator_list()
            )));
        }
        let mut consts = Vec::new();
        let mut names: HashMap<&str, Slot> = HashMap::new();
        for t in &graph.initializer {
            let arr = tensor(t).map_err(load_err)?;
            names.insert(t.name.as_str(), Slot::Const(consts.len()));
            consts.push(arr);
        }
        let mut n_values = 0;
        let mut inputs = Vec::new();
        let declared: Vec<&pb::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !names.contains_key(i.name.as_str()))
            .collect();
        for i in declared {
            let Some(pb::type_proto::Value::TensorType(t)) =
                i.r#type.as_ref().and_then(|t| t.value.as_ref())
            else {
                return Err(load_err(format!("input `{}` is not a tensor", i.name)));
            };
            let elem = Elem::from_onnx(t.elem_type).ok_or_else(|| {
                load_err(format!(
                    "input `{}` has ONNX element type {}; the lite evaluator takes float32, \
                     int64 and bool inputs only",
                    i.name, t.elem_type
                ))
            })?;
            let dims = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v))
                                if v >= 0 =>
                            {
                                Some(v as usize)
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            names.insert(i.name.as_str(), Slot::Value(n_values));
            n_values += 1;
            inputs.push(Input {
                name: i.name.clone(),
                elem,
                dims,
            });
        }
        let mut nodes = Vec::with_capacity(graph.node.len());
        for (index, n) in graph.node.iter().enumerate() {
            let op = compile(n)
                .map_err(|e| load_err(format!("node `{}` ({}): {e}", n.name, n.op_type)))?;
            let node_inputs = n
                .input
                .iter()
                .map(|name| {
                    if name.is_empty() {
                        return Ok(None);
                    }
                    names.get(name.as_str()).copied().map(Some).ok_or_else(|| {
                        load_err(format!(
                            "node `{}` ({}) reads `{name}`, which no earlier node, input or \
                             initialiser gives",
                            n.name, n.op_type
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let mut outputs = Vec::new();
            for name in &n.output {
                names.insert(name.as_str(), Slot::Value(n_values));
                outputs.push(n_values);
                n_values += 1;
            }
            let name = if n.name.is_empty() {
                format!("#{index}")
            } else {
                n.name.clone()
            };
            nodes.push(Node {
                name,
                op_type: n.op_type.clone(),
                op,
                inputs: node_inputs,
                outputs,
                last_use: Vec::new(),
            });
        }
        let outputs = graph
            .output
            .iter()
            .map(|o| match names.get(o.name.as_str()) {
                Some(Slot::Value(v)) => Ok((o.name.clone(), *v)),
                Some(Slot::Const(_)) => Err(load_err(format!(
                    "output `{}` is a constant; the lite evaluator returns computed values only",
                    o.name
                ))),
                None => Err(load_err(format!("no node computes output `{}`", o.name))),
            })
            .collect::<Result<Vec<_>>>()?;
        // Free each intermediate after the last node that reads it.
        let mut last: HashMap<usize, usize> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for s in n.inputs.iter().flatten() {
                if let Slot::Value(v) = s {
                    last.insert(*v, i);
                }
            }
        }
        for (v, i) in last {
            if !outputs.iter().any(|(_, o)| *o == v) {
                nodes[i].last_use.push(v);
            }
        }
        let mut graph = LiteGraph {
            inputs,
            outputs,
            consts,
            nodes,
            n_values,
            scratch: (0, 0),
        };
        graph.scratch = graph.probe()?;
        Ok(graph)
    }

    /// Runs the graph on zeros of one and two rows: checks that it runs at
    /// all, and measures how many bytes its values take per row.
    fn probe(&self) -> Result<(u64, u64)> {
        let mut sizes = [0u64; 2];
        for (rows, size) in [1usize, 2].into_iter().zip(&mut sizes) {
            let mut given = Vec::new();
            for input in &self.inputs {
                let mut shape = Vec::with_capacity(input.dims.len());
                for (axis, d) in input.dims.iter().enumerate() {
                    shape.push(match (axis, d) {
                        (_, Some(d)) => *d,
                        (0, None) => rows,
                        (_, None) => {
                            return Err(MlError::ModelLoad(format!(
                                "input `{}` leaves dimension {axis} open; the lite evaluator \
                                 needs every dimension but the first (the rows) fixed",
                                input.name
                            )));
                        }
                    });
                }
                let volume: usize = shape.iter().product();
                let data = match input.elem {
                    Elem::F32 => Data::F32(vec![0.0; volume]),
                    Elem::I64 => Data::I64(vec![0; volume]),
                    Elem::Bool => Data::Bool(vec![false; volume]),
                };
                given.push(Arr { shape, data });
            }
            self.run_measured(given, Some(size))
                .map_err(|e| MlError::ModelLoad(format!("the graph does not run: {e}")))?;
        }
        Ok((sizes[0], sizes[1].saturating_sub(sizes[0])))
    }

    /// An upper bound of the bytes of every value one run on `rows` rows
    /// computes (each value counted as if none were freed).
    pub(crate) fn scratch_bytes(&self, rows: usize) -> u64 {
        let (one, per_row) = self.scratch;
        one.saturating_add(per_row.saturating_mul(rows.saturating_sub(1) as u64))
    }

    /// Runs the graph on its inputs, in declaration order: the outputs in
    /// declaration order.
    pub(crate) fn run(&self, inputs: Vec<Arr>) -> Result<Vec<Arr>> {
        self.run_measured(inputs, None)
    }

    fn run_measured(&self, inputs: Vec<Arr>, mut bytes: Option<&mut u64>) -> Result<Vec<Arr>> {
        let mut values: Vec<Option<Arr>> = vec![None; self.n_values];
        for (slot, arr) in values.iter_mut().zip(inputs) {
            *slot = Some(arr);
        }
        for node in &self.nodes {
            let args = node
                .inputs
                .iter()
                .map(|s| match s {
                    None => None,
                    Some(Slot::Const(c)) => Some(&self.consts[*c]),
                    Some(Slot::Value(v)) => values[*v].as_ref(),
                })
                .collect::<Vec<_>>();
            let out = eval(&node.op, &args).map_err(|e| {
                MlError::Inference(format!("node `{}` ({}): {e}", node.name, node.op_type))
            })?;
            if out.len() != node.outputs.len() {
                return Err(MlError::Inference(format!(
                    "node `{}` ({}) has {} outputs; the lite evaluator computes {}",
                    node.name,
                    node.op_type,
                    node.outputs.len(),
                    out.len()
                )));
            }
            for (slot, arr) in node.outputs.iter().zip(out) {
                if let Some(b) = bytes.as_deref_mut() {
                    *b += arr.bytes();
                }
                values[*slot] = Some(arr);
            }
            for v in &node.last_use {
                values[*v] = None;
            }
        }
        self.outputs
            .iter()
            .map(|(name, v)| {
                values[*v]
                    .take()
                    .ok_or_else(|| MlError::Inference(format!("output `{name}` was not computed")))
            })
            .collect()
    }
}

type Eval = std::result::Result<Vec<Arr>, String>;

fn arg<'a>(args: &[Option<&'a Arr>], i: usize) -> std::result::Result<&'a Arr, String> {
    args.get(i)
        .copied()
        .flatten()
        .ok_or_else(|| format!("input {i} is missing"))
}

fn one(a: Arr) -> Eval {
    Ok(vec![a])
}

/// A non-negative axis of a rank-`rank` tensor.
fn axis(axis: i64, rank: usize) -> std::result::Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| format!("axis {axis} is out of range for rank {rank}"))
}

fn eval(op: &Op, args: &[Option<&Arr>]) -> Eval {
    match op {
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            let (a, b) = (arg(args, 0)?, arg(args, 1)?);
            let c = args.get(2).copied().flatten();
            gemm(a, b, c, *alpha, *beta, *trans_a, *trans_b)
        }
        Op::MatMul => {
            let (a, b) = (arg(args, 0)?, arg(args, 1)?);
            if a.shape.len() != 2 || b.shape.len() != 2 {
                return Err(format!(
                    "the lite evaluator multiplies matrices only, got shapes {:?} and {:?}",
                    a.shape, b.shape
                ));
            }
            gemm(a, b, None, 1.0, 0.0, false, false)
        }
        Op::Binary(b) => binary(*b, arg(args, 0)?, arg(args, 1)?).and_then(one),
        Op::Unary(u) => {
            let x = arg(args, 0)?;
            let v = x.f32("the input")?;
            let f: fn(f32) -> f32 = match u {
                Unary::Relu => |x| if x > 0.0 { x } else { 0.0 },
                Unary::Sigmoid => |x| 1.0 / (1.0 + (-x).exp()),
                Unary::Tanh => f32::tanh,
            };
            one(Arr {
                shape: x.shape.clone(),
                data: Data::F32(v.iter().map(|&x| f(x)).collect()),
            })
        }
        Op::Identity => one(arg(args, 0)?.clone()),
        Op::Softmax { axis: a } => {
            let x = arg(args, 0)?;
            let v = x.f32("the input")?;
            let rank = x.shape.len();
            if axis(*a, rank)? != rank - 1 {
                return Err(format!(
                    "the lite evaluator computes Softmax over the last axis only, got axis {a} \
                     of shape {:?}",
                    x.shape
                ));
            }
            let width = x.shape[rank - 1].max(1);
            let mut out = Vec::with_capacity(v.len());
            for row in v.chunks(width) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let start = out.len();
                let mut sum = 0f32;
                for &z in row {
                    let e = (z - max).exp();
                    sum += e;
                    out.push(e);
                }
                for e in &mut out[start..] {
                    *e /= sum;
                }
            }
            one(Arr {
                shape: x.shape.clone(),
                data: Data::F32(out),
            })
        }
        Op::ArgMax {
            axis: a,
            keepdims,
            last,
        } => {
            let x = arg(args, 0)?;
            let rank = x.shape.len();
            let ax = axis(*a, rank)?;
            let values: Vec<f32> = match &x.data {
                Data::F32(v) => v.clone(),
                Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
                Data::Bool(_) => return Err("ArgMax of a bool tensor".into()),
            };
            let (outer, n): (usize, usize) = (x.shape[..ax].iter().product(), x.shape[ax]);
            let inner: usize = x.shape[ax + 1..].iter().product();
            if n == 0 {
                return Err("ArgMax over an empty axis".into());
            }
            let mut out = Vec::with_capacity(outer * inner);
            for o in 0..outer {
                for i in 0..inner {
                    let at = |k: usize| values[(o * n + k) * inner + i];
                    let mut best = 0;
                    for k in 1..n {
                        let better = if *last {
                            at(k) >= at(best)
                        } else {
                            at(k) > at(best)
                        };
                        if better {
                            best = k;
                        }
                    }
                    out.push(best as i64);
                }
            }
            let mut shape = x.shape.clone();
            if *keepdims {
                shape[ax] = 1;
            } else {
                shape.remove(ax);
            }
            one(Arr {
                shape,
                data: Data::I64(out),
            })
        }
        Op::Cast(to) => {
            let x = arg(args, 0)?;
            one(Arr {
                shape: x.shape.clone(),
                data: x.data.cast(*to),
            })
        }
        Op::Concat { axis: a } => concat(args, *a).and_then(one),
        Op::Reshape { allow_zero } => {
            let (x, s) = (arg(args, 0)?, arg(args, 1)?);
            let Data::I64(spec) = &s.data else {
                return Err("the shape of a Reshape must be int64".into());
            };
            let volume = x.data.len();
            let mut shape = Vec::with_capacity(spec.len());
            let mut open = None;
            for (i, &d) in spec.iter().enumerate() {
                shape.push(match d {
                    -1 if open.is_none() => {
                        open = Some(i);
                        1
                    }
                    0 if !allow_zero => *x
                        .shape
                        .get(i)
                        .ok_or_else(|| format!("Reshape copies dimension {i} of {:?}", x.shape))?,
                    d => usize::try_from(d).map_err(|_| format!("Reshape to {spec:?}"))?,
                });
            }
            let known: usize = shape.iter().product();
            if let Some(i) = open {
                if known == 0 || volume % known != 0 {
                    return Err(format!("cannot reshape {:?} to {spec:?}", x.shape));
                }
                shape[i] = volume / known;
            } else if known != volume {
                return Err(format!("cannot reshape {:?} to {spec:?}", x.shape));
            }
            one(Arr {
                shape,
                data: x.data.clone(),
            })
        }
        Op::Trees(trees) => {
            let x = arg(args, 0)?;
            if x.shape.len() != 2 {
                return Err(format!(
                    "a tree ensemble takes a [rows, features] matrix, got shape {:?}",
                    x.shape
                ));
            }
            let (rows, stride) = (x.shape[0], x.shape[1]);
            let v = x.f32("the features")?;
            let out = trees.regress(v, rows, stride).map_err(|e| e.to_string())?;
            one(Arr {
                shape: vec![rows, trees.n_outputs()],
                data: Data::F32(out),
            })
        }
    }
}

/// `alpha · A'B' + beta · C`, each output summed in `k` order with fused
/// multiply-adds, then scaled, then the bias added: tract's order.
fn gemm(
    a: &Arr,
    b: &Arr,
    c: Option<&Arr>,
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
) -> Eval {
    if a.shape.len() != 2 || b.shape.len() != 2 {
        return Err(format!(
            "Gemm takes matrices, got shapes {:?} and {:?}",
            a.shape, b.shape
        ));
    }
    let (av, bv) = (a.f32("A")?, b.f32("B")?);
    let (m, k) = if trans_a {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let (kb, n) = if trans_b {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    if k != kb {
        return Err(format!(
            "Gemm of shapes {:?} and {:?} (transA {trans_a}, transB {trans_b}): inner \
             dimensions {k} and {kb} differ",
            a.shape, b.shape
        ));
    }
    // Rows of A and columns of B as contiguous vectors of length k.
    let a_rows: Vec<f32>;
    let a_rows: &[f32] = if trans_a {
        a_rows = transpose(av, k, m);
        &a_rows
    } else {
        av
    };
    let b_cols: Vec<f32>;
    let b_cols: &[f32] = if trans_b {
        bv
    } else {
        b_cols = transpose(bv, k, n);
        &b_cols
    };
    let mut out = vec![0f32; m * n];
    if k > 0 {
        for (row, y) in a_rows.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            for (col, y) in b_cols.chunks_exact(k).zip(y.iter_mut()) {
                let mut acc = 0f32;
                for (x, w) in row.iter().zip(col) {
                    acc = x.mul_add(*w, acc);
                }
                *y = acc;
            }
        }
    }
    if alpha != 1.0 {
        for y in &mut out {
            *y *= alpha;
        }
    }
    let mut y = Arr {
        shape: vec![m, n],
        data: Data::F32(out),
    };
    if let Some(c) = c
        && beta != 0.0
    {
        let bias = if beta == 1.0 {
            c.clone()
        } else {
            Arr {
                shape: c.shape.clone(),
                data: Data::F32(c.f32("C")?.iter().map(|&v| v * beta).collect()),
            }
        };
        y = binary(Binary::Add, &y, &bias)?;
        if y.shape != [m, n] {
            return Err(format!(
                "Gemm's C of shape {:?} does not fit [{m}, {n}]",
                c.shape
            ));
        }
    }
    one(y)
}

/// The transpose of a row-major `rows × cols` matrix.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}

/// The broadcast shape of two shapes (numpy rules).
fn broadcast(a: &[usize], b: &[usize]) -> std::result::Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

/// For each element of `out`, the index of the element of a tensor of
/// `shape` it reads under broadcasting.
fn indices(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let volume: usize = out.iter().product();
    if shape.iter().product::<usize>() == volume {
        return (0..volume).collect();
    }
    let offset = out.len() - shape.len();
    // The stride of each output axis in the input (0 where broadcast).
    let mut strides = vec![0usize; out.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        if shape[i] != 1 {
            strides[i + offset] = s;
        }
        s *= shape[i];
    }
    let mut idx = Vec::with_capacity(volume);
    let mut counter = vec![0usize; out.len()];
    for _ in 0..volume {
        idx.push(counter.iter().zip(&strides).map(|(c, s)| c * s).sum());
        for axis in (0..out.len()).rev() {
            counter[axis] += 1;
            if counter[axis] < out[axis] {
                break;
            }
            counter[axis] = 0;
        }
    }
    idx
}

fn binary(op: Binary, a: &Arr, b: &Arr) -> std::result::Result<Arr, String> {
    let shape = broadcast(&a.shape, &b.shape)?;
    let (ia, ib) = (indices(&a.shape, &shape), indices(&b.shape, &shape));
    macro_rules! zip {
        ($x:expr, $y:expr, $f:expr) => {
            ia.iter()
                .zip(&ib)
                .map(|(&i, &j)| $f($x[i], $y[j]))
                .collect()
        };
    }
    let data = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => match op {
            Binary::Add => Data::F32(zip!(x, y, |p: f32, q: f32| p + q)),
            Binary::Sub => Data::F32(zip!(x, y, |p: f32, q: f32| p - q)),
            Binary::Mul => Data::F32(zip!(x, y, |p: f32, q: f32| p * q)),
            Binary::Div => Data::F32(zip!(x, y, |p: f32, q: f32| p / q)),
            Binary::Greater => Data::Bool(zip!(x, y, |p: f32, q: f32| p > q)),
            Binary::Less => Data::Bool(zip!(x, y, |p: f32, q: f32| p < q)),
            Binary::Equal => Data::Bool(zip!(x, y, |p: f32, q: f32| p == q)),
        },
        (Data::I64(x), Data::I64(y)) => match op {
            Binary::Add => Data::I64(zip!(x, y, |p: i64, q: i64| p.wrapping_add(q))),
            Binary::Sub => Data::I64(zip!(x, y, |p: i64, q: i64| p.wrapping_sub(q))),
            Binary::Mul => Data::I64(zip!(x, y, |p: i64, q: i64| p.wrapping_mul(q))),
            Binary::Div => {
                if y.contains(&0) {
                    return Err("integer division by zero".into());
                }
                Data::I64(zip!(x, y, |p: i64, q: i64| p.wrapping_div(q)))
            }
            Binary::Greater => Data::Bool(zip!(x, y, |p: i64, q: i64| p > q)),
            Binary::Less => Data::Bool(zip!(x, y, |p: i64, q: i64| p < q)),
            Binary::Equal => Data::Bool(zip!(x, y, |p: i64, q: i64| p == q)),
        },
        (Data::Bool(x), Data::Bool(y)) if op == Binary::Equal => {
            Data::Bool(zip!(x, y, |p: bool, q: bool| p == q))
        }
        (x, y) => {
            return Err(format!(
                "{op:?} of {:?} and {:?} tensors",
                x.elem(),
                y.elem()
            ));
        }
    };
    Ok(Arr { shape, data })
}

fn concat(args: &[Option<&Arr>], a: i64) -> std::result::Result<Arr, String> {
    let parts = (0..args.len())
        .map(|i| arg(args, i))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let first = parts.first().ok_or("Concat of nothing")?;
    let rank = first.shape.len();
    let ax = axis(a, rank)?;
    let elem = first.data.elem();
    for p in &parts {
        let same = p.shape.len() == rank
            && p.shape
                .iter()
                .zip(&first.shape)
                .enumerate()
                .all(|(i, (x, y))| i == ax || x == y);
        if !same || p.data.elem() != elem {
            return Err(format!(
                "Concat of {:?} {:?} and {:?} {:?} along axis {a}",
                elem,
                first.shape,
                p.data.elem(),
                p.shape
            ));
        }
    }
    let outer: usize = first.shape[..ax].iter().product();
    let inner: usize = first.shape[ax + 1..].iter().product();
    let mut shape = first.shape.clone();
    shape[ax] = parts.iter().map(|p| p.shape[ax]).sum();
    macro_rules! join {
        ($variant:ident) => {{
            let mut out = Vec::with_capacity(shape.iter().product());
            for o in 0..outer {
                for p in &parts {
                    let Data::$variant(v) = &p.data else {
                        unreachable!("checked above")
                    };
                    let run = p.shape[ax] * inner;
                    out.extend_from_slice(&v[o * run..(o + 1) * run]);
                }
            }
            Data::$variant(out)
        }};
    }
    let data = match elem {
        Elem::F32 => join!(F32),
        Elem::I64 => join!(I64),
        Elem::Bool => join!(Bool),
    };
    Ok(Arr { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(shape: &[usize], v: &[f32]) -> Arr {
        Arr {
            shape: shape.to_vec(),
            data: Data::F32(v.to_vec()),
        }
    }

    #[test]
    fn gemm_sums_in_k_order_and_adds_the_broadcast_bias() {
        let a = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // [out, in], transB = 1.
        let w = f(&[2, 3], &[1.0, 0.0, -1.0, 0.5, 0.5, 0.5]);
        let b = f(&[2], &[10.0, -1.0]);
        let y = gemm(&a, &w, Some(&b), 1.0, 1.0, false, true).unwrap();
        assert_eq!(y[0], f(&[2, 2], &[8.0, 2.0, 8.0, 6.5]));
        let wt = f(&[3, 2], &[1.0, 0.5, 0.0, 0.5, -1.0, 0.5]);
        let y2 = gemm(&a, &wt, Some(&b), 1.0, 1.0, false, false).unwrap();
        assert_eq!(y2, y);
        let y3 = gemm(&a, &wt, Some(&b), 2.0, 0.5, false, false).unwrap();
        assert_eq!(y3[0], f(&[2, 2], &[1.0, 5.5, 1.0, 14.5]));
    }

    #[test]
    fn broadcasting_follows_numpy() {
        let one = f(&[1], &[1.0]);
        let col = f(&[3, 1], &[0.25, 0.5, 1.0]);
        let d = binary(Binary::Sub, &one, &col).unwrap();
        assert_eq!(d, f(&[3, 1], &[0.75, 0.5, 0.0]));
        let row = f(&[1, 2], &[10.0, 20.0]);
        let s = binary(Binary::Add, &col, &row).unwrap();
        assert_eq!(s, f(&[3, 2], &[10.25, 20.25, 10.5, 20.5, 11.0, 21.0]));
        let g = binary(Binary::Greater, &col, &f(&[1], &[0.4])).unwrap();
        assert_eq!(g.data, Data::Bool(vec![false, true, true]));
        assert!(binary(Binary::Add, &f(&[2], &[1.0, 2.0]), &f(&[3], &[1.0; 3])).is_err());
    }

    #[test]
    fn softmax_argmax_concat_and_reshape_give_the_onnx_values() {
        let x = f(&[2, 3], &[1.0, 2.0, 3.0, 5.0, 5.0, 1.0]);
        let p = &eval(&Op::Softmax { axis: 1 }, &[Some(&x)]).unwrap()[0];
        let v = p.f32("p").unwrap();
        let e = [1f32.exp(), 2f32.exp(), 3f32.exp()];
        let s: f32 = (e[0] / e[2]) + (e[1] / e[2]) + 1.0;
        assert!((v[2] - 1.0 / s).abs() < 1e-7);
        assert!((v[0..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let arg = &eval(
            &Op::ArgMax {
                axis: 1,
                keepdims: false,
                last: false,
            },
            &[Some(p)],
        )
        .unwrap()[0];
        // Ties go to the first index.
        assert_eq!(arg.data, Data::I64(vec![2, 0]));
        assert_eq!(arg.shape, [2]);
        let a = f(&[2, 1], &[1.0, 2.0]);
        let b = f(&[2, 1], &[3.0, 4.0]);
        let c = concat(&[Some(&a), Some(&b)], 1).unwrap();
        assert_eq!(c, f(&[2, 2], &[1.0, 3.0, 2.0, 4.0]));
        let flat = Arr {
            shape: vec![1],
            data: Data::I64(vec![-1]),
        };
        let r = &eval(&Op::Reshape { allow_zero: false }, &[Some(&c), Some(&flat)]).unwrap()[0];
        assert_eq!(r.shape, [4]);
    }

    #[test]
    fn an_imported_scikit_learn_model_names_the_operators_the_lite_evaluator_lacks() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let logreg = std::fs::read(path.join("iris_logreg.onnx")).unwrap();
        assert_eq!(
            unsupported_operators(&logreg).unwrap(),
            ["ai.onnx.ml:LinearClassifier", "ai.onnx.ml:Normalizer"]
        );
        let mlp = std::fs::read(path.join("iris_mlp.onnx")).unwrap();
        assert!(
            unsupported_operators(&mlp)
                .unwrap()
                .contains(&"ai.onnx.ml:ArrayFeatureExtractor".to_owned())
        );
        let e = LiteGraph::load(&decode(&logreg).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "cannot load the ONNX model: the model uses the ONNX operator \
                 `ai.onnx.ml:LinearClassifier` (node `LinearClassifier`), which this build \
                 cannot run"
            ),
            "{e}"
        );
        // What a lite build's `Model` says.
        #[cfg(not(feature = "onnx-engine"))]
        assert_eq!(crate::Model::from_onnx(&logreg).unwrap_err().to_string(), e);
    }

    #[test]
    fn an_operator_outside_the_lite_set_is_refused_at_load_by_name() {
        let proto = pb::ModelProto {
            graph: Some(pb::GraphProto {
                node: vec![pb::NodeProto {
                    name: "conv0".into(),
                    op_type: "Conv".into(),
                    input: vec!["input".into()],
                    output: vec!["y".into()],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = LiteGraph::load(&proto).unwrap_err().to_string();
        assert!(e.contains("ONNX operator `Conv` (node `conv0`)"), "{e}");
        assert!(e.contains("--features onnx-engine"), "{e}");
        assert_eq!(
            unsupported_operators(&proto.encode_to_vec()).unwrap(),
            ["Conv"]
        );
    }
}

/// The lite evaluator on every family sluice exports: against the native
/// model in every build, and against tract when the engine is compiled in.
#[cfg(test)]
mod families {
    use super::*;
    use crate::{Algorithm, Dataset, Prediction, Target, Task, TrainParams, TrainedModel, train};

    fn csv(rel: &str, target: &str, task: Task) -> Dataset {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(rel);
        let text = std::fs::read_to_string(path).unwrap();
        let mut d = Dataset::from_csv(&text, target, task).unwrap();
        // Standardised, so that every trainer converges quickly.
        let (rows, cols) = (d.features.rows(), d.features.cols());
        for c in 0..cols {
            let col: Vec<f64> = (0..rows).map(|r| d.features.get(r, c)).collect();
            let mean = col.iter().sum::<f64>() / rows as f64;
            let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64).sqrt();
            let m = d.features.as_mut_slice();
            for r in 0..rows {
                m[r * cols + c] = (m[r * cols + c] - mean) / sd.max(1e-12);
            }
        }
        d
    }

    fn breast_cancer() -> Dataset {
        csv(
            "examples/breast-cancer/data/breast_cancer.csv",
            "diagnosis",
            Task::Classification,
        )
    }

    /// Three classes: breast cancer with the largest tumours a class of their own.
    fn three_classes() -> Dataset {
        let mut d = breast_cancer();
        let Target::Classes { classes, indices } = &mut d.target else {
            panic!("classification data")
        };
        classes.push("large".into());
        for (i, c) in indices.iter_mut().enumerate() {
            if d.features.get(i, 0) > 1.0 {
                *c = 2;
            }
        }
        d
    }

    fn diabetes() -> Dataset {
        csv(
            "examples/diabetes/data/diabetes.csv",
            "progression",
            Task::Regression,
        )
    }

    /// Every exported family: (name, data, algorithm, parameters).
    fn families() -> Vec<(&'static str, Dataset, Algorithm, &'static str)> {
        let (bc, three, db) = (breast_cancer(), three_classes(), diabetes());
        vec![
            (
                "logistic_binary",
                bc.clone(),
                Algorithm::LogisticRegression,
                "{}",
            ),
            (
                "logistic_multiclass",
                three.clone(),
                Algorithm::LogisticRegression,
                "{}",
            ),
            (
                "linear_regression",
                db.clone(),
                Algorithm::LinearRegression,
                "{}",
            ),
            (
                "mlp_binary",
                bc.clone(),
                Algorithm::MlpClassifier,
                r#"{"epochs": 20}"#,
            ),
            (
                "mlp_multiclass",
                three.clone(),
                Algorithm::MlpClassifier,
                r#"{"hidden_layers": [16, 8], "epochs": 20}"#,
            ),
            (
                "mlp_regressor",
                db.clone(),
                Algorithm::MlpRegressor,
                r#"{"epochs": 5}"#,
            ),
            (
                "gbm_binary",
                bc.clone(),
                Algorithm::GradientBoostingClassifier,
                r#"{"n_estimators": 20}"#,
            ),
            (
                "gbm_multiclass",
                three.clone(),
                Algorithm::GradientBoostingClassifier,
                r#"{"n_estimators": 10}"#,
            ),
            (
                "gbm_regressor",
                db.clone(),
                Algorithm::GradientBoostingRegressor,
                r#"{"n_estimators": 20}"#,
            ),
            (
                "forest_classifier",
                three,
                Algorithm::RandomForestClassifier,
                r#"{"n_estimators": 10}"#,
            ),
            (
                "forest_regressor",
                db,
                Algorithm::RandomForestRegressor,
                r#"{"n_estimators": 10}"#,
            ),
        ]
    }

    fn trained(data: &Dataset, algorithm: Algorithm, json: &str) -> TrainedModel {
        train(data, &TrainParams::from_json(algorithm, json).unwrap()).unwrap()
    }

    /// The lite evaluator's outputs by name, on `x` (f32, row-major).
    fn lite(onnx: &[u8], x: &[f32], rows: usize, cols: usize) -> Vec<(String, Arr)> {
        let graph = LiteGraph::load(&decode(onnx).unwrap()).unwrap();
        let input = Arr {
            shape: vec![rows, cols],
            data: Data::F32(x.to_vec()),
        };
        let out = graph.run(vec![input]).unwrap();
        graph
            .outputs
            .iter()
            .map(|(n, _)| n.clone())
            .zip(out)
            .collect()
    }

    #[test]
    fn every_exported_family_runs_in_the_lite_evaluator_as_the_native_model_predicts() {
        for (name, data, algorithm, json) in families() {
            let t = trained(&data, algorithm, json);
            assert_eq!(
                unsupported_operators(&t.onnx).unwrap(),
                Vec::<String>::new(),
                "{name}"
            );
            let (rows, cols) = (data.features.rows(), data.features.cols());
            let x = data.features.to_f32();
            let native = t
                .native
                .predict(&crate::Matrix::from_f32(rows, cols, &x).unwrap())
                .unwrap();
            let out = lite(&t.onnx, &x, rows, cols);
            match native {
                Prediction::Classes {
                    labels,
                    probabilities,
                } => {
                    assert_eq!(out[0].0, "label", "{name}");
                    assert_eq!(out[1].0, "probabilities", "{name}");
                    let p = out[1].1.f32("p").unwrap();
                    assert_eq!(out[1].1.shape, [rows, probabilities.cols()], "{name}");
                    for (a, b) in p.iter().zip(probabilities.as_slice()) {
                        assert!((f64::from(*a) - b).abs() < 1e-5, "{name}: {a} vs {b}");
                    }
                    let Data::I64(l) = &out[0].1.data else {
                        panic!("{name}: int64 labels")
                    };
                    let agree = l.iter().zip(&labels).filter(|(a, b)| **a as usize == **b);
                    // Only a near-tie may flip between f32 and f64.
                    assert!(agree.count() >= rows - 1, "{name}");
                }
                Prediction::Values(v) => {
                    assert_eq!(out[0].0, "variable", "{name}");
                    assert_eq!(out[0].1.shape, [rows, 1], "{name}");
                    for (a, b) in out[0].1.f32("v").unwrap().iter().zip(&v) {
                        assert!(
                            (f64::from(*a) - b).abs() <= 1e-4 * b.abs().max(1.0),
                            "{name}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_scratch_estimate_grows_with_the_rows() {
        let t = trained(&diabetes(), Algorithm::MlpRegressor, r#"{"epochs": 1}"#);
        let graph = LiteGraph::load(&decode(&t.onnx).unwrap()).unwrap();
        let (one, ten) = (graph.scratch_bytes(1_000), graph.scratch_bytes(10_000));
        assert!(one > 0 && ten > 9 * one && ten < 11 * one, "{one} {ten}");
    }

    /// sluice_contract::numbers_agree with PREDICTION_TOLERANCE (1e-6): the
    /// rule the edge's self-test holds predictions to (not a dependency of
    /// this crate).
    #[cfg(feature = "onnx-engine")]
    fn agree(got: f64, expected: f64) -> bool {
        (got - expected).abs() <= 1e-6 * expected.abs().max(1.0)
    }

    #[cfg(feature = "onnx-engine")]
    #[test]
    fn every_exported_family_agrees_with_tract_within_the_prediction_tolerance() {
        for (name, data, algorithm, json) in families() {
            let t = trained(&data, algorithm, json);
            let (rows, cols) = (data.features.rows(), data.features.cols());
            let x = data.features.to_f32();
            let ours = lite(&t.onnx, &x, rows, cols);
            let tract = crate::Model::from_onnx(&t.onnx)
                .unwrap()
                .predict(&x, rows, cols)
                .unwrap();
            assert_eq!(
                ours.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                tract.names().collect::<Vec<_>>(),
                "{name}"
            );
            let trees = name.starts_with("gbm") || name.starts_with("forest");
            for ((n, a), (_, b)) in ours.iter().zip(&tract.0) {
                assert_eq!(a.shape, b.shape, "{name} {n}");
                match (&a.data, &b.data) {
                    (Data::I64(x), crate::TensorData::I64(y)) => assert_eq!(x, y, "{name} {n}"),
                    (Data::F32(x), crate::TensorData::F32(y)) => {
                        // Raw tree scores are the same evaluator's, bit for bit.
                        if trees && (n == "variable" || name.starts_with("forest")) {
                            assert_eq!(x, y, "{name} {n}");
                        }
                        for (i, (p, q)) in x.iter().zip(y).enumerate() {
                            assert!(
                                agree(f64::from(*p), f64::from(*q)),
                                "{name} {n}[{i}]: lite {p} vs tract {q}"
                            );
                        }
                    }
                    (x, y) => panic!("{name} {n}: {x:?} vs {y:?}"),
                }
            }
        }
    }
}
