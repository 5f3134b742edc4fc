//! Feature matrices, targets and datasets.

use crate::error::{MlError, Result};

/// A dense row-major matrix of `f64`: `rows` samples × `cols` features.
///
/// Training works in `f64` so that solutions match reference solvers closely;
/// exported ONNX models take `f32` (see [`Matrix::to_f32`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// A matrix over row-major `data`; fails unless `data.len() == rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Matrix> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(MlError::InvalidData(format!(
                "a {rows}×{cols} matrix needs {} values, got {}",
                rows.saturating_mul(cols),
                data.len()
            )));
        }
        Ok(Matrix { rows, cols, data })
    }

    /// A matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Matrix {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// A matrix from rows of equal length; fails on ragged rows. An empty
    /// slice gives a 0×0 matrix.
    pub fn from_rows<R: AsRef<[f64]>>(rows: &[R]) -> Result<Matrix> {
        let cols = rows.first().map_or(0, |r| r.as_ref().len());
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != cols {
                return Err(MlError::InvalidData(format!(
                    "row {i} has {} values, row 0 has {cols}",
                    r.len()
                )));
            }
            data.extend_from_slice(r);
        }
        Ok(Matrix {
            rows: rows.len(),
            cols,
            data,
        })
    }

    /// A matrix from row-major `f32` values (what an ONNX model takes).
    pub fn from_f32(rows: usize, cols: usize, data: &[f32]) -> Result<Matrix> {
        Matrix::new(rows, cols, data.iter().map(|&v| f64::from(v)).collect())
    }

    /// Number of rows (samples).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The values, row-major.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// The values, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// Consumes the matrix and returns its row-major values.
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }

    /// Row `i`. Panics when `i >= rows`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i`, mutable. Panics when `i >= rows`.
    pub fn row_mut(&mut self, i: usize) -> &mut [f64] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The value at row `i`, column `j`. Panics when out of bounds.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        assert!(j < self.cols, "column {j} out of bounds ({})", self.cols);
        self.data[i * self.cols + j]
    }

    /// The rows at `indices`, in that order (a subset or a permutation).
    /// Panics when an index is out of bounds.
    pub fn select_rows(&self, indices: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(indices.len() * self.cols);
        for &i in indices {
            data.extend_from_slice(self.row(i));
        }
        Matrix {
            rows: indices.len(),
            cols: self.cols,
            data,
        }
    }

    /// The values as `f32`, row-major: the input of an exported model.
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }

    /// The transpose.
    pub fn transpose(&self) -> Matrix {
        let mut t = Matrix::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                t.data[j * self.rows + i] = self.data[i * self.cols + j];
            }
        }
        t
    }
}

/// What a model learns to predict.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Classification: each sample's class index into `classes`.
    Classes {
        /// Class names; a model's class `i` is `classes[i]`.
        classes: Vec<String>,
        /// One class index per sample.
        indices: Vec<usize>,
    },
    /// Regression: one real value per sample.
    Values(Vec<f64>),
}

impl Target {
    /// Classification target from labels as text. Classes are the distinct
    /// labels sorted the way scikit-learn sorts them: numerically when every
    /// label is a number ("2" before "10"), otherwise by their bytes. So
    /// `malignant`/`benign` gives `[benign, malignant]` and class 1 (the
    /// positive class of binary metrics) is `malignant`.
    pub fn classes_from_labels<S: AsRef<str>>(labels: &[S]) -> Target {
        // Distinct labels first (in order of appearance), then their order.
        let mut ids: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut distinct: Vec<&str> = Vec::new();
        let first_ids: Vec<usize> = labels
            .iter()
            .map(|l| {
                let l = l.as_ref();
                *ids.entry(l).or_insert_with(|| {
                    distinct.push(l);
                    distinct.len() - 1
                })
            })
            .collect();
        let mut order: Vec<usize> = (0..distinct.len()).collect();
        order.sort_by(|&a, &b| distinct[a].cmp(distinct[b]));
        let numeric: Option<Vec<f64>> = order
            .iter()
            .map(|&i| {
                distinct[i]
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
            })
            .collect();
        if let Some(values) = numeric {
            // Stable on equal values: byte order breaks the tie.
            let mut by_value: Vec<usize> = (0..order.len()).collect();
            by_value.sort_by(|&a, &b| values[a].total_cmp(&values[b]).then(a.cmp(&b)));
            order = by_value.into_iter().map(|i| order[i]).collect();
        }
        let mut rank = vec![0; distinct.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r;
        }
        Target::Classes {
            classes: order.iter().map(|&i| distinct[i].to_owned()).collect(),
            indices: first_ids.into_iter().map(|i| rank[i]).collect(),
        }
    }

    /// Classification target from integer labels; classes are the distinct
    /// values in increasing order, named by their decimal text.
    pub fn classes_from_i64(labels: &[i64]) -> Target {
        let mut values: Vec<i64> = labels.to_vec();
        values.sort_unstable();
        values.dedup();
        let indices = labels
            .iter()
            .map(|l| values.binary_search(l).expect("every label is a class"))
            .collect();
        Target::Classes {
            classes: values.iter().map(i64::to_string).collect(),
            indices,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Target::Classes { indices, .. } => indices.len(),
            Target::Values(v) => v.len(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class names (empty for regression).
    pub fn classes(&self) -> &[String] {
        match self {
            Target::Classes { classes, .. } => classes,
            Target::Values(_) => &[],
        }
    }

    /// The target restricted to `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Target {
        match self {
            Target::Classes {
                classes,
                indices: y,
            } => Target::Classes {
                classes: classes.clone(),
                indices: indices.iter().map(|&i| y[i]).collect(),
            },
            Target::Values(v) => Target::Values(indices.iter().map(|&i| v[i]).collect()),
        }
    }
}

/// The kind of learning problem, which decides how a label column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Labels are class names.
    Classification,
    /// Labels are real numbers.
    Regression,
}

/// A feature matrix with its column names and its target: what a trainer
/// takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Samples × features.
    pub features: Matrix,
    /// One name per feature column; recorded in the trained model.
    pub feature_names: Vec<String>,
    /// One label per sample.
    pub target: Target,
}

impl Dataset {
    /// A dataset, checked: as many names as columns, as many labels as rows,
    /// at least one row and one column, finite features and targets.
    pub fn new(features: Matrix, feature_names: Vec<String>, target: Target) -> Result<Dataset> {
        if feature_names.len() != features.cols() {
            return Err(MlError::InvalidData(format!(
                "{} feature names for {} feature columns",
                feature_names.len(),
                features.cols()
            )));
        }
        if target.len() != features.rows() {
            return Err(MlError::InvalidData(format!(
                "{} labels for {} rows",
                target.len(),
                features.rows()
            )));
        }
        if features.rows() == 0 || features.cols() == 0 {
            return Err(MlError::InvalidData(format!(
                "a dataset needs at least one row and one feature, got {}×{}",
                features.rows(),
                features.cols()
            )));
        }
        if let Some(pos) = features.as_slice().iter().position(|v| !v.is_finite()) {
            return Err(MlError::InvalidData(format!(
                "feature `{}` of row {} (counting from 1) is {} (impute missing values first)",
                feature_names[pos % features.cols()],
                pos / features.cols() + 1,
                features.as_slice()[pos]
            )));
        }
        if let Target::Values(v) = &target
            && let Some(pos) = v.iter().position(|v| !v.is_finite())
        {
            return Err(MlError::InvalidData(format!(
                "the target of row {pos} is {}",
                v[pos]
            )));
        }
        Ok(Dataset {
            features,
            feature_names,
            target,
        })
    }

    /// Reads a dataset from CSV text with a header row: every column but
    /// `label` is a numeric feature, `label` is the target, read as
    /// [`Task`] says. Plain CSV only: fields are split at commas, no quoting.
    /// For tests, examples and benchmarks; pipelines bring tables through the
    /// host.
    pub fn from_csv(text: &str, label: &str, task: Task) -> Result<Dataset> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .ok_or_else(|| MlError::InvalidData("empty CSV".into()))?
            .split(',')
            .map(str::trim)
            .collect();
        let label_col = header.iter().position(|h| *h == label).ok_or_else(|| {
            MlError::InvalidData(format!(
                "no column `{label}` in the CSV header; columns: {}",
                header.join(", ")
            ))
        })?;
        let feature_names: Vec<String> = header
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != label_col)
            .map(|(_, h)| (*h).to_owned())
            .collect();
        let mut data = Vec::new();
        let mut labels = Vec::new();
        let mut rows = 0;
        for (n, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() != header.len() {
                return Err(MlError::InvalidData(format!(
                    "CSV line {} has {} fields, the header {}",
                    n + 2,
                    fields.len(),
                    header.len()
                )));
            }
            for (i, f) in fields.iter().enumerate() {
                if i == label_col {
                    labels.push(*f);
                } else {
                    data.push(f.parse::<f64>().map_err(|_| {
                        MlError::InvalidData(format!(
                            "CSV line {}: `{f}` in column `{}` is not a number",
                            n + 2,
                            header[i]
                        ))
                    })?);
                }
            }
            rows += 1;
        }
        let target = match task {
            Task::Classification => Target::classes_from_labels(&labels),
            Task::Regression => Target::Values(
                labels
                    .iter()
                    .enumerate()
                    .map(|(n, l)| {
                        l.parse::<f64>().map_err(|_| {
                            MlError::InvalidData(format!(
                                "CSV line {}: label `{l}` is not a number",
                                n + 2
                            ))
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        let cols = feature_names.len();
        Dataset::new(Matrix::new(rows, cols, data)?, feature_names, target)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.features.rows()
    }

    /// Whether there are no samples (never true for a checked dataset).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        Dataset {
            features: self.features.select_rows(indices),
            feature_names: self.feature_names.clone(),
            target: self.target.select(indices),
        }
    }
}

/// Rows a trainer measures itself on but does not learn from (the eval
/// split of a pipeline): early stopping watches their loss or score.
pub(crate) struct Validation<'a, T> {
    /// Their features, the training columns in the same order.
    pub x: &'a Matrix,
    /// What they should predict, in the training target's terms.
    pub target: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_sort_like_sklearn() {
        let t = Target::classes_from_labels(&["malignant", "benign", "malignant"]);
        assert_eq!(
            t,
            Target::Classes {
                classes: vec!["benign".into(), "malignant".into()],
                indices: vec![1, 0, 1]
            }
        );
        let t = Target::classes_from_labels(&["10", "2", "2"]);
        assert_eq!(t.classes(), ["2", "10"]);
        let t = Target::classes_from_i64(&[3, -1, 3]);
        assert_eq!(
            t,
            Target::Classes {
                classes: vec!["-1".into(), "3".into()],
                indices: vec![1, 0, 1]
            }
        );
    }

    #[test]
    fn csv_and_checks() {
        let d = Dataset::from_csv("a,y,b\n1,x,2\n3,z,4\n", "y", Task::Classification).unwrap();
        assert_eq!(d.feature_names, ["a", "b"]);
        assert_eq!(d.features.as_slice(), [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(d.target.classes(), ["x", "z"]);
        let e = Dataset::from_csv("a,y\n1,x\n", "label", Task::Classification).unwrap_err();
        assert!(e.to_string().contains("no column `label`"), "{e}");
        let e = Dataset::new(
            Matrix::new(1, 1, vec![f64::NAN]).unwrap(),
            vec!["a".into()],
            Target::Values(vec![1.0]),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("feature `a` of row 1 (counting from 1) is NaN"),
            "{e}"
        );
        assert!(Matrix::new(2, 2, vec![1.0]).is_err());
        assert!(Matrix::from_rows(&[vec![1.0], vec![1.0, 2.0]]).is_err());
        let m = Matrix::from_rows(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).unwrap();
        assert_eq!(m.transpose().as_slice(), [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    }
}
