//! AMF0 values (Action Message Format 0) for FLV script data and RTMP commands.
//!
//! Implements the *AMF0 File Format Specification* (Adobe, December 2007): the value
//! model ([`Value`], §2), a decoder ([`decode`], [`decode_all`]) and an encoder
//! ([`encode`], [`encode_all`]).
//!
//! Round trips are exact: for every input the decoder accepts, encoding the decoded
//! values gives the input bytes back, with two documented exceptions: the
//! associative-count of an ECMA array (§2.10) is only a hint that real encoders get
//! wrong, so the decoder ignores it and the encoder writes the real count; and a
//! boolean byte other than 0 is true (§2.3) and is written back as 1. In the other
//! direction `decode(encode(v)) == v` for every value (numbers compare as `f64`, so
//! compare encoded bytes when NaN may occur), except that a string longer than 65 535
//! bytes comes back as a [`Value::LongString`].
//!
//! Limits: nesting is capped at [`MAX_DEPTH`]; counts and lengths are checked against
//! the bytes actually present before anything is allocated.
//!
//! ```
//! use bytes::BytesMut;
//! use strom::ingest::amf0::{self, Value};
//!
//! // An RTMP `connect` command: name, transaction id, command object.
//! let cmd = [
//!     Value::from("connect"),
//!     Value::from(1.0),
//!     Value::object([("app", Value::from("live")), ("tcUrl", "rtmp://h/live".into())]),
//! ];
//! let mut buf = BytesMut::new();
//! amf0::encode_all(&cmd, &mut buf);
//! let back = amf0::decode_all(&buf).unwrap();
//! assert_eq!(back, cmd);
//! assert_eq!(back[0].as_str(), Some("connect"));
//! assert_eq!(back[2].get("app").and_then(Value::as_str), Some("live"));
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

/// Deepest nesting of objects and arrays the decoder accepts (top-level value = 1).
pub const MAX_DEPTH: usize = 64;

/// Longest string that fits a `String` marker (16-bit length, §2.4).
const MAX_SHORT_STRING: usize = u16::MAX as usize;

/// Element count we reserve up front at most; the rest grows as elements arrive.
const MAX_PREALLOC: usize = 1024;

/// AMF0 type markers (§2.1).
pub mod marker {
    /// `number-marker`: IEEE 754 double, big-endian.
    pub const NUMBER: u8 = 0x00;
    /// `boolean-marker`: one byte, 0 = false.
    pub const BOOLEAN: u8 = 0x01;
    /// `string-marker`: UTF-8 with a 16-bit length.
    pub const STRING: u8 = 0x02;
    /// `object-marker`: anonymous object, properties until object end.
    pub const OBJECT: u8 = 0x03;
    /// `movieclip-marker`: reserved, not supported.
    pub const MOVIECLIP: u8 = 0x04;
    /// `null-marker`.
    pub const NULL: u8 = 0x05;
    /// `undefined-marker`.
    pub const UNDEFINED: u8 = 0x06;
    /// `reference-marker`: 16-bit index of an earlier complex value.
    pub const REFERENCE: u8 = 0x07;
    /// `ecma-array-marker`: associative array with a 32-bit count hint.
    pub const ECMA_ARRAY: u8 = 0x08;
    /// `object-end-marker`: ends the properties of an object (after an empty key).
    pub const OBJECT_END: u8 = 0x09;
    /// `strict-array-marker`: 32-bit count, then that many values.
    pub const STRICT_ARRAY: u8 = 0x0a;
    /// `date-marker`: double (ms since epoch) + 16-bit time zone.
    pub const DATE: u8 = 0x0b;
    /// `long-string-marker`: UTF-8 with a 32-bit length.
    pub const LONG_STRING: u8 = 0x0c;
    /// `unsupported-marker`.
    pub const UNSUPPORTED: u8 = 0x0d;
    /// `recordset-marker`: reserved, not supported.
    pub const RECORDSET: u8 = 0x0e;
    /// `xml-document-marker`: UTF-8 with a 32-bit length.
    pub const XML_DOCUMENT: u8 = 0x0f;
    /// `typed-object-marker`: class name, then properties.
    pub const TYPED_OBJECT: u8 = 0x10;
    /// `avmplus-object-marker`: switch to AMF3, not supported.
    pub const AVMPLUS: u8 = 0x11;
}

/// One AMF0 value (§2).
///
/// Objects and arrays keep their properties in wire order as `(key, value)` pairs, so
/// re-encoding gives the same bytes. Keys are not required to be unique; [`Value::get`]
/// returns the first match.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// `number-type` (§2.2): an IEEE 754 double.
    Number(f64),
    /// `boolean-type` (§2.3).
    Boolean(bool),
    /// `string-type` (§2.4): at most 65 535 bytes of UTF-8 on the wire.
    String(String),
    /// `anonymous-object-type` (§2.5): ordered properties.
    Object(Vec<(String, Value)>),
    /// `null-type` (§2.7).
    Null,
    /// `undefined-type` (§2.8).
    Undefined,
    /// `reference-type` (§2.9): index of an earlier complex value; not resolved.
    Reference(u16),
    /// `ecma-array-type` (§2.10): associative array (FLV `onMetaData` uses one).
    EcmaArray(Vec<(String, Value)>),
    /// `strict-array-type` (§2.12): dense array.
    StrictArray(Vec<Value>),
    /// `date-type` (§2.13): as on the wire.
    Date {
        /// Milliseconds since 1970-01-01 UTC, as the wire's double.
        millis: f64,
        /// Time zone field; the specification says it should be 0 (reserved).
        timezone: i16,
    },
    /// `long-string-type` (§2.14): UTF-8 with a 32-bit length.
    LongString(String),
    /// `unsupported-type` (§2.15): a marker with no payload.
    Unsupported,
    /// `xml-document-type` (§2.17): XML text.
    XmlDocument(String),
    /// `typed-object-type` (§2.18): a class name and ordered properties.
    TypedObject {
        /// Registered class alias.
        class: String,
        /// Properties in wire order.
        properties: Vec<(String, Value)>,
    },
}

impl Value {
    /// An anonymous [`Value::Object`] from `(key, value)` pairs, in order.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    /// An [`Value::EcmaArray`] from `(key, value)` pairs, in order.
    pub fn ecma_array<K: Into<String>>(props: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::EcmaArray(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    /// The number, for [`Value::Number`].
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
    /// The boolean, for [`Value::Boolean`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }
    /// The text, for [`Value::String`] and [`Value::LongString`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::LongString(s) => Some(s),
            _ => None,
        }
    }
    /// The properties, for [`Value::Object`], [`Value::EcmaArray`] and
    /// [`Value::TypedObject`].
    pub fn as_properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => Some(p),
            Value::TypedObject { properties, .. } => Some(properties),
            _ => None,
        }
    }
    /// The elements, for [`Value::StrictArray`].
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::StrictArray(v) => Some(v),
            _ => None,
        }
    }
    /// The first property named `key` of an object or ECMA array (see
    /// [`Value::as_properties`]); `None` for other values.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
    /// Whether this is [`Value::Null`] or [`Value::Undefined`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null | Value::Undefined)
    }
    /// The encoded form (see [`encode`]).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        encode(self, &mut out);
        out.freeze()
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

// ---------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------

const TRUNCATED: &str = "AMF0 value truncated";

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    fn err(&self, e: Error) -> Error {
        e.at_offset(self.pos as u64)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| self.err(Error::malformed(TRUNCATED)))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f64(&mut self) -> Result<f64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }
    fn utf8(&mut self, n: usize) -> Result<String> {
        let start = self.pos;
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(Error::malformed("AMF0 string is not UTF-8").at_offset(start as u64)),
        }
    }
    fn short_string(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        self.utf8(n)
    }
    fn long_string(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        // `take` checks `n` against the bytes present before anything is allocated.
        self.utf8(n)
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.err(Error::limit("AMF0 nesting deeper than 64")));
        }
        let at = self.pos;
        let m = self.u8()?;
        Ok(match m {
            marker::NUMBER => Value::Number(self.f64()?),
            marker::BOOLEAN => Value::Boolean(self.u8()? != 0),
            marker::STRING => Value::String(self.short_string()?),
            marker::OBJECT => Value::Object(self.properties(depth)?),
            marker::NULL => Value::Null,
            marker::UNDEFINED => Value::Undefined,
            marker::REFERENCE => Value::Reference(self.u16()?),
            marker::ECMA_ARRAY => {
                // The associative-count is a hint (§2.10); the end marker decides.
                let _count = self.u32()?;
                Value::EcmaArray(self.properties(depth)?)
            }
            marker::STRICT_ARRAY => {
                let n = self.u32()? as usize;
                // Every element takes at least one byte.
                if n > self.remaining() {
                    return Err(self.err(Error::malformed("AMF0 strict array count exceeds input")));
                }
                let mut v = Vec::with_capacity(n.min(MAX_PREALLOC));
                for _ in 0..n {
                    v.push(self.value(depth + 1)?);
                }
                Value::StrictArray(v)
            }
            marker::DATE => {
                let millis = self.f64()?;
                let tz = self.u16()? as i16;
                Value::Date {
                    millis,
                    timezone: tz,
                }
            }
            marker::LONG_STRING => Value::LongString(self.long_string()?),
            marker::UNSUPPORTED => Value::Unsupported,
            marker::XML_DOCUMENT => Value::XmlDocument(self.long_string()?),
            marker::TYPED_OBJECT => {
                let class = self.short_string()?;
                Value::TypedObject {
                    class,
                    properties: self.properties(depth)?,
                }
            }
            marker::OBJECT_END => {
                return Err(
                    Error::malformed("AMF0 object end outside an object").at_offset(at as u64)
                )
            }
            marker::MOVIECLIP | marker::RECORDSET => {
                return Err(Error::unsupported("AMF0 reserved type marker").at_offset(at as u64))
            }
            marker::AVMPLUS => {
                return Err(
                    Error::unsupported("AMF0 switch to AMF3 not supported").at_offset(at as u64)
                )
            }
            _ => return Err(Error::malformed("unknown AMF0 type marker").at_offset(at as u64)),
        })
    }

    /// Properties until the empty key followed by the object-end marker (§2.5).
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>> {
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.peek() == Some(marker::OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let v = self.value(depth + 1)?;
            props.push((key, v));
        }
    }
}

/// Decodes one value from the front of `input` and advances `input` past it.
///
/// On error `input` is left unchanged; the error's offset is relative to the start of
/// `input`. Errors: [`ErrorKind::Malformed`](crate::ErrorKind::Malformed) for truncated
/// or invalid data (including non-UTF-8 strings), `Unsupported` for the reserved
/// MovieClip/RecordSet markers and the AMF3 switch, `Limit` for nesting deeper than
/// [`MAX_DEPTH`].
pub fn decode(input: &mut &[u8]) -> Result<Value> {
    let mut r = Reader {
        data: input,
        pos: 0,
    };
    let v = r.value(1)?;
    *input = &input[r.pos..];
    Ok(v)
}

/// Decodes values until `input` is exhausted (an RTMP command message, an FLV script
/// tag body). Error offsets are relative to the start of `input`.
pub fn decode_all(input: &[u8]) -> Result<Vec<Value>> {
    let mut r = Reader {
        data: input,
        pos: 0,
    };
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(r.value(1)?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------

/// Appends the encoding of `v` to `out`.
///
/// A [`Value::String`] longer than 65 535 bytes is written as a long string (§2.14);
/// a property key longer than 65 535 bytes (which no decoder could have produced) is
/// cut to the longest prefix that fits and ends on a character boundary.
pub fn encode(v: &Value, out: &mut BytesMut) {
    match v {
        Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(*b as u8);
        }
        Value::String(s) if s.len() <= MAX_SHORT_STRING => {
            out.put_u8(marker::STRING);
            put_short_string(out, s);
        }
        Value::String(s) | Value::LongString(s) => {
            out.put_u8(marker::LONG_STRING);
            put_long_string(out, s);
        }
        Value::Object(props) => {
            out.put_u8(marker::OBJECT);
            put_properties(out, props);
        }
        Value::Null => out.put_u8(marker::NULL),
        Value::Undefined => out.put_u8(marker::UNDEFINED),
        Value::Reference(i) => {
            out.put_u8(marker::REFERENCE);
            out.put_u16(*i);
        }
        Value::EcmaArray(props) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            put_properties(out, props);
        }
        Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for i in items {
                encode(i, out);
            }
        }
        Value::Date { millis, timezone } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*timezone);
        }
        Value::Unsupported => out.put_u8(marker::UNSUPPORTED),
        Value::XmlDocument(s) => {
            out.put_u8(marker::XML_DOCUMENT);
            put_long_string(out, s);
        }
        Value::TypedObject { class, properties } => {
            out.put_u8(marker::TYPED_OBJECT);
            put_short_string(out, class);
            put_properties(out, properties);
        }
    }
}

/// Appends the encodings of `values`, in order.
pub fn encode_all(values: &[Value], out: &mut BytesMut) {
    for v in values {
        encode(v, out);
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_short_string(out: &mut BytesMut, s: &str) {
    let s = truncate_utf8(s, MAX_SHORT_STRING);
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

fn put_long_string(out: &mut BytesMut, s: &str) {
    let s = truncate_utf8(s, u32::MAX as usize);
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

fn put_properties(out: &mut BytesMut, props: &[(String, Value)]) {
    for (k, v) in props {
        put_short_string(out, k);
        encode(v, out);
    }
    out.put_u16(0);
    out.put_u8(marker::OBJECT_END);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn enc(v: &Value) -> Vec<u8> {
        v.to_bytes().to_vec()
    }

    #[test]
    fn connect_command_bytes() {
        // An RTMP `connect` as sent by common encoders, byte for byte.
        let mut wire = vec![0x02, 0x00, 0x07];
        wire.extend_from_slice(b"connect");
        wire.extend_from_slice(&[0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        wire.extend_from_slice(&[0x03, 0x00, 0x03]);
        wire.extend_from_slice(b"app");
        wire.extend_from_slice(&[0x02, 0x00, 0x04]);
        wire.extend_from_slice(b"live");
        wire.extend_from_slice(&[0x00, 0x04]);
        wire.extend_from_slice(b"fpad");
        wire.extend_from_slice(&[0x01, 0x00]);
        wire.extend_from_slice(&[0x00, 0x00, 0x09]);
        let vals = decode_all(&wire).unwrap();
        assert_eq!(
            vals,
            vec![
                Value::from("connect"),
                Value::Number(1.0),
                Value::object([
                    ("app", Value::from("live")),
                    ("fpad", Value::Boolean(false))
                ]),
            ]
        );
        assert_eq!(vals[2].get("fpad").and_then(Value::as_bool), Some(false));
        assert_eq!(vals[2].get("nope"), None);
        let mut out = BytesMut::new();
        encode_all(&vals, &mut out);
        assert_eq!(&out[..], &wire[..]);
    }

    fn sample() -> Value {
        Value::ecma_array([
            ("duration", Value::Number(3.0)),
            ("s", Value::from("héllo")),
            ("null", Value::Null),
            ("undef", Value::Undefined),
            ("ref", Value::Reference(7)),
            (
                "arr",
                Value::StrictArray(vec![
                    Value::Number(-0.5),
                    Value::Boolean(true),
                    Value::Unsupported,
                ]),
            ),
            (
                "date",
                Value::Date {
                    millis: 1.7e12,
                    timezone: -60,
                },
            ),
            ("long", Value::LongString("x".repeat(10))),
            ("xml", Value::XmlDocument("<a/>".into())),
            (
                "typed",
                Value::TypedObject {
                    class: "flex.Foo".into(),
                    properties: vec![("k".into(), Value::object([("", Value::Null)]))],
                },
            ),
            ("", Value::Number(1.0)), // empty key followed by a value, not an end marker
        ])
    }

    #[test]
    fn round_trips_every_type() {
        let v = sample();
        let bytes = enc(&v);
        let mut input = &bytes[..];
        let back = decode(&mut input).unwrap();
        assert!(input.is_empty());
        assert_eq!(back, v);
        assert_eq!(enc(&back), bytes);
        assert_eq!(back.get("s").and_then(Value::as_str), Some("héllo"));
        assert_eq!(back.get("long").and_then(Value::as_str), Some("xxxxxxxxxx"));
        assert_eq!(
            back.get("arr").and_then(Value::as_array).map(|a| a.len()),
            Some(3)
        );
        assert!(back.get("null").unwrap().is_null());
    }

    #[test]
    fn decode_advances_past_one_value() {
        let bytes = [0x05, 0x01, 0x01, 0x06];
        let mut input = &bytes[..];
        assert_eq!(decode(&mut input).unwrap(), Value::Null);
        assert_eq!(decode(&mut input).unwrap(), Value::Boolean(true));
        assert_eq!(input, &[0x06]);
        // An error leaves the input where it was.
        let bad = [0x02, 0x00, 0x05, b'a'];
        let mut input = &bad[..];
        assert!(decode(&mut input).is_err());
        assert_eq!(input.len(), 4);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = enc(&sample());
        for n in 0..bytes.len() {
            let e = decode(&mut &bytes[..n]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Malformed, "prefix {n}: {e}");
            assert!(e.offset().unwrap() <= n as u64);
        }
    }

    #[test]
    fn ecma_count_is_a_hint() {
        // Count 0 but two properties: accepted, re-encoded with the true count.
        let mut wire = vec![0x08, 0, 0, 0, 0];
        wire.extend_from_slice(&[0, 1, b'a', 0x05, 0, 1, b'b', 0x06, 0, 0, 9]);
        let v = decode(&mut &wire[..]).unwrap();
        assert_eq!(
            v,
            Value::ecma_array([("a", Value::Null), ("b", Value::Undefined)])
        );
        assert_eq!(enc(&v)[1..5], [0, 0, 0, 2]);
    }

    #[test]
    fn any_nonzero_boolean_is_true() {
        let v = decode(&mut &[0x01, 0x78][..]).unwrap();
        assert_eq!(v, Value::Boolean(true));
        assert_eq!(enc(&v), vec![0x01, 0x01]);
    }

    #[test]
    fn hostile_inputs_are_typed_errors() {
        // Strict array claiming 4 billion elements with 3 bytes of input.
        let e = decode(&mut &[0x0a, 0xff, 0xff, 0xff, 0xff, 5, 5, 5][..]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
        // Long string claiming 4 GB.
        let e = decode(&mut &[0x0c, 0xff, 0xff, 0xff, 0xff, b'a'][..]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
        // Invalid UTF-8.
        let e = decode(&mut &[0x02, 0, 2, 0xc3, 0x28][..]).unwrap_err();
        assert_eq!((e.kind(), e.offset()), (ErrorKind::Malformed, Some(3)));
        // Reserved and AMF3 markers.
        for m in [0x04, 0x0e, 0x11] {
            assert_eq!(
                decode(&mut &[m][..]).unwrap_err().kind(),
                ErrorKind::Unsupported
            );
        }
        for m in [0x09, 0x12, 0xff] {
            assert_eq!(
                decode(&mut &[m][..]).unwrap_err().kind(),
                ErrorKind::Malformed
            );
        }
        // Object end marker inside an object with a non-empty key is a stray marker.
        let e = decode(&mut &[0x03, 0, 1, b'a', 0x09][..]).unwrap_err();
        assert_eq!((e.kind(), e.offset()), (ErrorKind::Malformed, Some(4)));
    }

    #[test]
    fn nesting_is_capped() {
        let nest = |depth: usize| {
            let mut v = [0x0a, 0, 0, 0, 1].repeat(depth - 1);
            v.push(0x05);
            v
        };
        assert!(decode(&mut &nest(MAX_DEPTH)[..]).is_ok());
        let e = decode(&mut &nest(MAX_DEPTH + 1)[..]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
        // Objects count too.
        let mut deep = Vec::new();
        for _ in 0..MAX_DEPTH {
            deep.extend_from_slice(&[0x03, 0, 1, b'k']);
        }
        deep.push(0x05);
        assert_eq!(decode(&mut &deep[..]).unwrap_err().kind(), ErrorKind::Limit);
    }

    #[test]
    fn long_values_are_promoted_or_cut() {
        let s = "é".repeat(40_000); // 80 000 bytes
        let bytes = enc(&Value::String(s.clone()));
        assert_eq!(bytes[0], marker::LONG_STRING);
        assert_eq!(
            decode(&mut &bytes[..]).unwrap(),
            Value::LongString(s.clone())
        );
        // A key that cannot fit is cut on a character boundary.
        let bytes = enc(&Value::object([(s, Value::Null)]));
        let v = decode(&mut &bytes[..]).unwrap();
        let key = &v.as_properties().unwrap()[0].0;
        assert_eq!(key.len(), 65_534);
        assert!(key.chars().all(|c| c == 'é'));
    }
}
