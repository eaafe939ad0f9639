//! An `RtmpRelay` driven by an input-chosen sequence of operations: pushes of
//! arbitrary tag bodies (kinds, timestamps and sizes from the input), players that
//! join, poll with small or large budgets, stall and leave, and publisher restarts.
//! Invariants after every step: the relay never holds more than its buffer cap,
//! never panics, unknown players are `Usage` errors, a dropped player is gone, and
//! every player's session output parses back as RTMP chunks whose media timestamps
//! never go backwards.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strom::ingest::amf0::Value;
use strom::ingest::flv::TagType;
use strom::ingest::rtmp::chunk::write_message;
use strom::ingest::rtmp::message::Command;
use strom::ingest::rtmp::{
    ChunkReader, PlayerId, RelayOptions, RelayPoll, RtmpEvent, RtmpRelay, RtmpSession,
};

/// A session with an accepted `play` on stream 1 (plain handshake, connect,
/// createStream, play), its handshake output discarded; the replies are still queued.
fn playing() -> RtmpSession {
    let mut s = RtmpSession::new(Default::default());
    let mut hs = vec![3u8];
    hs.extend_from_slice(&[0u8; 2 * 1536]);
    s.handle_input(&hs).unwrap();
    let mut discard = BytesMut::new();
    s.poll_transmit(&mut discard);
    let mut v = Vec::new();
    let connect = Command::new(
        "connect",
        1.0,
        Value::object([("app", Value::from("live"))]),
        vec![],
    );
    let create = Command::new("createStream", 2.0, Value::Null, vec![]);
    let play = Command::new("play", 3.0, Value::Null, vec![Value::from("x")]);
    for (sid, c) in [(0, connect), (0, create), (1, play)] {
        let mut p = BytesMut::new();
        c.write(&mut p);
        let mut out = BytesMut::new();
        write_message(3, sid, 20, 0, &p, 128, &mut out).unwrap();
        v.extend_from_slice(&out);
    }
    s.handle_input(&v).unwrap();
    while let Some(ev) = s.poll_event() {
        if let RtmpEvent::PlayRequested { id, .. } = ev {
            s.accept(id).unwrap();
        }
    }
    s
}

struct Player {
    id: PlayerId,
    session: RtmpSession,
    reader: ChunkReader,
    rx: BytesMut,
    last_ts: [Option<u32>; 2],
}

impl Player {
    /// Parses what the session sent; media timestamps never go backwards.
    fn drain(&mut self) {
        self.session.poll_transmit(&mut self.rx);
        while let Some(m) = self
            .reader
            .read_message(&mut self.rx)
            .expect("own output parses")
        {
            match m.type_id {
                1 => {
                    let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                    self.reader.set_chunk_size(size).unwrap();
                }
                8 | 9 => {
                    let slot = &mut self.last_ts[usize::from(m.type_id - 8)];
                    if let Some(prev) = *slot {
                        assert!(
                            m.timestamp >= prev || prev - m.timestamp > u32::MAX / 2,
                            "timestamp went back: {prev} -> {}",
                            m.timestamp
                        );
                    }
                    *slot = Some(m.timestamp);
                }
                _ => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut opts = RelayOptions::default();
    opts.max_buffer_bytes = 64 * 1024;
    opts.max_lag_bytes = 16 * 1024;
    opts.max_lag_ms = 2000;
    opts.max_skips = 3;
    opts.max_players = 4;
    let mut relay = RtmpRelay::new(opts);
    let mut players: Vec<Player> = Vec::new();
    let mut gone: Vec<PlayerId> = Vec::new();
    let mut ts: u32 = 0;
    let mut it = data.iter().copied();
    let mut steps = 0;
    while let Some(op) = it.next() {
        steps += 1;
        if steps > 2000 {
            break;
        }
        let arg = it.next().unwrap_or(0);
        match op % 6 {
            0 | 1 => {
                let kind = match arg % 4 {
                    0 => TagType::Audio,
                    1 | 2 => TagType::Video,
                    _ => TagType::Script,
                };
                ts = ts.wrapping_add(u32::from(it.next().unwrap_or(0)));
                let len = usize::from(arg) * 64;
                let mut body: Vec<u8> = it.by_ref().take(4).collect();
                body.resize(len.max(body.len()), 0x55);
                let _ = relay.push(kind, ts, Bytes::from(body));
            }
            2 => {
                if let Ok(id) = relay.join() {
                    let mut p = Player {
                        id,
                        session: playing(),
                        reader: ChunkReader::default(),
                        rx: BytesMut::new(),
                        last_ts: [None; 2],
                    };
                    p.drain();
                    players.push(p);
                }
            }
            3 => {
                if !players.is_empty() {
                    let i = usize::from(arg) % players.len();
                    let budget = 1usize << (arg % 20);
                    let p = &mut players[i];
                    match relay.poll_into(p.id, &mut p.session, budget) {
                        Ok(RelayPoll::Dropped) => {
                            let p = players.swap_remove(i);
                            assert_eq!(relay.pending(p.id), None);
                            gone.push(p.id);
                        }
                        Ok(_) => p.drain(),
                        Err(e) => panic!("poll of a live player failed: {e}"),
                    }
                }
            }
            4 => {
                if !players.is_empty() {
                    let p = players.swap_remove(usize::from(arg) % players.len());
                    assert!(relay.leave(p.id));
                    gone.push(p.id);
                }
            }
            _ => relay.restart(),
        }
        assert!(relay.buffered_bytes() <= relay.options().max_buffer_bytes);
        assert_eq!(relay.player_count(), players.len());
        for id in &gone {
            let mut s = playing();
            assert!(relay.poll_into(*id, &mut s, 1).is_err());
        }
        gone.truncate(4);
    }
});
