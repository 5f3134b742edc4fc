//! Parameter values and their types.

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::fmt;

/// A parameter value, as written in a pipeline spec or declared as a
/// default in a manifest.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "kebab-case", tag = "type", content = "value")
)]
pub enum Value {
    /// `true` / `false`.
    Boolean(bool),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    /// A string.
    Text(String),
    /// A structured value (a TOML array or table in the spec), as JSON text.
    Json(String),
}

impl Value {
    /// The type of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::Boolean(_) => ValueType::Boolean,
            Self::Integer(_) => ValueType::Integer,
            Self::Float(_) => ValueType::Float,
            Self::Text(_) => ValueType::Text,
            Self::Json(_) => ValueType::Json,
        }
    }

    /// The value as plain JSON (`Json` values are parsed, falling back to
    /// a string when the text is not JSON).
    #[cfg(feature = "json")]
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Boolean(b) => serde_json::Value::Bool(*b),
            Self::Integer(i) => serde_json::Value::from(*i),
            Self::Float(f) => serde_json::Value::from(*f),
            Self::Text(s) => serde_json::Value::String(s.clone()),
            Self::Json(s) => {
                serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.clone()))
            }
        }
    }
}

/// Floats print with a decimal point and text is quoted, so a message
/// shows which type a value has.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boolean(b) => write!(f, "{b}"),
            Self::Integer(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x:?}"),
            Self::Text(s) => write!(f, "{s:?}"),
            Self::Json(s) => f.write_str(s),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Boolean(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Integer(v)
    }
}

/// So that an untyped integer literal (`.default(10)`) works.
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Self::Integer(v.into())
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Self::Integer(v.into())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

/// A JSON value becomes [`Value::Json`], e.g. `.default(json!([0.25, 0.5]))`.
#[cfg(feature = "json")]
impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        use alloc::string::ToString;
        Self::Json(v.to_string())
    }
}

/// The type a parameter declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum ValueType {
    /// `true` / `false`.
    Boolean,
    /// A signed 64-bit integer.
    Integer,
    /// A 64-bit float; integers are accepted too.
    Float,
    /// A string.
    Text,
    /// A TOML array or table, passed as JSON text.
    Json,
}

impl ValueType {
    /// Whether a value of type `given` is acceptable where `self` is
    /// declared: the same type, or an integer where a float is declared.
    pub fn accepts(self, given: ValueType) -> bool {
        self == given || (self == Self::Float && given == Self::Integer)
    }

    /// The lower-case name used in specs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Float => "float",
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn display_shows_the_type_of_a_value() {
        assert_eq!(Value::Float(1.0).to_string(), "1.0");
        assert_eq!(Value::Integer(1).to_string(), "1");
        assert_eq!(Value::from("a").to_string(), "\"a\"");
        assert_eq!(Value::Json("[1]".into()).to_string(), "[1]");
    }

    #[test]
    fn float_accepts_integers_only() {
        assert!(ValueType::Float.accepts(ValueType::Integer));
        assert!(!ValueType::Integer.accepts(ValueType::Float));
        assert_eq!(Value::from(3).value_type(), ValueType::Integer);
    }

    #[cfg(all(feature = "serde", feature = "json"))]
    #[test]
    fn serde_representation_is_the_stored_one() {
        let v = serde_json::to_string(&Value::Float(0.5)).unwrap();
        assert_eq!(v, r#"{"type":"float","value":0.5}"#);
        let t: ValueType = serde_json::from_str(r#""json""#).unwrap();
        assert_eq!(t, ValueType::Json);
        assert_eq!(
            Value::Json("[1,2]".into()).to_json(),
            serde_json::json!([1, 2])
        );
    }
}
