//! The wire formats: the Open Inference Protocol v2 (KServe, Triton) and
//! MLflow's scoring API, parsed into request tables and written back from
//! prediction tables. Every refusal says what was wrong and where.

use crate::signature::{ArrowDType, DType, DataError, Signature, oip_datatype};
use arrow_array::{Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// An Open Inference Protocol v2 inference request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Ignored.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// One tensor per input column (or one `[rows, columns]` tensor).
    pub inputs: Vec<InputTensor>,
    /// Which outputs to return (all when absent).
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// An input tensor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputTensor {
    /// Its name: a column of the model.
    pub name: String,
    /// Its shape: `[rows]`, `[rows, 1]`, or `[rows, columns]` for one
    /// tensor holding every column.
    pub shape: Vec<i64>,
    /// `FP32`, `FP64`, `INT64`, `BOOL`, `BYTES`, …
    pub datatype: String,
    /// Ignored.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// The values, row-major, flat or nested.
    pub data: Value,
}

/// A requested output.
#[derive(Debug, Deserialize)]
pub struct RequestedOutput {
    /// The output's name.
    pub name: String,
}

/// Parses an inference request body.
pub fn parse_infer(body: &[u8]) -> Result<InferRequest, DataError> {
    serde_json::from_slice(body).map_err(|e| DataError(format!("invalid inference request: {e}")))
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
    request: &InferRequest,
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
    for t in &request.inputs {
        let values = flatten(&t.data, &t.name)?;
        let dims: Vec<usize> = t
            .shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                DataError(format!(
                    "input `{}` has shape {:?}; dimensions must be zero or more",
                    t.name, t.shape
                ))
            })?;
        let expected: usize = dims.iter().product();
        if dims.is_empty() || expected != values.len() {
            return Err(DataError(format!(
                "input `{}` has shape {:?} ({expected} values) but {} values in `data`",
                t.name,
                t.shape,
                values.len()
            )));
        }
        // One `[rows, columns]` tensor holding every column, in order.
        let matrix = dims.len() == 2
            && dims[1] > 1
            && request.inputs.len() == 1
            && inputs.is_some_and(|s| s.column(&t.name).is_none() && s.columns.len() == dims[1]);
        if matrix {
            let s = inputs.unwrap();
            for (j, spec) in s.columns.iter().enumerate() {
                check_datatype(&t.name, &t.datatype, Some(spec.column_type))?;
                let col: Vec<Value> = (0..dims[0])
                    .map(|i| values[i * dims[1] + j].clone())
                    .collect();
                columns.push((spec.name.clone(), col));
            }
            continue;
        }
        if dims.len() > 2 || (dims.len() == 2 && dims[1] != 1) {
            return Err(DataError(format!(
                "input `{}` has shape {:?}; each input is one column, of shape [rows] or [rows, 1]{}",
                t.name,
                t.shape,
                match inputs {
                    Some(s) => format!(
                        ", or a single [rows, {}] tensor holds every column in this order: {}",
                        s.columns.len(),
                        s.names()
                    ),
                    None => String::new(),
                }
            )));
        }
        let column_type = inputs
            .and_then(|s| s.column(&t.name))
            .map(|c| c.column_type);
        check_datatype(&t.name, &t.datatype, column_type)?;
        if columns.iter().any(|(n, _)| *n == t.name) {
            return Err(DataError(format!("input `{}` is given twice", t.name)));
        }
        types.push(column_type_of(&t.datatype).unwrap());
        columns.push((t.name.clone(), values));
    }
    match inputs {
        Some(s) => s.table_from_json(columns, "input"),
        None => {
            let s = Signature {
                columns: columns
                    .iter()
                    .zip(types)
                    .map(|((name, _), column_type)| crate::signature::ColumnSpec {
                        name: name.clone(),
                        column_type,
                    })
                    .collect(),
            };
            s.table_from_json(columns, "input")
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

/// The values of a (possibly nested) JSON array, row-major.
fn flatten(data: &Value, name: &str) -> Result<Vec<Value>, DataError> {
    fn walk(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            other => out.push(other.clone()),
        }
    }
    if !data.is_array() {
        return Err(DataError(format!(
            "input `{name}`: `data` must be a list of values, not {}",
            match data {
                Value::Object(_) => "an object",
                Value::String(_) => "text",
                _ => "a single value",
            }
        )));
    }
    let mut out = Vec::new();
    walk(data, &mut out);
    Ok(out)
}

/// The response of an inference: one tensor per prediction column
/// (`requested` names the ones wanted, or all).
pub fn infer_response(
    model: &str,
    version: i64,
    id: &str,
    predictions: &RecordBatch,
    requested: Option<&[RequestedOutput]>,
) -> Result<Value, DataError> {
    let schema = predictions.schema();
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
    let rows = predictions.num_rows();
    let outputs: Vec<Value> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| requested.is_none_or(|r| r.iter().any(|o| o.name == *f.name())))
        .map(|(i, f)| {
            let column_type = DType::of_arrow(f.data_type()).unwrap_or(DType::Float64);
            json!({
                "name": f.name(),
                "datatype": oip_datatype(column_type),
                "shape": [rows],
                "data": column_json(predictions.column(i).as_ref()),
            })
        })
        .collect();
    Ok(json!({
        "model_name": model,
        "model_version": version.to_string(),
        "id": id,
        "outputs": outputs,
    }))
}

/// A column's values as JSON.
pub fn column_json(array: &dyn Array) -> Vec<Value> {
    let any = array.as_any();
    let at = |i: usize, f: &dyn Fn(usize) -> Value| {
        if array.is_null(i) { Value::Null } else { f(i) }
    };
    let n = array.len();
    if let Some(a) = any.downcast_ref::<Float64Array>() {
        (0..n).map(|i| at(i, &|i| json!(a.value(i)))).collect()
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        (0..n).map(|i| at(i, &|i| json!(a.value(i)))).collect()
    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
        (0..n).map(|i| at(i, &|i| json!(a.value(i)))).collect()
    } else if let Some(a) = any.downcast_ref::<StringArray>() {
        (0..n).map(|i| at(i, &|i| json!(a.value(i)))).collect()
    } else {
        vec![Value::Null; n]
    }
}

/// The request table of an MLflow scoring request (`dataframe_split`,
/// `dataframe_records`, `instances` or `inputs`).
pub fn invocations_table(
    body: &[u8],
    inputs: Option<&Signature>,
) -> Result<RecordBatch, DataError> {
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
                    Some(s) => s.columns.iter().map(|c| c.name.clone()).collect(),
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
                        Some(s) => s.columns.iter().map(|c| c.name.clone()).collect(),
                        None => {
                            return Err(DataError(format!(
                                "`{format}` holds rows without column names; send records (objects) instead"
                            )));
                        }
                    };
                    rows_to_columns(&names, items)?
                }
                Some(_) if inputs.is_some_and(|s| s.columns.len() == 1) => {
                    vec![(inputs.unwrap().columns[0].name.clone(), items)]
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
    let n = records.len();
    for (i, record) in records.into_iter().enumerate() {
        let Value::Object(fields) = record else {
            return Err(DataError(format!("record {i} is not an object")));
        };
        for (k, v) in fields {
            match columns.iter_mut().find(|(n, _)| *n == k) {
                Some((_, values)) => {
                    values.resize(i, Value::Null);
                    values.push(v);
                }
                None => {
                    let mut values = vec![Value::Null; i];
                    values.push(v);
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
pub fn invocations_response(predictions: &RecordBatch) -> Value {
    let values = predictions
        .column_by_name("prediction")
        .map(|c| column_json(c.as_ref()))
        .unwrap_or_default();
    json!({ "predictions": values })
}

/// Model metadata (`GET /v2/models/{name}`).
pub fn model_metadata(
    name: &str,
    versions: &[i64],
    inputs: Option<&Signature>,
    outputs: &Signature,
) -> Value {
    let tensors = |s: &Signature| -> Vec<Value> {
        s.columns
            .iter()
            .map(
                |c| json!({"name": c.name, "datatype": oip_datatype(c.column_type), "shape": [-1]}),
            )
            .collect()
    };
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert(
        "versions".into(),
        json!(versions.iter().map(|v| v.to_string()).collect::<Vec<_>>()),
    );
    m.insert("platform".into(), json!("sluice_onnx"));
    m.insert(
        "inputs".into(),
        json!(inputs.map(tensors).unwrap_or_default()),
    );
    m.insert("outputs".into(), json!(tensors(outputs)));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::ColumnSpec;

    fn sig() -> Signature {
        Signature {
            columns: vec![
                ColumnSpec {
                    name: "a".into(),
                    column_type: DType::Float64,
                },
                ColumnSpec {
                    name: "b".into(),
                    column_type: DType::Float64,
                },
            ],
        }
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
        let r = infer_response("cancer", 3, "req-1", &p, None).unwrap();
        assert_eq!(r["model_version"], "3");
        assert_eq!(r["outputs"][0]["datatype"], "BYTES");
        assert_eq!(r["outputs"][0]["data"], json!(["M", "B"]));
        assert_eq!(r["outputs"][1]["shape"], json!([2]));
        let only = [RequestedOutput {
            name: "probability_M".into(),
        }];
        let r = infer_response("cancer", 3, "x", &p, Some(&only)).unwrap();
        assert_eq!(r["outputs"].as_array().unwrap().len(), 1);
        assert_eq!(invocations_response(&p), json!({"predictions": ["M", "B"]}));
    }
}
