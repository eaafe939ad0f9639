//! Parses hostile Clear Key licence requests: never a panic; an accepted request's key
//! ids, answered and parsed back through a request built from them, are the same ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom::crypto::ContentKey;
use strom::origin::clearkey::{base64url, licence_response, parse_licence_request};

fuzz_target!(|data: &[u8]| {
    let Ok(kids) = parse_licence_request(data) else {
        return;
    };
    let quoted: Vec<String> = kids
        .iter()
        .map(|k| format!("\"{}\"", base64url(k.as_bytes())))
        .collect();
    let again = format!("{{\"kids\":[{}],\"type\":\"temporary\"}}", quoted.join(","));
    assert_eq!(
        parse_licence_request(again.as_bytes()).expect("rebuilt request"),
        kids
    );
    let keys: Vec<_> = kids.iter().map(|k| (*k, ContentKey([0x11; 16]))).collect();
    let answer = licence_response(&keys);
    assert!(answer.starts_with("{\"keys\":[") && answer.ends_with("\"type\":\"temporary\"}"));
});
