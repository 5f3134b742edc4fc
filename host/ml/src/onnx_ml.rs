//! The ONNX-ML operators that scikit-learn (skl2onnx), XGBoost and LightGBM
//! (onnxmltools) put in their default exports, made runnable.
//!
//! Two mechanisms, chosen per operator:
//!
//! - **Rewrites** of the graph before tract sees it, into standard ONNX
//!   operators with the same values: `Scaler` (`Cast`, `Sub`, `Mul`),
//!   `Imputer` (`IsNaN` or `Equal`, then `Where`), `OneHotEncoder` over
//!   integer categories (`Unsqueeze`, `Equal`, `Cast`) and `ZipMap`, whose list
//!   of `{label: probability}` maps becomes the `[N, C]` probability tensor
//!   it was made from (an `Identity`), under the same output name: the
//!   columns are the classes in the order the model declares them.
//! - **Native operators** registered with tract for the tree ensembles
//!   (`TreeEnsembleClassifier`, `TreeEnsembleRegressor`), evaluated by
//!   [`crate::trees`]: tract's own classifier is hundreds of times slower
//!   than onnxruntime and rejects per-class base values, and tract has no
//!   regressor. `LabelEncoder` (what `OrdinalEncoder` exports to) is a
//!   native map too: tract has none.
//!
//! `LinearClassifier`, `LinearRegressor`, `Normalizer`, `CategoryMapper`
//! and `ArrayFeatureExtractor` are tract's own. Any other ONNX-ML operator is refused by
//! [`rewrite`] with its name, the node, and what to do instead.

use std::sync::Arc;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb;
use tract_onnx::tract_hir::internal::*;

use crate::trees::{ClassLabelValues, ClassLabels, TreeAttributes, TreeEnsemble};

/// The ONNX-ML domain.
const ML: &str = "ai.onnx.ml";

/// The ONNX-ML operators sluice runs, with how.
pub const SUPPORTED: &[(&str, &str)] = &[
    ("TreeEnsembleClassifier", "native tree evaluator"),
    ("TreeEnsembleRegressor", "native tree evaluator"),
    (
        "LabelEncoder",
        "native: float, integer or text keys to float, integer or text values",
    ),
    ("LinearClassifier", "tract"),
    ("LinearRegressor", "tract"),
    ("Normalizer", "tract"),
    ("CategoryMapper", "tract"),
    ("ArrayFeatureExtractor", "tract"),
    ("Scaler", "rewritten to Cast, Sub, Mul"),
    ("Imputer", "rewritten to IsNaN/Equal, Where"),
    (
        "ZipMap",
        "dropped: the output is the [N, C] probability tensor",
    ),
    (
        "OneHotEncoder",
        "integer categories: rewritten to Unsqueeze, Equal, Cast",
    ),
];

/// What to do instead of an ONNX-ML operator sluice does not run.
fn workaround(op: &str) -> &'static str {
    match op {
        "OneHotEncoder" => {
            "sluice one-hot encodes integer categories (`cats_int64s`); for text categories, \
             encode the column in the pipeline before training (a sluice transform step) and \
             export the estimator alone"
        }
        "Binarizer" | "FeatureVectorizer" => {
            "encode the column in the pipeline before training (a sluice transform step) and \
             export the estimator alone, not the scikit-learn Pipeline around it"
        }
        "DictVectorizer" | "CastMap" => {
            "sluice feeds models tensors, not maps: export from a model whose input is a \
             float tensor [N, features]"
        }
        "TreeEnsemble" => {
            "export with the ONNX-ML opset 3 tree operators (skl2onnx / onnxmltools: \
             target_opset={'': 17, 'ai.onnx.ml': 3})"
        }
        "SVMClassifier" | "SVMRegressor" => {
            "kernel SVMs are not supported; train a linear model, gradient-boosted trees or an MLP"
        }
        _ => "rewrite the graph with standard ONNX operators",
    }
}

/// A tract framework that knows sluice's native ONNX-ML operators.
pub(crate) fn framework() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register
        .insert("TreeEnsembleClassifier", tree_classifier);
    onnx.op_register
        .insert("TreeEnsembleRegressor", tree_regressor);
    onnx.op_register.insert("LabelEncoder", label_encoder);
    onnx
}

/// Rewrites the ONNX-ML operators tract cannot run into standard ones, and
/// refuses the ones sluice runs in no way.
pub(crate) fn rewrite(model: &mut pb::ModelProto) -> Result<(), String> {
    let Some(graph) = model.graph.as_mut() else {
        return Ok(());
    };
    let runnable: Vec<&str> = SUPPORTED.iter().map(|(op, _)| *op).collect();
    for node in &graph.node {
        if node.domain == ML && !runnable.contains(&node.op_type.as_str()) {
            return Err(format!(
                "the model uses the ONNX-ML operator `{}` (node `{}`), which sluice does not run; \
                 {}. Supported ONNX-ML operators: {}",
                node.op_type,
                node.name,
                workaround(&node.op_type),
                runnable.join(", ")
            ));
        }
    }
    let mut rewritten = false;
    let opsets = model.opset_import.clone();
    let old = std::mem::take(&mut graph.node);
    let mut added_initialisers = Vec::new();
    for node in old {
        if node.domain != ML {
            graph.node.push(node);
            continue;
        }
        match node.op_type.as_str() {
            "ZipMap" => {
                let classes = attr(&node, "classlabels_int64s")
                    .map(|a| a.ints.len())
                    .or_else(|| attr(&node, "classlabels_strings").map(|a| a.strings.len()))
                    .unwrap_or(0);
                let (Some(x), Some(z)) = (node.input.first(), node.output.first()) else {
                    return Err(format!(
                        "ZipMap node `{}` needs one input and one output",
                        node.name
                    ));
                };
                if let Some(out) = graph.output.iter_mut().find(|o| &o.name == z) {
                    out.r#type = Some(tensor_type(1, &[None, Some(classes as i64)]));
                }
                graph
                    .node
                    .push(simple_node("Identity", &node.name, vec![x.clone()], z));
                rewritten = true;
            }
            "Scaler" => {
                let (x, y) = unary(&node)?;
                let offset = attr(&node, "offset").map_or_else(|| vec![0.0], |a| a.floats.clone());
                let scale = attr(&node, "scale").map_or_else(|| vec![1.0], |a| a.floats.clone());
                let p = format!("{y}__sluice_scaler");
                added_initialisers.push(float_initialiser(&format!("{p}_offset"), &offset));
                added_initialisers.push(float_initialiser(&format!("{p}_scale"), &scale));
                graph
                    .node
                    .push(cast_node(&format!("{p}_cast"), x, &format!("{p}_x"), 1));
                graph.node.push(simple_node(
                    "Sub",
                    &format!("{p}_sub"),
                    vec![format!("{p}_x"), format!("{p}_offset")],
                    &format!("{p}_centred"),
                ));
                graph.node.push(simple_node(
                    "Mul",
                    &format!("{p}_mul"),
                    vec![format!("{p}_centred"), format!("{p}_scale")],
                    y,
                ));
                rewritten = true;
            }
            "Imputer" => {
                let (x, y) = unary(&node)?;
                let p = format!("{y}__sluice_imputer");
                let ints = attr(&node, "imputed_value_int64s").filter(|a| !a.ints.is_empty());
                let mask = format!("{p}_mask");
                if let Some(ints) = ints {
                    let replaced = attr(&node, "replaced_value_int64").map_or(0, |a| a.i);
                    added_initialisers.push(int_initialiser(&format!("{p}_replaced"), &[replaced]));
                    added_initialisers.push(int_initialiser(&format!("{p}_values"), &ints.ints));
                    graph.node.push(simple_node(
                        "Equal",
                        &format!("{p}_eq"),
                        vec![x.clone(), format!("{p}_replaced")],
                        &mask,
                    ));
                } else {
                    let values = attr(&node, "imputed_value_floats")
                        .map(|a| a.floats.clone())
                        .unwrap_or_default();
                    if values.is_empty() {
                        return Err(format!(
                            "Imputer node `{}` has no imputed values",
                            node.name
                        ));
                    }
                    let replaced = attr(&node, "replaced_value_float").map_or(0.0, |a| a.f);
                    added_initialisers.push(float_initialiser(&format!("{p}_values"), &values));
                    if replaced.is_nan() {
                        graph.node.push(simple_node(
                            "IsNaN",
                            &format!("{p}_isnan"),
                            vec![x.clone()],
                            &mask,
                        ));
                    } else {
                        added_initialisers
                            .push(float_initialiser(&format!("{p}_replaced"), &[replaced]));
                        graph.node.push(simple_node(
                            "Equal",
                            &format!("{p}_eq"),
                            vec![x.clone(), format!("{p}_replaced")],
                            &mask,
                        ));
                    }
                }
                graph.node.push(simple_node(
                    "Where",
                    &format!("{p}_where"),
                    vec![mask, format!("{p}_values"), x.clone()],
                    y,
                ));
                rewritten = true;
            }
            "OneHotEncoder" => {
                let (x, y) = unary(&node)?;
                let Some(cats) = attr(&node, "cats_int64s").filter(|a| !a.ints.is_empty()) else {
                    return Err(format!(
                        "OneHotEncoder node `{}` has text categories; {}",
                        node.name,
                        workaround("OneHotEncoder")
                    ));
                };
                let p = format!("{y}__sluice_onehot");
                added_initialisers.push(int_initialiser(&format!("{p}_cats"), &cats.ints));
                // One more axis, the categories': [..] → [.., 1] == [C].
                let mut unsqueeze = simple_node(
                    "Unsqueeze",
                    &format!("{p}_unsqueeze"),
                    vec![x.clone()],
                    &format!("{p}_column"),
                );
                if model_opset(&opsets) >= 13 {
                    added_initialisers.push(int_initialiser(&format!("{p}_axes"), &[-1]));
                    unsqueeze.input.push(format!("{p}_axes"));
                } else {
                    unsqueeze.attribute.push(pb::AttributeProto {
                        name: "axes".into(),
                        r#type: pb::attribute_proto::AttributeType::Ints as i32,
                        ints: vec![-1],
                        ..Default::default()
                    });
                }
                graph.node.push(unsqueeze);
                graph.node.push(simple_node(
                    "Equal",
                    &format!("{p}_eq"),
                    vec![format!("{p}_column"), format!("{p}_cats")],
                    &format!("{p}_hot"),
                ));
                graph
                    .node
                    .push(cast_node(&format!("{p}_cast"), &format!("{p}_hot"), y, 1));
                rewritten = true;
            }
            _ => graph.node.push(node),
        }
    }
    graph.initializer.extend(added_initialisers);
    if rewritten {
        // The rewrites use the default domain; IsNaN and Where need opset 9.
        match model.opset_import.iter_mut().find(|o| o.domain.is_empty()) {
            Some(o) if o.version < 9 => o.version = 9,
            Some(_) => {}
            None => model.opset_import.push(pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }),
        }
    }
    Ok(())
}

/// The model's default-domain operator set (1 when it names none).
fn model_opset(opsets: &[pb::OperatorSetIdProto]) -> i64 {
    opsets
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(1, |o| o.version)
}

fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn unary(node: &pb::NodeProto) -> Result<(&String, &String), String> {
    match (node.input.first(), node.output.first()) {
        (Some(x), Some(y)) => Ok((x, y)),
        _ => Err(format!(
            "{} node `{}` needs one input and one output",
            node.op_type, node.name
        )),
    }
}

fn simple_node(op: &str, name: &str, input: Vec<String>, output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input,
        output: vec![output.into()],
        ..Default::default()
    }
}

fn cast_node(name: &str, input: &str, output: &str, to: i64) -> pb::NodeProto {
    let mut node = simple_node("Cast", name, vec![input.into()], output);
    node.attribute.push(pb::AttributeProto {
        name: "to".into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: to,
        ..Default::default()
    });
    node
}

fn float_initialiser(name: &str, values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: 1,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

fn int_initialiser(name: &str, values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: 7,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

/// A tensor type of `elem_type` with the given dimensions (`None`: open).
fn tensor_type(elem_type: i32, dims: &[Option<i64>]) -> pb::TypeProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type,
            shape: Some(pb::TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|d| Dimension {
                        value: d.map(Value::DimValue),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    }
}

// ---- tree ensembles as tract operators ------------------------------------

/// Reads a float list that opset 3 may give as a double tensor instead
/// (`<name>_as_tensor`).
fn floats(node: &pb::NodeProto, name: &str) -> TractResult<Vec<f32>> {
    if let Some(a) = attr(node, &format!("{name}_as_tensor"))
        && let Some(t) = &a.t
    {
        return match tensor_labels(t) {
            Ok(Labels::Float(values)) => Ok(values),
            _ => bail!(
                "attribute {name}_as_tensor has element type {}; expected float or double",
                t.data_type
            ),
        };
    }
    Ok(attr(node, name)
        .map(|a| a.floats.clone())
        .unwrap_or_default())
}

fn ints(node: &pb::NodeProto, name: &str) -> Vec<i64> {
    attr(node, name).map(|a| a.ints.clone()).unwrap_or_default()
}

fn string(node: &pb::NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

fn tree_attributes(node: &pb::NodeProto, leaf: &str) -> TractResult<TreeAttributes> {
    Ok(TreeAttributes {
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
        leaf_tree_ids: ints(node, &format!("{leaf}_treeids")),
        leaf_node_ids: ints(node, &format!("{leaf}_nodeids")),
        leaf_targets: ints(node, &format!("{leaf}_ids")),
        leaf_weights: floats(node, &format!("{leaf}_weights"))?,
        base_values: floats(node, "base_values")?,
        post_transform: string(node, "post_transform"),
        aggregate: string(node, "aggregate_function"),
    })
}

fn tree_classifier(
    _ctx: &ParsingContext,
    node: &pb::NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let attrs = tree_attributes(node, "class")?;
    let labels = match (
        attr(node, "classlabels_int64s").filter(|a| !a.ints.is_empty()),
        attr(node, "classlabels_strings").filter(|a| !a.strings.is_empty()),
    ) {
        (Some(a), None) => ClassLabels::Int(a.ints.clone()),
        (None, Some(a)) => ClassLabels::Strings(
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
        _ => bail!(
            "TreeEnsembleClassifier `{}` needs exactly one of classlabels_int64s and classlabels_strings",
            node.name
        ),
    };
    let ensemble = TreeEnsemble::classifier(&attrs, labels)
        .map_err(|e| format_err!("TreeEnsembleClassifier `{}`: {e}", node.name))?;
    Ok((expand(Trees(Arc::new(ensemble))), vec![]))
}

fn tree_regressor(
    _ctx: &ParsingContext,
    node: &pb::NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let attrs = tree_attributes(node, "target")?;
    let n_targets = attr(node, "n_targets").map_or(1, |a| a.i);
    let n_targets = usize::try_from(n_targets).map_err(|_| {
        format_err!(
            "TreeEnsembleRegressor `{}`: n_targets {n_targets}",
            node.name
        )
    })?;
    let ensemble = TreeEnsemble::regressor(&attrs, n_targets)
        .map_err(|e| format_err!("TreeEnsembleRegressor `{}`: {e}", node.name))?;
    Ok((expand(Trees(Arc::new(ensemble))), vec![]))
}

/// A tree ensemble in tract's graph: its inference rules (the expansion)
/// and its evaluation (the typed operator), one type for both.
#[derive(Debug, Clone)]
struct Trees(Arc<TreeEnsemble>);

impl PartialEq for Trees {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Trees {}

impl Trees {
    fn label_type(&self) -> Option<DatumType> {
        self.0.class_labels().map(|l| match l {
            ClassLabels::Int(_) => DatumType::I64,
            ClassLabels::Strings(_) => DatumType::String,
        })
    }
}

impl Expansion for Trees {
    fn name(&self) -> StaticName {
        "SluiceTreeEnsemble".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(if self.label_type().is_some() { 2 } else { 1 })
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        let width = self.0.n_outputs().to_dim();
        s.equals(&inputs[0].rank, 2)?;
        match self.label_type() {
            Some(label) => {
                check_output_arity(outputs, 2)?;
                s.equals(&outputs[0].datum_type, label)?;
                s.equals(&outputs[0].rank, 1)?;
                s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
                s.equals(&outputs[1].datum_type, DatumType::F32)?;
                s.equals(&outputs[1].rank, 2)?;
                s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
                s.equals(&outputs[1].shape[1], width)?;
            }
            None => {
                check_output_arity(outputs, 1)?;
                s.equals(&outputs[0].datum_type, DatumType::F32)?;
                s.equals(&outputs[0].rank, 2)?;
                s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
                s.equals(&outputs[0].shape[1], width)?;
            }
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for Trees {
    fn name(&self) -> StaticName {
        "SluiceTreeEnsemble".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} trees, {} outputs per row",
            self.0.n_trees(),
            self.0.n_outputs()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Trees {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        if shape.len() != 2 {
            bail!("a tree ensemble takes a [rows, features] matrix, got shape {shape:?}");
        }
        let (rows, stride) = (shape[0], shape[1]);
        let trees = &self.0;
        let fail = |e: crate::trees::TreeError| format_err!("{e}");
        macro_rules! run {
            ($x:expr) => {{
                let x = $x;
                if trees.class_labels().is_some() {
                    let out = trees.classify(x, rows, stride).map_err(fail)?;
                    let labels = match out.labels {
                        ClassLabelValues::Int(v) => Tensor::from_shape(&[rows], &v)?,
                        ClassLabelValues::Strings(v) => {
                            tract_onnx::prelude::tract_ndarray::Array1::from_vec(v).into_tensor()
                        }
                    };
                    let scores = Tensor::from_shape(&[rows, trees.n_outputs()], &out.scores)?;
                    tvec!(labels.into_tvalue(), scores.into_tvalue())
                } else {
                    let out = trees.regress(x, rows, stride).map_err(fail)?;
                    tvec!(Tensor::from_shape(&[rows, trees.n_outputs()], &out)?.into_tvalue())
                }
            }};
        }
        Ok(match input.datum_type() {
            DatumType::F32 => run!(input.try_as_plain_ram()?.as_slice::<f32>()?),
            _ => {
                let wide = input.cast_to::<f64>()?;
                run!(wide.try_as_plain_ram()?.as_slice::<f64>()?)
            }
        })
    }
}

impl TypedOp for Trees {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        let scores = f32::fact([n.clone(), self.0.n_outputs().to_dim()]);
        Ok(match self.label_type() {
            Some(label) => tvec!(TypedFact::dt_shape(label, [n]), scores),
            None => tvec!(scores),
        })
    }

    as_op!();
}

// ---- LabelEncoder as a tract operator ---------------------------------------

/// A key of a `LabelEncoder` map, hashable: floats by their bits, with
/// `-0.0` as `0.0` and every NaN as one NaN (opset 4 maps NaN keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Float(u32),
    Int(i64),
    Text(String),
}

impl Key {
    fn float(v: f32) -> Key {
        Key::Float(if v.is_nan() {
            f32::NAN.to_bits()
        } else if v == 0.0 {
            0
        } else {
            v.to_bits()
        })
    }
}

/// A list of `LabelEncoder` keys or values, of one element type.
#[derive(Debug, Clone, PartialEq)]
enum Labels {
    Float(Vec<f32>),
    Int(Vec<i64>),
    Text(Vec<String>),
}

impl Labels {
    fn len(&self) -> usize {
        match self {
            Labels::Float(v) => v.len(),
            Labels::Int(v) => v.len(),
            Labels::Text(v) => v.len(),
        }
    }

    fn datum_type(&self) -> DatumType {
        match self {
            Labels::Float(_) => DatumType::F32,
            Labels::Int(_) => DatumType::I64,
            Labels::Text(_) => DatumType::String,
        }
    }

    fn keys(&self) -> Vec<Key> {
        match self {
            Labels::Float(v) => v.iter().map(|&x| Key::float(x)).collect(),
            Labels::Int(v) => v.iter().map(|&x| Key::Int(x)).collect(),
            Labels::Text(v) => v.iter().map(|x| Key::Text(x.clone())).collect(),
        }
    }
}

/// Reads a `LabelEncoder` list: `<name>_floats`, `<name>_int64s` or
/// `<name>_strings` (opset 2), or `<name>_tensor` (opset 4).
fn labels(node: &pb::NodeProto, name: &str) -> TractResult<Option<Labels>> {
    let mut found = Vec::new();
    if let Some(a) = attr(node, &format!("{name}_floats")) {
        found.push(Labels::Float(a.floats.clone()));
    }
    if let Some(a) = attr(node, &format!("{name}_int64s")) {
        found.push(Labels::Int(a.ints.clone()));
    }
    if let Some(a) = attr(node, &format!("{name}_strings")) {
        found.push(Labels::Text(
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ));
    }
    if let Some(t) = attr(node, &format!("{name}_tensor")).and_then(|a| a.t.as_ref()) {
        found.push(tensor_labels(t).map_err(|e| {
            format_err!("LabelEncoder `{}`: attribute {name}_tensor: {e}", node.name)
        })?);
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => bail!(
            "LabelEncoder `{}` gives its {name} more than once (one of {name}_floats, \
             {name}_int64s, {name}_strings, {name}_tensor)",
            node.name
        ),
    }
}

/// The values of a float, double (read as float), int64 or string tensor
/// (the `*_tensor` attributes of opset 4's `LabelEncoder`, the
/// `*_as_tensor` ones of opset 3's tree ensembles).
fn tensor_labels(t: &pb::TensorProto) -> Result<Labels, String> {
    Ok(match t.data_type {
        1 if !t.float_data.is_empty() => Labels::Float(t.float_data.clone()),
        1 => Labels::Float(
            t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
        ),
        11 if !t.double_data.is_empty() => {
            Labels::Float(t.double_data.iter().map(|v| *v as f32).collect())
        }
        11 => Labels::Float(
            t.raw_data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
        ),
        7 if !t.int64_data.is_empty() => Labels::Int(t.int64_data.clone()),
        7 => Labels::Int(
            t.raw_data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
        ),
        8 => Labels::Text(
            t.string_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
        other => {
            return Err(format!(
                "element type {other}: expected float, double, int64 or string"
            ));
        }
    })
}

fn label_encoder(
    _ctx: &ParsingContext,
    node: &pb::NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let need = |name: &str| -> TractResult<Labels> {
        labels(node, name)?.ok_or_else(|| {
            format_err!(
                "LabelEncoder `{}` has no {name} (e.g. {name}_floats)",
                node.name
            )
        })
    };
    let (keys, values) = (need("keys")?, need("values")?);
    if keys.len() != values.len() {
        bail!(
            "LabelEncoder `{}` has {} keys but {} values",
            node.name,
            keys.len(),
            values.len()
        );
    }
    // The default for a key not in the map: `default_tensor` (opset 4),
    // else the `default_*` attribute of the values' type, else ONNX's.
    let default = match attr(node, "default_tensor").and_then(|a| a.t.as_ref()) {
        Some(t) => tensor_labels(t).map_err(|e| {
            format_err!(
                "LabelEncoder `{}`: attribute default_tensor: {e}",
                node.name
            )
        })?,
        None => match &values {
            Labels::Float(_) => {
                Labels::Float(vec![attr(node, "default_float").map_or(-0.0, |a| a.f)])
            }
            Labels::Int(_) => Labels::Int(vec![attr(node, "default_int64").map_or(-1, |a| a.i)]),
            Labels::Text(_) => Labels::Text(vec![
                string(node, "default_string").unwrap_or_else(|| "_Unused".into()),
            ]),
        },
    };
    if default.len() != 1 || default.datum_type() != values.datum_type() {
        bail!(
            "LabelEncoder `{}`: the default must be one value of the values' type",
            node.name
        );
    }
    let index = keys
        .keys()
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, i))
        .rev() // the first of repeated keys wins
        .collect();
    Ok((
        expand(LabelMap(Arc::new(LabelMapping {
            keys,
            values,
            default,
            index,
        }))),
        vec![],
    ))
}

/// A `LabelEncoder`'s map: key `i` becomes value `i`, anything else the
/// default.
#[derive(Debug)]
struct LabelMapping {
    keys: Labels,
    values: Labels,
    default: Labels,
    index: std::collections::HashMap<Key, usize>,
}

impl LabelMapping {
    /// The value of each key, in order.
    fn map(&self, keys: impl Iterator<Item = Key>, shape: &[usize]) -> TractResult<Tensor> {
        let at: Vec<Option<usize>> = keys.map(|k| self.index.get(&k).copied()).collect();
        fn pick<T: Clone>(at: &[Option<usize>], values: &[T], default: &T) -> Vec<T> {
            at.iter()
                .map(|i| i.map_or_else(|| default.clone(), |i| values[i].clone()))
                .collect()
        }
        Ok(match (&self.values, &self.default) {
            (Labels::Float(v), Labels::Float(d)) => {
                Tensor::from_shape(shape, &pick(&at, v, &d[0]))?
            }
            (Labels::Int(v), Labels::Int(d)) => Tensor::from_shape(shape, &pick(&at, v, &d[0]))?,
            (Labels::Text(v), Labels::Text(d)) => {
                tract_onnx::prelude::tract_ndarray::ArrayD::from_shape_vec(
                    shape,
                    pick(&at, v, &d[0]),
                )?
                .into_tensor()
            }
            _ => unreachable!("the default has the values' type"),
        })
    }
}

/// A `LabelEncoder` in tract's graph (inference rules and evaluation).
#[derive(Debug, Clone)]
struct LabelMap(Arc<LabelMapping>);

impl PartialEq for LabelMap {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for LabelMap {}

impl Expansion for LabelMap {
    fn name(&self) -> StaticName {
        "SluiceLabelEncoder".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, self.0.values.datum_type())?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for LabelMap {
    fn name(&self) -> StaticName {
        "SluiceLabelEncoder".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} keys ({:?} to {:?})",
            self.0.keys.len(),
            self.0.keys.datum_type(),
            self.0.values.datum_type()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for LabelMap {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape().to_vec();
        let m = &self.0;
        let out = match &m.keys {
            Labels::Float(_) => {
                let x = input.cast_to::<f32>()?;
                let x = x.try_as_plain_ram()?;
                m.map(x.as_slice::<f32>()?.iter().map(|&v| Key::float(v)), &shape)?
            }
            Labels::Int(_) => {
                let x = input.cast_to::<i64>()?;
                let x = x.try_as_plain_ram()?;
                m.map(x.as_slice::<i64>()?.iter().map(|&v| Key::Int(v)), &shape)?
            }
            Labels::Text(_) => {
                if input.datum_type() != DatumType::String {
                    bail!(
                        "LabelEncoder: text keys, but the input holds {:?}",
                        input.datum_type()
                    );
                }
                let x = input.try_as_plain_ram()?;
                m.map(
                    x.as_slice::<String>()?.iter().map(|v| Key::Text(v.clone())),
                    &shape,
                )?
            }
        };
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for LabelMap {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(TypedFact::dt_shape(
            self.0.values.datum_type(),
            inputs[0].shape.clone()
        )))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(keys: Labels, values: Labels, default: Labels) -> LabelMapping {
        let index = keys
            .keys()
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, i))
            .rev()
            .collect();
        LabelMapping {
            keys,
            values,
            default,
            index,
        }
    }

    #[test]
    fn an_onnx_ml_operator_sluice_does_not_run_is_refused_with_a_workaround() {
        let mut model = pb::ModelProto {
            graph: Some(pb::GraphProto {
                node: vec![
                    simple_node("Identity", "first", vec!["x".into()], "y"),
                    pb::NodeProto {
                        domain: ML.into(),
                        ..simple_node("Binarizer", "binarise", vec!["y".into()], "z")
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = rewrite(&mut model).unwrap_err();
        assert!(
            e.starts_with(
                "the model uses the ONNX-ML operator `Binarizer` (node `binarise`), which sluice \
                 does not run; encode the column in the pipeline before training"
            ),
            "{e}"
        );
        assert!(e.contains("LabelEncoder, "), "lists what runs: {e}");
    }

    #[test]
    fn a_label_encoder_maps_keys_and_gives_the_default_for_the_rest() {
        // Float keys: -0.0 finds 0.0, NaN finds NaN, the first of a
        // repeated key wins.
        let m = mapping(
            Labels::Float(vec![0.0, 2.5, f32::NAN, 2.5]),
            Labels::Int(vec![10, 20, 30, 40]),
            Labels::Int(vec![-1]),
        );
        let keys = [-0.0f32, 2.5, f32::NAN, 7.0].map(Key::float);
        let out = m.map(keys.into_iter(), &[2, 2]).unwrap();
        assert_eq!(out.shape(), &[2, 2]);
        assert_eq!(
            out.try_as_plain_ram().unwrap().as_slice::<i64>().unwrap(),
            &[10, 20, 30, -1]
        );

        // Text keys to float values.
        let m = mapping(
            Labels::Text(vec!["a".into(), "b".into()]),
            Labels::Float(vec![1.5, 2.5]),
            Labels::Float(vec![-0.0]),
        );
        let keys = ["b", "z", "a"].map(|k| Key::Text(k.into()));
        let out = m.map(keys.into_iter(), &[3]).unwrap();
        assert_eq!(
            out.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap(),
            &[2.5, -0.0, 1.5]
        );

        // Integer keys to text values.
        let m = mapping(
            Labels::Int(vec![1, 2]),
            Labels::Text(vec!["one".into(), "two".into()]),
            Labels::Text(vec!["_Unused".into()]),
        );
        let out = m.map([2, 5].map(Key::Int).into_iter(), &[2]).unwrap();
        assert_eq!(
            out.try_as_plain_ram()
                .unwrap()
                .as_slice::<String>()
                .unwrap(),
            &["two".to_string(), "_Unused".to_string()]
        );
    }
}
