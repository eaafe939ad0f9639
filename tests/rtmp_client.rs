//! RtmpClient publishing an FFmpeg-made FLV, tag by tag:
//! (a) in memory to strom's own RtmpSession, which must receive every tag
//!     (onCuePoint script tags included) byte-identical;
//! (b) over a real socket to `ffmpeg -listen 1` acting as the RTMP server, whose
//!     recording must decode to the same frames as the source (framemd5).
//!
//! Every loop is bounded in count and time; ffmpeg runs under a deadline and is
//! killed by PID when the test ends.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::live::{free_port, wait_exit, Proc};
use common::{framemd5, Container, TempDir};
use strom::ingest::amf0::{self, Value};
use strom::ingest::flv::{TagReader, TagType};
use strom::ingest::rtmp::{
    RtmpClient, RtmpClientConfig, RtmpClientEvent, RtmpConfig, RtmpEvent, RtmpSession,
};

type Tag = (TagType, u32, Bytes);

/// An `onCuePoint` script tag body in the broadcast-encoder form (as
/// `/work/shared/harness/scte35.py make-flv` writes it). The sections are threefive's
/// `mk_splice_null()` and `mk_splice_insert(1001, pts=2.0, duration=2.0, out=True)` /
/// `mk_splice_insert(1002, pts=4.0, out=False)`.
fn cue_point(name: &str, time_s: f64, cue_b64: &str) -> Bytes {
    let mut b = BytesMut::new();
    amf0::encode_all(
        &[
            Value::from("onCuePoint"),
            Value::object([
                ("name", Value::from(name)),
                ("time", Value::Number(time_s)),
                ("type", Value::from("event")),
                (
                    "parameters",
                    Value::object([("cue", Value::from(cue_b64)), ("kind", Value::from("out"))]),
                ),
            ]),
        ],
        &mut b,
    );
    b.freeze()
}

/// The tags of an FFmpeg FLV (testsrc2 + sine, H.264 + AAC), with onCuePoint tags
/// inserted before the first tag at or after 40 ms, 2 s and 4 s.
fn source_tags(path: &std::path::Path) -> Vec<Tag> {
    let data = Bytes::from(std::fs::read(path).unwrap());
    let mut cues = vec![
        (
            40u32,
            cue_point("scte35-heartbeat", 0.04, "/DARAAAAAAAAAP/wAAAAAHpPv/8="),
        ),
        (
            2000,
            cue_point(
                "scte35",
                2.0,
                "/DAlAAAAAAAAAP/wFAUAAAPpf+/+AAK/IP4AAr8gA+kAAAAAkKar6w==",
            ),
        ),
        (
            4000,
            cue_point(
                "scte35",
                4.0,
                "/DAgAAAAAAAAAP/wDwUAAAPqf0/+AAV+QAPqAAAAAIOloew=",
            ),
        ),
    ];
    cues.reverse();
    let mut tags = Vec::new();
    for t in TagReader::new(data).unwrap() {
        let t = t.unwrap();
        while cues.last().is_some_and(|(at, _)| t.timestamp >= *at) {
            let (at, body) = cues.pop().unwrap();
            tags.push((TagType::Script, at, body));
        }
        tags.push((t.tag_type, t.timestamp, t.body));
    }
    assert!(cues.is_empty(), "the clip is long enough for every cue");
    tags
}

fn clip() -> std::path::PathBuf {
    common::avc_aac_small_25(6, Container::Flv)
}

/// Publishes `tags` from an RtmpClient to an RtmpSession in memory, the bytes of each
/// direction delivered in pieces of `piece` bytes; returns what the session received.
fn publish_in_memory(tags: &[Tag], cfg: RtmpClientConfig, piece: usize) -> Vec<Tag> {
    let mut client = RtmpClient::new(cfg);
    let mut server = RtmpSession::new(RtmpConfig::default());
    let mut received = Vec::new();
    let mut next = 0;
    let mut unpublished = false;
    for _round in 0..100_000 {
        if client.is_publishing() && next < tags.len() {
            // A handful of tags per round, as a host would interleave them with reads.
            for (k, t, b) in &tags[next..(next + 7).min(tags.len())] {
                client.send_tag(*k, *t, b).unwrap();
            }
            next = (next + 7).min(tags.len());
        } else if client.is_publishing() {
            client.unpublish().unwrap();
        }
        let mut up = BytesMut::new();
        client.poll_transmit(&mut up);
        for p in up.chunks(piece) {
            server.handle_input(p).unwrap();
        }
        while let Some(ev) = server.poll_event() {
            match ev {
                RtmpEvent::PublishRequested { id, stream_key, .. } => {
                    assert_eq!(stream_key, "x");
                    server.accept(id).unwrap();
                }
                RtmpEvent::Media {
                    kind,
                    timestamp_ms,
                    body,
                    ..
                } => received.push((kind, timestamp_ms, body)),
                RtmpEvent::Unpublished { .. } => unpublished = true,
                _ => {}
            }
        }
        let mut down = BytesMut::new();
        server.poll_transmit(&mut down);
        for p in down.chunks(piece) {
            client.handle_input(p).unwrap();
        }
        while let Some(ev) = client.poll_event() {
            assert!(
                !matches!(ev, RtmpClientEvent::Rejected { .. }),
                "rejected: {ev:?}"
            );
        }
        if unpublished {
            return received;
        }
    }
    panic!("publish did not finish");
}

#[test]
fn every_tag_reaches_rtmp_session_byte_identical() {
    let tags = source_tags(&clip());
    let scripts = tags.iter().filter(|t| t.0 == TagType::Script).count();
    assert_eq!(scripts, 4, "onMetaData and three onCuePoint tags");
    assert!(tags.len() > 400, "{} tags", tags.len());
    let url = "rtmp://127.0.0.1/live/x";
    // Default chunk size (4096), bytes delivered in 1000-byte pieces.
    let cfg = RtmpClientConfig::from_url(url).unwrap();
    let got = publish_in_memory(&tags, cfg, 1000);
    assert_eq!(got.len(), tags.len());
    for (i, (a, b)) in got.iter().zip(&tags).enumerate() {
        assert!(
            a == b,
            "tag {i} differs: {:?} {} vs {:?} {}",
            a.0,
            a.1,
            b.0,
            b.1
        );
    }
    // Chunk size 128 (every video frame split in many chunks), 61-byte pieces.
    let mut cfg = RtmpClientConfig::from_url(url).unwrap();
    cfg.out_chunk_size = 128;
    let got = publish_in_memory(&tags, cfg, 61);
    assert!(
        got == tags,
        "chunk size 128: {} tags vs {}",
        got.len(),
        tags.len()
    );
}

/// `ffmpeg -listen 1` as the RTMP server, recording with `-c copy`.
fn ffmpeg_server(port: u16, out: &std::path::Path, log: &std::path::Path) -> Proc {
    let child = Command::new(common::tool("ffmpeg"))
        .args([
            "-nostdin",
            "-hide_banner",
            "-v",
            "warning",
            "-y",
            "-listen",
            "1",
        ])
        .arg("-i")
        .arg(format!("rtmp://127.0.0.1:{port}/live/x"))
        .args(["-map", "0:v", "-map", "0:a", "-c", "copy", "-f", "flv"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("ffmpeg runs");
    Proc(Some(child))
}

fn connect(port: u16, deadline: Instant) -> TcpStream {
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) => {
                assert!(Instant::now() < deadline, "ffmpeg never listened: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Reads what the server sent (waiting at most the socket's read timeout) into the
/// client; false at end of stream.
fn read_into(sock: &mut TcpStream, client: &mut RtmpClient) -> bool {
    let mut buf = [0u8; 16 * 1024];
    match sock.read(&mut buf) {
        Ok(0) => false,
        Ok(n) => {
            client.handle_input(&buf[..n]).unwrap();
            true
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            true
        }
        Err(e) => panic!("read: {e}"),
    }
}

fn flush(sock: &mut TcpStream, client: &mut RtmpClient) {
    let mut out = BytesMut::new();
    client.poll_transmit(&mut out);
    sock.write_all(&out).unwrap();
}

#[test]
fn ffmpeg_as_server_records_the_same_frames() {
    let src = clip();
    let tags = source_tags(&src);
    let dir = TempDir::new("rtmp-client");
    let (out, log) = (dir.join("out.flv"), dir.join("ffmpeg.log"));
    let port = free_port();
    let mut ffmpeg = ffmpeg_server(port, &out, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sock = connect(port, deadline);
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let cfg = RtmpClientConfig::from_url(&format!("rtmp://127.0.0.1:{port}/live/x")).unwrap();
    let mut client = RtmpClient::new(cfg);
    let t0 = Instant::now();
    let mut events = Vec::new();
    while !client.is_publishing() {
        assert!(Instant::now() < deadline, "no publish start: {events:?}");
        flush(&mut sock, &mut client);
        assert!(
            read_into(&mut sock, &mut client),
            "ffmpeg closed: {events:?}"
        );
        client
            .handle_timeout(t0.elapsed().as_millis() as i64)
            .unwrap();
        events.extend(std::iter::from_fn(|| client.poll_event()));
    }
    assert!(
        matches!(events[0], RtmpClientEvent::Connected { .. }),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(RtmpClientEvent::PublishStarted { .. })),
        "{events:?}"
    );
    for (i, (k, t, b)) in tags.iter().enumerate() {
        client.send_tag(*k, *t, b).unwrap();
        if i % 16 == 0 {
            flush(&mut sock, &mut client);
            // Keep the server's few messages (acknowledgements) flowing.
            sock.set_nonblocking(true).unwrap();
            let _ = read_into(&mut sock, &mut client);
            sock.set_nonblocking(false).unwrap();
            assert!(Instant::now() < deadline);
        }
    }
    client.unpublish().unwrap();
    flush(&mut sock, &mut client);
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    // Read until ffmpeg closes (bounded), then wait for it to finish the file.
    while Instant::now() < deadline && read_into(&mut sock, &mut client) {
        if ffmpeg.exited().is_some() {
            break;
        }
    }
    drop(sock);
    let status = wait_exit(&mut ffmpeg, Duration::from_secs(30), "ffmpeg -listen");
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "ffmpeg failed ({status}):\n{log_text}");
    let (v_src, v_out) = (framemd5(&src, "v:0"), framemd5(&out, "v:0"));
    let (a_src, a_out) = (framemd5(&src, "a:0"), framemd5(&out, "a:0"));
    println!(
        "ffmpeg recorded {} video and {} audio frames (source {} and {})",
        v_out.len(),
        a_out.len(),
        v_src.len(),
        a_src.len()
    );
    assert_eq!(v_src.len(), 150);
    assert!(v_out == v_src, "video frames differ:\n{log_text}");
    assert!(a_out == a_src, "audio frames differ:\n{log_text}");
}
