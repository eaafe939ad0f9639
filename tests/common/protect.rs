//! Helpers for tests of protected packages (`tests/package_encrypt.rs`):
//!
//! * [`package_bin`] / [`package`]: the `package` example of this build profile, built
//!   when missing or older than its sources, and a run of it.
//! * [`LicenceServer`]: a directory served over HTTP on 127.0.0.1 with CORS, plus a W3C
//!   Clear Key licence endpoint (`POST /licence`, answered with
//!   `strom::origin::clearkey`), for players in headless Chromium (`play.mjs --url`).
//!   Bounded: one thread per connection, at most [`LicenceServer::MAX_REQUESTS`]
//!   requests and [`LicenceServer::LIFETIME`]; stopped on drop.
//! * [`strict_init`], [`strict_fragment`]: protected CMAF files decoded box by box with
//!   mp4-atom (nothing unknown, nothing left over), the CENC boxes mp4-atom 0.17 does not
//!   know (`sinf`, `pssh`) walked by hand.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use mp4_atom::{Any, Decode};
use strom::crypto::{ContentKey, KeyId};
use strom::origin::clearkey::{licence_response, parse_licence_request};

use super::repo_root;

/// Newest modification time of the sources the `package` example is built from.
fn newest_source() -> Option<SystemTime> {
    let root = repo_root();
    let mut dirs = vec![root.join("src"), root.join("examples/common")];
    let mut files = vec![root.join("Cargo.toml"), root.join("examples/package.rs")];
    for _ in 0..10_000 {
        let Some(d) = dirs.pop() else { break };
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files
        .iter()
        .filter_map(|f| fs::metadata(f).and_then(|m| m.modified()).ok())
        .max()
}

/// The `package` example of this build profile. `cargo test` builds examples, but
/// `cargo test --test package_encrypt` does not: when the binary is missing or older than
/// its sources it is built here (same profile), so a test never runs a stale packager.
pub fn package_bin() -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join("package");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let stamp = fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if !*built && (stamp.is_none() || stamp < newest_source()) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo_root())
            .args(["build", "--example", "package"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        println!("the package example is missing or older than its sources: {cmd:?}");
        let out = cmd.stdin(Stdio::null()).output().expect("cannot run cargo");
        assert!(
            out.status.success(),
            "cannot build the package example:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    *built = true;
    assert!(bin.is_file(), "{} not built", bin.display());
    bin
}

/// What one run of the `package` example did.
pub struct Run {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// `package INPUT --out OUT ARGS...`.
pub fn package(input: &Path, out: &Path, args: &[&str]) -> Run {
    let r = Command::new(package_bin())
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the package example runs");
    Run {
        code: r.status.code(),
        stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
    }
}

/// Like [`package`], asserting success.
pub fn package_ok(input: &Path, out: &Path, args: &[&str]) -> String {
    let r = package(input, out, args);
    assert_eq!(
        r.code,
        Some(0),
        "package {args:?}: {}{}",
        r.stdout,
        r.stderr
    );
    r.stdout
}

/// A directory served on 127.0.0.1 (GET and HEAD, byte ranges, CORS) with a W3C Clear
/// Key licence endpoint at `POST /licence` that knows `keys`. Every request is logged
/// as `METHOD PATH STATUS`.
pub struct LicenceServer {
    port: u16,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl LicenceServer {
    /// Most requests served before the server stops answering.
    pub const MAX_REQUESTS: usize = 5_000;
    /// The server stops accepting after this long.
    pub const LIFETIME: Duration = Duration::from_secs(180);

    /// Serves `dir` and answers licence requests for `keys`.
    pub fn start(dir: &Path, keys: Vec<(KeyId, ContentKey)>) -> LicenceServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let root = fs::canonicalize(dir).unwrap();
        let keys = Arc::new(keys);
        let (stop2, log2) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Self::LIFETIME;
            let served = Arc::new(AtomicUsize::new(0));
            let mut workers: Vec<JoinHandle<()>> = Vec::new();
            while !stop2.load(Ordering::Relaxed)
                && Instant::now() < deadline
                && served.load(Ordering::Relaxed) < Self::MAX_REQUESTS
            {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (root, keys, log, served) =
                            (root.clone(), keys.clone(), log2.clone(), served.clone());
                        workers.push(std::thread::spawn(move || {
                            serve(conn, &root, &keys, &log, &served);
                        }));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
                workers.retain(|w| !w.is_finished());
            }
            // Workers end on their own: each has a read timeout.
            for w in workers {
                let _ = w.join();
            }
        });
        LicenceServer {
            port,
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/` and `path`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// Requests so far, `METHOD PATH STATUS`.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for LicenceServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const CORS: &str = "Access-Control-Allow-Origin: *\r\n\
                    Access-Control-Allow-Methods: GET, HEAD, POST, OPTIONS\r\n\
                    Access-Control-Allow-Headers: content-type, range\r\n\
                    Access-Control-Expose-Headers: content-length, content-range\r\n";

/// Answers the requests of one connection (keep-alive), until it closes or idles 10 s.
fn serve(
    mut conn: TcpStream,
    root: &Path,
    keys: &[(KeyId, ContentKey)],
    log: &Mutex<Vec<String>>,
    served: &AtomicUsize,
) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        // One request head.
        let head_end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if pending.len() > 64 * 1024 {
                return;
            }
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("/").to_string();
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let body_len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            .min(64 * 1024);
        while pending.len() < head_end + body_len {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        let body: Vec<u8> = pending[head_end..head_end + body_len].to_vec();
        pending.drain(..head_end + body_len);
        let path = target.split('?').next().unwrap_or("/").to_string();
        let (status, ctype, payload, range) =
            respond(&method, &path, &body, header("range"), root, keys);
        if served.fetch_add(1, Ordering::Relaxed) >= LicenceServer::MAX_REQUESTS {
            return;
        }
        log.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{method} {path} {status}"));
        let reason = match status {
            200 => "OK",
            204 => "No Content",
            206 => "Partial Content",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Error",
        };
        let mut resp = format!(
            "HTTP/1.1 {status} {reason}\r\n{CORS}Cache-Control: no-cache\r\n\
             Content-Type: {ctype}\r\nContent-Length: {}\r\n",
            payload.len()
        );
        if let Some(r) = range {
            resp.push_str(&format!("Content-Range: {r}\r\n"));
        }
        resp.push_str("\r\n");
        let body = if method == "HEAD" {
            &[][..]
        } else {
            &payload[..]
        };
        if conn.write_all(resp.as_bytes()).is_err() || conn.write_all(body).is_err() {
            return;
        }
    }
}

/// (status, content type, body, content-range) for one request.
fn respond(
    method: &str,
    path: &str,
    body: &[u8],
    range: Option<String>,
    root: &Path,
    keys: &[(KeyId, ContentKey)],
) -> (u16, &'static str, Vec<u8>, Option<String>) {
    const TEXT: &str = "text/plain";
    match method {
        "OPTIONS" => (204, TEXT, Vec::new(), None),
        "POST" if path == "/licence" => match parse_licence_request(body) {
            Ok(kids) => {
                let found: Vec<(KeyId, ContentKey)> = keys
                    .iter()
                    .filter(|(k, _)| kids.contains(k))
                    .cloned()
                    .collect();
                if found.is_empty() {
                    (404, TEXT, b"no such key".to_vec(), None)
                } else {
                    let licence = licence_response(&found);
                    (200, "application/json", licence.into_bytes(), None)
                }
            }
            Err(e) => (400, TEXT, e.to_string().into_bytes(), None),
        },
        "GET" | "HEAD" => {
            let rel = path.trim_start_matches('/');
            if rel.split('/').any(|c| c == ".." || c.is_empty()) {
                return (404, TEXT, Vec::new(), None);
            }
            let file = root.join(rel);
            let Ok(data) = fs::read(&file) else {
                return (404, TEXT, Vec::new(), None);
            };
            let ctype = match file.extension().and_then(|e| e.to_str()) {
                Some("mpd") => "application/dash+xml",
                Some("m3u8") => "application/vnd.apple.mpegurl",
                Some("mp4") => "video/mp4",
                Some("m4s") => "video/iso.segment",
                Some("ts") => "video/mp2t",
                _ => "application/octet-stream",
            };
            // `bytes=A-B` or `bytes=A-`: Shaka asks for ranges of some files.
            if let Some(r) = range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
                let (a, b) = r.split_once('-').unwrap_or((r, ""));
                let len = data.len();
                let start: usize = a.parse().unwrap_or(0);
                let end: usize = b.parse().map_or(len.saturating_sub(1), |e: usize| {
                    e.min(len.saturating_sub(1))
                });
                if start < len && start <= end {
                    let cr = format!("bytes {start}-{end}/{len}");
                    return (206, ctype, data[start..=end].to_vec(), Some(cr));
                }
            }
            (200, ctype, data, None)
        }
        _ => (405, TEXT, Vec::new(), None),
    }
}

/// Big-endian u32 at `at`.
pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// The boxes laid end to end in `data`: (type, whole box, offset). Panics on a box that
/// does not fit.
pub fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8], usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        assert!(data.len() - at >= 8, "box header cut at {at}");
        let size = be32(data, at) as usize;
        assert!(
            size >= 8 && at + size <= data.len(),
            "box size {size} at {at}"
        );
        out.push((
            data[at + 4..at + 8].try_into().unwrap(),
            &data[at..at + size],
            at,
        ));
        at += size;
    }
    out
}

/// The first child `kind` of the boxes in `data` (whole box).
pub fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    boxes(data)
        .into_iter()
        .find(|(k, _, _)| k == kind)
        .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(kind)))
        .1
}

/// Decodes every box of `data` with mp4-atom, recursing into the containers: nothing
/// unknown, nothing left over. The protected sample entry (`encv`/`enca`) is entered by
/// hand: its clear child boxes (`avcC`, `esds`, `btrt`...) decoded by mp4-atom, its
/// `sinf` listed; `pssh` boxes are listed. Returns every box type seen, in order.
pub fn strict_walk(data: &[u8], what: &str) -> Vec<String> {
    fn walk(data: &[u8], what: &str, seen: &mut Vec<String>) {
        const CONTAINERS: [&[u8; 4]; 9] = [
            b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl", b"mvex", b"moof", b"traf",
        ];
        for (kind, whole, at) in boxes(data) {
            let name = String::from_utf8_lossy(&kind).into_owned();
            seen.push(name.clone());
            if kind == *b"pssh" {
                continue;
            }
            if kind == *b"stsd" {
                assert_eq!(be32(whole, 12), 1, "{what}: one sample entry");
                let entry = &whole[16..];
                let ekind: [u8; 4] = entry[4..8].try_into().unwrap();
                seen.push(String::from_utf8_lossy(&ekind).into_owned());
                let fixed = match &ekind {
                    b"encv" => 78,
                    b"enca" => 28,
                    other => panic!("{what}: sample entry {other:?} is not encv/enca"),
                };
                for (k, inner, _) in boxes(&entry[8 + fixed..be32(entry, 0) as usize]) {
                    seen.push(String::from_utf8_lossy(&k).into_owned());
                    if k == *b"sinf" {
                        for (s, _, _) in boxes(&inner[8..]) {
                            seen.push(format!("sinf/{}", String::from_utf8_lossy(&s)));
                        }
                        continue;
                    }
                    let mut view = inner;
                    let any = Any::decode(&mut view)
                        .unwrap_or_else(|e| panic!("{what}: {k:?} in {ekind:?}: {e}"));
                    assert!(view.is_empty(), "{what}: bytes left in {k:?}");
                    assert!(!matches!(any, Any::Unknown(..)), "{what}: unknown {k:?}");
                }
                continue;
            }
            let mut view = whole;
            let any =
                Any::decode(&mut view).unwrap_or_else(|e| panic!("{what}: {name} at {at}: {e}"));
            assert!(view.is_empty(), "{what}: bytes left in {name}");
            assert!(
                !matches!(any, Any::Unknown(..)),
                "{what}: unknown box {name}"
            );
            if CONTAINERS.contains(&&kind) {
                walk(&whole[8..], what, seen);
            }
        }
    }
    let mut seen = Vec::new();
    walk(data, what, &mut seen);
    seen
}

/// What a protected init segment says: the sample entry type, the original format
/// (`frma`), the scheme (`schm`), `tenc`'s fields and the `pssh` boxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProtection {
    /// `encv` or `enca`.
    pub entry: String,
    /// `frma` data format (`avc1`, `mp4a`).
    pub original: String,
    /// `schm` scheme type (`cenc`, `cbcs`) and version.
    pub scheme: (String, u32),
    /// `tenc` version.
    pub tenc_version: u8,
    /// `tenc` crypt:skip pattern (version 1), 0:0 otherwise.
    pub pattern: (u8, u8),
    /// `default_isProtected`.
    pub protected: bool,
    /// `default_Per_Sample_IV_Size`.
    pub iv_size: u8,
    /// `default_KID`.
    pub kid: [u8; 16],
    /// `default_constant_IV` (empty without).
    pub constant_iv: Vec<u8>,
    /// (system id, key ids) of every `pssh`.
    pub pssh: Vec<([u8; 16], Vec<[u8; 16]>)>,
}

/// Checks a protected init segment strictly ([`strict_walk`]) and reads its protection
/// by hand (ISO/IEC 23001-7 §8.1, §8.2; ISO/IEC 14496-12 §8.12).
pub fn strict_init(init: &[u8], what: &str) -> InitProtection {
    let seen = strict_walk(init, what);
    let moov = child(init, b"moov");
    let trak = child(&moov[8..], b"trak");
    let mdia = child(&trak[8..], b"mdia");
    let minf = child(&mdia[8..], b"minf");
    let stbl = child(&minf[8..], b"stbl");
    let stsd = child(&stbl[8..], b"stsd");
    let entry = &stsd[16..];
    let ekind = String::from_utf8_lossy(&entry[4..8]).into_owned();
    let fixed = if ekind == "encv" { 78 } else { 28 };
    let sinf = child(&entry[8 + fixed..be32(entry, 0) as usize], b"sinf");
    let frma = child(&sinf[8..], b"frma");
    let schm = child(&sinf[8..], b"schm");
    let schi = child(&sinf[8..], b"schi");
    let tenc = child(&schi[8..], b"tenc");
    let version = tenc[8];
    let iv_size = tenc[15];
    let constant_iv = if iv_size == 0 && tenc[14] == 1 {
        let n = tenc[32] as usize;
        tenc[33..33 + n].to_vec()
    } else {
        Vec::new()
    };
    let pssh = boxes(&moov[8..])
        .into_iter()
        .filter(|b| &b.0 == b"pssh")
        .map(|(_, p, _)| {
            let system: [u8; 16] = p[12..28].try_into().unwrap();
            let mut kids = Vec::new();
            if p[8] >= 1 {
                let n = be32(p, 28) as usize;
                for i in 0..n {
                    kids.push(p[32 + 16 * i..48 + 16 * i].try_into().unwrap());
                }
            }
            (system, kids)
        })
        .collect();
    assert!(seen.iter().any(|s| s == "sinf/schi"), "{what}: {seen:?}");
    InitProtection {
        entry: ekind,
        original: String::from_utf8_lossy(&frma[8..12]).into_owned(),
        scheme: (
            String::from_utf8_lossy(&schm[12..16]).into_owned(),
            be32(schm, 16),
        ),
        tenc_version: version,
        pattern: if version >= 1 {
            (tenc[13] >> 4, tenc[13] & 0x0f)
        } else {
            (0, 0)
        },
        protected: tenc[14] == 1,
        iv_size,
        kid: tenc[16..32].try_into().unwrap(),
        constant_iv,
        pssh,
    }
}

/// What a protected fragment's `traf` holds, as mp4-atom decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentProtection {
    /// Samples in `trun`.
    pub samples: usize,
    /// `senc` present, and its `use_subsamples` flag.
    pub senc: Option<bool>,
    /// `saiz` boxes.
    pub saiz: usize,
    /// `saio` boxes.
    pub saio: usize,
    /// Whether the `saio` offset (from the `moof`) lands on the `senc`'s first entry.
    pub saio_hits_senc: bool,
}

/// Checks a protected media segment strictly ([`strict_walk`]: `styp`, `moof` with
/// `senc`/`saiz`/`saio` decoded by mp4-atom, `mdat`) and reports its CENC boxes.
pub fn strict_fragment(frag: &[u8], what: &str) -> FragmentProtection {
    strict_walk(frag, what);
    let top = boxes(frag);
    let kinds: Vec<[u8; 4]> = top.iter().map(|b| b.0).collect();
    assert_eq!(kinds, [*b"styp", *b"moof", *b"mdat"], "{what}");
    let moof_at = top[1].2;
    let mut view = top[1].1;
    let Any::Moof(moof) = Any::decode(&mut view).unwrap() else {
        panic!("{what}: moof")
    };
    assert_eq!(moof.traf.len(), 1, "{what}: one traf");
    let traf = &moof.traf[0];
    let samples = traf.trun.iter().map(|t| t.samples.len()).sum();
    let senc = traf.senc.as_ref();
    let mut saio_hits_senc = false;
    if let (Some(saio), Some(senc)) = (traf.saio.first(), senc) {
        let at = moof_at + saio.offsets[0] as usize;
        // The senc body is (sample_count, entries): the offset points past the count.
        let entries = &senc.data[4..];
        saio_hits_senc = frag.get(at..at + entries.len()) == Some(entries);
    }
    FragmentProtection {
        samples,
        senc: senc.map(|s| s.use_subsamples),
        saiz: traf.saiz.len(),
        saio: traf.saio.len(),
        saio_hits_senc,
    }
}
