//! Live origin: RTMP in; HLS (MPEG-TS and fMP4) and DASH out.
//!
//! ```sh
//! cargo run --release --example live_origin -- [--rtmp 127.0.0.1:1935] [--http 127.0.0.1:8080] [--publish-secret S]
//!     [--handshake-timeout-ms MS] [--idle-timeout-ms MS] [--read-coalesce-ms MS] [--cmaf on|off]
//!     [--key-secret S [--playback-secret P] [--rotate N] [--public-url URL]]
//!     [--record DIR [--sync always|never]] [--dvr-window-s S] [--cue-key K] [--ad-creative AD.mp4]
//! ```
//!
//! An encoder publishes `rtmp://HOST/live/NAME?token=T`; viewers play
//! `http://HOST:8080/live/NAME/index.m3u8` (HLS, MPEG-TS),
//! `http://HOST:8080/live/NAME/cmaf.m3u8` (HLS, fMP4) or
//! `http://HOST:8080/live/NAME/manifest.mpd` (DASH; `/time` is its clock); `GET /` is
//! a status page that lists the live streams with these URLs and plays one with hls.js. With `--publish-secret`, publishing needs
//! a token from [`strom::auth::TokenAuthorizer`] (printed at start for `NAME=test`);
//! without it, any publisher is accepted. A second publisher on a live name is
//! refused.
//!
//! This file is only the host: sockets, tasks, the clock and one mutex. Every
//! protocol and packaging decision is in the sans-IO library (`RtmpSession`,
//! `FlvDemuxer`, `Origin`, `RtmpRelay`).
//!
//! RTMP players (`ffplay rtmp://HOST/live/NAME`) are served from each stream's
//! `RtmpRelay`: they start at the last keyframe; one that cannot keep up skips
//! ahead to a keyframe and, if it keeps lagging, is dropped; the publisher never
//! waits for them. `--handshake-timeout-ms` and `--idle-timeout-ms` set the RTMP
//! session timeouts (defaults 10 000 and 30 000). `--read-coalesce-ms` (default 60)
//! is the shortest time between two reads of a publisher's socket once its first
//! segment is out: fewer, larger reads for at most that much ingest latency (0 reads
//! as soon as bytes arrive). `--cmaf off` serves MPEG-TS HLS only (no fMP4 HLS, no
//! DASH), for origins whose players all take TS.
//!
//! `--key-secret S` protects content just in time: keys derive from `S` (HMAC, one per
//! stream and crypto period, a new one every `--rotate N` segments), the origin serves
//! `/keys/...` and the Clear Key licence endpoint `POST /licence/NAME`, and
//! the stream goes out protected per request: `/live/NAME/aes128/index.m3u8` (HLS
//! AES-128), `/live/NAME/sample-aes/index.m3u8` (HLS SAMPLE-AES), and
//! `/live/NAME/cenc/manifest.mpd` or `/live/NAME/cbcs/cmaf.m3u8` (CENC DASH and fMP4
//! HLS; the MPD names the licence endpoint under `--public-url`, by default
//! `http://` and the `--http` address). With
//! `--playback-secret P` every one of those needs `?token=T` (a
//! [`strom::auth::TokenAuthorizer`] token under `P`; one for `NAME=test` is printed).
//!
//! `--record DIR` keeps every stream on disk ([`strom::origin::DiskStore`] under
//! `DIR`): segments are written atomically with an index, a stream that ends stays
//! available as a recording (`/live/NAME/dvr.m3u8`, VOD), and an origin restarted on
//! the same `DIR` (even after `kill -9`) serves what it served before and continues
//! each stream's numbering when its publisher returns. `--sync never` skips `fsync`
//! (survives a killed process, not a power loss). `--dvr-window-s S` (default 172 800
//! with `--record`, 0 without) lets viewers go back `S` seconds:
//! `/live/NAME/dvr.m3u8`, `?start=UNIX` / `?offset=-SECONDS` start-over on any
//! playlist, and a DASH `timeShiftBufferDepth` over the window.
//!
//! Ad breaks: SCTE-35 cues a publisher sends (`onCuePoint` data messages) cut the
//! segments at the first keyframe at or after their splice time and are marked in
//! every playlist (`EXT-X-DATERANGE`, `EXT-X-CUE-OUT` / `-CONT` / `-IN`). With
//! `--cue-key K`, operators schedule breaks themselves:
//! `curl -X POST 'http://HOST:8080/live/NAME/cue?key=K&duration=30'` (optional `id`,
//! `start` in Unix ms, `kind=in` to end a break early).
//! `--ad-creative AD.mp4` packages that file as an ad (it must have the content's codecs,
//! profile, level, resolution and audio format) and inserts it server-side for every
//! viewer of `/live/NAME/ssai/SESSION/index.m3u8` (see `strom::package::ssai`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use strom::auth::TokenAuthorizer;
use strom::crypto::key::{HmacKeyProvider, KeyRotation};
use strom::ingest::flv::FlvDemuxer;
use strom::ingest::rtmp::{
    PlayerId, RejectReason, RelayOptions, RelayPoll, RtmpConfig, RtmpEvent, RtmpRelay, RtmpSession,
};
use strom::origin::clearkey::MAX_REQUEST_LEN;
use strom::origin::{
    DiskStore, DiskStoreOptions, MemoryStore, MemoryStoreOptions, Method, Origin, OriginOptions,
    Protection, Request, SegmentStore, SyncPolicy,
};
use strom::pipeline::Stage;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Everything the connections share, behind one mutex: the sans-IO origin and, per
/// stream, the RTMP relay that feeds its RTMP players.
/// The store the origin runs on: memory, or a recording directory.
type Store = Box<dyn SegmentStore + Send>;

struct Live {
    origin: Origin<Store>,
    relays: HashMap<String, Relay>,
}

/// A stream's [`RtmpRelay`], the signal that wakes its players' tasks, and who plays.
struct Relay {
    relay: RtmpRelay,
    wake: watch::Sender<u64>,
    players: HashMap<PlayerId, String>,
}

type Shared = Arc<Mutex<Live>>;

/// Payload bytes handed to one player per relay read, before its socket write.
const PLAYER_BUDGET: usize = 256 * 1024;
/// Default shortest time between two reads of a publisher's socket (milliseconds).
const READ_COALESCE_MS: u64 = 60;
/// A player whose socket accepts nothing for this long is closed.
const PLAYER_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    rtmp: SocketAddr,
    http: SocketAddr,
    secret: Option<String>,
    /// RTMP session timeouts (handshake, idle), milliseconds.
    session: RtmpConfig,
    /// Shortest time between two reads of a publisher's socket.
    read_coalesce: Duration,
    /// Package CMAF (fMP4 HLS, DASH) next to MPEG-TS.
    cmaf: bool,
    /// Secret the content keys derive from (HMAC); enables the protected routes.
    key_secret: Option<String>,
    /// Secret of playback tokens: key, licence and protected routes need one.
    playback_secret: Option<String>,
    /// A new key every so many segments (0: one key per stream).
    rotate: u64,
    /// The origin's address as players reach it, for the licence URL in protected MPDs.
    public_url: Option<String>,
    /// Record every stream under this directory (a durable store).
    record: Option<PathBuf>,
    /// fsync what is recorded.
    sync: SyncPolicy,
    /// How far back viewers may go, seconds (None: 48 h with `--record`, else 0).
    dvr_window_s: Option<i64>,
    /// Operator key of the cue API (`POST /live/NAME/cue?key=K`); None: the API is off.
    cue_key: Option<String>,
    /// An MP4 file inserted server-side into every break (`/live/NAME/ssai/...`).
    ad_creative: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        rtmp: "127.0.0.1:1935".parse().map_err(|e| format!("{e}"))?,
        http: "127.0.0.1:8080".parse().map_err(|e| format!("{e}"))?,
        secret: None,
        session: RtmpConfig::default(),
        read_coalesce: Duration::from_millis(READ_COALESCE_MS),
        cmaf: true,
        key_secret: None,
        playback_secret: None,
        rotate: 0,
        public_url: None,
        record: None,
        sync: SyncPolicy::Always,
        dvr_window_s: None,
        cue_key: None,
        ad_creative: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--rtmp" => a.rtmp = v.parse().map_err(|e| format!("--rtmp {v}: {e}"))?,
            "--http" => a.http = v.parse().map_err(|e| format!("--http {v}: {e}"))?,
            "--publish-secret" => a.secret = Some(v),
            "--handshake-timeout-ms" => {
                a.session.handshake_timeout_ms = v.parse().map_err(|e| format!("{k} {v}: {e}"))?
            }
            "--read-coalesce-ms" => {
                a.read_coalesce =
                    Duration::from_millis(v.parse().map_err(|e| format!("{k} {v}: {e}"))?)
            }
            "--idle-timeout-ms" => {
                a.session.idle_timeout_ms = v.parse().map_err(|e| format!("{k} {v}: {e}"))?
            }
            "--cmaf" => {
                a.cmaf = match v.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("{k} {v}: on or off")),
                }
            }
            "--key-secret" => a.key_secret = Some(v),
            "--playback-secret" => a.playback_secret = Some(v),
            "--rotate" => a.rotate = v.parse().map_err(|e| format!("{k} {v}: {e}"))?,
            "--public-url" => a.public_url = Some(v),
            "--record" => a.record = Some(PathBuf::from(v)),
            "--sync" => {
                a.sync = match v.as_str() {
                    "always" => SyncPolicy::Always,
                    "never" => SyncPolicy::Never,
                    _ => return Err(format!("{k} {v}: always or never")),
                }
            }
            "--dvr-window-s" => {
                let s: i64 = v.parse().map_err(|e| format!("{k} {v}: {e}"))?;
                if !(0..=30 * 24 * 3600).contains(&s) {
                    return Err(format!("{k} {v}: 0 to 2592000 seconds"));
                }
                a.dvr_window_s = Some(s);
            }
            "--cue-key" => a.cue_key = Some(v),
            "--ad-creative" => a.ad_creative = Some(PathBuf::from(v)),
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(a)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The next multiple of `period` on one clock shared by every connection: publishers
/// that wait for it wake together, so the process wakes once per tick for all of
/// them instead of once per publisher.
fn next_tick(period: Duration) -> tokio::time::Instant {
    static BASE: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(tokio::time::Instant::now);
    let p = period.as_nanos().max(1);
    let since = tokio::time::Instant::now().duration_since(base).as_nanos();
    let ticks = since / p + 1;
    base + Duration::from_nanos(u64::try_from(ticks * p).unwrap_or(u64::MAX))
}

/// Size of the read buffer every connection shares.
const READ_BUF_LEN: usize = 64 * 1024;

thread_local! {
    /// One read buffer for every connection on this thread: a connection reads into it
    /// only once its socket is readable, and hands the bytes to its session before
    /// anything else runs, so nobody holds it across an `await`. Per connection that
    /// saves a buffer's worth of memory.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_BUF_LEN]);
}

/// Reads what a readable socket holds into `session`. `Some(0)` at end of stream,
/// `None` when the readiness was spurious.
fn read_into(sock: &TcpStream, session: &mut RtmpSession) -> Result<Option<usize>, String> {
    READ_BUF.with(|b| {
        let mut b = b.borrow_mut();
        match sock.try_read(&mut b) {
            Ok(k) => {
                if let Some(data) = b.get(..k).filter(|d| !d.is_empty()) {
                    session.handle_input(data).map_err(|e| e.to_string())?;
                }
                Ok(Some(k))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// The role a connection took.
enum Role {
    None,
    Publisher(String),
    Player {
        name: String,
        id: PlayerId,
        wake: watch::Receiver<u64>,
    },
}

/// Waits for new media of the stream a player plays; never returns for other roles.
/// `Err` when the stream's relay is gone.
async fn player_wakeup(role: &mut Role) -> Result<(), watch::error::RecvError> {
    match role {
        Role::Player { wake, .. } => wake.changed().await,
        _ => std::future::pending().await,
    }
}

fn lock(shared: &Shared) -> Result<std::sync::MutexGuard<'_, Live>, String> {
    shared.lock().map_err(|_| "state lock poisoned".to_string())
}

/// Decides a publish request: application, token, one publisher per name. On
/// acceptance, returns the sequence number the publisher's first segment will get.
fn decide_publish(
    live: &mut Live,
    auth: Option<&TokenAuthorizer>,
    app: &str,
    key: &str,
    query: &str,
    now: i64,
) -> Result<u64, (RejectReason, String)> {
    if app != "live" {
        return Err((RejectReason::BadName, "unknown application".into()));
    }
    if let Some(Err(d)) = auth.map(|a| a.check(key, query, now / 1000)) {
        return Err((RejectReason::Unauthorized, d.to_string()));
    }
    live.origin
        .publish(key, now)
        .map_err(|e| (RejectReason::BadName, e.to_string()))?;
    match live.relays.get_mut(key) {
        Some(r) => r.relay.restart(),
        None => {
            let relay = Relay {
                relay: RtmpRelay::new(RelayOptions::default()),
                wake: watch::channel(0).0,
                players: HashMap::new(),
            };
            live.relays.insert(key.to_string(), relay);
        }
    }
    Ok(live.origin.stream(key).map_or(0, |s| s.next_sequence()))
}

/// One RTMP connection: socket bytes <-> session; publish and play decisions; a
/// publisher's media into the origin and the relay; a player's media out of the relay.
async fn rtmp_conn(
    mut sock: TcpStream,
    shared: Shared,
    auth: Option<Arc<TokenAuthorizer>>,
    cfg: RtmpConfig,
    read_coalesce: Duration,
) {
    let peer = sock
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let mut session = RtmpSession::new(cfg);
    let mut demux = FlvDemuxer::without_header();
    let mut role = Role::None;
    // A publisher's reads are coalesced once its first segment is out.
    let mut first_segment = 0u64;
    let mut coalesce = false;
    let mut out = BytesMut::new();
    let result: Result<(), String> = async {
        loop {
            let timeout = Duration::from_millis(500);
            let mut ready = false;
            tokio::select! {
                r = tokio::time::timeout(timeout, sock.readable()) => match r {
                    Ok(Ok(())) => ready = true,
                    Ok(Err(e)) => return Err(e.to_string()),
                    Err(_) => {}
                },
                r = player_wakeup(&mut role) => {
                    if r.is_err() {
                        return Err("the stream is gone".into());
                    }
                }
            }
            let now = now_ms();
            let n = if ready {
                match read_into(&sock, &mut session)? {
                    Some(0) => return Ok(()),
                    n => n,
                }
            } else {
                None
            };
            session.handle_timeout(now).map_err(|e| e.to_string())?;
            {
                let mut batch: Option<std::sync::MutexGuard<'_, Live>> = None;
                let mut relayed = false;
                while let Some(ev) = session.poll_event() {
                    if !matches!(ev, RtmpEvent::Media { .. }) {
                        batch = None; // the other events take the lock themselves
                    }
                    match ev {
                        RtmpEvent::PublishRequested {
                            id,
                            app,
                            stream_key,
                            query,
                            ..
                        } => {
                            let verdict = if matches!(role, Role::None) {
                                let mut live = lock(&shared)?;
                                decide_publish(
                                    &mut live,
                                    auth.as_deref(),
                                    &app,
                                    &stream_key,
                                    &query,
                                    now,
                                )
                            } else {
                                Err((RejectReason::BadName, "one stream per connection".into()))
                            };
                            match verdict {
                                Ok(seq) => {
                                    session.accept(id).map_err(|e| e.to_string())?;
                                    eprintln!("publish {stream_key} from {peer}");
                                    first_segment = seq;
                                    coalesce = false;
                                    role = Role::Publisher(stream_key);
                                }
                                Err((reason, why)) => {
                                    eprintln!("refused publish {stream_key} from {peer}: {why}");
                                    session
                                        .reject(id, reason, &why)
                                        .map_err(|e| e.to_string())?;
                                }
                            }
                        }
                        RtmpEvent::PlayRequested {
                            id,
                            app,
                            stream_key,
                            ..
                        } => {
                            let joined = {
                                let mut live = lock(&shared)?;
                                let known = live
                                    .origin
                                    .stream(&stream_key)
                                    .is_some_and(|s| !s.is_ended());
                                match live.relays.get_mut(&stream_key) {
                                    Some(r)
                                        if app == "live" && known && matches!(role, Role::None) =>
                                    {
                                        match r.relay.join() {
                                            Ok(pid) => {
                                                r.players.insert(pid, format!("rtmp:{peer}"));
                                                Ok((pid, r.wake.subscribe()))
                                            }
                                            Err(e) => Err(e.to_string()),
                                        }
                                    }
                                    _ => Err("no such live stream".to_string()),
                                }
                            };
                            match joined {
                                Ok((pid, wake)) => {
                                    session.accept(id).map_err(|e| e.to_string())?;
                                    eprintln!("play {stream_key} by {peer}");
                                    role = Role::Player {
                                        name: stream_key,
                                        id: pid,
                                        wake,
                                    };
                                }
                                Err(why) => {
                                    eprintln!("refused play {stream_key} by {peer}: {why}");
                                    session
                                        .reject(id, RejectReason::BadName, &why)
                                        .map_err(|e| e.to_string())?;
                                }
                            }
                        }
                        RtmpEvent::Media {
                            kind,
                            timestamp_ms,
                            body,
                            ..
                        } => {
                            let Role::Publisher(name) = &role else {
                                continue;
                            };
                            demux
                                .push_tag(kind, timestamp_ms, body.clone())
                                .map_err(|e| e.to_string())?;
                            // One lock for all the media of this read.
                            let live = match &mut batch {
                                Some(g) => g,
                                None => batch.insert(lock(&shared)?),
                            };
                            if let Some(r) = live.relays.get_mut(name) {
                                match r.relay.push(kind, timestamp_ms, body) {
                                    Ok(()) => relayed |= r.relay.player_count() > 0,
                                    Err(e) => eprintln!("{name}: not relayed: {e}"),
                                }
                            }
                            while let Some(item) = demux.poll() {
                                match item {
                                    Ok(item) => live
                                        .origin
                                        .push(name, item, now)
                                        .map_err(|e| e.to_string())?,
                                    Err(e) => eprintln!("{name}: skipped a bad tag: {e}"),
                                }
                            }
                        }
                        RtmpEvent::Unpublished { .. } => {
                            if let Role::Publisher(name) = &role {
                                let _ = lock(&shared)?.origin.unpublish(name, now);
                                role = Role::None;
                            }
                        }
                        RtmpEvent::PlayStopped { .. } => return Ok(()),
                        _ => {}
                    }
                }
                if let (Some(live), Role::Publisher(name)) = (&mut batch, &role) {
                    coalesce = coalesce
                        || live
                            .origin
                            .stream(name)
                            .is_some_and(|s| s.next_sequence() > first_segment);
                    if relayed {
                        if let Some(r) = live.relays.get(name) {
                            r.wake.send_modify(|n| *n += 1);
                        }
                    }
                }
            }
            // A player: move what it has not seen from the relay into the session,
            // one budget at a time, writing each before taking more.
            loop {
                let status = match &mut role {
                    Role::Player { name, id, wake } => {
                        wake.borrow_and_update();
                        let mut live = lock(&shared)?;
                        let r = live
                            .relays
                            .get_mut(name.as_str())
                            .ok_or("the stream is gone")?;
                        r.relay
                            .poll_into(*id, &mut session, PLAYER_BUDGET)
                            .map_err(|e| e.to_string())?
                    }
                    _ => RelayPoll::CaughtUp,
                };
                if status == RelayPoll::Dropped {
                    return Err("player too slow: dropped".into());
                }
                session.poll_transmit(&mut out);
                if !out.is_empty() {
                    tokio::time::timeout(PLAYER_WRITE_TIMEOUT, sock.write_all(&out))
                        .await
                        .map_err(|_| "write timed out".to_string())?
                        .map_err(|e| e.to_string())?;
                    out.clear();
                }
                if status != RelayPoll::More {
                    break;
                }
            }
            if session.is_closed() {
                return Ok(());
            }
            // A full buffer means more is waiting: read on at once, never throttle.
            if n.is_some_and(|k| k < READ_BUF_LEN)
                && coalesce
                && !read_coalesce.is_zero()
                && matches!(role, Role::Publisher(_))
            {
                // Coalesce a publisher's reads: encoders write one RTMP message at a
                // time (about 75 a second), so reading at most every `read_coalesce`
                // turns those wake-ups and syscalls into a few larger reads. The
                // kernel holds the bytes meanwhile; ingest latency grows by at most
                // `read_coalesce`. Not before the publisher's first segment is out, so
                // that the first playlist is not delayed, and not while reads fill the
                // buffer, so that any bit rate is read as fast as it comes.
                tokio::time::sleep_until(next_tick(read_coalesce)).await;
            }
        }
    }
    .await;
    if let Err(e) = result {
        eprintln!("rtmp {peer}: {e}");
    }
    match role {
        Role::Publisher(name) => {
            if let Ok(mut live) = shared.lock() {
                let _ = live.origin.unpublish(&name, now_ms());
            }
            eprintln!("unpublish {name}");
        }
        Role::Player { name, id, .. } => {
            if let Ok(mut live) = shared.lock() {
                if let Some(r) = live.relays.get_mut(&name) {
                    r.relay.leave(id);
                    r.players.remove(&id);
                }
            }
            eprintln!("play {name} by {peer} ended");
        }
        Role::None => {}
    }
}

const STATUS_PAGE: &str = include_str!("live_origin.html");

/// hls.js for the status page, from the test suite's pinned npm install (works offline).
fn hls_js() -> Option<Bytes> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser/node_modules/hls.js/dist/hls.min.js");
    std::fs::read(p).ok().map(Bytes::from)
}

async fn http(
    req: hyper::Request<Incoming>,
    origin: Shared,
    client: String,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let reply = |status: u16, ctype: &str, body: Bytes| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", ctype)
            .header("access-control-allow-origin", "*")
            .body(Full::new(body))
            .unwrap_or_default()
    };
    if path == "/" {
        return Ok(reply(
            200,
            "text/html; charset=utf-8",
            Bytes::from_static(STATUS_PAGE.as_bytes()),
        ));
    }
    if path == "/hls.min.js" {
        return Ok(match hls_js() {
            Some(js) => reply(200, "text/javascript", js),
            None => reply(404, "text/plain", Bytes::from_static(b"run scripts/test.sh once: it installs hls.js into tests/browser/node_modules\n")),
        });
    }
    let method = Method::parse(req.method().as_str());
    let mut request = Request::new(method, path).with_client(client);
    if request.method == Method::Post {
        // Licence requests are small: read at most one byte more than the origin takes.
        let limited = http_body_util::Limited::new(req.into_body(), MAX_REQUEST_LEN + 1);
        request.body = match http_body_util::BodyExt::collect(limited).await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Ok(reply(413, "text/plain", Bytes::new())),
        };
    }
    let resp = match origin.lock() {
        Ok(mut live) => live.origin.handle_mut(&request, now_ms()),
        Err(_) => return Ok(reply(500, "text/plain", Bytes::new())),
    };
    let mut b = hyper::Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        b = b.header(k, v);
    }
    Ok(b.body(Full::new(resp.body)).unwrap_or_default())
}

/// glibc's malloc raises its mmap threshold to the size of any mmapped block freed,
/// so after the first evicted segment (~0.25-1.5 MB) every later segment comes from
/// the heap, and a live origin's heap fragments: RSS creeps up for minutes although
/// the live bytes stay flat (`tests/live_memory.rs` counts them). Fixing the threshold
/// at glibc's initial 128 KiB keeps segments in their own mappings, returned on free:
/// RSS stays flat, for a few page faults per segment.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    // SAFETY: mallopt only sets an allocator parameter; it is called once, before any
    // other thread exists, with a documented parameter and value.
    let ok = unsafe { mallopt(M_MMAP_THRESHOLD, 128 * 1024) };
    if ok != 1 {
        eprintln!("mallopt(M_MMAP_THRESHOLD) failed; RSS may creep with fragmentation");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn main() {
    tune_malloc();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(serve());
}

async fn serve() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\nusage: live_origin [--rtmp ADDR] [--http ADDR] [--publish-secret S] [--handshake-timeout-ms MS] [--idle-timeout-ms MS] [--read-coalesce-ms MS] [--cmaf on|off] [--key-secret S [--playback-secret P] [--rotate N] [--public-url URL]] [--record DIR [--sync always|never]] [--dvr-window-s S] [--cue-key K] [--ad-creative AD.mp4]");
            std::process::exit(2);
        }
    };
    let default_dvr = if args.record.is_some() { 48 * 3600 } else { 0 };
    let dvr_window_ms = args.dvr_window_s.unwrap_or(default_dvr) * 1000;
    let store: Store = match &args.record {
        Some(dir) => {
            let mut opts = DiskStoreOptions::default();
            opts.sync = args.sync;
            // Keep what the DVR window needs, and at least 48 hours of recording.
            opts.max_age_ms = Some(dvr_window_ms.max(48 * 3600 * 1000));
            match std::fs::create_dir_all(dir)
                .map_err(|e| e.to_string())
                .and_then(|()| DiskStore::open(dir, opts).map_err(|e| e.to_string()))
            {
                Ok(s) => Box::new(s),
                Err(e) => {
                    eprintln!("--record {}: {e}", dir.display());
                    std::process::exit(1);
                }
            }
        }
        None => {
            let mut opts = MemoryStoreOptions::default();
            // The live window, a grace of three, and the DVR window of 2 s segments.
            let dvr_segments = usize::try_from(dvr_window_ms / 2000).unwrap_or(0);
            opts.max_segments_per_stream = opts.max_segments_per_stream.max(dvr_segments + 3);
            opts.max_bytes_per_stream = opts
                .max_bytes_per_stream
                .max(dvr_segments.saturating_mul(2 << 20));
            Box::new(MemoryStore::new(opts))
        }
    };
    let mut origin = Origin::new(store, {
        let mut o = OriginOptions::default();
        o.live.cmaf = args.cmaf;
        o.dvr_window_ms = dvr_window_ms;
        o.keep_recordings = args.record.is_some();
        o.cue_key = args.cue_key.clone();
        o
    });
    if let Some(path) = &args.ad_creative {
        let target = origin.options().live.segmenter.target_duration;
        let ad = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                // The content's tracks are checked when a break is planned.
                strom::package::ssai::Creative::from_mp4("ad", Bytes::from(b), target, &[])
                    .map_err(|e| e.to_string())
            });
        match ad.map(Arc::new) {
            Ok(ad) => {
                let decider = strom::package::ssai::StaticDecider(vec![Arc::clone(&ad)]);
                if let Err(e) = origin.add_creative(ad) {
                    eprintln!("--ad-creative {}: {e}", path.display());
                    std::process::exit(1);
                }
                origin.set_ad_decider(Box::new(decider));
            }
            Err(e) => {
                eprintln!("--ad-creative {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
    let restored = origin.restore(now_ms());
    if !restored.is_empty() {
        println!(
            "  restored from {}: {}",
            args.record
                .as_ref()
                .map_or(String::new(), |d| d.display().to_string()),
            restored.join(", ")
        );
    }
    let playback = args
        .playback_secret
        .as_ref()
        .map(|s| TokenAuthorizer::new(s.as_bytes().to_vec()));
    if let Some(secret) = &args.key_secret {
        let keys = match HmacKeyProvider::new(secret.as_bytes()) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("--key-secret: {e}");
                std::process::exit(2);
            }
        };
        let public = args
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", args.http));
        let mut p = Protection::new(Arc::new(keys)).with_base_url(public);
        if args.rotate > 0 {
            p = p.with_rotation(KeyRotation::every(args.rotate));
        }
        if let Some(t) = &playback {
            p = p.with_tokens(t.clone());
        }
        origin = origin.with_protection(p);
    }
    let origin: Shared = Arc::new(Mutex::new(Live {
        origin,
        relays: HashMap::new(),
    }));
    let auth = args
        .secret
        .as_ref()
        .map(|s| Arc::new(TokenAuthorizer::new(s.as_bytes().to_vec())));
    let rtmp = match TcpListener::bind(args.rtmp).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen for RTMP on {}: {e}", args.rtmp);
            std::process::exit(1);
        }
    };
    let web = match TcpListener::bind(args.http).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen for HTTP on {}: {e}", args.http);
            std::process::exit(1);
        }
    };
    let query = match &auth {
        Some(a) => format!("?token={}", a.token("test", now_ms() / 1000 + 24 * 3600)),
        None => String::new(),
    };
    println!("strom live origin");
    println!(
        "  publish: ffmpeg -re -i INPUT -c copy -f flv 'rtmp://{}/live/test{query}'",
        args.rtmp
    );
    println!(
        "  watch:   http://{}/  (or any HLS player: http://{}/live/test/index.m3u8)",
        args.http, args.http
    );
    println!(
        "  fMP4:    http://{}/live/test/cmaf.m3u8   DASH: http://{}/live/test/manifest.mpd",
        args.http, args.http
    );
    println!("  or RTMP: ffplay rtmp://{}/live/test", args.rtmp);
    if args.key_secret.is_some() {
        let q = match &playback {
            Some(t) => format!("?token={}", t.token("test", now_ms() / 1000 + 24 * 3600)),
            None => String::new(),
        };
        println!(
            "  AES-128: http://{}/live/test/aes128/index.m3u8{q}",
            args.http
        );
    }

    let ticker = origin.clone();
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(Duration::from_secs(1));
        loop {
            iv.tick().await;
            if let Ok(mut live) = ticker.lock() {
                let now = now_ms();
                let Live { origin, relays } = &mut *live;
                origin.tick(now);
                // RTMP players count as viewers; relays of streams that ended or
                // were removed go, and their players' tasks see it and close.
                relays.retain(|name, r| {
                    let live = origin.stream(name).is_some_and(|s| !s.is_ended());
                    for client in r.players.values() {
                        origin.watching(name, client, now);
                    }
                    live
                });
            }
        }
    });
    let o2 = origin.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, peer)) = web.accept().await else {
                continue;
            };
            let o = o2.clone();
            let client = peer.ip().to_string();
            tokio::spawn(async move {
                let svc = service_fn(move |req| http(req, o.clone(), client.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    loop {
        match rtmp.accept().await {
            Ok((sock, _)) => {
                let _ = sock.set_nodelay(true);
                tokio::spawn(rtmp_conn(
                    sock,
                    origin.clone(),
                    auth.clone(),
                    args.session.clone(),
                    args.read_coalesce,
                ));
            }
            Err(e) => eprintln!("rtmp accept: {e}"),
        }
    }
}
