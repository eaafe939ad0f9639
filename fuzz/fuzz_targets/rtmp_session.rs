//! A whole `RtmpSession` (handshake included) fed arbitrary bytes in input-chosen
//! pieces; the host accepts or rejects requests as the input says. Invariants after
//! every call: an error closes the session; a closed session refuses input; media
//! events only come for accepted publishes; the session never panics.
#![no_main]

use std::collections::HashSet;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strom::ingest::rtmp::{RejectReason, RtmpEvent, RtmpSession};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(ctl & 0x3f).max(1) * 61;
    let reject = ctl & 0x40 != 0;
    let mut s = RtmpSession::new(Default::default());
    let mut out = BytesMut::new();
    let mut accepted = HashSet::new();
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
