//! `onCuePoint` bodies into `CuePointReader` (and the FLV demuxer's `push_tag`):
//! the first byte picks the form the rest of the input takes: a whole script body, the
//! `name`/`type`/`time`/`duration`/`id` of a simple marker, or the section of the
//! broadcast-encoder form (as base64, or as arbitrary text). Invariants: nothing
//! panics; a cue carries a section that parses back to its id and kind (unless it is
//! a cancel); it is placed within 10 s of its tag or at the tag time; every body is
//! either a cue, a data event or counted malformed; the cue the muxer writes reads
//! back as the same cue.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strom::crypto::base64;
use strom::ingest::amf0::{self, Value};
use strom::ingest::flv::{
    cue_point_body, CuePointReader, FlvDemuxer, TagType, MAX_SECTION_CLOCK_GAP_90K,
};
use strom::media::{Event, Item};
use strom::pipeline::drain;
use strom::scte35::SpliceInfo;
use strom::time::Timescale;

fn on_cue_point(obj: Value) -> Vec<u8> {
    let mut b = BytesMut::new();
    amf0::encode_all(&[Value::from("onCuePoint"), obj], &mut b);
    b.to_vec()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let mode = data[0] % 4;
    let tag_ms = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
    let rest = &data[5..];
    let body = match mode {
        0 => {
            let mut b = on_cue_point(Value::Null);
            b.truncate(13); // the name only
            b.extend_from_slice(rest);
            b
        }
        1 => {
            let num = |i: usize| {
                let b: [u8; 8] = rest
                    .get(i..i + 8)
                    .and_then(|s| s.try_into().ok())
                    .unwrap_or([0; 8]);
                Value::Number(f64::from_be_bytes(b))
            };
            let words = ["cue-out", "cue-in", "event", "start", "return", "x"];
            let w = |i: usize| {
                Value::from(words[usize::from(*rest.get(i).unwrap_or(&0)) % words.len()])
            };
            on_cue_point(Value::object([
                ("name", w(0)),
                ("type", w(1)),
                ("time", num(2)),
                ("duration", num(10)),
                ("id", num(18)),
            ]))
        }
        2 => on_cue_point(Value::object([
            ("name", Value::from("scte35")),
            ("type", Value::from("event")),
            (
                "parameters",
                Value::object([("cue", Value::from(base64::standard(rest)))]),
            ),
        ])),
        _ => on_cue_point(Value::object([
            ("name", Value::from("scte35")),
            (
                "parameters",
                Value::object([("scte35", Value::from(text(rest)))]),
            ),
        ])),
    };
    let tag_90k = i64::from(tag_ms) * 90;
    let mut r = CuePointReader::new();
    let cue = r.read(&body, i64::from(tag_ms));
    let s = r.stats();
    assert!(s.cues + s.malformed <= 1);
    if let Some(cue) = &cue {
        assert_eq!(s.cues, 1);
        let info = SpliceInfo::parse(cue.raw.clone()).expect("a cue's section parses");
        let sig = info.signal().expect("a cue's section is a signal");
        assert_eq!(sig.id, cue.id);
        if !cue.cancel {
            assert_eq!(sig.kind, cue.kind);
        }
        let at = cue.at.ticks_in(Timescale::MPEG);
        assert!(at == tag_90k || at.abs_diff(tag_90k) <= MAX_SECTION_CLOCK_GAP_90K as u64);
        assert!(at >= 0);
        // What the muxer writes reads back as the same cue.
        let written = cue_point_body(cue).expect("a cue with a section is writable");
        let back = CuePointReader::new().read(&written, cue.at.as_millis());
        assert_eq!(back.as_ref(), Some(cue));
    }
    // The demuxer: the same cue, or the body as a data event.
    let mut d = FlvDemuxer::without_header();
    if d.push_tag(TagType::Script, tag_ms, Bytes::from(body.clone()))
        .is_err()
    {
        return;
    }
    let items = drain(&mut d).expect("push_tag reports errors itself");
    match (&cue, items.as_slice()) {
        (Some(c), [Item::Event(Event::Cue(got))]) => assert_eq!(got, c),
        (None, [Item::Event(Event::Data { payload, .. })]) => assert_eq!(&payload[..], &body[..]),
        (c, items) => panic!("cue {c:?} but items {items:?}"),
    }
});
