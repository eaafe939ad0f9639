//! Drives the live `Origin` with a random publisher (tracks, frames with random times
//! and key flags, discontinuities, unpublish, clock steps) and random HTTP requests
//! (any method, any request target bytes, paths built from the routes it serves:
//! TS and fMP4 HLS, DASH MPD, init segments, fragments, `/time`, `/streams.json`, each
//! also under the protected prefixes `aes128/`, `sample-aes/`, `cenc/`, `cbcs/`, the key
//! endpoint and Clear Key licence POSTs with hostile bodies, with and without a valid
//! playback token), and checks after every request:
//! * the status is one the origin documents (200, 204, 400, 403, 404, 405, 413, 500);
//! * without a valid token every protected request is refused (403) or not found;
//! * HEAD answers carry no body; 200 GETs of playlists and MPDs are UTF-8 text with
//!   their content type, and a served MPD is dynamic;
//! * a served media playlist names only segments or fragments the origin then serves
//!   (nothing listed is missing, at the same instant), DVR and start-over playlists
//!   (`dvr.m3u8`, `?dvr`, `?start=`, `?offset=`, with DVR on) included;
//! * `recording.mp4` answers an MP4 (`ftyp` first) or an error status.
//!
//! Errors from `publish`/`push` are allowed (typed errors for bad publisher input);
//! panics are not.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use strom::auth::TokenAuthorizer;
use strom::bitstream::aac::build_asc;
use strom::crypto::key::{StaticKeyProvider, StreamKey};
use strom::crypto::{ContentKey, KeyId};
use strom::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, H264Config, Item, TrackInfo};
use strom::origin::{
    MemoryStore, MemoryStoreOptions, Method, Origin, OriginOptions, Protection, Request,
};
use strom::time::{Timescale, Timestamp};

#[path = "shared/input.rs"]
mod input;
#[path = "shared/params.rs"]
mod params;
use input::Input;

const NAMES: [&str; 2] = ["cam", "b-2"];
const SCHEMES: [&str; 6] = ["", "", "aes128/", "sample-aes/", "cenc/", "cbcs/"];
/// A 32-byte IDR slice and P slice (length-prefixed) for the `params` SPS/PPS.
const IDR_SLICE: &[u8] = b"\0\0\0\x20\x65\x88\x84\x00\x33\xff\xfe\xf6\xf0\xfe\x05\x36\x56\x04\x50\x96\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a";
const P_SLICE: &[u8] = b"\0\0\0\x20\x41\x9a\x21\x6c\x42\xbf\xfe\x38\x40\x00\x04\x45\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a";
const KID: KeyId = KeyId([0x5a; 16]);
/// Far in the future: tokens made with it stay valid for any clock the input reaches.
const EXPIRES: i64 = 9_000_000_000;
const FILES: [&str; 15] = [
    "dvr.m3u8",
    "v1/dvr.m3u8",
    "recording.mp4",
    "index.m3u8",
    "cmaf.m3u8",
    "manifest.mpd",
    "0.ts",
    "3.ts",
    "v1/media.m3u8",
    "a2/media.m3u8",
    "v1/init.mp4",
    "a2/init.mp4",
    "v1/0.m4s",
    "a2/2.m4s",
    "v9/1.m4s",
];

fn tracks() -> [Item; 2] {
    let h264 = H264Config::from_parameter_sets(
        Bytes::from_static(params::SPS),
        Bytes::from_static(params::PPS),
    )
    .expect("valid parameter sets");
    let aac = AacConfig::from_asc(build_asc(2, 3, 2)).expect("valid ASC");
    [
        Event::TrackAdded(TrackInfo::new(
            1,
            Timescale::MILLIS,
            CodecConfig::H264(h264),
        ))
        .into(),
        Event::TrackAdded(TrackInfo::new(2, Timescale::MILLIS, CodecConfig::Aac(aac))).into(),
    ]
}

fn path(inp: &mut Input, token: &str) -> String {
    match inp.u8() % 10 {
        // Raw bytes: anything a client could send.
        0 => {
            let n = usize::from(inp.u8() % 48);
            let raw: Vec<u8> = (0..n).map(|_| inp.u8()).collect();
            String::from_utf8_lossy(&raw).into_owned()
        }
        1 => "/time".to_string(),
        2 => "/streams.json".to_string(),
        3 => {
            let name = NAMES[usize::from(inp.u8()) % NAMES.len()];
            format!("/keys/{name}/{KID}.key{}", query(inp, token))
        }
        4 => {
            let name = NAMES[usize::from(inp.u8()) % NAMES.len()];
            format!("/licence/{name}{}", query(inp, token))
        }
        _ => {
            let name = NAMES[usize::from(inp.u8()) % NAMES.len()];
            let scheme = SCHEMES[usize::from(inp.u8()) % SCHEMES.len()];
            let file = FILES[usize::from(inp.u8()) % FILES.len()];
            format!("/live/{name}/{scheme}{file}{}", query(inp, token))
        }
    }
}

/// No query, a junk one, the valid token (for stream `cam`), or a DVR window with or
/// without it.
fn query(inp: &mut Input, token: &str) -> String {
    let dvr = match inp.u8() % 8 {
        0 => "dvr",
        1 => "start=1700000005",
        2 => "offset=-20",
        3 => "start=x&offset=1",
        _ => "",
    };
    match (inp.u8() % 4, dvr) {
        (0, _) => "?token=x&y".to_string(),
        (1, "") => String::new(),
        (1, d) => format!("?{d}"),
        (_, "") => format!("?token={token}"),
        (_, d) => format!("?{d}&token={token}"),
    }
}

fn protected(path: &str) -> bool {
    path.starts_with("/keys/")
        || path.starts_with("/licence/")
        || SCHEMES[2..].iter().any(|s| path.contains(&format!("/{s}")))
}

/// The URIs a playlist lists (non-tag lines and `URI="..."` of EXT-X-MAP).
fn listed(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push(line.to_string());
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let mut sopts = MemoryStoreOptions::default();
    sopts.max_segments_per_stream = 40;
    let store = MemoryStore::new(sopts);
    let mut oopts = OriginOptions::default();
    oopts.dvr_window_ms = 60_000;
    oopts.keep_recordings = inp.u8() % 2 == 0;
    let keys = StaticKeyProvider::new(StreamKey::new(KID, ContentKey([0xa5; 16])));
    let tokens = TokenAuthorizer::new(b"fuzz playback".to_vec());
    let token = tokens.token("cam", EXPIRES);
    let mut origin = Origin::new(store, oopts)
        .with_protection(Protection::new(Arc::new(keys)).with_tokens(tokens));
    let mut now: i64 = 1_700_000_000_000;
    let mut media_ms: i64 = 0;
    let mut ops = 0;
    while !inp.is_empty() && ops < 2000 {
        ops += 1;
        let name = NAMES[usize::from(inp.u8() & 1)];
        match inp.u8() % 16 {
            0 => {
                let _ = origin.publish(name, now);
                for t in tracks() {
                    let _ = origin.push(name, t, now);
                }
            }
            1 => {
                let _ = origin.unpublish(name, now);
            }
            2 => {
                let _ = origin.push(name, Event::Discontinuity { track: None }.into(), now);
            }
            3 => {
                now = now.saturating_add(i64::from(inp.u16()) * 10);
                origin.tick(now);
            }
            4..=9 => {
                // A burst of video and audio frames, with jitter and the odd jump back.
                let n = inp.u8() % 32;
                for _ in 0..n {
                    let step = i64::from(inp.u8() % 64);
                    media_ms = if inp.u8() == 0 {
                        media_ms - 500
                    } else {
                        media_ms + step
                    };
                    now += step;
                    let t = Timestamp::from_millis(media_ms);
                    let key = inp.u8() % 24 == 0;
                    let item: Item = if inp.u8() % 3 == 0 {
                        Frame::new(2, t, t, Bytes::from_static(&[0x21, 0x10, 0x04]))
                            .with_flags(FrameFlags::KEYFRAME)
                            .into()
                    } else {
                        // Slices whose headers parse with `params` (x264's first bytes),
                        // so protected fragments can always be made.
                        let nal: &'static [u8] = if key { IDR_SLICE } else { P_SLICE };
                        let cts = Timestamp::from_millis(media_ms + i64::from(inp.u8() % 3) * 40);
                        let f = Frame::new(1, t, cts, Bytes::from_static(nal));
                        if key {
                            f.with_flags(FrameFlags::KEYFRAME).into()
                        } else {
                            f.into()
                        }
                    };
                    let _ = origin.push(name, item, now);
                }
            }
            _ => {
                let method = match inp.u8() % 8 {
                    0 => Method::Head,
                    1 => Method::Options,
                    2 => Method::Post,
                    3 => Method::Other("PUT".to_string()),
                    _ => Method::Get,
                };
                let p = path(&mut inp, &token);
                let head = method == Method::Head;
                let get = method == Method::Get;
                let mut req = Request::new(method.clone(), p.clone());
                if method == Method::Post {
                    req.body = if inp.u8() % 2 == 0 {
                        Bytes::from_static(
                            b"{\"kids\":[\"WlpaWlpaWlpaWlpaWlpaWg\"],\"type\":\"temporary\"}",
                        )
                    } else {
                        let n = usize::from(inp.u8());
                        Bytes::from((0..n).map(|_| inp.u8()).collect::<Vec<u8>>())
                    };
                }
                let r = origin.handle(&req, now);
                assert!(
                    matches!(r.status, 200 | 204 | 400 | 403 | 404 | 405 | 413 | 500),
                    "{p}: status {}",
                    r.status
                );
                // A protected object is never served without the stream's token.
                if r.status == 200 && protected(&p) {
                    assert!(
                        p.contains(&token) && p.contains("/cam"),
                        "{p}: served without a token"
                    );
                }
                if head {
                    assert!(r.body.is_empty(), "{p}: HEAD with a body");
                }
                let plain = p.split('?').next().unwrap_or("");
                if r.status == 200 && get && plain.ends_with(".mp4") && !plain.ends_with("init.mp4")
                {
                    assert_eq!(r.header("content-type"), Some("video/mp4"), "{p}");
                    assert_eq!(r.body.get(4..8), Some(&b"ftyp"[..]), "{p}");
                }
                if r.status == 200 && get && (plain.ends_with(".m3u8") || plain.ends_with(".mpd")) {
                    let text = std::str::from_utf8(&r.body).expect("manifest is UTF-8");
                    let ctype = r.header("content-type").unwrap_or("");
                    if plain.ends_with(".mpd") {
                        assert_eq!(ctype, "application/dash+xml", "{p}");
                        assert!(text.contains("type=\"dynamic\""), "{p}: {text}");
                    } else {
                        assert!(ctype.contains("mpegurl"), "{p}: {ctype}");
                        // Everything a media playlist lists is served now.
                        if !text.contains("#EXT-X-STREAM-INF") {
                            let dir = &plain[..plain.rfind('/').unwrap_or(0)];
                            for uri in listed(text) {
                                // With its query: protected URIs carry the token.
                                let got = origin.handle(&Request::get(format!("{dir}/{uri}")), now);
                                assert_eq!(
                                    got.status,
                                    200,
                                    "{p} lists {uri}: {}\n{text}",
                                    String::from_utf8_lossy(&got.body)
                                );
                            }
                        }
                    }
                }
            }
        }
    }
});
