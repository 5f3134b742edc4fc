//! Parameter values ([`Value`]) and their typed reading ([`FromParam`]).

use crate::StepError;

pub use sluice_contract::{Value, ValueType};

/// A type that [`Context::param`](crate::Context::param) can read a
/// parameter as.
///
/// Implemented for `bool`, `i64`, `u64`, `usize`, `f64` (which also accepts
/// an integer), `String`, [`serde_json::Value`] (from JSON or any scalar),
/// `Vec<String>`, `Vec<f64>` and `Vec<i64>` (from JSON arrays), and
/// `Option<T>` of any of these (an absent parameter reads as `None`).
pub trait FromParam: Sized {
    /// Converts the value of the parameter `name`.
    fn from_value(name: &str, value: Value) -> Result<Self, StepError>;

    /// What an absent parameter reads as; by default an error naming it.
    fn absent(name: &str) -> Result<Self, StepError> {
        Err(StepError::invalid_input(format!(
            "parameter `{name}` is not set"
        )))
    }

    /// Reads an optional value, as the host returns it.
    fn from_param(name: &str, value: Option<Value>) -> Result<Self, StepError> {
        match value {
            Some(v) => Self::from_value(name, v),
            None => Self::absent(name),
        }
    }
}

fn wrong_type(name: &str, expected: &str, actual: &Value) -> StepError {
    StepError::invalid_input(format!(
        "parameter `{name}` must be {expected}, found {}",
        actual.value_type()
    ))
}

impl FromParam for bool {
    fn from_value(name: &str, value: Value) -> Result<Self, StepError> {
        match value {
            Value::Boolean(b) => Ok(b),
            other => Err(wrong_type(name, "a boolean", &other)),
        }
    }
}

impl FromParam for i64 {
    fn from_value(name: &str, value: Value) -> Result<Self, StepError> {
        match value {
            Value::Integer(i) => Ok(i),
            other => Err(wrong_type(name, "an integer", &other)),
        }
    }
}

impl FromParam for u64 {
    fn from_value(name: &str, value: Value) -> Result<Self, StepError> {
        let i = i64::from_value(name, value)?;
        u64::try_from(i).map_err(|_| {
            StepError::invalid_input(format!(
                "parameter `{name}` must not be negative, found {i}"
            ))
        })
    }
}

impl FromParam for usize {
    fn from_value(name: &str, value: Value) -> Result<Self, StepError> {
        let i = u64::from_value(name, value)?;
        usize::try_from(i)
            .map_err(|_| StepError::invalid_input(format!("parameter `{name}` is too large: {i}")))
    }
}

impl FromParam for f64 {
    fn from_value(name: &str, value: Value) -> Result<Self, StepError> {
        match value {
            Value::Float(f) => Ok(f),
            Value::Integer(i) => Ok(i as f64),
            other => Err(wrong_type(name, "a float", &other)),
        }
    }
}

impl FromParam for String {
    fn from_value(name: &str, value: Value) -> Result<Self, StepError> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(wrong_type(name, "text", &other)),
        }
    }
}

impl FromParam for serde_json::Value {
    fn from_value(name: &str, value: Value) -> Result<Self, StepError> {
        Ok(match value {
            Value::Boolean(b) => b.into(),
            Value::Integer(i) => i.into(),
            Value::Float(f) => f.into(),
            Value::Text(s) => s.into(),
            Value::Json(text) => serde_json::from_str(&text).map_err(|e| {
                StepError::invalid_input(format!("parameter `{name}` is not valid JSON: {e}"))
            })?,
        })
    }
}

/// Reads a JSON array parameter as a list of `T`.
fn json_list<T: serde::de::DeserializeOwned>(
    name: &str,
    value: Value,
    expected: &str,
) -> Result<Vec<T>, StepError> {
    match value {
        Value::Json(text) => serde_json::from_str(&text).map_err(|e| {
            StepError::invalid_input(format!("parameter `{name}` must be {expected}: {e}"))
        }),
        other => Err(wrong_type(name, expected, &other)),
    }
}

impl FromParam for Vec<String> {
    fn from_value(name: &str, value: Value) -> Result<Self, StepError> {
        json_list(name, value, "a list of strings")
    }
}

impl FromParam for Vec<f64> {
    fn from_value(name: &str, value: Value) -> Result<Self, StepError> {
        json_list(name, value, "a list of numbers")
    }
}

impl FromParam for Vec<i64> {
    fn from_value(name: &str, value: Value) -> Result<Self, StepError> {
        json_list(name, value, "a list of integers")
    }
}

impl<T: FromParam> FromParam for Option<T> {
    fn from_value(name: &str, value: Value) -> Result<Self, StepError> {
        T::from_value(name, value).map(Some)
    }

    fn absent(_name: &str) -> Result<Self, StepError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: FromParam>(v: Option<Value>) -> Result<T, StepError> {
        T::from_param("p", v)
    }

    #[test]
    fn scalars() {
        assert_eq!(read::<bool>(Some(true.into())), Ok(true));
        assert_eq!(read::<i64>(Some(3.into())), Ok(3));
        assert_eq!(read::<f64>(Some(3.into())), Ok(3.0));
        assert_eq!(read::<f64>(Some(2.5.into())), Ok(2.5));
        assert_eq!(read::<String>(Some("x".into())), Ok("x".to_owned()));
        assert_eq!(read::<usize>(Some(4.into())), Ok(4));
        assert!(read::<usize>(Some((-1).into())).is_err());
    }

    #[test]
    fn absent_and_optional() {
        let e = read::<i64>(None).unwrap_err();
        assert!(matches!(&e, StepError::InvalidInput(m) if m.contains("`p`")));
        assert_eq!(read::<Option<i64>>(None), Ok(None));
        assert_eq!(read::<Option<i64>>(Some(1.into())), Ok(Some(1)));
    }

    #[test]
    fn wrong_type_names_both_types() {
        let e = read::<i64>(Some("x".into())).unwrap_err();
        let StepError::InvalidInput(m) = e else {
            panic!("wrong variant")
        };
        assert!(
            m.contains("`p`") && m.contains("integer") && m.contains("text"),
            "{m}"
        );
        assert!(read::<i64>(Some(1.5.into())).is_err());
    }

    #[test]
    fn json_values() {
        let j = Value::Json(r#"["a","b"]"#.into());
        assert_eq!(
            read::<Vec<String>>(Some(j)),
            Ok(vec!["a".into(), "b".into()])
        );
        let j = Value::Json("[0.25, 1]".into());
        assert_eq!(read::<Vec<f64>>(Some(j)), Ok(vec![0.25, 1.0]));
        assert!(read::<Vec<f64>>(Some(Value::Json(r#"["a"]"#.into()))).is_err());
        assert_eq!(
            read::<serde_json::Value>(Some(7.into())),
            Ok(serde_json::json!(7))
        );
        assert_eq!(
            Value::from(serde_json::json!([1, 2])),
            Value::Json("[1,2]".into())
        );
    }
}
