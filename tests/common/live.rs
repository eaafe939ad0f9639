//! The live origin (`examples/live_origin.rs`) under test: `use common::live::*;`.
//!
//! * [`example_bin`]: the example of this build profile, rebuilt when missing or stale.
//! * [`Origin`]: a running origin on fresh loopback ports, killed by PID on drop, with its
//!   log and HTTP accessors ([`Origin::playlist`], [`Origin::streams_json`], ...).
//! * [`get`]: a bounded HTTP/1.1 GET (chunked bodies decoded).
//! * [`Playlist`]: what the tests read from a media playlist (RFC 8216 §4.3).
//! * [`publish`], [`rtmp_pull`]: ffmpeg as an RTMP publisher / player; [`Proc`] kills it.
//! * [`check_segment`], [`wait_first_playlist`], [`wait_exit`], [`rss_kib`].
//!
//! Every process started here is a [`Proc`]: killed (SIGKILL) and reaped by PID on drop,
//! also when a test panics. Every loop is bounded.
#![allow(dead_code)]

use super::{decode_errors, packets, repo_root, tool, TempDir};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strom::auth::TokenAuthorizer;

/// The publish secret [`Origin::start`] gives the origin (`--publish-secret`).
pub const PUBLISH_SECRET: &str = "e2e-secret";

/// Newest modification time of the files the example is built from.
fn newest_source() -> Option<SystemTime> {
    let root = repo_root();
    let mut newest = None;
    let mut dirs = vec![root.join("src")];
    let mut files = vec![
        root.join("Cargo.toml"),
        root.join("examples/live_origin.rs"),
        root.join("examples/live_origin.html"),
    ];
    // Bounded walk of src/.
    for _ in 0..10_000 {
        let Some(d) = dirs.pop() else { break };
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    for f in files {
        if let Ok(t) = std::fs::metadata(&f).and_then(|m| m.modified()) {
            newest = newest.max(Some(t));
        }
    }
    newest
}

/// The `live_origin` example of this build profile.
///
/// `cargo test` builds examples, but `cargo test --test live_faults` does not: when the
/// binary is missing or older than its sources, it is built here (same profile) so the
/// test never runs a stale origin.
pub fn example_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join("live_origin");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if built.is_none() || built < newest_source() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo_root())
            .args(["build", "--example", "live_origin"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        println!("live_origin is missing or older than its sources: {cmd:?}");
        let out = cmd.stdin(Stdio::null()).output().expect("cannot run cargo");
        assert!(
            out.status.success(),
            "cannot build the live_origin example:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(bin.is_file(), "{} not built", bin.display());
    bin
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Kills a child process by PID (SIGKILL) and reaps it when dropped.
pub struct Proc(pub Option<Child>);

impl Proc {
    /// Kills and reaps the process now (nothing if it is already gone).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `Some(exit status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// The process id, while it is running (not yet killed).
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (bounded) for a process to exit; panics with `what` when it does not.
pub fn wait_exit(p: &mut Proc, limit: Duration, what: &str) -> ExitStatus {
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

/// Resident set size of a process in KiB (`VmRSS` in /proc; 0 when unknown).
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A running `live_origin` with its ports; killed on drop.
pub struct Origin {
    /// RTMP port on 127.0.0.1.
    pub rtmp: u16,
    /// HTTP port on 127.0.0.1.
    pub http: u16,
    /// The origin process.
    pub proc: Proc,
    _log_dir: TempDir,
    log: PathBuf,
}

impl Origin {
    /// [`Origin::start_with`] `--publish-secret` [`PUBLISH_SECRET`]: publishers need a token
    /// ([`Origin::token_query`]).
    pub fn start() -> Origin {
        Origin::start_with(&["--publish-secret", PUBLISH_SECRET])
    }

    /// Starts the origin on fresh loopback ports (`--rtmp`, `--http`, then `extra_args`),
    /// its stderr going to a log file, and waits (at most 10 s per attempt, 5 attempts on
    /// other ports) until `/streams.json` answers 200. Panics with the log when it does not.
    pub fn start_with(extra_args: &[&str]) -> Origin {
        let dir = TempDir::new("live-origin");
        let log = dir.join("origin.log");
        for _attempt in 0..5 {
            let (rtmp, http) = (free_port(), free_port());
            if rtmp == http {
                continue;
            }
            let mut proc = spawn_logged(
                Command::new(example_bin())
                    .args(["--rtmp", &format!("127.0.0.1:{rtmp}")])
                    .args(["--http", &format!("127.0.0.1:{http}")])
                    .args(extra_args),
                &log,
            );
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) && proc.exited().is_none() {
                if get(http, "/streams.json").is_some_and(|r| r.status == 200) {
                    return Origin {
                        rtmp,
                        http,
                        proc,
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

    /// Everything the origin logged so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The origin's process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid().expect("the origin process was killed")
    }

    /// The RTMP listening address.
    pub fn rtmp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.rtmp))
    }

    /// `rtmp://127.0.0.1:PORT/live/{name}{query}`.
    pub fn publish_url(&self, name: &str, query: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}{query}", self.rtmp)
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// `?token=...` for publishing `name` (valid for an hour) to an origin started with
    /// [`Origin::start`].
    pub fn token_query(name: &str) -> String {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 3600;
        let t = TokenAuthorizer::new(PUBLISH_SECRET.as_bytes().to_vec()).token(name, exp);
        format!("?token={t}")
    }

    /// [`get`] on the origin's HTTP port.
    pub fn get(&self, path: &str) -> Option<Resp> {
        get(self.http, path)
    }

    /// [`post`] on the origin's HTTP port.
    pub fn post(&self, path: &str, body: &[u8]) -> Option<Resp> {
        post(self.http, path, body)
    }

    /// The media playlist text, when it exists (200).
    pub fn playlist(&self, name: &str) -> Option<String> {
        self.get(&format!("/live/{name}/media.m3u8"))
            .filter(|r| r.status == 200)
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
    }

    /// The `/streams.json` text; panics unless it answers 200.
    pub fn streams_json(&self) -> String {
        let r = self.get("/streams.json").expect("/streams.json");
        assert_eq!(r.status, 200, "/streams.json");
        String::from_utf8_lossy(&r.body).into_owned()
    }
}

/// An HTTP response: status and (de-chunked) body.
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Body, `Transfer-Encoding: chunked` decoded.
    pub body: Vec<u8>,
}

/// A bounded HTTP/1.1 GET on 127.0.0.1 (`Connection: close`, 5 s timeouts, 64 MiB cap).
pub fn get(port: u16, path: &str) -> Option<Resp> {
    request(port, "GET", path, None)
}

/// A bounded HTTP/1.1 POST of `body` (`application/json`) on 127.0.0.1, as [`get`].
pub fn post(port: u16, path: &str, body: &[u8]) -> Option<Resp> {
    request(port, "POST", path, Some(body))
}

fn request(port: u16, method: &str, path: &str, body: Option<&[u8]>) -> Option<Resp> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra = body.map_or(String::new(), |b| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        )
    });
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n"
    )
    .ok()?;
    if let Some(b) = body {
        s.write_all(b).ok()?;
    }
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

/// Decodes a complete `Transfer-Encoding: chunked` body (RFC 9112 §7.1); `None` when it is
/// not one.
pub fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
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

/// What the tests read from a media playlist (RFC 8216 §4.3.2.2, §4.3.3.2).
#[derive(Debug)]
pub struct Playlist {
    /// `EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
    /// (media sequence number, URI, preceded by EXT-X-DISCONTINUITY)
    pub segments: Vec<(u64, String, bool)>,
    /// The whole playlist.
    pub text: String,
}

impl Playlist {
    /// Parses a media playlist; panics when it has no (integer) `EXT-X-MEDIA-SEQUENCE`.
    pub fn parse(text: &str) -> Playlist {
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

    /// Media sequence number of the newest segment (0 when there is none).
    pub fn newest(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.0)
    }
}

/// Spawns `cmd` with stdin and stdout null and stderr written to `log`.
fn spawn_logged(cmd: &mut Command, log: &Path) -> Proc {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    Proc(Some(child))
}

/// ffmpeg publishing `input` in a loop (`-re -stream_loop -1 ... -c copy -f flv url`).
pub fn publish(input: &Path, url: &str, seconds: u32, log: &Path) -> Proc {
    spawn_logged(
        Command::new(tool("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i"])
            .arg(input)
            .args(["-t", &seconds.to_string(), "-c", "copy", "-f", "flv", url]),
        log,
    )
}

/// ffmpeg pulling `rtmp://.../live/NAME` over RTMP play: `-t seconds -c copy` into an FLV file.
pub fn rtmp_pull(origin: &Origin, name: &str, seconds: u32, out: &Path, log: &Path) -> Proc {
    spawn_logged(
        Command::new(tool("ffmpeg"))
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(origin.publish_url(name, ""))
            .args(["-t", &seconds.to_string(), "-c", "copy", "-f", "flv"])
            .arg(out),
        log,
    )
}

/// Fetches one segment (`uri` relative to `/live/{name}/` or absolute), checks it is
/// MPEG-TS (ISO/IEC 13818-1: 188-byte packets, sync byte 0x47) that decodes cleanly and
/// starts with a video keyframe. The file is written to `dir` for ffmpeg, then removed.
pub fn check_segment(origin: &Origin, name: &str, uri: &str, dir: &TempDir) {
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
pub fn wait_first_playlist(
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
            let p = Playlist::parse(&text);
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
