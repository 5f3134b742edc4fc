//! A reader for the shape nearly every v2 JSON inference request has:
//! `{"id": …, "inputs": [{"name", "shape", "datatype", "data"}, …]}` with
//! names free of escapes and `data` a (nested) list of plain decimal
//! numbers.
//!
//! At 16 clients, reading a one-row request of 30 inputs through serde's
//! derived visitors was about a seventh of the server's time: a key is
//! matched through several generic layers, and every tensor is moved
//! through them. This reader walks the bytes once and builds the same
//! [`InferRequest`] that serde would.
//!
//! It is only a shortcut. Anything else — an escape, an exponent, a
//! number with more than 15 digits, a key it does not know, a repeated
//! key, `parameters`, `outputs`, text or booleans, a syntax error — makes
//! it give up (`None`), and the request is read by serde as before, which
//! also writes every error message. The numbers it reads are the ones
//! serde_json reads, bit for bit: serde_json (without `float_roundtrip`)
//! makes a decimal of at most 19 digits by dividing its digits, as an
//! integer, by a power of ten; with at most 15 digits both are exact, so
//! doing the same division here gives the same double.

use super::{InferRequest, InputTensor, Shape, TensorData};
use serde_json::Value;
use std::borrow::Cow;

/// The request in `text`, if it has the common shape; `None` otherwise.
pub(super) fn parse(text: &str) -> Option<InferRequest<'_>> {
    let mut c = Cursor { text, at: 0 };
    let mut id = None;
    let mut inputs = None;
    c.eat(b'{')?;
    if c.peek()? != b'}' {
        loop {
            match c.string()? {
                "id" if id.is_none() => {
                    c.eat(b':')?;
                    id = Some(c.string()?.to_string());
                }
                "inputs" if inputs.is_none() => {
                    c.eat(b':')?;
                    inputs = Some(c.tensors()?);
                }
                _ => return None,
            }
            if !c.next_member(b'}')? {
                break;
            }
        }
    } else {
        c.at += 1;
    }
    // Nothing but whitespace may follow.
    if c.peek().is_some() {
        return None;
    }
    Some(InferRequest {
        id,
        parameters: None,
        inputs: inputs?,
        outputs: None,
    })
}

/// A position in the text being read.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

/// The powers of ten a decimal of at most 15 digits is divided by, as
/// serde_json's table holds them.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Deeper nesting than this in `data` is left to serde.
const MAX_DEPTH: usize = 32;

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte that is not JSON whitespace (not consumed).
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes().get(self.at) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// Consumes `b`, after any whitespace.
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// After a member or element: `true` at a comma (another follows),
    /// `false` at `close` (consumed either way).
    fn next_member(&mut self, close: u8) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            b if b == close => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let rest = &self.bytes()[start..];
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Both ends are ASCII, so they are character boundaries.
        Some(&self.text[start..start + len])
    }

    /// `[tensor, …]`.
    fn tensors(&mut self) -> Option<Vec<InputTensor<'a>>> {
        self.eat(b'[')?;
        let mut tensors = Vec::with_capacity(32);
        if self.peek()? == b']' {
            self.at += 1;
            return Some(tensors);
        }
        loop {
            tensors.push(self.tensor()?);
            if !self.next_member(b']')? {
                return Some(tensors);
            }
        }
    }

    /// `{"name": …, "shape": […], "datatype": …, "data": […]}`, in any
    /// order, each once.
    fn tensor(&mut self) -> Option<InputTensor<'a>> {
        self.eat(b'{')?;
        let (mut name, mut shape, mut datatype, mut data) = (None, None, None, None);
        loop {
            match self.string()? {
                "name" if name.is_none() => {
                    self.eat(b':')?;
                    name = Some(self.string()?);
                }
                "datatype" if datatype.is_none() => {
                    self.eat(b':')?;
                    datatype = Some(self.string()?);
                }
                "shape" if shape.is_none() => {
                    self.eat(b':')?;
                    shape = Some(self.shape()?);
                }
                "data" if data.is_none() => {
                    self.eat(b':')?;
                    let mut values = Vec::new();
                    self.values(&mut values, 0)?;
                    data = Some(values);
                }
                _ => return None,
            }
            if !self.next_member(b'}')? {
                break;
            }
        }
        Some(InputTensor {
            name: Cow::Borrowed(name?),
            shape: shape?,
            datatype: Cow::Borrowed(datatype?),
            parameters: None,
            data: Some(TensorData::Json(data?)),
        })
    }

    /// `[d, …]`: whole numbers of at most 15 digits.
    fn shape(&mut self) -> Option<Shape> {
        self.eat(b'[')?;
        let mut shape = Shape::default();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(shape);
        }
        loop {
            match self.number()? {
                Value::Number(n) => shape.push(n.as_i64()?),
                _ => return None,
            }
            if !self.next_member(b']')? {
                return Some(shape);
            }
        }
    }

    /// A list of numbers and lists of them, flattened into `out` in
    /// order, as `TensorData`'s visitor flattens them.
    fn values(&mut self, out: &mut Vec<Value>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            if self.peek()? == b'[' {
                self.values(out, depth + 1)?;
            } else {
                out.push(self.number()?);
            }
            if !self.next_member(b']')? {
                return Some(());
            }
        }
    }

    /// A plain decimal: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`, at most 15 digits
    /// in all, as serde_json reads it: a whole number as an unsigned or
    /// (negative) signed integer, a fraction as the double its digits
    /// divided by a power of ten make. `-0` and exponents are left to
    /// serde.
    fn number(&mut self) -> Option<Value> {
        self.peek()?;
        let bytes = self.bytes();
        let negative = bytes.get(self.at) == Some(&b'-');
        let mut at = self.at + usize::from(negative);
        let mut digits = 0u32;
        let mut significand = 0u64;
        let mut take_digits = |at: &mut usize| {
            let start = *at;
            while let Some(&b @ b'0'..=b'9') = bytes.get(*at) {
                significand = significand * 10 + u64::from(b - b'0');
                *at += 1;
            }
            *at - start
        };
        let whole = take_digits(&mut at);
        // JSON has no leading zeros (`01`), and `-` needs digits.
        if whole == 0 || (whole > 1 && bytes[at - whole] == b'0') {
            return None;
        }
        digits += whole as u32;
        let mut fraction = 0;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            fraction = take_digits(&mut at);
            if fraction == 0 {
                return None;
            }
            digits += fraction as u32;
        }
        if digits > 15 || matches!(bytes.get(at), Some(b'e' | b'E')) {
            return None;
        }
        self.at = at;
        if fraction == 0 {
            return match (negative, significand) {
                (false, n) => Some(Value::from(n)),
                // serde_json reads `-0` as the double -0.0.
                (true, 0) => None,
                (true, n) => Some(Value::from(-(n as i64))),
            };
        }
        let f = significand as f64 / POW10[fraction];
        Some(Value::from(if negative { -f } else { f }))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::protocol::InferRequest;

    /// What serde reads from `text`.
    fn by_serde(text: &str) -> Option<InferRequest<'_>> {
        serde_json::from_str(text).ok()
    }

    #[test]
    fn the_common_shape_is_read_as_serde_reads_it() {
        for text in [
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[17.99]}]}"#,
            r#"{"id":"r-1","inputs":[{"name":"a","shape":[2],"datatype":"FP32","data":[1,-2]},{"datatype":"INT64","data":[[3],[4]],"shape":[2,1],"name":"b"}]}"#,
            " {\n\t\"inputs\" : [ { \"name\" : \"x\" , \"shape\" : [ 0 ] , \"datatype\" : \"FP64\" , \"data\" : [ ] } ] } \r\n",
            r#"{"inputs":[{"name":"a","shape":[3],"datatype":"FP64","data":[0.1, -0.0, 123456789012.345]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[-1],"datatype":"FP64","data":[0]}]}"#,
            r#"{"inputs":[]}"#,
            r#"{"inputs":[{"name":"é","shape":[1],"datatype":"FP64","data":[[[[1.5]]]]}]}"#,
        ] {
            let fast = parse(text).unwrap_or_else(|| panic!("read fast: {text}"));
            assert_eq!(Some(fast), by_serde(text), "{text}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for text in [
            // Escapes, exponents, long numbers, -0, text and booleans.
            r#"{"inputs":[{"name":"a\"b","shape":[1],"datatype":"FP64","data":[1]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[1e3]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[0.30000000000000004]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[-0]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"BYTES","data":["x"]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"BOOL","data":[true]}]}"#,
            // Members it does not read, or reads twice.
            r#"{"model_name":"m","inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[1]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[1]}],"outputs":[]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","parameters":{},"data":[1]}]}"#,
            r#"{"inputs":[{"name":"a","name":"b","shape":[1],"datatype":"FP64","data":[1]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP64"}]}"#,
            r#"{"id":null,"inputs":[]}"#,
            // Broken JSON: serde says what is wrong.
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[01]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[1.]}]}"#,
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[1,]}]}"#,
            r#"{"inputs":[]} x"#,
            r#"{"inputs":[]"#,
            "{}",
            "",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }

    #[test]
    fn numbers_read_fast_are_the_doubles_serde_reads() {
        // Decimals of every length up to the limit and every split of
        // whole and fractional digits, from a fixed pseudo-random stream.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut read = 0;
        for _ in 0..20_000 {
            let digits = 1 + (next() % 15) as usize;
            let text: String = (0..digits)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            let point = (next() as usize) % (text.len() + 1);
            let sign = if next() % 2 == 0 { "-" } else { "" };
            // Leading zeros only in the fraction (`0.005`).
            let (whole, fraction) = text.split_at(text.len() - point);
            let whole = match whole.trim_start_matches('0') {
                "" => "0",
                whole => whole,
            };
            let number = match fraction {
                "" => format!("{sign}{whole}"),
                fraction => format!("{sign}{whole}.{fraction}"),
            };
            let body = format!(
                r#"{{"inputs":[{{"name":"a","shape":[1],"datatype":"FP64","data":[{number}]}}]}}"#
            );
            let serde = by_serde(&body).unwrap();
            if let Some(fast) = parse(&body) {
                read += 1;
                assert_eq!(fast, serde, "{number}");
            }
        }
        // All but the few the generator makes that it leaves to serde.
        assert!(read > 19_000, "{read}");
    }
}
