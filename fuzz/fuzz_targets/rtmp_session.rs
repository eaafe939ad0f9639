//! A whole `RtmpSession` (handshake included) fed arbitrary bytes in input-chosen
//! pieces; the host accepts or rejects requests as the input says. When the control
//! byte's top bit is set, a valid handshake, `connect` and `createStream` come first
//! so the fuzzer reaches publish/play and media paths quickly. Invariants after
//! every call: an error closes the session; a closed session refuses input; media
//! events only come for accepted publishes; the session never panics.
#![no_main]

use std::collections::HashSet;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strom::ingest::amf0::Value;
use strom::ingest::rtmp::chunk::write_message;
use strom::ingest::rtmp::message::Command;
use strom::ingest::rtmp::{RejectReason, RtmpEvent, RtmpSession};

/// Plain handshake, then `connect` and `createStream` (stream id 1) on chunk stream 3.
fn prefix() -> Vec<u8> {
    let mut v = vec![3u8];
    v.extend_from_slice(&[0u8; 2 * 1536]);
    let connect = Command::new(
        "connect",
        1.0,
        Value::object([
            ("app", Value::from("live")),
            ("tcUrl", Value::from("rtmp://h/live")),
        ]),
        vec![],
    );
    let create = Command::new("createStream", 2.0, Value::Null, vec![]);
    for c in [connect, create] {
        let mut p = BytesMut::new();
        c.write(&mut p);
        let mut out = BytesMut::new();
        write_message(3, 0, 20, 0, &p, 128, &mut out).unwrap();
        v.extend_from_slice(&out);
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(ctl & 0x3f).max(1) * 61;
    let reject = ctl & 0x40 != 0;
    let mut s = RtmpSession::new(Default::default());
    let mut out = BytesMut::new();
    let mut accepted = HashSet::new();
    if ctl & 0x80 != 0 {
        s.handle_input(&prefix()).unwrap();
        while s.poll_event().is_some() {}
    }
    for piece in rest.chunks(step) {
        if s.handle_input(piece).is_err() {
            assert!(s.is_closed());
            assert!(s.handle_input(&[3]).is_err());
            break;
        }
        while let Some(ev) = s.poll_event() {
            match ev {
                RtmpEvent::PublishRequested { id, stream_id, .. } => {
                    if reject {
                        s.reject(id, RejectReason::BadName, "no").unwrap();
                    } else {
                        s.accept(id).unwrap();
                        accepted.insert(stream_id);
                    }
                    assert!(s.accept(id).is_err(), "a request is answered once");
                }
                RtmpEvent::PlayRequested { id, .. } => {
                    s.accept(id).unwrap();
                    s.send_media(strom::ingest::flv::TagType::Video, 0, &[0x17, 0])
                        .unwrap();
                }
                RtmpEvent::Media { stream_id, .. } => {
                    assert!(accepted.contains(&stream_id), "media before accept");
                }
                _ => {}
            }
        }
        s.poll_transmit(&mut out);
        out.clear();
        if s.is_closed() {
            break;
        }
    }
});
