//! RTMP chunk stream reader on arbitrary bytes.
//!
//! 1. `ChunkReader` directly (chunk size and split points chosen by the input): never
//!    panics, never returns a message over the length limit, and every message it
//!    returns, written again with `write_message`, reads back identically.
//! 2. The same bytes through an `RtmpSession` after a valid plain handshake prefix.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strom::ingest::rtmp::chunk::{write_message, ChunkLimits, ChunkReader};
use strom::ingest::rtmp::RtmpSession;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let mut limits = ChunkLimits::default();
    limits.max_message_len = 1 << 16;
    let mut r = ChunkReader::new(limits);
    let chunk_size = [128u32, 1, 7, 4096][(ctl & 3) as usize];
    r.set_chunk_size(chunk_size).unwrap();
    let step = usize::from(ctl >> 2).max(1);
    let mut buf = BytesMut::new();
    'outer: for piece in rest.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            let before = r.position();
            match r.read_message(&mut buf) {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= 1 << 16);
                    assert!(r.position() > before);
                    let mut out = BytesMut::new();
                    write_message(
                        m.csid.max(2),
                        m.stream_id,
                        m.type_id,
                        m.timestamp,
                        &m.payload,
                        chunk_size,
                        &mut out,
                    )
                    .unwrap();
                    let mut r2 = ChunkReader::new(limits);
                    r2.set_chunk_size(chunk_size).unwrap();
                    let back = r2.read_message(&mut out).unwrap().unwrap();
                    assert!(out.is_empty());
                    assert_eq!(
                        (back.type_id, back.stream_id, back.timestamp, &back.payload),
                        (m.type_id, m.stream_id, m.timestamp, &m.payload)
                    );
                }
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
    }

    let mut s = RtmpSession::new(Default::default());
    let mut hs = vec![3u8];
    hs.extend_from_slice(&[0u8; 2 * 1536]);
    s.handle_input(&hs).unwrap();
    let mut out = BytesMut::new();
    for piece in rest.chunks(step) {
        if s.handle_input(piece).is_err() {
            assert!(s.is_closed());
            break;
        }
        while s.poll_event().is_some() {}
        s.poll_transmit(&mut out);
        out.clear();
    }
});
