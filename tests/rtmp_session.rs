//! RtmpSession over a real socket, driven by a real ffmpeg publisher.
//!
//! A bounded std::net server on 127.0.0.1:0 runs one session in a thread; every read
//! has a timeout and every loop a deadline, and ffmpeg runs under a process timeout.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strom::ingest::flv::{FlvDemuxer, TagType};
use strom::ingest::rtmp::{RejectReason, RtmpEvent, RtmpSession};
use strom::media::{CodecConfig, Event, Item};
use strom::pipeline::Stage;

const FFMPEG: &str = "/usr/bin/ffmpeg";

#[derive(Debug, Default)]
struct Outcome {
    app: String,
    key: String,
    query: String,
    connected: bool,
    tracks: Vec<&'static str>,
    video_dts_ms: Vec<i64>,
    audio_frames: usize,
    unpublished: bool,
    played: bool,
    digest_handshake: bool,
    error: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Decision {
    Accept,
    Reject,
}

fn accept_one(listener: &TcpListener, deadline: Instant) -> Option<TcpStream> {
    listener.set_nonblocking(true).ok()?;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok()?;
                return Some(s);
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
    None
}

fn serve(
    listener: TcpListener,
    decision: Decision,
    play_tags: Vec<(TagType, u32, Bytes)>,
) -> Outcome {
    let mut o = Outcome::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let Some(mut sock) = accept_one(&listener, deadline) else {
        o.error = Some("no connection".into());
        return o;
    };
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut session = RtmpSession::new(Default::default());
    let mut demux = FlvDemuxer::without_header();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = BytesMut::new();
    while Instant::now() < deadline {
        let n = match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(_) => break,
        };
        if let Err(e) = session.handle_input(&buf[..n]) {
            o.error = Some(e.to_string());
            break;
        }
        while let Some(ev) = session.poll_event() {
            match ev {
                RtmpEvent::Connected { .. } => o.connected = true,
                RtmpEvent::PublishRequested {
                    id,
                    app,
                    stream_key,
                    query,
                    ..
                } => {
                    o.app = app;
                    o.key = stream_key;
                    o.query = query;
                    match decision {
                        Decision::Accept => session.accept(id).unwrap(),
                        Decision::Reject => session
                            .reject(id, RejectReason::Unauthorized, "bad token")
                            .unwrap(),
                    }
                }
                RtmpEvent::Media {
                    kind,
                    timestamp_ms,
                    body,
                    ..
                } => {
                    demux.push_tag(kind, timestamp_ms, body).unwrap();
                    while let Some(item) = demux.poll() {
                        match item.unwrap() {
                            Item::Event(Event::TrackAdded(t)) => o.tracks.push(match t.config {
                                CodecConfig::H264(_) => "h264",
                                CodecConfig::Aac(_) => "aac",
                                _ => "other",
                            }),
                            Item::Frame(f) if f.track == strom::ingest::flv::VIDEO_TRACK => {
                                o.video_dts_ms.push(f.dts.as_millis())
                            }
                            Item::Frame(_) => o.audio_frames += 1,
                            _ => {}
                        }
                    }
                }
                RtmpEvent::PlayRequested { id, stream_key, .. } => {
                    o.key = stream_key;
                    session.accept(id).unwrap();
                    for (kind, ts, body) in &play_tags {
                        session.send_media(*kind, *ts, body).unwrap();
                    }
                    o.played = true;
                }
                RtmpEvent::Unpublished { .. } => o.unpublished = true,
                _ => {}
            }
        }
        session.poll_transmit(&mut out);
        if !out.is_empty() {
            if sock.write_all(&out).is_err() {
                break;
            }
            out.clear();
        }
        if session.is_closed() {
            break;
        }
    }
    o.digest_handshake = matches!(
        session.handshake_kind(),
        Some(strom::ingest::rtmp::HandshakeKind::Digest { .. })
    );
    o
}

fn spawn_ffmpeg_publish(port: u16) -> Child {
    Command::new(FFMPEG)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=3",
        ])
        .args(["-f", "lavfi", "-i", "sine=duration=3"])
        .args(["-t", "3", "-c:v", "libx264", "-threads", "1", "-g", "25"])
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/test?token=abc"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg")
}

/// Waits for `child` at most `limit`, killing it (by its own handle) when late.
fn wait_bounded(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (st.code(), err);
            }
            Ok(None) if Instant::now() < end => thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return (None, "timed out".into());
            }
        }
    }
}

#[test]
fn ffmpeg_publishes_and_media_reaches_the_flv_demuxer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || serve(listener, Decision::Accept, Vec::new()));
    let child = spawn_ffmpeg_publish(port);
    let (code, stderr) = wait_bounded(child, Duration::from_secs(30));
    let o = server.join().unwrap();
    assert_eq!(code, Some(0), "ffmpeg failed: {stderr}; server: {o:?}");
    assert!(o.error.is_none(), "{:?}", o.error);
    assert!(o.connected);
    assert_eq!((o.app.as_str(), o.key.as_str()), ("live", "test"));
    assert_eq!(o.query, "token=abc");
    assert!(o.tracks.contains(&"h264"), "{:?}", o.tracks);
    assert!(o.tracks.contains(&"aac"), "{:?}", o.tracks);
    let n = o.video_dts_ms.len();
    assert!((70..=76).contains(&n), "{n} video frames");
    assert!(o.video_dts_ms.windows(2).all(|w| w[1] > w[0]));
    assert!(o.audio_frames > 100, "{} audio frames", o.audio_frames);
    assert!(o.unpublished);
    assert!(o.digest_handshake, "ffmpeg's client sends a digest C1");
}

#[test]
fn rejected_publish_makes_ffmpeg_fail() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || serve(listener, Decision::Reject, Vec::new()));
    let child = spawn_ffmpeg_publish(port);
    let (code, stderr) = wait_bounded(child, Duration::from_secs(30));
    let o = server.join().unwrap();
    assert_eq!(o.key, "test");
    assert!(o.video_dts_ms.is_empty());
    assert!(
        code.is_some_and(|c| c != 0),
        "ffmpeg exit {code:?}: {stderr}"
    );
}

#[test]
fn garbage_instead_of_handshake_is_a_typed_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || serve(listener, Decision::Accept, Vec::new()));
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let o = server.join().unwrap();
    let e = o.error.expect("error");
    assert!(e.contains("C0"), "{e}");
}

/// Tags of an FLV file (FLV 10.1 §E.4: 9-byte header, then tags with back pointers).
fn flv_tags(data: &[u8]) -> Vec<(TagType, u32, Bytes)> {
    let data = Bytes::copy_from_slice(data);
    let mut pos = 9 + 4;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let h = &data[pos..pos + 11];
        let size = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body = data.slice(pos + 11..pos + 11 + size);
        tags.push((TagType::from_code(h[0]), ts, body));
        pos += 11 + size + 4;
    }
    tags
}

#[test]
fn ffmpeg_plays_what_send_media_sends() {
    let dir = std::env::temp_dir().join(format!("strom-rtmp-play-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let flv = dir.join("in.flv");
    let st = Command::new(FFMPEG)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=3",
        ])
        .args(["-f", "lavfi", "-i", "sine=duration=3"])
        .args([
            "-c:v", "libx264", "-threads", "1", "-g", "25", "-c:a", "aac", "-f", "flv",
        ])
        .arg(&flv)
        .status()
        .unwrap();
    assert!(st.success());
    let tags = flv_tags(&std::fs::read(&flv).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(tags.len() > 100);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || serve(listener, Decision::Accept, tags));
    let child = Command::new(FFMPEG)
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        // Socket timeout: ffmpeg ends even if the server stops answering.
        .args(["-rw_timeout", "20000000"])
        .arg("-i")
        .arg(format!("rtmp://127.0.0.1:{port}/live/x"))
        .args(["-t", "2", "-map", "0:v", "-f", "framecrc", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let o = server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg: {stderr}; server {o:?}");
    assert!(o.played && o.key == "x");
    assert!(o.digest_handshake, "ffmpeg's client sends a digest C1");
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("0,"))
        .count();
    assert!((45..=51).contains(&frames), "{frames} frames decoded");
}
