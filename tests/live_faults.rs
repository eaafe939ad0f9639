//! Fault injection against the live origin (`examples/live_origin.rs`): while one good
//! ffmpeg publisher streams, hostile RTMP clients over raw TCP (garbage, truncated or silent
//! handshakes, oversized chunks, bad Set Chunk Size, a publisher that stops mid-message, AMF0
//! nested a thousand deep) must each be disconnected, promptly or after the configured
//! handshake / idle timeout, with a typed error in the origin's log, and the good stream must
//! not notice.
//!
//! The origin is started on fresh loopback ports and killed (with the ffmpeg it publishes
//! with) by PID when the test ends, also on panic. Tests in this file take a lock so that
//! they never run two live streams at once.
mod common;

use common::live::*;
use common::*;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Handshake and idle timeouts given to the origin (`--handshake-timeout-ms`,
/// `--idle-timeout-ms`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(2000);
const IDLE_TIMEOUT: Duration = Duration::from_millis(3000);

/// A "prompt" close: the server reacts to the bytes it read, not to a timer.
const PROMPT: Duration = Duration::from_millis(1000);

/// Live tests in this file run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// [`Origin::start_with`] no publish secret and the short session timeouts above.
fn start_origin() -> Origin {
    Origin::start_with(&[
        "--handshake-timeout-ms",
        &HANDSHAKE_TIMEOUT.as_millis().to_string(),
        "--idle-timeout-ms",
        &IDLE_TIMEOUT.as_millis().to_string(),
    ])
}

/// Names listed by `/streams.json`.
fn stream_names(origin: &Origin) -> Vec<String> {
    let text = origin.streams_json();
    let json = Json::parse(&text).unwrap_or_else(|e| panic!("/streams.json: {e}: {text}"));
    json.get("streams")
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("/streams.json has no `streams` array: {text}"))
        .iter()
        .map(|s| {
            s.get("name")
                .and_then(Json::as_str)
                .unwrap_or_else(|| panic!("a stream without a name: {text}"))
                .to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Raw RTMP clients (RTMP 1.0 spec: handshake §5.2, chunk format §5.3, control §5.4).

/// Handshake packet size (C1, C2, S1, S2), §5.2.3.
const HS: usize = 1536;

/// One chunk header of type 0 (§5.3.1.2.1) on chunk stream `csid` (2..=63), timestamp 0.
fn chunk_header_type0(csid: u8, len: u32, type_id: u8, stream_id: u32) -> Vec<u8> {
    assert!((2..=63).contains(&csid) && len < 1 << 24);
    let mut h = vec![csid];
    h.extend_from_slice(&[0, 0, 0]);
    h.extend_from_slice(&len.to_be_bytes()[1..]);
    h.push(type_id);
    h.extend_from_slice(&stream_id.to_le_bytes());
    h
}

/// A whole message as chunks of at most `chunk_size` payload bytes: a type 0 chunk, then
/// type 3 continuation chunks (§5.3.1.2.4).
fn chunked(csid: u8, type_id: u8, stream_id: u32, payload: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut out = chunk_header_type0(csid, payload.len() as u32, type_id, stream_id);
    for (i, part) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.push(0xC0 | csid);
        }
        out.extend_from_slice(part);
    }
    out
}

fn amf0_string(out: &mut Vec<u8>, s: &str) {
    out.push(0x02);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn amf0_number(out: &mut Vec<u8>, n: f64) {
    out.push(0x00);
    out.extend_from_slice(&n.to_be_bytes());
}

fn amf0_key(out: &mut Vec<u8>, k: &str) {
    out.extend_from_slice(&(k.len() as u16).to_be_bytes());
    out.extend_from_slice(k.as_bytes());
}

/// An ordinary `connect("live")` command payload (AMF0, §7.2.1.1).
fn connect_payload() -> Vec<u8> {
    let mut p = Vec::new();
    amf0_string(&mut p, "connect");
    amf0_number(&mut p, 1.0);
    p.push(0x03);
    amf0_key(&mut p, "app");
    amf0_string(&mut p, "live");
    amf0_key(&mut p, "type");
    amf0_string(&mut p, "nonprivate");
    amf0_key(&mut p, "tcUrl");
    amf0_string(&mut p, "rtmp://127.0.0.1/live");
    p.extend_from_slice(&[0, 0, 0x09]);
    p
}

/// `connect` whose command object nests `depth` objects (`{a: {a: ... {}}}`).
fn deep_connect_payload(depth: usize) -> Vec<u8> {
    let mut p = Vec::new();
    amf0_string(&mut p, "connect");
    amf0_number(&mut p, 1.0);
    for i in 0..depth {
        p.push(0x03);
        if i + 1 < depth {
            amf0_key(&mut p, "a");
        }
    }
    for _ in 0..depth {
        p.extend_from_slice(&[0, 0, 0x09]);
    }
    p
}

/// How a bad client's connection ended.
#[derive(Debug)]
struct Outcome {
    case: &'static str,
    /// The client's own address: the origin logs errors as `rtmp <this>: ...` (or
    /// `rtmp Some(<this>): ...`).
    local: Option<SocketAddr>,
    /// Time from the reference point (the last byte sent) to the close, if it closed.
    closed_after: Option<Duration>,
    /// How it ended (`EOF`, the read error, or why the client gave up).
    how: String,
    /// Acceptable close window.
    window: (Duration, Duration),
    /// The kind / message the origin's log line for this connection must contain.
    log_needle: &'static str,
}

/// Reads (discarding what arrives) until the peer closes or `limit` passes since `since`.
/// Returns when it closed (relative to `since`) and how.
fn wait_closed(s: &mut TcpStream, since: Instant, limit: Duration) -> (Option<Duration>, String) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16 * 1024];
    // Bounded: at most `limit` of 50 ms timeouts, and a cap on reads that return data.
    for _ in 0..100_000 {
        match s.read(&mut buf) {
            Ok(0) => return (Some(since.elapsed()), "EOF".into()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => {}
            Err(e) if e.kind() == IoKind::Interrupted => {}
            Err(e) => return (Some(since.elapsed()), format!("read error: {e}")),
        }
        if since.elapsed() >= limit {
            break;
        }
    }
    (None, format!("still open after {:?}", since.elapsed()))
}

/// Reads exactly `n` bytes within `limit` (the server's S0 S1 S2).
fn read_exact_within(s: &mut TcpStream, n: usize, limit: Duration) -> Result<Vec<u8>, String> {
    let t0 = Instant::now();
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut got = Vec::with_capacity(n);
    let mut buf = [0u8; 4096];
    while got.len() < n {
        if t0.elapsed() > limit {
            return Err(format!("only {} of {n} bytes within {limit:?}", got.len()));
        }
        let want = (n - got.len()).min(buf.len());
        match s.read(&mut buf[..want]) {
            Ok(0) => return Err(format!("closed after {} of {n} bytes", got.len())),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => {}
            Err(e) if e.kind() == IoKind::Interrupted => {}
            Err(e) => return Err(format!("read error: {e}")),
        }
    }
    Ok(got)
}

/// What a bad client does after connecting.
#[derive(Clone, Copy, Debug)]
enum Script {
    /// Send these bytes right away (no handshake).
    Raw(&'static [u8]),
    /// Send nothing at all.
    Nothing,
    /// C0 and the first half of C1, then silence.
    HalfC1,
    /// A complete plain handshake, then these bytes.
    AfterHandshake(fn() -> Vec<u8>),
}

/// Runs one bad client against `addr`: connect, play `script`, then wait (at most
/// `window.1 + 2 s`) for the server to close the connection.
fn bad_client(
    addr: SocketAddr,
    case: &'static str,
    script: Script,
    window: (Duration, Duration),
    log_needle: &'static str,
) -> Outcome {
    let mut out = Outcome {
        case,
        local: None,
        closed_after: None,
        how: String::new(),
        window,
        log_needle,
    };
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(s) => s,
        Err(e) => {
            out.how = format!("connect failed: {e}");
            return out;
        }
    };
    out.local = s.local_addr().ok();
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_nodelay(true);
    let mut since = Instant::now();
    let send = |s: &mut TcpStream, bytes: &[u8], since: Instant| -> Result<(), String> {
        s.write_all(bytes)
            .map_err(|e| format!("write failed after {:?}: {e}", since.elapsed()))
    };
    let sent = match script {
        Script::Nothing => Ok(()),
        Script::Raw(bytes) => send(&mut s, bytes, since),
        Script::HalfC1 => {
            let mut c0c1 = vec![0x03u8];
            c0c1.extend(std::iter::repeat_n(0u8, HS / 2));
            send(&mut s, &c0c1, since)
        }
        Script::AfterHandshake(then) => {
            // C0 (version 3) + C1 (time 0, zero, filler: a plain handshake, §5.2.3).
            let mut c0c1 = vec![0x03u8];
            c0c1.extend((0..HS).map(|i| if i < 8 { 0 } else { (i * 7) as u8 }));
            send(&mut s, &c0c1, since)
                .and_then(|()| read_exact_within(&mut s, 1 + 2 * HS, Duration::from_secs(3)))
                .and_then(|s0s1s2| {
                    if s0s1s2[0] != 0x03 {
                        return Err(format!("S0 is {:#04x}, not 3", s0s1s2[0]));
                    }
                    // C2: echo of S1 (§5.2.4).
                    let c2 = s0s1s2[1..1 + HS].to_vec();
                    send(&mut s, &c2, since)
                })
                .and_then(|()| {
                    let bytes = then();
                    since = Instant::now();
                    send(&mut s, &bytes, since)
                })
        }
    };
    if let Err(e) = sent {
        // A refused write means the server already closed the connection (it may close as
        // soon as it has read the start of the bad bytes); a failed handshake is not a close
        // for the reason under test and stays `None`.
        if e.starts_with("write failed") {
            out.closed_after = Some(since.elapsed());
        }
        out.how = e;
        return out;
    }
    let (closed, how) = wait_closed(&mut s, since, window.1 + Duration::from_secs(2));
    out.closed_after = closed;
    out.how = how;
    out
}

/// After a handshake: a type 0 chunk announcing a 16 MiB - 1 byte command (the largest
/// length the 24-bit field holds; the origin's limit is 8 MiB) and the first 128 bytes.
fn huge_message() -> Vec<u8> {
    let mut b = chunk_header_type0(3, (1 << 24) - 1, 20, 0);
    b.extend_from_slice(&[0u8; 128]);
    b
}

/// Set Chunk Size (type 1, §5.4.1) to `size`, on chunk stream 2.
fn set_chunk_size(size: u32) -> Vec<u8> {
    chunked(2, 1, 0, &size.to_be_bytes(), 128)
}

fn set_chunk_size_zero() -> Vec<u8> {
    set_chunk_size(0)
}

fn set_chunk_size_2_31() -> Vec<u8> {
    set_chunk_size(1 << 31)
}

/// The first half of a valid `connect` chunk (header and half its payload), then nothing.
fn half_a_chunk() -> Vec<u8> {
    let full = chunked(3, 20, 0, &connect_payload(), 128);
    assert!(connect_payload().len() < 128, "one chunk");
    full[..full.len() / 2].to_vec()
}

/// `connect` with its command object nested 1000 deep, in 128-byte chunks.
fn deep_connect() -> Vec<u8> {
    chunked(3, 20, 0, &deep_connect_payload(1000), 128)
}

/// 4 KiB of 0xFF (C0 0xFF is no RTMP version).
static GARBAGE: [u8; 4096] = [0xFF; 4096];
const HTTP_GET: &[u8] = b"GET /live/good/index.m3u8 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[test]
fn bad_rtmp_clients_are_dropped_while_a_good_publisher_keeps_streaming() {
    let _serial = serial();
    let wall = Instant::now();
    let input = avc_aac_25(10, Container::Flv);
    let mut origin = start_origin();
    let dir = TempDir::new("live-faults");
    let name = "good";
    let url = origin.publish_url(name, "");
    let ff_log = dir.join("ffmpeg.log");
    let mut ff = publish(&input, &url, 60, &ff_log);

    // The good stream's first playlist with a segment.
    let t0 = Instant::now();
    let before = loop {
        if let Some(p) = origin.playlist(name).map(|t| Playlist::parse(&t)) {
            if !p.segments.is_empty() {
                break p;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(12),
            "no playlist with a segment for {name} within 12 s; ffmpeg: {}; origin log:\n{}",
            std::fs::read_to_string(&ff_log).unwrap_or_default(),
            origin.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "first playlist after {:?}: MEDIA-SEQUENCE {}, newest segment {}",
        t0.elapsed(),
        before.media_sequence,
        before.newest()
    );

    // The bad clients, all at once, each on its own thread.
    let prompt = (Duration::ZERO, PROMPT);
    // The handshake clock starts at the server's first timer check: on the first bytes read,
    // or at its 500 ms read timeout for a silent client; it fires at the next check after.
    let handshake = (
        HANDSHAKE_TIMEOUT - Duration::from_millis(500),
        Duration::from_secs(5),
    );
    let idle = (
        IDLE_TIMEOUT - Duration::from_millis(500),
        Duration::from_secs(6),
    );
    let cases: Vec<(&'static str, Script, (Duration, Duration), &'static str)> = vec![
        (
            "a1: 4 KiB of 0xFF",
            Script::Raw(&GARBAGE),
            prompt,
            "malformed input",
        ),
        (
            "a2: an HTTP GET",
            Script::Raw(HTTP_GET),
            prompt,
            "malformed input",
        ),
        (
            "b: C0 + half of C1, then silence",
            Script::HalfC1,
            handshake,
            "handshake timed out",
        ),
        (
            "c: connect and send nothing",
            Script::Nothing,
            handshake,
            "handshake timed out",
        ),
        (
            "d: a 16 MiB - 1 message length",
            Script::AfterHandshake(huge_message),
            prompt,
            "limit exceeded",
        ),
        (
            "e1: Set Chunk Size 0",
            Script::AfterHandshake(set_chunk_size_zero),
            prompt,
            "malformed input",
        ),
        (
            "e2: Set Chunk Size 2^31",
            Script::AfterHandshake(set_chunk_size_2_31),
            prompt,
            "malformed input",
        ),
        (
            "f: half a chunk, then silence",
            Script::AfterHandshake(half_a_chunk),
            idle,
            "connection idle",
        ),
        (
            "g: connect nested 1000 objects deep",
            Script::AfterHandshake(deep_connect),
            prompt,
            "limit exceeded",
        ),
    ];
    let prompt_cases = cases.iter().filter(|c| c.2 == prompt).count();
    let addr = origin.rtmp_addr();
    let clients: Vec<_> = cases
        .into_iter()
        .map(|(case, script, window, needle)| {
            std::thread::spawn(move || bad_client(addr, case, script, window, needle))
        })
        .collect();

    // Meanwhile the good stream keeps going.
    let mut last = Playlist::parse(&before.text);
    let poll_start = Instant::now();
    while !clients.iter().all(|c| c.is_finished()) {
        assert!(
            poll_start.elapsed() < Duration::from_secs(12),
            "bad clients still running after 12 s"
        );
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            origin.proc.exited().is_none(),
            "the origin exited while bad clients were connected; log:\n{}",
            origin.log()
        );
        let p = Playlist::parse(&origin.playlist(name).unwrap_or_else(|| {
            panic!(
                "the good stream's playlist vanished; origin log:\n{}",
                origin.log()
            )
        }));
        assert!(
            p.media_sequence >= last.media_sequence && p.newest() >= last.newest(),
            "the good playlist went back:\n{}\n->\n{}",
            last.text,
            p.text
        );
        last = p;
    }
    let outcomes: Vec<Outcome> = clients
        .into_iter()
        .map(|c| c.join().expect("bad client thread panicked"))
        .collect();

    // Each bad client was closed, within its window, with an error logged for it.
    let log = origin.log();
    let error_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("rtmp Some(127.0.0.1:") || l.starts_with("rtmp 127.0.0.1:"))
        .collect();
    let mut failures = Vec::new();
    for o in &outcomes {
        let line = o.local.and_then(|a| {
            let prefixes = [format!("rtmp {a}: "), format!("rtmp Some({a}): ")];
            error_lines
                .iter()
                .find(|l| prefixes.iter().any(|p| l.starts_with(p.as_str())))
                .copied()
        });
        println!(
            "{}: closed after {:?} ({}); logged: {}",
            o.case,
            o.closed_after,
            o.how,
            line.unwrap_or("-")
        );
        match o.closed_after {
            None => failures.push(format!("{}: not closed ({})", o.case, o.how)),
            Some(t) if t < o.window.0 || t > o.window.1 => failures.push(format!(
                "{}: closed after {t:?} ({}), expected within {:?}..={:?}",
                o.case, o.how, o.window.0, o.window.1
            )),
            Some(_) => {}
        }
        match line {
            None => failures.push(format!(
                "{}: no `rtmp {}: ...` error line in the origin log",
                o.case,
                o.local.map_or("?".to_string(), |a| a.to_string())
            )),
            Some(l) if !l.contains(o.log_needle) => failures.push(format!(
                "{}: logged `{l}`, expected it to mention `{}`",
                o.case, o.log_needle
            )),
            Some(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "bad clients:\n{}\norigin log:\n{log}",
        failures.join("\n")
    );
    assert!(
        error_lines.len() >= prompt_cases,
        "{} `rtmp <client>: <error>` lines for {prompt_cases} prompt-close cases:\n{log}",
        error_lines.len()
    );
    assert!(
        !log.contains("panicked"),
        "the origin log shows a panic:\n{log}"
    );

    // Afterwards: the good stream is still live and moving.
    let t1 = Instant::now();
    let after = loop {
        assert!(
            ff.exited().is_none(),
            "the good publisher stopped: {}; origin log:\n{}",
            std::fs::read_to_string(&ff_log).unwrap_or_default(),
            origin.log()
        );
        let p = Playlist::parse(
            &origin
                .playlist(name)
                .expect("the good stream's playlist after the bad clients"),
        );
        assert!(
            p.media_sequence >= last.media_sequence && p.newest() >= last.newest(),
            "the good playlist went back:\n{}\n->\n{}",
            last.text,
            p.text
        );
        if p.newest() >= before.newest() + 2 {
            break p;
        }
        last = p;
        assert!(
            t1.elapsed() < Duration::from_secs(8),
            "the good stream stalled: newest segment {} before the bad clients, {} now:\n{}",
            before.newest(),
            last.newest(),
            last.text
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "good stream: MEDIA-SEQUENCE {} -> {}, newest segment {} -> {}",
        before.media_sequence,
        after.media_sequence,
        before.newest(),
        after.newest()
    );
    assert!(after.media_sequence >= before.media_sequence);
    let (_, newest_uri, _) = after.segments.last().unwrap();
    check_segment(&origin, name, newest_uri, &dir);
    assert!(
        origin.proc.exited().is_none(),
        "the origin exited; log:\n{}",
        origin.log()
    );
    assert_eq!(
        stream_names(&origin),
        vec![name.to_string()],
        "/streams.json must list only the good stream"
    );
    ff.kill();
    println!("wall time {:?}", wall.elapsed());
}
