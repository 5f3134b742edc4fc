//! The type of a table column.

use core::fmt;

/// The type of a column's values, as sluice tables carry them (the WIT
/// `dtype`, the schema and statistics documents, the served signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum DType {
    /// `true` / `false`; categorical.
    Boolean,
    /// 64-bit signed integers; numeric.
    Int64,
    /// 64-bit floats; numeric.
    Float64,
    /// UTF-8 text; categorical.
    Utf8,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 4] = [DType::Boolean, DType::Int64, DType::Float64, DType::Utf8];

    /// The name used in documents and messages: `boolean`, `int64`,
    /// `float64` or `utf8`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Int64 => "int64",
            Self::Float64 => "float64",
            Self::Utf8 => "utf8",
        }
    }

    /// Parses a name: the canonical ones, plus `bool` and `string`, which
    /// people write by habit.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "boolean" | "bool" => Self::Boolean,
            "int64" => Self::Int64,
            "float64" => Self::Float64,
            "utf8" | "string" => Self::Utf8,
            _ => return None,
        })
    }

    /// Whether values of this type are numbers (`int64`, `float64`).
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Int64 | Self::Float64)
    }

    /// Whether data of type `actual` satisfies a declaration of `self`: the
    /// same type, or `int64` data where `float64` is declared (a float
    /// column whose values happen to be whole numbers).
    pub fn accepts(self, actual: DType) -> bool {
        self == actual || (self == Self::Float64 && actual == Self::Int64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_parse() {
        for d in DType::ALL {
            assert_eq!(DType::parse(d.name()), Some(d));
        }
        assert_eq!(DType::parse("bool"), Some(DType::Boolean));
        assert_eq!(DType::parse("string"), Some(DType::Utf8));
        assert_eq!(DType::parse("float32"), None);
    }

    #[test]
    fn float_accepts_int_but_not_the_reverse() {
        assert!(DType::Float64.accepts(DType::Int64));
        assert!(!DType::Int64.accepts(DType::Float64));
        assert!(!DType::Utf8.accepts(DType::Boolean));
    }
}
