//! Tree ensembles evaluated natively: the ONNX-ML `TreeEnsembleClassifier`
//! and `TreeEnsembleRegressor` operators, for the forests and boosted trees
//! that scikit-learn (skl2onnx), XGBoost and LightGBM (onnxmltools) export.
//!
//! The trees are flattened into one array of 16-byte nodes whose children
//! are indices (a negative index names a leaf), walked a block of rows at a
//! time so that a tree's upper levels stay in cache across the block. When
//! every branch of the ensemble compares the same way (scikit-learn and
//! LightGBM use `<=`, XGBoost `<`), the comparison is a compile-time
//! constant of the walk.
//!
//! The answers are onnxruntime's, bit for bit where the arithmetic allows:
//! scores are summed in `f32` in tree order per row, as onnxruntime does,
//! and the finishing rules (base values, the binary layouts, post
//! transforms) follow its CPU kernel, including its choices where the ONNX
//! specification is vague.

use std::fmt;

/// Why a tree-ensemble node cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError(pub String);

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, TreeError>;

fn bad<T>(message: impl Into<String>) -> Result<T> {
    Err(TreeError(message.into()))
}

/// How a branch compares a feature with its threshold (`nodes_modes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Branch {
    /// `x <= t` goes to the true child.
    Leq = 0,
    /// `x < t`.
    Lt = 1,
    /// `x >= t`.
    Gte = 2,
    /// `x > t`.
    Gt = 3,
    /// `x == t`.
    Eq = 4,
    /// `x != t`.
    Neq = 5,
}

impl Branch {
    fn parse(mode: &str) -> Result<Option<Branch>> {
        Ok(Some(match mode {
            "BRANCH_LEQ" => Branch::Leq,
            "BRANCH_LT" => Branch::Lt,
            "BRANCH_GTE" => Branch::Gte,
            "BRANCH_GT" => Branch::Gt,
            "BRANCH_EQ" => Branch::Eq,
            "BRANCH_NEQ" => Branch::Neq,
            "LEAF" => return Ok(None),
            other => return bad(format!("unknown node mode `{other}`")),
        }))
    }

    fn from_bits(bits: u32) -> Branch {
        match bits {
            0 => Branch::Leq,
            1 => Branch::Lt,
            2 => Branch::Gte,
            3 => Branch::Gt,
            4 => Branch::Eq,
            _ => Branch::Neq,
        }
    }
}

/// How the trees' leaf values combine (`aggregate_function`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// The sum (boosting; classifiers always sum).
    Sum,
    /// The mean over the trees (forests).
    Average,
    /// The smallest leaf value.
    Min,
    /// The largest leaf value.
    Max,
}

impl Aggregate {
    /// Folds one leaf weight into a score.
    #[inline(always)]
    fn add(self, score: &mut f32, has: &mut bool, w: f32) {
        match self {
            Aggregate::Sum | Aggregate::Average => *score += w,
            Aggregate::Min => {
                if !*has || w < *score {
                    *score = w;
                }
            }
            Aggregate::Max => {
                if !*has || w > *score {
                    *score = w;
                }
            }
        }
        *has = true;
    }

    /// Parses the attribute's value.
    pub fn parse(s: &str) -> Result<Aggregate> {
        Ok(match s {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => return bad(format!("unknown aggregate_function `{other}`")),
        })
    }
}

/// What is applied to the aggregated scores (`post_transform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    /// The raw scores.
    None,
    /// `1 / (1 + e^-x)` per score.
    Logistic,
    /// Softmax over a row.
    Softmax,
    /// Softmax that leaves zero scores at (almost) zero.
    SoftmaxZero,
    /// The probit function per score.
    Probit,
}

impl PostTransform {
    /// Parses the attribute's value.
    pub fn parse(s: &str) -> Result<PostTransform> {
        Ok(match s {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            other => return bad(format!("unknown post_transform `{other}`")),
        })
    }
}

/// The class labels of a classifier.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassLabels {
    /// `classlabels_int64s`.
    Int(Vec<i64>),
    /// `classlabels_strings`.
    Strings(Vec<String>),
}

impl ClassLabels {
    fn len(&self) -> usize {
        match self {
            ClassLabels::Int(v) => v.len(),
            ClassLabels::Strings(v) => v.len(),
        }
    }
}

/// A tree-ensemble node's attributes, in the flat form ONNX-ML gives them
/// (one entry per node and one per leaf weight).
#[derive(Debug, Clone, Default)]
pub struct TreeAttributes {
    /// `nodes_treeids`.
    pub tree_ids: Vec<i64>,
    /// `nodes_nodeids`.
    pub node_ids: Vec<i64>,
    /// `nodes_featureids`.
    pub feature_ids: Vec<i64>,
    /// `nodes_modes`.
    pub modes: Vec<String>,
    /// `nodes_values` (or `nodes_values_as_tensor`).
    pub values: Vec<f32>,
    /// `nodes_truenodeids`.
    pub true_ids: Vec<i64>,
    /// `nodes_falsenodeids`.
    pub false_ids: Vec<i64>,
    /// `nodes_missing_value_tracks_true` (empty: NaN takes the false branch).
    pub missing_tracks_true: Vec<i64>,
    /// `class_treeids` / `target_treeids`.
    pub leaf_tree_ids: Vec<i64>,
    /// `class_nodeids` / `target_nodeids`.
    pub leaf_node_ids: Vec<i64>,
    /// `class_ids` / `target_ids`.
    pub leaf_targets: Vec<i64>,
    /// `class_weights` / `target_weights`.
    pub leaf_weights: Vec<f32>,
    /// `base_values`.
    pub base_values: Vec<f32>,
    /// `post_transform`.
    pub post_transform: Option<String>,
    /// `aggregate_function` (regressors only).
    pub aggregate: Option<String>,
}

/// A node: 16 bytes. Internal nodes come first; leaf `l` is node
/// `n_internal + l`, whose two children are itself, so that a walk can take
/// a fixed number of steps with no branch on where it is. The top four bits
/// of `feature` hold the branch mode (3 bits) and whether NaN takes the
/// true branch (1 bit).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Node {
    feature: u32,
    threshold: f32,
    /// The true child, then the false child.
    children: [u32; 2],
}

const FEATURE_MASK: u32 = (1 << 28) - 1;
const NAN_TRUE: u32 = 1 << 31;
const MODE_SHIFT: u32 = 28;

/// The uniform comparison of an ensemble, when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    Uniform(Branch, bool),
    Mixed,
}

/// Whether an ensemble regresses or classifies, with what the classifier
/// needs to finish its scores.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Regressor,
    Classifier {
        labels: ClassLabels,
        /// Two classes and leaf weights for one of them only.
        binary_case: bool,
        weights_all_positive: bool,
    },
}

/// A tree ensemble ready to evaluate.
#[derive(Debug, Clone)]
pub struct TreeEnsemble {
    nodes: Vec<Node>,
    /// Internal nodes (the leaves follow them in `nodes`).
    n_internal: u32,
    roots: Vec<u32>,
    /// Per tree, the longest path from its root to a leaf.
    depths: Vec<u32>,
    /// Per leaf, its weights are `weights[leaf_start[l]..leaf_start[l + 1]]`.
    leaf_start: Vec<u32>,
    weights: Vec<(u32, f32)>,
    walk: Walk,
    n_targets: usize,
    n_features: usize,
    aggregate: Aggregate,
    post_transform: PostTransform,
    base_values: Vec<f32>,
    kind: Kind,
}

/// A classifier's answers: one label per row and `rows × classes` scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The predicted labels, of the type the labels are declared in.
    pub labels: ClassLabelValues,
    /// Row-major scores, `classes` per row.
    pub scores: Vec<f32>,
}

/// Predicted labels.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassLabelValues {
    /// Integer labels.
    Int(Vec<i64>),
    /// String labels.
    Strings(Vec<String>),
}

impl TreeEnsemble {
    /// Builds a regressor with `n_targets` outputs per row.
    pub fn regressor(attrs: &TreeAttributes, n_targets: usize) -> Result<TreeEnsemble> {
        if n_targets == 0 {
            return bad("n_targets must be at least 1");
        }
        let aggregate = Aggregate::parse(attrs.aggregate.as_deref().unwrap_or("SUM"))?;
        TreeEnsemble::build(attrs, n_targets, aggregate, Kind::Regressor)
    }

    /// Builds a classifier over `labels`.
    pub fn classifier(attrs: &TreeAttributes, labels: ClassLabels) -> Result<TreeEnsemble> {
        let n = labels.len();
        if n < 2 {
            return bad(format!(
                "a tree classifier needs at least two class labels, got {n}"
            ));
        }
        let mut classes: Vec<i64> = attrs.leaf_targets.clone();
        classes.sort_unstable();
        classes.dedup();
        let kind = Kind::Classifier {
            binary_case: n == 2 && classes.len() == 1,
            weights_all_positive: attrs.leaf_weights.iter().all(|w| *w >= 0.0),
            labels,
        };
        TreeEnsemble::build(attrs, n, Aggregate::Sum, kind)
    }

    fn build(
        attrs: &TreeAttributes,
        n_targets: usize,
        aggregate: Aggregate,
        kind: Kind,
    ) -> Result<TreeEnsemble> {
        if n_targets > MAX_OUTPUTS {
            return bad(format!(
                "{n_targets} outputs per row; at most {MAX_OUTPUTS} are supported"
            ));
        }
        let n = attrs.node_ids.len();
        if n == 0 {
            return bad("the ensemble has no nodes");
        }
        for (name, len) in [
            ("nodes_treeids", attrs.tree_ids.len()),
            ("nodes_featureids", attrs.feature_ids.len()),
            ("nodes_modes", attrs.modes.len()),
            ("nodes_values", attrs.values.len()),
            ("nodes_truenodeids", attrs.true_ids.len()),
            ("nodes_falsenodeids", attrs.false_ids.len()),
        ] {
            if len != n {
                return bad(format!(
                    "{name} has {len} entries but nodes_nodeids has {n}"
                ));
            }
        }
        if !attrs.missing_tracks_true.is_empty() && attrs.missing_tracks_true.len() != n {
            return bad(format!(
                "nodes_missing_value_tracks_true has {} entries for {n} nodes",
                attrs.missing_tracks_true.len()
            ));
        }
        let w = attrs.leaf_targets.len();
        if attrs.leaf_tree_ids.len() != w
            || attrs.leaf_node_ids.len() != w
            || attrs.leaf_weights.len() != w
        {
            return bad(
                "the leaf weight attributes (ids, node ids, tree ids, weights) differ in length",
            );
        }

        // Each (tree, node) names one entry; trees keep their first-seen order.
        let mut key_to_index = std::collections::HashMap::with_capacity(n);
        let mut tree_order: Vec<i64> = Vec::new();
        for i in 0..n {
            let key = (attrs.tree_ids[i], attrs.node_ids[i]);
            if key_to_index.insert(key, i).is_some() {
                return bad(format!("node {} of tree {} is defined twice", key.1, key.0));
            }
            if tree_order.last() != Some(&attrs.tree_ids[i]) {
                tree_order.push(attrs.tree_ids[i]);
            }
        }
        let modes = attrs
            .modes
            .iter()
            .map(|m| Branch::parse(m))
            .collect::<Result<Vec<_>>>()?;

        // Leaves and internal nodes numbered separately.
        let mut internal_index = vec![u32::MAX; n];
        let mut leaf_index = vec![u32::MAX; n];
        let (mut n_internal, mut n_leaves) = (0u32, 0u32);
        for i in 0..n {
            if modes[i].is_some() {
                internal_index[i] = n_internal;
                n_internal += 1;
            } else {
                leaf_index[i] = n_leaves;
                n_leaves += 1;
            }
        }
        if n_internal
            .checked_add(n_leaves)
            .is_none_or(|t| t == u32::MAX)
        {
            return bad("the ensemble has too many nodes");
        }
        let child_of = |i: usize| -> u32 {
            if modes[i].is_some() {
                internal_index[i]
            } else {
                n_internal + leaf_index[i]
            }
        };

        let mut leaf_weights: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_leaves as usize];
        for k in 0..w {
            let key = (attrs.leaf_tree_ids[k], attrs.leaf_node_ids[k]);
            let Some(&i) = key_to_index.get(&key) else {
                return bad(format!(
                    "a leaf weight names node {} of tree {}, which does not exist",
                    key.1, key.0
                ));
            };
            let target = attrs.leaf_targets[k];
            if target < 0 || target as usize >= n_targets {
                return bad(format!(
                    "a leaf weight is for target/class {target}, but there are {n_targets}"
                ));
            }
            if modes[i].is_some() {
                // onnxruntime accepts weights on a branch and never reads them.
                continue;
            }
            leaf_weights[leaf_index[i] as usize].push((target as u32, attrs.leaf_weights[k]));
        }

        let mut nodes = Vec::with_capacity(n_internal as usize);
        let mut n_features = 0usize;
        let mut first_mode = None;
        let mut uniform = true;
        let mut any_nan_true = false;
        for (i, mode) in modes.iter().enumerate() {
            let Some(mode) = *mode else { continue };
            let child = |id: i64, which: &str| -> Result<u32> {
                let key = (attrs.tree_ids[i], id);
                match key_to_index.get(&key) {
                    Some(&c) if c != i => Ok(child_of(c)),
                    Some(_) => bad(format!(
                        "node {} of tree {} is its own {which} child",
                        attrs.node_ids[i], attrs.tree_ids[i]
                    )),
                    None => bad(format!(
                        "node {} of tree {} has {which} child {id}, which does not exist",
                        attrs.node_ids[i], attrs.tree_ids[i]
                    )),
                }
            };
            let feature = attrs.feature_ids[i];
            if feature < 0 || feature > i64::from(FEATURE_MASK) {
                return bad(format!("feature id {feature} is out of range"));
            }
            n_features = n_features.max(feature as usize + 1);
            let nan_true = attrs.missing_tracks_true.get(i).is_some_and(|v| *v == 1);
            any_nan_true |= nan_true;
            match first_mode {
                None => first_mode = Some(mode),
                Some(m) if m != mode => uniform = false,
                Some(_) => {}
            }
            nodes.push(Node {
                feature: feature as u32
                    | (mode as u32) << MODE_SHIFT
                    | if nan_true { NAN_TRUE } else { 0 },
                threshold: attrs.values[i],
                children: [
                    child(attrs.true_ids[i], "true")?,
                    child(attrs.false_ids[i], "false")?,
                ],
            });
        }
        nodes.extend((0..n_leaves).map(|l| Node {
            feature: 0,
            threshold: 0.0,
            children: [n_internal + l; 2],
        }));
        // A tree's root is its first entry in the attributes, as in
        // onnxruntime.
        let mut roots = Vec::with_capacity(tree_order.len());
        let mut previous = None;
        for i in 0..n {
            if previous != Some(attrs.tree_ids[i]) {
                roots.push(child_of(i));
                previous = Some(attrs.tree_ids[i]);
            }
        }
        let mut ensemble = TreeEnsemble {
            walk: match (uniform, first_mode) {
                (true, Some(mode)) => Walk::Uniform(mode, any_nan_true),
                (true, None) => Walk::Uniform(Branch::Leq, false),
                (false, _) => Walk::Mixed,
            },
            leaf_start: std::iter::once(0)
                .chain(leaf_weights.iter().scan(0u32, |s, l| {
                    *s += l.len() as u32;
                    Some(*s)
                }))
                .collect(),
            weights: leaf_weights.into_iter().flatten().collect(),
            nodes,
            n_internal,
            depths: Vec::new(),
            roots,
            n_targets,
            n_features,
            aggregate,
            post_transform: PostTransform::parse(
                attrs.post_transform.as_deref().unwrap_or("NONE"),
            )?,
            base_values: attrs.base_values.clone(),
            kind,
        };
        ensemble.depths = ensemble.depths()?;
        Ok(ensemble)
    }

    /// The depth of every tree, refusing a child link that points back up
    /// (a cycle would never end a walk).
    fn depths(&self) -> Result<Vec<u32>> {
        let internal = self.n_internal as usize;
        // Three colours: 0 unseen, 1 on the current path, 2 done (its
        // height known).
        let mut colour = vec![0u8; internal];
        let mut height = vec![0u32; internal];
        let height_of = |c: u32, height: &[u32]| {
            if (c as usize) < internal {
                height[c as usize] + 1
            } else {
                1
            }
        };
        for &root in &self.roots {
            if root as usize >= internal || colour[root as usize] == 2 {
                continue;
            }
            let mut stack = vec![(root as usize, false)];
            while let Some((i, leaving)) = stack.pop() {
                let [yes, no] = self.nodes[i].children;
                if leaving {
                    height[i] = height_of(yes, &height).max(height_of(no, &height));
                    colour[i] = 2;
                    continue;
                }
                if colour[i] == 2 {
                    continue;
                }
                colour[i] = 1;
                stack.push((i, true));
                for c in [yes, no] {
                    let c = c as usize;
                    if c >= internal {
                        continue;
                    }
                    match colour[c] {
                        0 => stack.push((c, false)),
                        1 => return bad("the trees contain a cycle"),
                        _ => {}
                    }
                }
            }
        }
        Ok(self
            .roots
            .iter()
            .map(|&r| height_of(r, &height) - 1)
            .collect())
    }

    /// The number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// The number of features a row must have at least.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Scores per row: the targets of a regressor, the classes of a
    /// classifier.
    pub fn n_outputs(&self) -> usize {
        self.n_targets
    }

    /// The class labels, for a classifier.
    pub fn class_labels(&self) -> Option<&ClassLabels> {
        match &self.kind {
            Kind::Classifier { labels, .. } => Some(labels),
            Kind::Regressor => None,
        }
    }

    /// Evaluates a regressor over `rows` rows of `stride` features each:
    /// `rows × n_outputs()` values.
    pub fn regress<T: Feature>(&self, x: &[T], rows: usize, stride: usize) -> Result<Vec<f32>> {
        let acc = self.accumulate(x, rows, stride)?;
        let t = self.n_targets;
        let mut out = vec![0f32; rows * t];
        for r in 0..rows {
            let (score, has) = (&acc.score[r * t..][..t], &acc.has[r * t..][..t]);
            self.finish_regression(score, has, &mut out[r * t..][..t]);
        }
        Ok(out)
    }

    /// Evaluates a classifier over `rows` rows of `stride` features each.
    pub fn classify<T: Feature>(&self, x: &[T], rows: usize, stride: usize) -> Result<Classified> {
        let Kind::Classifier {
            labels,
            binary_case,
            weights_all_positive,
        } = &self.kind
        else {
            return bad("not a classifier");
        };
        let acc = self.accumulate(x, rows, stride)?;
        let c = self.n_targets;
        let mut scores = vec![0f32; rows * c];
        let mut picked = Vec::with_capacity(rows);
        // Buffers reused for every row: a row's accumulated scores, then
        // its finished ones (one or two values shorter than `c` for
        // onnxruntime's binary layouts; the rest of the row stays 0).
        let mut row = Vec::with_capacity(c);
        let mut finished = Vec::with_capacity(c.max(2));
        for r in 0..rows {
            row.clear();
            row.extend(
                acc.score[r * c..][..c]
                    .iter()
                    .copied()
                    .zip(acc.has[r * c..][..c].iter().copied()),
            );
            picked.push(self.finish_classification(
                &mut row,
                &mut finished,
                *binary_case,
                *weights_all_positive,
            ));
            for (o, v) in scores[r * c..][..c].iter_mut().zip(&finished) {
                *o = *v;
            }
        }
        let labels = match labels {
            ClassLabels::Int(v) => ClassLabelValues::Int(
                picked
                    .iter()
                    .map(|p| match p {
                        Picked::Index(i) => v[*i],
                        Picked::Value(x) => *x,
                    })
                    .collect(),
            ),
            ClassLabels::Strings(v) => ClassLabelValues::Strings(
                picked
                    .iter()
                    .map(|p| match p {
                        Picked::Index(i) => v[*i].clone(),
                        // onnxruntime maps string labels through their
                        // indices, so the literal 0/1 is an index here.
                        Picked::Value(x) => v[(*x as usize).min(v.len() - 1)].clone(),
                    })
                    .collect(),
            ),
        };
        Ok(Classified { labels, scores })
    }

    /// Walks every tree for every row, a block of rows at a time, and
    /// aggregates the leaf weights per row and target.
    fn accumulate<T: Feature>(&self, x: &[T], rows: usize, stride: usize) -> Result<Accumulated> {
        if stride < self.n_features {
            return bad(format!(
                "the trees read feature {} but rows have {stride} features",
                self.n_features - 1
            ));
        }
        if rows.checked_mul(stride) != Some(x.len()) {
            return bad(format!(
                "{rows} rows of {stride} features need {} values, got {}",
                rows.saturating_mul(stride),
                x.len()
            ));
        }
        let t = self.n_targets;
        let Some(cells) = rows.checked_mul(t) else {
            return bad(format!("{rows} rows × {t} outputs is too many"));
        };
        let mut acc = Accumulated {
            score: vec![0f32; cells],
            has: vec![false; cells],
        };
        let walk = |x: &[T], score: &mut [f32], has: &mut [bool]| match self.walk {
            Walk::Uniform(Branch::Leq, false) => {
                self.walk_all::<T, 0, false>(x, stride, score, has)
            }
            Walk::Uniform(Branch::Leq, true) => self.walk_all::<T, 0, true>(x, stride, score, has),
            Walk::Uniform(Branch::Lt, false) => self.walk_all::<T, 1, false>(x, stride, score, has),
            Walk::Uniform(Branch::Lt, true) => self.walk_all::<T, 1, true>(x, stride, score, has),
            _ => self.walk_all::<T, MIXED, true>(x, stride, score, has),
        };
        // Large batches (batch prediction, evaluation) are split across the
        // cores, as onnxruntime does; a server's small batches stay on the
        // worker thread that runs them.
        let threads = if rows * self.roots.len() >= PARALLEL_WORK {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            1
        };
        if threads <= 1 || rows == 0 {
            walk(x, &mut acc.score, &mut acc.has);
        } else {
            let per = rows.div_ceil(threads);
            std::thread::scope(|scope| {
                for ((x, score), has) in x
                    .chunks(per * stride)
                    .zip(acc.score.chunks_mut(per * t))
                    .zip(acc.has.chunks_mut(per * t))
                {
                    scope.spawn(move || walk(x, score, has));
                }
            });
        }
        Ok(acc)
    }

    fn walk_all<T: Feature, const MODE: u8, const NAN: bool>(
        &self,
        x: &[T],
        stride: usize,
        score: &mut [f32],
        has: &mut [bool],
    ) {
        // Rows go through a tree LANES at a time, in lockstep: the lanes'
        // walks are independent, so their loads overlap, and a lane that
        // reached its leaf stays there (leaves are their own children).
        // The rows left over (fewer than LANES: a server's single row)
        // go through LANES trees at a time instead, for the same reason.
        const BLOCK: usize = 128;
        const LANES: usize = 8;
        let rows = score.len() / self.n_targets;
        let mut leaves = [0u32; BLOCK];
        let lane_rows = rows - rows % LANES;
        for start in (0..lane_rows).step_by(BLOCK) {
            let end = (start + BLOCK).min(lane_rows);
            for (&root, &depth) in self.roots.iter().zip(&self.depths) {
                for lane_start in (start..end).step_by(LANES) {
                    let row = |k: usize| (lane_start + k) * stride;
                    let offsets: [usize; LANES] = std::array::from_fn(row);
                    let mut at = [root; LANES];
                    let mut step = 0;
                    while step < depth {
                        for k in 0..LANES {
                            at[k] = self.step::<T, MODE, NAN>(at[k], &x[offsets[k]..]);
                        }
                        step += 1;
                        // Stop early once every lane is at a leaf.
                        if step % 4 == 0 && at.iter().all(|&a| a >= self.n_internal) {
                            break;
                        }
                    }
                    for (k, &a) in at.iter().enumerate() {
                        leaves[lane_start - start + k] = a - self.n_internal;
                    }
                }
                for (slot, r) in leaves.iter().zip(start..end) {
                    self.add_leaf(*slot, r, score, has);
                }
            }
        }
        for r in lane_rows..rows {
            let row = &x[r * stride..];
            for (roots, depths) in self.roots.chunks(LANES).zip(self.depths.chunks(LANES)) {
                let mut at = [0u32; LANES];
                at[..roots.len()].copy_from_slice(roots);
                // Lanes past the last tree walk the first again, unused.
                for a in &mut at[roots.len()..] {
                    *a = roots[0];
                }
                let depth = depths.iter().copied().max().unwrap_or(0);
                let mut step = 0;
                while step < depth {
                    for a in &mut at {
                        *a = self.step::<T, MODE, NAN>(*a, row);
                    }
                    step += 1;
                    if step % 4 == 0 && at.iter().all(|&a| a >= self.n_internal) {
                        break;
                    }
                }
                // In tree order, as the lanes of rows add them.
                for &a in &at[..roots.len()] {
                    self.add_leaf(a - self.n_internal, r, score, has);
                }
            }
        }
    }

    /// Adds leaf `leaf`'s weights to row `r`'s scores.
    #[inline(always)]
    fn add_leaf(&self, leaf: u32, r: usize, score: &mut [f32], has: &mut [bool]) {
        let l = leaf as usize;
        let ws = &self.weights[self.leaf_start[l] as usize..self.leaf_start[l + 1] as usize];
        if self.n_targets == 1 {
            // onnxruntime reads a single-target leaf's first weight.
            if let Some(&(_, w)) = ws.first() {
                self.aggregate.add(&mut score[r], &mut has[r], w);
            }
            return;
        }
        let base = r * self.n_targets;
        for &(t, w) in ws {
            let i = base + t as usize;
            self.aggregate.add(&mut score[i], &mut has[i], w);
        }
    }

    /// One step of a walk: the child of node `at` for `row`.
    #[inline(always)]
    fn step<T: Feature, const MODE: u8, const NAN: bool>(&self, at: u32, row: &[T]) -> u32 {
        // In bounds: children were checked when the ensemble was built,
        // features against the row width before the walk.
        let node = &self.nodes[at as usize];
        let v = row[(node.feature & FEATURE_MASK) as usize];
        let mode = if MODE == MIXED {
            Branch::from_bits((node.feature >> MODE_SHIFT) & 0x7)
        } else {
            Branch::from_bits(u32::from(MODE))
        };
        let mut yes = v.compare(mode, node.threshold);
        if NAN {
            yes |= (node.feature & NAN_TRUE != 0) & v.is_nan();
        }
        node.children[usize::from(!yes)]
    }

    fn finish_regression(&self, score: &[f32], has: &[bool], out: &mut [f32]) {
        let n_trees = self.roots.len() as f32;
        if self.n_targets == 1 {
            let origin = if self.base_values.len() == 1 {
                self.base_values[0]
            } else {
                0.0
            };
            let v = match self.aggregate {
                Aggregate::Sum => score[0] + origin,
                Aggregate::Average => score[0] / n_trees + origin,
                Aggregate::Min | Aggregate::Max => {
                    if has[0] {
                        score[0] + origin
                    } else {
                        origin
                    }
                }
            };
            out[0] = if self.post_transform == PostTransform::Probit {
                probit(v)
            } else {
                v
            };
            return;
        }
        let use_base = self.base_values.len() == self.n_targets;
        let base = |j: usize| if use_base { self.base_values[j] } else { 0.0 };
        let mut values: Vec<f32> = (0..self.n_targets)
            .map(|j| match self.aggregate {
                Aggregate::Sum => score[j] + base(j),
                Aggregate::Average => score[j] / n_trees + base(j),
                Aggregate::Min | Aggregate::Max => base(j) + if has[j] { score[j] } else { 0.0 },
            })
            .collect();
        write_scores(&mut values, self.post_transform, None);
        out.copy_from_slice(&values[..self.n_targets]);
    }

    /// onnxruntime's `TreeAggregatorClassifier::FinalizeScores`: leaves the
    /// row's finished scores in `finished` and returns the label.
    fn finish_classification(
        &self,
        row: &mut Vec<(f32, bool)>,
        finished: &mut Vec<f32>,
        binary_case: bool,
        weights_all_positive: bool,
    ) -> Picked {
        let c = self.n_targets;
        let base = &self.base_values;
        let mut second: Option<u8> = None;
        let picked;
        if c > 2 {
            for (k, b) in base.iter().enumerate().take(c) {
                let (s, h) = &mut row[k];
                if *h {
                    *s += b;
                } else {
                    *s = *b;
                    *h = true;
                }
            }
            let mut best: Option<(usize, f32)> = None;
            for (k, (s, h)) in row.iter().enumerate() {
                if *h && best.is_none_or(|(_, b)| *s > b) {
                    best = Some((k, *s));
                }
            }
            picked = Picked::Index(best.map_or(0, |(k, _)| k));
        } else {
            if base.len() == 2 {
                if row[1].1 {
                    row[1].0 = base[1] + row[0].0;
                    row[0].0 = -row[1].0;
                } else {
                    row[1].0 += base[1];
                    row[0].0 += base[0];
                }
            } else if base.len() == 1 {
                row[0].0 += base[0];
                if !row[1].1 {
                    row.pop();
                }
            } else if base.is_empty() {
                second = Some(3);
                if !row[1].1 {
                    row.pop();
                }
            }
            let (s0, h0) = row[0];
            let (s1, h1) = if row.len() == 2 && row[1].1 {
                row[1]
            } else {
                (0.0, false)
            };
            let positive = if h1 {
                s1
            } else if h0 {
                s0
            } else {
                0.0
            };
            picked = if binary_case {
                let (yes, code) = if weights_all_positive {
                    (positive > 0.5, [0, 1])
                } else {
                    (positive > 0.0, [2, 3])
                };
                second = Some(if yes { code[0] } else { code[1] });
                Picked::Index(usize::from(yes))
            } else {
                Picked::Value(i64::from(positive > 0.0))
            };
        }
        finished.clear();
        finished.extend(row.iter().map(|(s, _)| *s));
        write_scores(finished, self.post_transform, second);
        picked
    }
}

/// Which label a row gets: an index into the labels, or (onnxruntime's
/// two-class rule outside its binary case) the literal 1 or 0.
enum Picked {
    Index(usize),
    Value(i64),
}

struct Accumulated {
    score: Vec<f32>,
    has: Vec<bool>,
}

const MIXED: u8 = u8::MAX;

/// The most outputs (classes or targets) per row an ensemble may declare:
/// far beyond any real model, small enough that a file cannot make the
/// evaluator allocate without bound.
const MAX_OUTPUTS: usize = 1 << 16;

/// Rows × trees above which a batch is split across the cores (about a
/// millisecond of work).
const PARALLEL_WORK: usize = 1 << 18;

/// onnxruntime's `write_scores`: the post transform, and the second column
/// of a one-score binary row.
fn write_scores(scores: &mut Vec<f32>, transform: PostTransform, second: Option<u8>) {
    if scores.len() >= 2 {
        match transform {
            PostTransform::Probit => scores.iter_mut().for_each(|s| *s = probit(*s)),
            PostTransform::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
            PostTransform::Softmax => softmax(scores),
            PostTransform::SoftmaxZero => softmax_zero(scores),
            PostTransform::None => {}
        }
    } else if scores.len() == 1 {
        let s = scores[0];
        if transform == PostTransform::Probit {
            scores[0] = probit(s);
            return;
        }
        let pair = match second {
            Some(0 | 1) => [1.0 - s, s],
            Some(2 | 3) if transform == PostTransform::Logistic => [logistic(-s), logistic(s)],
            Some(2) => [-s, s],
            Some(3) => [s, -s],
            _ => return,
        };
        scores.clear();
        scores.extend(pair);
    }
}

fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + libm::expf(-x.abs()));
    if x < 0.0 { 1.0 - v } else { v }
}

fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(-f32::MAX, f32::max);
    let mut sum = 0f32;
    for v in values.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

fn softmax_zero(values: &mut [f32]) {
    let max = values.iter().copied().fold(-f32::MAX, f32::max);
    let exp_neg_max = libm::expf(-max);
    let mut sum = 0f32;
    for v in values.iter_mut() {
        if *v > 1e-7 || *v < -1e-7 {
            *v = libm::expf(*v - max);
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

fn probit(x: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * x - 1.0)
}

/// The approximation onnxruntime uses, so that probit scores agree.
fn erf_inv(x: f32) -> f32 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = libm::logf(x);
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + libm::sqrtf(v * v - v2);
    sign * libm::sqrtf(v3)
}

/// A feature value a tree compares: `f32`, or `f64` (integer inputs are
/// widened to it), compared with the `f32` threshold in the input's own
/// precision, as onnxruntime compares.
pub trait Feature: Copy + Send + Sync {
    /// Whether the branch takes its true child.
    fn compare(self, mode: Branch, threshold: f32) -> bool;
    /// Whether the value is missing.
    fn is_nan(self) -> bool;
}

macro_rules! feature {
    ($t:ty) => {
        impl Feature for $t {
            #[inline(always)]
            fn compare(self, mode: Branch, threshold: f32) -> bool {
                let t = <$t>::from(threshold);
                match mode {
                    Branch::Leq => self <= t,
                    Branch::Lt => self < t,
                    Branch::Gte => self >= t,
                    Branch::Gt => self > t,
                    Branch::Eq => self == t,
                    Branch::Neq => self != t,
                }
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
feature!(f32);
feature!(f64);

#[cfg(test)]
mod tests {
    use super::*;

    /// Two stumps on feature 0 and 1: tree 0 `x0 <= 0.5 ? 1 : 2`, tree 1
    /// `x1 < 3 ? 10 : 20`, NaN in x1 going to the true side.
    fn stumps() -> TreeAttributes {
        TreeAttributes {
            tree_ids: vec![0, 0, 0, 1, 1, 1],
            node_ids: vec![0, 1, 2, 0, 1, 2],
            feature_ids: vec![0, 0, 0, 1, 0, 0],
            modes: ["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LT", "LEAF", "LEAF"]
                .map(String::from)
                .to_vec(),
            values: vec![0.5, 0.0, 0.0, 3.0, 0.0, 0.0],
            true_ids: vec![1, 0, 0, 1, 0, 0],
            false_ids: vec![2, 0, 0, 2, 0, 0],
            missing_tracks_true: vec![0, 0, 0, 1, 0, 0],
            leaf_tree_ids: vec![0, 0, 1, 1],
            leaf_node_ids: vec![1, 2, 1, 2],
            leaf_targets: vec![0, 0, 0, 0],
            leaf_weights: vec![1.0, 2.0, 10.0, 20.0],
            ..TreeAttributes::default()
        }
    }

    #[test]
    fn a_regressor_sums_or_averages_the_leaves_each_row_reaches() {
        let attrs = stumps();
        let sum = TreeEnsemble::regressor(&attrs, 1).unwrap();
        let x = [0.0f32, 0.0, 1.0, 5.0, 0.5, f32::NAN, f32::NAN, 3.0];
        // Mixed modes (LEQ and LT) take the general walk.
        assert_eq!(sum.regress(&x, 4, 2).unwrap(), [11.0, 22.0, 11.0, 22.0]);
        let avg = TreeEnsemble::regressor(
            &TreeAttributes {
                aggregate: Some("AVERAGE".into()),
                base_values: vec![100.0],
                ..attrs.clone()
            },
            1,
        )
        .unwrap();
        assert_eq!(avg.regress(&x, 4, 2).unwrap(), [105.5, 111.0, 105.5, 111.0]);
        let max = TreeEnsemble::regressor(
            &TreeAttributes {
                aggregate: Some("MAX".into()),
                ..attrs
            },
            1,
        )
        .unwrap();
        assert_eq!(max.regress(&x, 4, 2).unwrap(), [10.0, 20.0, 10.0, 20.0]);
    }

    #[test]
    fn a_binary_classifier_with_one_scored_class_gives_both_columns() {
        let mut attrs = stumps();
        attrs.leaf_weights = vec![-1.0, 1.0, -0.5, 0.5];
        attrs.post_transform = Some("LOGISTIC".into());
        attrs.base_values = vec![0.25];
        let model = TreeEnsemble::classifier(&attrs, ClassLabels::Int(vec![4, 7])).unwrap();
        let x = [0.0f32, 0.0, 1.0, 5.0];
        let out = model.classify(&x, 2, 2).unwrap();
        assert_eq!(out.labels, ClassLabelValues::Int(vec![4, 7]));
        let p = |s: f32| 1.0 / (1.0 + (-s).exp());
        let want = [1.0 - p(-1.25), p(-1.25), 1.0 - p(1.75), p(1.75)];
        for (a, b) in out.scores.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{:?} vs {want:?}", out.scores);
        }
    }

    #[test]
    fn a_multiclass_classifier_picks_the_highest_score_after_softmax() {
        let mut attrs = stumps();
        attrs.leaf_targets = vec![0, 1, 2, 1];
        attrs.post_transform = Some("SOFTMAX".into());
        let model = TreeEnsemble::classifier(
            &attrs,
            ClassLabels::Strings(vec!["a".into(), "b".into(), "c".into()]),
        )
        .unwrap();
        let out = model.classify(&[0.0f32, 0.0, 1.0, 5.0], 2, 2).unwrap();
        // Row 0: a=1, c=10 → c. Row 1: b=2+20 → b.
        assert_eq!(
            out.labels,
            ClassLabelValues::Strings(vec!["c".into(), "b".into()])
        );
        let row0 = &out.scores[..3];
        assert!((row0.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row0[2] > 0.99);
    }

    #[test]
    fn a_large_batch_split_across_threads_answers_as_rows_one_at_a_time() {
        let attrs = stumps();
        let model = TreeEnsemble::regressor(&attrs, 1).unwrap();
        // Enough rows × trees to take the parallel path, an odd count so
        // that the chunks and the 8-row lanes have remainders.
        let rows = PARALLEL_WORK / model.n_trees() + 13;
        let x: Vec<f64> = (0..rows * 2)
            .map(|i| match i % 7 {
                0 => f64::NAN,
                k => (i % 11) as f64 * 0.4 - k as f64,
            })
            .collect();
        let batch = model.regress(&x, rows, 2).unwrap();
        for (r, got) in batch.iter().enumerate() {
            let alone = model.regress(&x[r * 2..r * 2 + 2], 1, 2).unwrap();
            assert_eq!(*got, alone[0], "row {r}");
        }
    }

    #[test]
    fn malformed_trees_are_refused_with_the_node_named() {
        let mut cyclic = stumps();
        cyclic.true_ids[0] = 0;
        let e = TreeEnsemble::regressor(&cyclic, 1).unwrap_err();
        assert!(e.0.contains("its own true child"), "{e}");
        let mut dangling = stumps();
        dangling.false_ids[3] = 9;
        let e = TreeEnsemble::regressor(&dangling, 1).unwrap_err();
        assert!(e.0.contains("false child 9, which does not exist"), "{e}");
        let e = TreeEnsemble::regressor(&stumps(), 1)
            .unwrap()
            .regress(&[0.0f32], 1, 1)
            .unwrap_err();
        assert!(e.0.contains("read feature 1 but rows have 1"), "{e}");
        let e = TreeEnsemble::regressor(&stumps(), 1 << 40).unwrap_err();
        assert!(e.0.contains("at most 65536"), "{e}");
    }
}
