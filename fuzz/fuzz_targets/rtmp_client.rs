//! A whole `RtmpClient` fed arbitrary server bytes in input-chosen pieces. The low
//! three bits of the control byte pick how much of a valid server conversation comes
//! first (nothing, S0+S1+S2, then the `connect` result, the `createStream` result and
//! `NetStream.Publish.Start`), so the fuzzer reaches the publishing state quickly.
//! Invariants after every call: an error closes the client and a closed client
//! refuses input; events come in protocol order (connected, stream created, publish
//! started, at most once each); `send_tag` succeeds exactly while publishing; what
//! waits in `poll_transmit` stays bounded; the client never panics.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strom::ingest::amf0::Value;
use strom::ingest::flv::TagType;
use strom::ingest::rtmp::chunk::write_message;
use strom::ingest::rtmp::message::Command;
use strom::ingest::rtmp::{RtmpClient, RtmpClientConfig, RtmpClientEvent};

const PACKET: usize = 1536;

fn command(out: &mut Vec<u8>, sid: u32, c: Command) {
    let mut p = BytesMut::new();
    c.write(&mut p);
    let mut m = BytesMut::new();
    write_message(3, sid, 20, 0, &p, 128, &mut m).unwrap();
    out.extend_from_slice(&m);
}

/// The first `steps` parts of a server's side of a successful publish.
fn prefix(steps: u8) -> Vec<u8> {
    let mut v = Vec::new();
    if steps == 0 {
        return v;
    }
    v.push(3);
    v.extend_from_slice(&[0u8; 2 * PACKET]);
    if steps >= 2 {
        let info = Value::object([("code", Value::from("NetConnection.Connect.Success"))]);
        command(
            &mut v,
            0,
            Command::new("_result", 1.0, Value::Null, vec![info]),
        );
    }
    if steps >= 3 {
        command(
            &mut v,
            0,
            Command::new("_result", 4.0, Value::Null, vec![Value::Number(1.0)]),
        );
    }
    if steps >= 4 {
        let info = Value::object([
            ("level", Value::from("status")),
            ("code", Value::from("NetStream.Publish.Start")),
        ]);
        command(
            &mut v,
            1,
            Command::new("onStatus", 0.0, Value::Null, vec![info]),
        );
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let steps = (ctl & 7).min(4);
    let step = usize::from(ctl >> 3).max(1) * 7;
    let cfg = RtmpClientConfig::from_url("rtmp://127.0.0.1/live/x").unwrap();
    let max_tx = cfg.max_transmit_bytes;
    let mut c = RtmpClient::new(cfg);
    let mut out = BytesMut::new();
    c.poll_transmit(&mut out);
    let mut stage = 0u8; // 1 connected, 2 stream created, 3 publishing
    let input = [prefix(steps), rest.to_vec()].concat();
    for (n, piece) in input.chunks(step).enumerate() {
        if c.handle_input(piece).is_err() {
            assert!(c.is_closed());
            assert!(c.handle_input(&[3]).is_err());
            break;
        }
        while let Some(ev) = c.poll_event() {
            match ev {
                RtmpClientEvent::Connected { .. } => {
                    assert_eq!(stage, 0);
                    stage = 1;
                }
                RtmpClientEvent::StreamCreated { .. } => {
                    assert_eq!(stage, 1);
                    stage = 2;
                }
                RtmpClientEvent::PublishStarted { stream_id } => {
                    assert_eq!(stage, 2);
                    assert_eq!(c.stream_id(), Some(stream_id));
                    stage = 3;
                }
                RtmpClientEvent::Rejected { .. } => assert!(c.is_closed()),
                _ => {}
            }
        }
        let publishing = c.is_publishing();
        assert_eq!(publishing, stage == 3 && !c.is_closed());
        let sent = c.send_tag(TagType::Video, n as u32 * 40, &[0x27, 1, 0, 0, 0, 9]);
        assert_eq!(sent.is_ok(), publishing, "{sent:?}");
        assert!(c.pending_transmit() <= max_tx + 64);
        out.clear();
        c.poll_transmit(&mut out);
        if c.is_closed() {
            break;
        }
    }
});
