//! End-to-end acceptance for the live origin (`examples/live_origin.rs`, issue 3):
//! ffmpeg publishes RTMP, the origin packages it live, HTTP clients (ffprobe, hls.js) watch it.
//!
//! Every test starts its own origin on fresh loopback ports and kills it (and every ffmpeg it
//! started) by PID when it ends, also on panic. The heavy tests take a lock so that two cores
//! are not asked to run two live streams plus a browser at once.
mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strom::auth::TokenAuthorizer;

const SECRET: &str = "e2e-secret";

/// Heavy tests (live publish) run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn example_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join("live_origin");
    assert!(bin.is_file(), "{} not built", bin.display());
    bin
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Kills a child process by PID (SIGKILL) and reaps it when dropped.
struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `Some(exit status)` once the process has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `live_origin` with its ports; killed on drop.
struct Origin {
    rtmp: u16,
    http: u16,
    _proc: Proc,
    _log_dir: TempDir,
    log: PathBuf,
}

impl Origin {
    fn start() -> Origin {
        let dir = TempDir::new("live-origin");
        let log = dir.join("origin.log");
        for _attempt in 0..5 {
            let (rtmp, http) = (free_port(), free_port());
            if rtmp == http {
                continue;
            }
            let child = Command::new(example_bin())
                .args(["--rtmp", &format!("127.0.0.1:{rtmp}")])
                .args(["--http", &format!("127.0.0.1:{http}")])
                .args(["--publish-secret", SECRET])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("cannot start live_origin");
            let mut proc = Proc(Some(child));
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) && proc.exited().is_none() {
                if get(http, "/streams.json").is_some_and(|r| r.status == 200) {
                    return Origin {
                        rtmp,
                        http,
                        _proc: proc,
                        _log_dir: dir,
                        log,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Port taken in between (or slow start): try other ports.
        }
        panic!(
            "live_origin did not come up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn publish_url(&self, name: &str, query: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}{query}", self.rtmp)
    }

    fn token_query(name: &str) -> String {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 3600;
        let t = TokenAuthorizer::new(SECRET.as_bytes().to_vec()).token(name, exp);
        format!("?token={t}")
    }

    fn get(&self, path: &str) -> Option<Resp> {
        get(self.http, path)
    }

    /// The media playlist text, when it exists (200).
    fn playlist(&self, name: &str) -> Option<String> {
        self.get(&format!("/live/{name}/media.m3u8"))
            .filter(|r| r.status == 200)
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
    }

    fn streams_json(&self) -> String {
        let r = self.get("/streams.json").expect("/streams.json");
        assert_eq!(r.status, 200);
        String::from_utf8_lossy(&r.body).into_owned()
    }
}

struct Resp {
    status: u16,
    body: Vec<u8>,
}

/// A bounded HTTP/1.1 GET on 127.0.0.1 (`Connection: close`, 5 s timeouts, 64 MiB cap).
fn get(port: u16, path: &str) -> Option<Resp> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.take(64 << 20).read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Some(Resp { status, body })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = b.get(eol + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
    None
}

/// What the tests read from a media playlist.
#[derive(Debug)]
struct Playlist {
    media_sequence: u64,
    /// (media sequence number, URI, preceded by EXT-X-DISCONTINUITY)
    segments: Vec<(u64, String, bool)>,
    text: String,
}

fn parse_playlist(text: &str) -> Playlist {
    let mut media_sequence = None;
    let mut segments = Vec::new();
    let mut disc = false;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            media_sequence = Some(v.parse().expect("MEDIA-SEQUENCE is an integer"));
        } else if line == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            let msn = media_sequence.unwrap_or(0) + segments.len() as u64;
            segments.push((msn, line.to_string(), disc));
            disc = false;
        }
    }
    Playlist {
        media_sequence: media_sequence.unwrap_or_else(|| panic!("no MEDIA-SEQUENCE:\n{text}")),
        segments,
        text: text.to_string(),
    }
}

/// ffmpeg publishing `input` in a loop (`-re -stream_loop -1 ... -c copy -f flv url`).
fn publish(input: &Path, url: &str, seconds: u32, log: &Path) -> Proc {
    let child = Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i"])
        .arg(input)
        .args(["-t", &seconds.to_string(), "-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("cannot start ffmpeg");
    Proc(Some(child))
}

/// Fetches one segment, checks it decodes cleanly and starts with a video keyframe.
fn check_segment(origin: &Origin, name: &str, uri: &str, dir: &TempDir) {
    let path = if uri.starts_with('/') {
        uri.to_string()
    } else {
        format!("/live/{name}/{uri}")
    };
    let r = origin
        .get(&path)
        .unwrap_or_else(|| panic!("GET {path} failed"));
    assert_eq!(r.status, 200, "GET {path}");
    assert!(
        r.body.len() >= 188 && r.body.len().is_multiple_of(188) && r.body[0] == 0x47,
        "{path}: not MPEG-TS ({} bytes)",
        r.body.len()
    );
    let file = dir.join(
        &path
            .rsplit('/')
            .next()
            .unwrap_or("seg.ts")
            .replace('?', "_"),
    );
    std::fs::write(&file, &r.body).unwrap();
    let errors = decode_errors(&file);
    assert!(
        errors.is_empty(),
        "{path} does not decode cleanly:\n{errors}"
    );
    let v = packets(&file, "v:0");
    let first = v
        .packets
        .first()
        .unwrap_or_else(|| panic!("{path}: no video"));
    assert!(first.key, "{path} does not start with a keyframe");
    let _ = std::fs::remove_file(&file);
}

/// Polls until the media playlist of `name` lists a segment; returns it, the time it took and
/// when the origin logged the accepted publish (`publish NAME from ...`: ffmpeg's start-up).
fn wait_first_playlist(
    origin: &Origin,
    name: &str,
    limit: Duration,
) -> (Playlist, Duration, Option<Duration>) {
    let t0 = Instant::now();
    let accepted_line = format!("publish {name} ");
    let mut accepted = None;
    while t0.elapsed() < limit {
        if accepted.is_none() && origin.log().contains(&accepted_line) {
            accepted = Some(t0.elapsed());
        }
        if let Some(text) = origin.playlist(name) {
            let p = parse_playlist(&text);
            if !p.segments.is_empty() {
                return (p, t0.elapsed(), accepted.or(Some(t0.elapsed())));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "no playlist with a segment for {name} within {limit:?}; origin log:\n{}",
        origin.log()
    );
}

#[test]
fn publish_then_live_hls_polls_and_plays_in_browser() {
    let _serial = serial();
    let input = avc_aac_25(10, Container::Flv);
    let origin = Origin::start();
    let dir = TempDir::new("live-e2e");
    let name = "e2e_live";
    let url = origin.publish_url(name, &Origin::token_query(name));

    let t0 = Instant::now();
    let mut ff = publish(&input, &url, 60, &dir.join("ffmpeg.log"));
    let (first, took, accepted) = wait_first_playlist(&origin, name, Duration::from_secs(15));
    let startup = accepted.unwrap_or(took);
    println!(
        "ffmpeg start -> first playlist with a segment: {} ms (ffmpeg start-up until the publish \
         was accepted: {} ms; after it: {} ms); MEDIA-SEQUENCE {}",
        took.as_millis(),
        startup.as_millis(),
        (took - startup).as_millis(),
        first.media_sequence
    );
    // One segment (2 s) + 1 s after ffmpeg's start-up (polled every 10 ms).
    assert!(
        took - startup <= Duration::from_millis(3000),
        "first playlist {:?} after the publish was accepted",
        took - startup
    );
    assert!(
        took <= Duration::from_secs(6),
        "first playlist after {took:?}"
    );

    let streams = origin.streams_json();
    assert!(streams.contains(name), "{streams}");
    assert!(
        streams.contains("avc1.") && streams.contains("mp4a.40.2"),
        "codecs missing from /streams.json: {streams}"
    );

    // Browser playback in parallel with the playlist polling.
    let play_url = format!("http://127.0.0.1:{}/live/{name}/index.m3u8", origin.http);
    let player = std::thread::spawn(move || play_url_in_browser(&play_url, 20));

    let mut last_seq = first.media_sequence;
    let newest = |p: &Playlist| p.segments.last().map_or(0, |s| s.0);
    let first_newest = newest(&first);
    let mut last_newest = first_newest;
    let mut seq_log = vec![(t0.elapsed().as_secs_f64(), first.media_sequence)];
    let mut checked = std::collections::BTreeSet::new();
    for (msn, uri, _) in &first.segments {
        check_segment(&origin, name, uri, &dir);
        checked.insert(*msn);
    }
    let poll_start = Instant::now();
    let mut polls = 0;
    while poll_start.elapsed() < Duration::from_secs(30) && polls < 60 {
        polls += 1;
        std::thread::sleep(Duration::from_secs(1));
        assert!(
            ff.exited().is_none(),
            "ffmpeg stopped publishing: {}",
            std::fs::read_to_string(dir.join("ffmpeg.log")).unwrap_or_default()
        );
        let text = origin.playlist(name).expect("media playlist while live");
        let p = parse_playlist(&text);
        assert!(
            p.media_sequence >= last_seq,
            "MEDIA-SEQUENCE went back {last_seq} -> {}:\n{}",
            p.media_sequence,
            p.text
        );
        assert!(!p.text.contains("#EXT-X-ENDLIST"), "{}", p.text);
        assert!(
            newest(&p) >= last_newest,
            "newest segment went back:\n{}",
            p.text
        );
        // Sliding window (6 segments by default): never more than a few extra.
        assert!(p.segments.len() <= 8, "window grows:\n{}", p.text);
        if p.media_sequence != last_seq {
            seq_log.push((t0.elapsed().as_secs_f64(), p.media_sequence));
        }
        last_seq = p.media_sequence;
        last_newest = newest(&p);
        for (msn, uri, _) in &p.segments {
            if checked.insert(*msn) {
                check_segment(&origin, name, uri, &dir);
            }
        }
    }
    let rise = last_seq - first.media_sequence;
    let new_segments = last_newest - first_newest;
    println!(
        "MEDIA-SEQUENCE (t s, value): {seq_log:?}; newest segment {first_newest} -> \
         {last_newest}; {} segments checked",
        checked.len()
    );
    // ~30 s of 2 s segments: about 15 new ones (one per segment, not bursts).
    assert!(
        (11..=19).contains(&new_segments),
        "{new_segments} new segments in 30 s: {seq_log:?}"
    );
    // MEDIA-SEQUENCE starts sliding once the window (6 x 2 s) is full, then one per segment.
    assert!(
        (6..=new_segments).contains(&rise),
        "MEDIA-SEQUENCE rose by {rise} in 30 s: {seq_log:?}"
    );
    assert!(checked.len() >= 12, "only {} segments seen", checked.len());

    let played = player.join().expect("browser thread");
    if let Some(r) = played {
        println!("hls.js: {}", r.raw);
        assert!(r.ok, "hls.js did not play the live stream: {}", r.raw);
        assert!(r.advanced_s >= 16.0, "{}", r.raw);
        assert!(r.fatal_errors.is_empty(), "{}", r.raw);
    }
    ff.kill();
}

#[test]
fn wrong_or_missing_token_is_refused() {
    let input = avc_aac_25(10, Container::Flv);
    let origin = Origin::start();
    let dir = TempDir::new("live-auth");
    let name = "e2e_auth";
    let wrong = Origin::token_query("another_name");
    for (what, query) in [("wrong token", wrong.as_str()), ("no token", "")] {
        let url = origin.publish_url(name, query);
        let log = dir.join("ffmpeg.log");
        let mut ff = publish(&input, &url, 20, &log);
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = ff.exited() {
                break Some(s);
            }
            if t0.elapsed() > Duration::from_secs(8) {
                break None;
            }
            assert_eq!(
                origin.playlist(name),
                None,
                "{what}: a playlist appeared for a refused publisher"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let status = status.unwrap_or_else(|| {
            panic!(
                "{what}: ffmpeg still publishing after 8 s; origin log:\n{}",
                origin.log()
            )
        });
        assert!(!status.success(), "{what}: ffmpeg exited with {status}");
        println!("{what}: ffmpeg exited {status} after {:?}", t0.elapsed());
        let streams = origin.streams_json();
        assert!(!streams.contains(name), "{what}: {streams}");
        assert!(
            streams.replace(char::is_whitespace, "") == r#"{"streams":[]}"#,
            "{what}: /streams.json is not empty: {streams}"
        );
        assert_eq!(origin.playlist(name), None, "{what}");
    }
    // A viewer of the refused stream gets nothing playable (and the --url player says so).
    let _serial = serial();
    let url = format!("http://127.0.0.1:{}/live/{name}/index.m3u8", origin.http);
    if let Some(r) = play_url_in_browser(&url, 3) {
        assert!(!r.ok, "a refused stream played: {}", r.raw);
        assert!(
            r.http_errors.iter().any(|e| e.starts_with("404 ")) || !r.fatal_errors.is_empty(),
            "{}",
            r.raw
        );
    }
}

#[test]
fn publisher_reconnect_marks_a_discontinuity_and_keeps_counting() {
    let _serial = serial();
    let input = avc_aac_25(10, Container::Flv);
    let origin = Origin::start();
    let dir = TempDir::new("live-reconnect");
    let name = "e2e_reconnect";
    let url = origin.publish_url(name, &Origin::token_query(name));

    let started = Instant::now();
    let mut ff = publish(&input, &url, 60, &dir.join("ffmpeg1.log"));
    let _ = wait_first_playlist(&origin, name, Duration::from_secs(15));
    // A viewer watches across the join (~6 s behind live, so it reaches the join ~15 s in).
    let play_url = format!("http://127.0.0.1:{}/live/{name}/index.m3u8", origin.http);
    let player = std::thread::spawn(move || play_url_in_browser(&play_url, 24));
    std::thread::sleep(Duration::from_secs(7));
    let before = parse_playlist(&origin.playlist(name).expect("playlist before the kill"));
    let last_before = before.segments.last().map(|s| s.0).unwrap();
    ff.kill();
    // `-re`: the first publisher sent at most this much media.
    let before_join_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let mut ff2 = publish(&input, &url, 60, &dir.join("ffmpeg2.log"));

    // Wait for segments after the join, up to ~14 s.
    let t0 = Instant::now();
    let mut after = None;
    let mut last_seq = before.media_sequence;
    while t0.elapsed() < Duration::from_secs(14) {
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            ff2.exited().is_none(),
            "second publisher stopped (refused?): {}; origin log:\n{}",
            std::fs::read_to_string(dir.join("ffmpeg2.log")).unwrap_or_default(),
            origin.log()
        );
        let p = parse_playlist(&origin.playlist(name).expect("playlist across the join"));
        assert!(
            p.media_sequence >= last_seq,
            "MEDIA-SEQUENCE went back:\n{}",
            p.text
        );
        last_seq = p.media_sequence;
        let join = p.segments.iter().position(|s| s.2);
        if join.is_some_and(|j| p.segments.len() - j >= 3) {
            after = Some(p);
            break;
        }
    }
    let p = after.unwrap_or_else(|| {
        panic!(
            "no discontinuity followed by 3 segments within 14 s; origin log:\n{}",
            origin.log()
        )
    });
    println!(
        "before the kill: MEDIA-SEQUENCE {} last segment {last_before}; after:\n{}",
        before.media_sequence, p.text
    );
    // EXT-X-DISCONTINUITY-SEQUENCE may be absent while it is 0 (RFC 8216 §4.3.3.3): the
    // discontinuity is still inside the window here.
    let join = p.segments.iter().position(|s| s.2).unwrap();
    assert!(
        p.segments[join].0 > last_before,
        "first segment after the join ({}) does not follow the last before it ({last_before})",
        p.segments[join].0
    );
    for (_, uri, _) in &p.segments[join..] {
        check_segment(&origin, name, uri, &dir);
    }
    let played = player.join().expect("browser thread");
    assert!(ff2.exited().is_none(), "second publisher stopped early");
    if let Some(r) = played {
        println!("hls.js across the join: {}", r.raw);
        assert!(r.ok, "hls.js did not play across the join: {}", r.raw);
        assert!(r.advanced_s >= 19.0, "{}", r.raw);
        assert!(
            r.advanced_s > before_join_s + 2.0,
            "the playhead did not get past the join ({before_join_s:.1} s of media before it): {}",
            r.raw
        );
        assert!(r.fatal_errors.is_empty(), "{}", r.raw);
    }
    ff2.kill();
}

/// ffmpeg pulling `rtmp://.../live/NAME` over RTMP play: `-t seconds -c copy` into an FLV file.
fn rtmp_pull(origin: &Origin, name: &str, seconds: u32, out: &Path, log: &Path) -> Proc {
    let child = Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(format!("rtmp://127.0.0.1:{}/live/{name}", origin.rtmp))
        .args(["-t", &seconds.to_string(), "-c", "copy", "-f", "flv"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("cannot start ffmpeg");
    Proc(Some(child))
}

/// Waits (bounded) for a process to exit; panics with `what` when it does not.
fn wait_exit(p: &mut Proc, limit: Duration, what: &str) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = p.exited() {
            return s;
        }
        assert!(
            t0.elapsed() < limit,
            "{what}: still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Resident set size of a process in KiB (`VmRSS` in /proc).
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn rtmp_players_start_at_a_keyframe_and_decode_the_live_stream() {
    let _serial = serial();
    let input = avc_aac_25(10, Container::Flv);
    let origin = Origin::start();
    let dir = TempDir::new("rtmp-play");
    let name = "e2e_relay";
    let url = origin.publish_url(name, &Origin::token_query(name));
    let mut ff = publish(&input, &url, 60, &dir.join("publish.log"));
    wait_first_playlist(&origin, name, Duration::from_secs(15));
    // Two players at once, 6 s each; they share the serialised messages.
    let t0 = Instant::now();
    let mut players: Vec<(Proc, PathBuf, PathBuf)> = (0..2)
        .map(|i| {
            let out = dir.join(&format!("pull{i}.flv"));
            let log = dir.join(&format!("pull{i}.log"));
            (rtmp_pull(&origin, name, 6, &out, &log), out, log)
        })
        .collect();
    // While they play, /streams.json counts them as viewers (with this test's own HLS
    // playlist polling from 127.0.0.1 above: 3).
    let viewers = |json: &str| -> Option<u64> {
        let v = json.split("\"viewers\":").nth(1)?;
        v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let mut seen = None;
    while t0.elapsed() < Duration::from_secs(5) && seen != Some(3) {
        seen = viewers(&origin.streams_json());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(seen, Some(3), "{}", origin.streams_json());
    for (i, (p, out, log)) in players.iter_mut().enumerate() {
        let status = wait_exit(p, Duration::from_secs(30), "RTMP player");
        let took = t0.elapsed();
        let errors = std::fs::read_to_string(&*log).unwrap_or_default();
        assert!(status.success(), "player {i}: ffmpeg {status}: {errors}");
        assert!(errors.trim().is_empty(), "player {i}: {errors}");
        // Starting at the cached GOP, 6 s of media arrive in less than 6 s + start-up.
        assert!(took < Duration::from_secs(12), "player {i} took {took:?}");
        let errors = decode_errors(out);
        assert!(errors.is_empty(), "player {i}: decode errors:\n{errors}");
        let v = packets(out, "v:0");
        let a = packets(out, "a:0");
        assert!(
            v.packets.first().is_some_and(|p| p.key),
            "player {i}: first video packet is not a keyframe"
        );
        assert!(
            v.packets.len() >= 140,
            "player {i}: {} video packets",
            v.packets.len()
        );
        assert!(
            a.packets.len() >= 250,
            "player {i}: {} audio packets",
            a.packets.len()
        );
        println!(
            "RTMP player {i}: {} video + {} audio packets in {took:?}, first video packet key",
            v.packets.len(),
            a.packets.len()
        );
    }
    let log = origin.log();
    assert_eq!(log.matches(&format!("play {name} by ")).count(), 4, "{log}");
    // An unknown stream is refused: ffmpeg fails fast.
    let mut p = rtmp_pull(&origin, "nobody", 2, &dir.join("x.flv"), &dir.join("x.log"));
    let status = wait_exit(
        &mut p,
        Duration::from_secs(10),
        "player of an unknown stream",
    );
    assert!(!status.success());
    assert!(
        origin.log().contains("refused play nobody"),
        "{}",
        origin.log()
    );
    // A second publisher on the live name, even with a valid token, is refused.
    let mut second = publish(&input, &url, 20, &dir.join("second.log"));
    let status = wait_exit(&mut second, Duration::from_secs(10), "second publisher");
    assert!(!status.success(), "second publisher: {status}");
    assert!(
        origin.log().contains(&format!("refused publish {name} ")),
        "{}",
        origin.log()
    );
    assert!(ff.exited().is_none(), "the publisher stopped");
    ff.kill();
}

#[test]
fn a_stalled_rtmp_player_is_cut_off_and_the_stream_goes_on() {
    let _serial = serial();
    // 8 Mbit/s CBR so the stalled player's socket buffers fill within seconds.
    let input = media(
        "cbr8m_20s.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=20",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=20",
            "-c:v",
            "libx264",
            "-threads",
            "1",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            "8M",
            "-minrate",
            "8M",
            "-maxrate",
            "8M",
            "-bufsize",
            "2M",
            "-x264-params",
            "nal-hrd=cbr",
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-f",
            "flv",
        ],
    );
    let origin = Origin::start();
    let pid = origin._proc.0.as_ref().map(Child::id).unwrap();
    let dir = TempDir::new("rtmp-stall");
    let name = "e2e_stall";
    let url = origin.publish_url(name, &Origin::token_query(name));
    let mut ff = publish(&input, &url, 90, &dir.join("publish.log"));
    wait_first_playlist(&origin, name, Duration::from_secs(15));
    let rss_before = rss_kib(pid);
    // A player that never reads what ffmpeg writes to its stdout: ffmpeg blocks, stops
    // reading its socket, and the origin's writes to it stall.
    let mut stalled = Proc(Some(
        Command::new(tool("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(format!("rtmp://127.0.0.1:{}/live/{name}", origin.rtmp))
            .args(["-c", "copy", "-f", "flv", "pipe:1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start ffmpeg"),
    ));
    // The origin cuts it off (write timeout or dropped for lagging) in bounded time, while
    // the HLS stream keeps producing a segment every ~2 s.
    let t0 = Instant::now();
    let mut last_segment = 0u64;
    let mut segments_during = 0u64;
    let mut rss_peak = rss_before;
    let cut = loop {
        let log = origin.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("dropped") || l.contains("write timed out"))
        {
            break Some((t0.elapsed(), line.to_string()));
        }
        if t0.elapsed() > Duration::from_secs(60) {
            break None;
        }
        if let Some(text) = origin.playlist(name) {
            let p = parse_playlist(&text);
            let newest = p.segments.last().map_or(0, |s| s.0);
            if newest > last_segment {
                segments_during += newest - last_segment;
                last_segment = newest;
            }
        }
        rss_peak = rss_peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(500));
    };
    let (after, line) = cut.unwrap_or_else(|| {
        panic!(
            "the stalled player was never cut off; log:\n{}",
            origin.log()
        )
    });
    println!(
        "stalled player cut after {after:?} ({line}); {segments_during} segments meanwhile; \
         origin RSS {rss_before} KiB before, peak {rss_peak} KiB"
    );
    // The publisher was never held back: one segment per ~2 s all along.
    let expected = after.as_secs() / 2;
    assert!(
        segments_during + 2 >= expected,
        "{segments_during} segments in {after:?}"
    );
    // Beyond the TS segments it keeps (9 x 2 s at 8 Mbit/s), what the origin buffered for
    // the stalled player stayed bounded: the relay holds at most 16 MiB.
    let json = origin.streams_json();
    let stored_kib: u64 = json
        .split("\"stored_bytes\":")
        .nth(1)
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no stored_bytes: {json}"))
        / 1024;
    println!("segments kept: {stored_kib} KiB");
    assert!(
        rss_peak < rss_before + stored_kib + 24 * 1024,
        "RSS grew from {rss_before} to {rss_peak} KiB with {stored_kib} KiB of segments"
    );
    assert!(ff.exited().is_none(), "the publisher stopped");
    // The cut-off player's ffmpeg sees the end of its stream once it reads again.
    if let Some(mut out) = stalled.0.as_mut().and_then(|c| c.stdout.take()) {
        let mut sink = Vec::new();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.extend_from_slice(&buf[..n.min(16)]),
                }
            }
        });
        wait_exit(&mut stalled, Duration::from_secs(20), "cut-off player");
        let _ = reader.join();
    }
    ff.kill();
}
