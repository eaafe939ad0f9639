//! Live origin: RTMP in, HLS out.
//!
//! ```sh
//! cargo run --release --example live_origin -- [--rtmp 127.0.0.1:1935] [--http 127.0.0.1:8080] [--publish-secret S]
//! ```
//!
//! An encoder publishes `rtmp://HOST/live/NAME?token=T`; viewers play
//! `http://HOST:8080/live/NAME/index.m3u8`; `GET /` is a status page that lists the
//! live streams and plays one with hls.js. With `--publish-secret`, publishing needs
//! a token from [`strom::auth::TokenAuthorizer`] (printed at start for `NAME=test`);
//! without it, any publisher is accepted. A second publisher on a live name is
//! refused.
//!
//! This file is only the host: sockets, tasks, the clock and one mutex. Every
//! protocol and packaging decision is in the sans-IO library (`RtmpSession`,
//! `FlvDemuxer`, `Origin`). RTMP play is not served yet: play requests are refused.

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
use strom::ingest::flv::FlvDemuxer;
use strom::ingest::rtmp::{RejectReason, RtmpConfig, RtmpEvent, RtmpSession};
use strom::origin::{MemoryStore, MemoryStoreOptions, Method, Origin, OriginOptions, Request};
use strom::pipeline::Stage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Shared = Arc<Mutex<Origin<MemoryStore>>>;

struct Args {
    rtmp: SocketAddr,
    http: SocketAddr,
    secret: Option<String>,
    /// RTMP session timeouts (handshake, idle), milliseconds.
    session: RtmpConfig,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        rtmp: "127.0.0.1:1935".parse().map_err(|e| format!("{e}"))?,
        http: "127.0.0.1:8080".parse().map_err(|e| format!("{e}"))?,
        secret: None,
        session: RtmpConfig::default(),
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
            "--idle-timeout-ms" => {
                a.session.idle_timeout_ms = v.parse().map_err(|e| format!("{k} {v}: {e}"))?
            }
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

/// One RTMP connection: socket bytes <-> session; publish decisions; media into the origin.
async fn rtmp_conn(
    mut sock: TcpStream,
    origin: Shared,
    auth: Option<Arc<TokenAuthorizer>>,
    cfg: RtmpConfig,
) {
    let peer = sock.peer_addr().ok();
    let mut session = RtmpSession::new(cfg);
    let mut demux = FlvDemuxer::without_header();
    let mut publishing: Option<String> = None;
    let mut out = BytesMut::new();
    let mut buf = vec![0u8; 64 * 1024];
    let result: Result<(), String> = async {
        loop {
            let timeout = Duration::from_millis(500);
            let n = match tokio::time::timeout(timeout, sock.read(&mut buf)).await {
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(n)) => Some(n),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => None,
            };
            let now = now_ms();
            if let Some(n) = n {
                session.handle_input(&buf[..n]).map_err(|e| e.to_string())?;
            }
            session.handle_timeout(now).map_err(|e| e.to_string())?;
            while let Some(ev) = session.poll_event() {
                match ev {
                    RtmpEvent::PublishRequested {
                        id,
                        app,
                        stream_key,
                        query,
                        ..
                    } => {
                        let verdict = if app != "live" {
                            Err((RejectReason::BadName, "unknown application".to_string()))
                        } else if let Some(Err(d)) = auth
                            .as_ref()
                            .map(|a| a.check(&stream_key, &query, now / 1000))
                        {
                            Err((RejectReason::Unauthorized, d.to_string()))
                        } else {
                            let mut o = origin.lock().map_err(|_| "origin lock poisoned")?;
                            o.publish(&stream_key, now)
                                .map_err(|e| (RejectReason::BadName, e.to_string()))
                        };
                        match verdict {
                            Ok(()) => {
                                session.accept(id).map_err(|e| e.to_string())?;
                                eprintln!("publish {stream_key} from {peer:?}");
                                publishing = Some(stream_key);
                            }
                            Err((reason, why)) => {
                                eprintln!("refused publish {stream_key} from {peer:?}: {why}");
                                session
                                    .reject(id, reason, &why)
                                    .map_err(|e| e.to_string())?;
                            }
                        }
                    }
                    RtmpEvent::PlayRequested { id, .. } => {
                        session
                            .reject(
                                id,
                                RejectReason::BadName,
                                "RTMP play is not served by this origin",
                            )
                            .map_err(|e| e.to_string())?;
                    }
                    RtmpEvent::Media {
                        kind,
                        timestamp_ms,
                        body,
                        ..
                    } => {
                        let Some(name) = &publishing else { continue };
                        demux
                            .push_tag(kind, timestamp_ms, body)
                            .map_err(|e| e.to_string())?;
                        let mut o = origin.lock().map_err(|_| "origin lock poisoned")?;
                        while let Some(item) = demux.poll() {
                            match item {
                                Ok(item) => o.push(name, item, now).map_err(|e| e.to_string())?,
                                Err(e) => eprintln!("{name}: skipped a bad tag: {e}"),
                            }
                        }
                    }
                    RtmpEvent::Unpublished { .. } => {
                        if let Some(name) = publishing.take() {
                            let mut o = origin.lock().map_err(|_| "origin lock poisoned")?;
                            let _ = o.unpublish(&name, now);
                        }
                    }
                    _ => {}
                }
            }
            session.poll_transmit(&mut out);
            if !out.is_empty() {
                sock.write_all(&out).await.map_err(|e| e.to_string())?;
                out.clear();
            }
            if session.is_closed() {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = result {
        eprintln!("rtmp {peer:?}: {e}");
    }
    if let Some(name) = publishing {
        if let Ok(mut o) = origin.lock() {
            let _ = o.unpublish(&name, now_ms());
        }
        eprintln!("unpublish {name}");
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
    let resp = match origin.lock() {
        Ok(mut o) => o.handle_counting(&Request::new(method, path).with_client(client), now_ms()),
        Err(_) => return Ok(reply(500, "text/plain", Bytes::new())),
    };
    let mut b = hyper::Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        b = b.header(k, v);
    }
    Ok(b.body(Full::new(resp.body)).unwrap_or_default())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\nusage: live_origin [--rtmp ADDR] [--http ADDR] [--publish-secret S] [--handshake-timeout-ms MS] [--idle-timeout-ms MS]");
            std::process::exit(2);
        }
    };
    let origin: Shared = Arc::new(Mutex::new(Origin::new(
        MemoryStore::new(MemoryStoreOptions::default()),
        OriginOptions::default(),
    )));
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

    let ticker = origin.clone();
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(Duration::from_secs(1));
        loop {
            iv.tick().await;
            if let Ok(mut o) = ticker.lock() {
                o.tick(now_ms());
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
                ));
            }
            Err(e) => eprintln!("rtmp accept: {e}"),
        }
    }
}
