//! Decodes AMF0 values from the input; every value accepted must round-trip:
//! `encode(decode(x))` gives back the bytes consumed (aside from ECMA array counts,
//! which the decoder treats as hints, and booleans other than 0 and 1, which are
//! true and written back as 1), and `decode(encode(v))` encodes to the same bytes.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strom::ingest::amf0::{self, Value};

/// Whether `v` contains an ECMA array (whose count is not kept).
fn has_ecma(v: &Value) -> bool {
    match v {
        Value::EcmaArray(_) => true,
        Value::Object(p) | Value::TypedObject { properties: p, .. } => {
            p.iter().any(|(_, v)| has_ecma(v))
        }
        Value::StrictArray(items) => items.iter().any(has_ecma),
        _ => false,
    }
}

/// Whether `enc` differs from `orig` only where a boolean byte > 1 became 1.
fn only_booleans_normalised(orig: &[u8], enc: &[u8]) -> bool {
    orig.len() == enc.len()
        && (1..orig.len())
            .all(|i| orig[i] == enc[i] || (enc[i] == 1 && orig[i] > 1 && enc[i - 1] == 0x01))
}

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let mut values = Vec::new();
    while !input.is_empty() && values.len() < 10_000 {
        let before = input;
        match amf0::decode(&mut input) {
            Ok(v) => {
                let consumed = &before[..before.len() - input.len()];
                assert!(!consumed.is_empty(), "decode made no progress");
                let mut enc = BytesMut::new();
                amf0::encode(&v, &mut enc);
                if !has_ecma(&v) && !only_booleans_normalised(consumed, &enc) {
                    assert_eq!(&enc[..], consumed, "encode(decode(x)) != x");
                }
                // decode(encode(v)) is v again (compared as bytes: NaN != NaN).
                let mut again = &enc[..];
                let v2 = amf0::decode(&mut again).expect("our own encoding decodes");
                assert!(again.is_empty());
                assert_eq!(v2.to_bytes(), enc.freeze());
                values.push(v);
            }
            Err(e) => {
                assert_eq!(input, before, "an error leaves the input untouched");
                assert!(e.offset().is_some_and(|o| o <= before.len() as u64));
                break;
            }
        }
    }
    // decode_all agrees with repeated decode (compared as bytes).
    match amf0::decode_all(data) {
        Ok(all) => {
            let bytes = |vs: &[Value]| {
                let mut b = BytesMut::new();
                amf0::encode_all(vs, &mut b);
                b
            };
            assert_eq!(bytes(&all), bytes(&values));
        }
        Err(_) => assert!(!input.is_empty(), "decode_all failed where decode did not"),
    }
});
