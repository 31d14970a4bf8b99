//! JSON helpers shared by the body parsers: size check, error location,
//! lenient numbers and base64.
//!
//! Both network servers serialise protobuf messages to JSON. Protobuf's JSON
//! mapping omits fields holding their zero value and writes 64-bit integers
//! as strings; The Things Stack does both, ChirpStack the first. So every
//! number is optional (absent = zero, decided by the caller) and accepted as
//! a JSON number or a numeric string.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

use crate::IngestError;

/// Bodies above this size are refused before any parsing. A LoRaWAN uplink
/// event is 1-3 KiB even with many gateways; 256 KiB leaves room for large
/// generic batches while bounding the work one request can cause.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub(crate) fn check_size(body: &[u8]) -> Result<(), IngestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(IngestError::BodyTooLarge { size: body.len(), limit: MAX_BODY_BYTES });
    }
    Ok(())
}

/// Deserialises a whole body that must be a JSON object, reporting line,
/// column and field path on error.
pub(crate) fn parse_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, IngestError> {
    parse_body::<Obj<T>>(body).map(|o| o.0)
}

/// A `T` that must come from a JSON object. serde's derived structs also
/// accept an array of their fields in order; no sender means that, so it is
/// refused rather than guessed.
pub(crate) struct Obj<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// Deserialises a whole body, reporting line, column and field path on error.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, IngestError> {
    check_size(body)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(path, e.inner())
    })?;
    // Trailing garbage after the document is an error too, not silently ignored.
    de.end().map_err(|e| json_error(".".to_owned(), &e))?;
    Ok(value)
}

fn json_error(path: String, e: &serde_json::Error) -> IngestError {
    let full = e.to_string();
    // serde_json appends " at line L column C"; we report them as fields.
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    IngestError::Json { path, line: e.line(), column: e.column(), message }
}

/// Decodes protobuf-JSON `bytes` (standard alphabet; padding optional, as
/// protobuf's JSON parsers accept it both ways).
pub(crate) fn base64_bytes(field: &str, s: &str) -> Result<Vec<u8>, IngestError> {
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    ENGINE.decode(s.trim()).map_err(|e| IngestError::invalid(field, format!("not valid base64: {e}")))
}

/// A number as sent: integer, float, or numeric string.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    U(u64),
    I(i64),
    F(f64),
}

/// Target types of lenient numbers, with a range check instead of a wrap.
pub(crate) trait FromNum: Sized {
    const EXPECTING: &'static str;
    fn from_num(n: Num) -> Option<Self>;
}

macro_rules! int_from_num {
    ($($t:ty),*) => {$(
        impl FromNum for $t {
            const EXPECTING: &'static str = concat!("an integer fitting ", stringify!($t), " (number or string)");
            fn from_num(n: Num) -> Option<Self> {
                match n {
                    Num::U(u) => <$t>::try_from(u).ok(),
                    Num::I(i) => <$t>::try_from(i).ok(),
                    // 12.0 is an integer; 12.5 is not.
                    Num::F(f) if f.fract() == 0.0 && f.is_finite() && f.abs() < 9.0e15 => <$t>::try_from(f as i64).ok(),
                    Num::F(_) => None,
                }
            }
        }
    )*};
}
int_from_num!(u8, u16, u32, u64, i32);

impl FromNum for f64 {
    const EXPECTING: &'static str = "a finite number (number or string)";
    fn from_num(n: Num) -> Option<Self> {
        let f = match n {
            Num::U(u) => u as f64,
            Num::I(i) => i as f64,
            Num::F(f) => f,
        };
        f.is_finite().then_some(f)
    }
}

struct NumVisitor<T>(PhantomData<T>);

impl<T: FromNum> NumVisitor<T> {
    fn convert<E: de::Error>(n: Num, unexp: de::Unexpected<'_>) -> Result<Option<T>, E> {
        T::from_num(n).map(Some).ok_or_else(|| E::invalid_value(unexp, &T::EXPECTING))
    }
}

impl<'de, T: FromNum> Visitor<'de> for NumVisitor<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Self::convert(Num::U(v), de::Unexpected::Unsigned(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Self::convert(Num::I(v), de::Unexpected::Signed(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Self::convert(Num::F(v), de::Unexpected::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let t = v.trim();
        let n = if let Ok(u) = t.parse::<u64>() {
            Num::U(u)
        } else if let Ok(i) = t.parse::<i64>() {
            Num::I(i)
        } else if let Ok(f) = t.parse::<f64>() {
            Num::F(f)
        } else {
            return Err(E::invalid_value(de::Unexpected::Str(v), &T::EXPECTING));
        };
        Self::convert(n, de::Unexpected::Str(v))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// `#[serde(default, deserialize_with = "json::num")]` on an `Option<T>`:
/// absent or null gives `None`, a number or numeric string gives `Some`.
pub(crate) fn num<'de, D: Deserializer<'de>, T: FromNum>(d: D) -> Result<Option<T>, D::Error> {
    d.deserialize_option(NumVisitor(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[serde(default, deserialize_with = "num")]
        a: Option<u32>,
        #[serde(default, deserialize_with = "num")]
        b: Option<f64>,
        #[serde(default, deserialize_with = "num")]
        c: Option<u8>,
    }

    #[test]
    fn lenient_numbers() {
        let t: T = parse_body(br#"{"a":"867300000","b":"-7.25","c":3.0}"#).unwrap();
        assert_eq!((t.a, t.b, t.c), (Some(867_300_000), Some(-7.25), Some(3)));
        let t: T = parse_body(br#"{"a":null}"#).unwrap();
        assert_eq!((t.a, t.b, t.c), (None, None, None));
        for bad in [r#"{"c":256}"#, r#"{"a":-1}"#, r#"{"a":1.5}"#, r#"{"a":"x"}"#, r#"{"b":"NaN"}"#, r#"{"a":true}"#] {
            let e = parse_body::<T>(bad.as_bytes()).unwrap_err();
            assert!(matches!(e, IngestError::Json { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_locate_the_field() {
        let e = parse_body::<T>(b"{\n  \"b\": 1,\n  \"c\": \"x\"\n}").unwrap_err();
        let IngestError::Json { path, line, .. } = &e else { panic!("{e}") };
        assert_eq!((path.as_str(), *line), ("c", 3));
        assert!(e.to_string().contains("field `c`"), "{e}");
        let e = parse_body::<T>(b"{} x").unwrap_err();
        assert!(matches!(e, IngestError::Json { .. }), "{e}");
        let e = parse_body::<T>(&vec![b' '; MAX_BODY_BYTES + 1]).unwrap_err();
        assert_eq!(e.code(), "body-too-large");
    }

    #[test]
    fn base64_variants() {
        assert_eq!(base64_bytes("data", "DQoH6QAAAAE=").unwrap(), [13, 10, 7, 233, 0, 0, 0, 1]);
        assert_eq!(base64_bytes("data", "DQoH6QAAAAE").unwrap(), [13, 10, 7, 233, 0, 0, 0, 1]);
        let e = base64_bytes("data", "DQ*H").unwrap_err();
        assert!(e.to_string().contains("`data`"), "{e}");
    }
}
