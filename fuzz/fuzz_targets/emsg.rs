//! The `emsg` box reader and writer (`strom::container::fmp4::Emsg`) and
//! `emsg_insert_offset` on arbitrary bytes.
//!
//! (a) `Emsg::parse` on the input: `Ok` or `Err`, never a panic. When it succeeds the
//! box spans at most the input, `write` accepts the box, `parse(write(x)) == x` with the
//! written length, and mp4-atom (an independent decoder) reads the written box with the
//! same fields. Boxes are parsed back to back until the input ends or one fails.
//! (b) The input with an `emsg` header in front (so the fuzzer reaches the body quickly),
//! both versions.
//! (c) `emsg_insert_offset` on the input: `Ok(offset)` within the input, or `Err`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mp4_atom::{Decode, EmsgTimestamp};
use strom::container::fmp4::{emsg_insert_offset, Emsg, EmsgTime};

fn check(data: &[u8]) -> Option<usize> {
    let (emsg, used) = Emsg::parse(data).ok()?;
    assert!(used >= 8 && used <= data.len(), "{used} of {}", data.len());
    let mut out = BytesMut::new();
    emsg.write(&mut out)
        .expect("a box that parsed can be written");
    let (back, n) = Emsg::parse(&out).expect("our own box parses");
    assert_eq!(back, emsg, "parse(write(x)) != x");
    assert_eq!(n, out.len());
    assert_eq!(usize::from(out[8]), usize::from(emsg.version()));

    let mut view = &out[..];
    let atom = mp4_atom::Emsg::decode(&mut view).expect("mp4-atom reads our box");
    assert!(view.is_empty());
    assert_eq!(atom.scheme_id_uri, emsg.scheme_id_uri);
    assert_eq!(atom.value, emsg.value);
    assert_eq!(atom.timescale, emsg.timescale);
    assert_eq!(atom.event_duration, emsg.event_duration);
    assert_eq!(atom.id, emsg.id);
    assert_eq!(&atom.message_data[..], &emsg.message_data[..]);
    match (atom.presentation_time, emsg.time) {
        (EmsgTimestamp::Relative(a), EmsgTime::Delta(b)) => assert_eq!(a, b),
        (EmsgTimestamp::Absolute(a), EmsgTime::Absolute(b)) => assert_eq!(a, b),
        (a, b) => panic!("version mismatch: {a:?} / {b:?}"),
    }
    Some(used)
}

fuzz_target!(|data: &[u8]| {
    // (a) boxes back to back.
    let mut rest = data;
    for _ in 0..1024 {
        match check(rest) {
            Some(used) if used < rest.len() => rest = &rest[used..],
            _ => break,
        }
    }

    // (b) the input as the body of a box of each version.
    for version in [0u8, 1] {
        let mut framed = Vec::with_capacity(data.len() + 12);
        framed.extend_from_slice(&((data.len() + 12) as u32).to_be_bytes());
        framed.extend_from_slice(b"emsg");
        framed.extend_from_slice(&[version, 0, 0, 0]);
        framed.extend_from_slice(data);
        check(&framed);
    }

    // (c) where boxes would go.
    if let Ok(at) = emsg_insert_offset(data) {
        assert!(at <= data.len());
        if at > 0 {
            assert_eq!(&data[4..8], b"styp");
        }
    }
});
