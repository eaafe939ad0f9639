//! End-to-end acceptance of ad markers: a SCTE-35 `splice_insert` break from each ingest
//! path reaches every manifest dialect, checked with tools strom did not write.
//!
//! * **TS input** (library level, simulated clock): an FFmpeg MPEG-TS (H.264 + AAC,
//!   GOP 2 s) into which this test injects a SCTE-35 PID (PMT rewritten: `stream_type`
//!   0x86, a "CUEI" registration descriptor) carrying a `splice_insert` out (with a
//!   `break_duration`, at a PTS that is not a keyframe's) and the matching in, both made
//!   by threefive and sent 4 s ahead. threefive reads the injected TS first; then
//!   `TsDemuxer` -> `Origin` (memory store), checked through `Origin::handle`.
//! * **RTMP input** (real sockets): the `live_origin` example with `--dvr-window-s 3600`;
//!   strom's `RtmpClient` publishes an FFmpeg FLV with `onCuePoint` script tags in the
//!   broadcast-encoder form (`{name: "scte35", time, type: "event", parameters: {cue:
//!   base64 section}}`, as `/work/shared/harness/scte35.py make-flv` writes them) sent
//!   4 s before the splice time, as fast as the socket takes them, up to 4 s past the
//!   break's end; the test polls until the MPD lists the break, checks over HTTP, then
//!   publishes the rest, disconnects and checks live-to-VOD (`vod.m3u8`, ads removed).
//!
//! For both, the same checks ([`check_break`]):
//! 1. the TS media playlist: `EXT-X-CUE-OUT:DURATION` right before the segment that
//!    starts at the first keyframe at or after the splice PTS (that segment decodes,
//!    with FFmpeg, to the source's keyframe first, and the one before it ends with the
//!    frame before that keyframe), `EXT-X-CUE-OUT-CONT` before each segment inside,
//!    `EXT-X-CUE-IN` right before the first segment after the break (the first keyframe
//!    at or after the return PTS);
//! 2. `EXT-X-DATERANGE` `SCTE35-OUT` / `SCTE35-IN`: threefive decodes them to the input
//!    sections (splice_insert, event id, PTS, duration), byte for byte;
//! 3. every fMP4 media playlist carries the same tags before the fragments of the same
//!    numbers;
//! 4. the MPD (parsed by dash-mpd-core): an `EventStream` `urn:scte:scte35:2014:xml+bin`
//!    whose Event is at the boundary, its `scte35:Binary` the input section (threefive);
//!    every representation's timeline has fragments starting at the boundary and at the
//!    return;
//! 5. `emsg`: the fragment of each rendition that starts the break (and the one that
//!    ends it) carries one `emsg` (`urn:scte:scte35:2013:bin`) whose `message_data` is
//!    the section, byte for byte (strom's `Emsg::parse` and mp4-atom agree, threefive
//!    decodes it); FFmpeg reads init + fragment without an error.
//!
//! Run: `cargo test --release --test ad_markers -- --nocapture` (figures are printed).
//! Needs ffmpeg/ffprobe and threefive 3.1.5 (`python3 -m pip install --user
//! threefive==3.1.5`); hls.js in Chromium for the VOD playback (`STROM_SKIP_BROWSER=1`
//! skips only that, with a SKIP line).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::players::{self, PlayOpts, Player};
use common::scte35::{self as tf, Section};
use common::{
    avc_aac_small_25, decode_errors, framemd5, media, packets, streams, Container, TempDir,
};
use mp4_atom::{Any, Decode, EmsgTimestamp};
use strom::container::fmp4::{Emsg, EmsgTime};
use strom::container::ts::TsDemuxer;
use strom::ingest::amf0::{self, Value};
use strom::ingest::flv::{TagReader, TagType};
use strom::ingest::rtmp::{RtmpClient, RtmpClientConfig, RtmpClientEvent};
use strom::media::{CueKind, Event, Item};
use strom::origin::{
    MemoryStore, MemoryStoreOptions, Origin, OriginOptions, Request, SegmentStore, Series,
};
use strom::pipeline::Stage;

const T0: i64 = 1_760_000_000_000;
/// The SCTE-35 PID injected into the TS input.
const CUE_PID: u16 = 0x1F0;
/// Scheme of the MPD EventStream (SCTE 214-1 §6.7.4) and of the emsg boxes.
const XML_BIN: &str = "urn:scte:scte35:2014:xml+bin";
const EMSG_SCHEME: &str = "urn:scte:scte35:2013:bin";
/// How far an audio fragment boundary may be from the video cut: FFmpeg's default
/// interleaving delay (`-muxdelay 0.7`).
const AUDIO_SLACK_MS: i64 = 700;
/// One frame of the 25 fps clips, in 90 kHz ticks.
const FRAME_90K: i64 = 3600;

// ---------------------------------------------------------------------------------------
// What a break must look like, and the checks shared by both paths.
// ---------------------------------------------------------------------------------------

/// A break as the input carried it and where it must be cut.
struct Break {
    /// Stream name on the origin.
    name: &'static str,
    /// The input's out and in sections, as sent.
    out_section: Vec<u8>,
    in_section: Vec<u8>,
    /// threefive's reading of them.
    out: Section,
    inn: Section,
    /// First video keyframe at or after the out PTS / the in PTS (90 kHz, the stream's
    /// timeline: the input's PTS).
    boundary_90k: i64,
    return_90k: i64,
    /// The source's decoded frames (framemd5): the keyframe at the boundary, the frame
    /// shown just before it, the keyframe at the return.
    boundary_md5: String,
    before_md5: String,
    return_md5: String,
}

/// One segment line of a media playlist and the tags before it.
#[derive(Debug)]
struct Entry {
    tags: Vec<String>,
    uri: String,
    duration_ms: i64,
}

/// `#EXTINF:2.040,` -> 2040 (three decimals at most, integer arithmetic).
fn extinf_ms(line: &str) -> i64 {
    let v = line
        .trim_start_matches("#EXTINF:")
        .split(',')
        .next()
        .unwrap_or("");
    let (w, f) = v.split_once('.').unwrap_or((v, ""));
    let mut frac: i64 = if f.is_empty() {
        0
    } else {
        f.parse().expect("EXTINF decimals")
    };
    for _ in f.len()..3 {
        frac *= 10;
    }
    w.parse::<i64>().expect("EXTINF seconds") * 1000 + frac
}

fn entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut tags = Vec::new();
    let mut dur = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("#EXTINF:") {
            dur = extinf_ms(line);
        } else if line.starts_with('#') {
            tags.push(line.to_string());
        } else {
            out.push(Entry {
                tags: std::mem::take(&mut tags),
                uri: line.to_string(),
                duration_ms: dur,
            });
        }
    }
    out
}

/// The value of attribute `name` of a tag line (`NAME=value` after `:` or `,`; quotes
/// removed).
fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let body = line.split_once(':')?.1;
    let mut rest = body;
    loop {
        let (k, v) = rest.split_once('=')?;
        let (value, next) = if let Some(q) = v.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], q[end + 1..].strip_prefix(',').unwrap_or(""))
        } else {
            match v.split_once(',') {
                Some((a, b)) => (a, b),
                None => (v, ""),
            }
        };
        if k.trim() == name {
            return Some(value);
        }
        if next.is_empty() {
            return None;
        }
        rest = next;
    }
}

/// `ms` as HLS seconds text, three decimals.
fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// RFC 4648 base64, standard alphabet, padded (test helper; strom's own is not used to
/// make its input).
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// GET `path` -> (status, body).
type Get<'a> = &'a dyn Fn(&str) -> (u16, Vec<u8>);

fn get_ok(get: Get<'_>, path: &str) -> Vec<u8> {
    let (status, body) = get(path);
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    body
}

fn get_text(get: Get<'_>, path: &str) -> String {
    String::from_utf8(get_ok(get, path)).expect("UTF-8 manifest")
}

/// Where the break sits in a media playlist: (index of the segment after CUE-OUT, index
/// of the segment after CUE-IN, the CUE-OUT-CONT lines in order). `conts`: the
/// CUE-OUT-CONT lines expected (those of the MPEG-TS playlist), else each `ElapsedTime`
/// must be the playlist's own EXTINF sum since the cut. `slack_ms`: how far the break's
/// EXTINF sum may be from the cut times (an audio rendition's fragments start at the
/// first audio frame at or after each cut).
fn break_in_playlist(
    what: &str,
    es: &[Entry],
    b: &Break,
    text: &str,
    conts: Option<&[String]>,
    slack_ms: i64,
) -> (usize, usize, Vec<String>) {
    let with = |p: &str| -> Vec<usize> {
        es.iter()
            .enumerate()
            .filter(|(_, e)| e.tags.iter().any(|t| t.starts_with(p)))
            .map(|(i, _)| i)
            .collect()
    };
    let outs = with("#EXT-X-CUE-OUT:");
    let ins = with("#EXT-X-CUE-IN");
    assert_eq!(outs.len(), 1, "{what}: one CUE-OUT\n{text}");
    assert_eq!(ins.len(), 1, "{what}: one CUE-IN\n{text}");
    let (o, i) = (outs[0], ins[0]);
    assert!(o < i, "{what}: CUE-OUT before CUE-IN\n{text}");
    let planned = secs(b.out.duration_ticks.expect("planned duration") as i64 / 90);
    assert!(
        es[o]
            .tags
            .contains(&format!("#EXT-X-CUE-OUT:DURATION={planned}")),
        "{what}: CUE-OUT:DURATION={planned} before {}\n{text}",
        es[o].uri
    );
    let mut elapsed = 0;
    let mut found = Vec::new();
    for (k, e) in es.iter().enumerate() {
        let here: Vec<&String> = e
            .tags
            .iter()
            .filter(|t| t.starts_with("#EXT-X-CUE-OUT-CONT"))
            .collect();
        if k > o && k < i {
            elapsed += es[k - 1].duration_ms;
            assert_eq!(
                here.len(),
                1,
                "{what}: CUE-OUT-CONT before {}\n{text}",
                e.uri
            );
            let want = match conts {
                Some(c) => c.get(found.len()).cloned().unwrap_or_default(),
                None => format!(
                    "#EXT-X-CUE-OUT-CONT:ElapsedTime={},Duration={planned}",
                    secs(elapsed)
                ),
            };
            assert_eq!(
                here[0], &want,
                "{what}: CUE-OUT-CONT before {}\n{text}",
                e.uri
            );
            found.push(here[0].clone());
        } else {
            assert!(
                here.is_empty(),
                "{what}: CONT outside the break at {}",
                e.uri
            );
        }
    }
    if let Some(c) = conts {
        assert_eq!(
            found.len(),
            c.len(),
            "{what}: as many CUE-OUT-CONT as the TS playlist"
        );
    }
    // The segments of the break last from the boundary to the return.
    let listed: i64 = es[o..i].iter().map(|e| e.duration_ms).sum();
    let cut = (b.return_90k - b.boundary_90k) / 90;
    assert!(
        (listed - cut).abs() <= slack_ms,
        "{what}: EXTINF of the break's segments {listed} ms vs {cut} ms"
    );
    (o, i, found)
}

/// The `EXT-X-DATERANGE` that opens the break (before entry `o`) and the one that closes
/// it (before entry `i`); returns their SCTE35-OUT and SCTE35-IN texts after checking
/// the other attributes.
fn dateranges(what: &str, es: &[Entry], o: usize, i: usize, b: &Break) -> (String, String) {
    let dr = |k: usize| -> Vec<&String> {
        es[k]
            .tags
            .iter()
            .filter(|t| t.starts_with("#EXT-X-DATERANGE:"))
            .collect()
    };
    let (open, close) = (dr(o), dr(i));
    assert_eq!(
        open.len(),
        1,
        "{what}: one DATERANGE at the cut: {:?}",
        es[o]
    );
    assert_eq!(
        close.len(),
        1,
        "{what}: one DATERANGE at the return: {:?}",
        es[i]
    );
    for (k, e) in es.iter().enumerate() {
        if k != o && k != i {
            assert!(dr(k).is_empty(), "{what}: DATERANGE at {}", e.uri);
        }
    }
    let (open, close) = (open[0], close[0]);
    let planned = secs(b.out.duration_ticks.unwrap_or(0) as i64 / 90);
    let id = attr(open, "ID").expect("ID");
    assert_eq!(attr(close, "ID"), Some(id), "{what}: the same DATERANGE ID");
    assert_eq!(attr(open, "START-DATE"), attr(close, "START-DATE"));
    assert_eq!(attr(open, "PLANNED-DURATION"), Some(planned.as_str()));
    assert_eq!(
        attr(close, "DURATION"),
        Some(secs((b.return_90k - b.boundary_90k) / 90).as_str()),
        "{what}: {close}"
    );
    assert!(attr(close, "END-DATE").is_some(), "{what}: {close}");
    let out = attr(open, "SCTE35-OUT").expect("SCTE35-OUT").to_string();
    assert_eq!(attr(close, "SCTE35-OUT"), Some(out.as_str()));
    let inn = attr(close, "SCTE35-IN")
        .unwrap_or_else(|| panic!("{what}: no SCTE35-IN in {close}"))
        .to_string();
    (out, inn)
}

/// Top-level boxes of a segment: (type, bytes).
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(size >= 8 && size <= rest.len(), "box size {size}");
        out.push((rest[4..8].try_into().unwrap(), &rest[..size]));
        rest = &rest[size..];
    }
    assert!(rest.is_empty(), "trailing bytes after the boxes");
    out
}

/// The emsg boxes of a fragment, read by strom and by mp4-atom (which must know every
/// top-level box and agree field for field).
fn fragment_emsgs(data: &[u8]) -> (Vec<String>, Vec<Emsg>) {
    let mut kinds = Vec::new();
    let mut ours = Vec::new();
    for (kind, bytes) in boxes(data) {
        kinds.push(String::from_utf8_lossy(&kind).into_owned());
        let mut view = bytes;
        let atom = Any::decode(&mut view).unwrap_or_else(|e| panic!("mp4-atom: {e}"));
        assert!(view.is_empty(), "mp4-atom left bytes of {kinds:?}");
        if &kind == b"emsg" {
            let (e, used) = Emsg::parse(bytes).expect("strom parses the emsg");
            assert_eq!(used, bytes.len());
            let Any::Emsg(a) = atom else {
                panic!("mp4-atom did not read an emsg");
            };
            assert_eq!(a.scheme_id_uri, e.scheme_id_uri);
            assert_eq!(a.timescale, e.timescale);
            assert_eq!(a.id, e.id);
            assert_eq!(a.event_duration, e.event_duration);
            assert_eq!(a.message_data, e.message_data.to_vec());
            match (a.presentation_time.clone(), e.time) {
                (EmsgTimestamp::Absolute(x), EmsgTime::Absolute(y)) => assert_eq!(x, y),
                (EmsgTimestamp::Relative(x), EmsgTime::Delta(y)) => assert_eq!(x, y),
                (x, y) => panic!("emsg versions differ: {x:?} {y:?}"),
            }
            ours.push(e);
        } else {
            assert!(
                !matches!(atom, Any::Unknown(..)),
                "mp4-atom: unknown {kinds:?}"
            );
        }
    }
    (kinds, ours)
}

/// The emsg's start, in 90 kHz ticks on the track's timeline.
fn emsg_start_90k(e: &Emsg, fragment_start: Option<u64>) -> i64 {
    let ticks = match e.time {
        EmsgTime::Absolute(t) => t,
        EmsgTime::Delta(d) => {
            fragment_start.expect("a v0 emsg needs the segment start") + u64::from(d)
        }
    };
    (i128::from(ticks) * 90_000 / i128::from(e.timescale)) as i64
}

/// Starts of the segments of a SegmentTimeline, in its ticks.
fn timeline_starts(t: &dash_mpd_core::SegmentTimeline) -> Vec<u64> {
    let mut starts = Vec::new();
    let mut next = 0u64;
    for s in &t.segments {
        let mut at = s.t.unwrap_or(next);
        for _ in 0..=s.r.unwrap_or(0).max(0) {
            starts.push(at);
            at += s.d;
        }
        next = at;
    }
    starts
}

/// Figures of one check, printed by the tests.
#[derive(Debug)]
struct Figures {
    out_segment: u64,
    in_segment: u64,
    renditions: Vec<String>,
    emsgs: usize,
}

/// Checks 1..5 of the module docs on the origin behind `get`; `dir` holds scratch files.
fn check_break(get: Get<'_>, b: &Break, dir: &TempDir) -> Figures {
    let name = b.name;
    // 1. The MPEG-TS media playlist: tags, and the cut on the keyframe.
    let ts_text = get_text(get, &format!("/live/{name}/media.m3u8"));
    m3u8_rs::parse_media_playlist_res(ts_text.as_bytes())
        .unwrap_or_else(|e| panic!("m3u8-rs: {e:?}\n{ts_text}"));
    let es = entries(&ts_text);
    let (o, i, conts) = break_in_playlist("TS playlist", &es, b, &ts_text, None, 0);
    let number = |uri: &str, ext: &str| -> u64 {
        uri.strip_suffix(ext)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("segment URI {uri}"))
    };
    let (n_out, n_in) = (number(&es[o].uri, ".ts"), number(&es[i].uri, ".ts"));
    assert!(o > 0, "a segment precedes the break in the playlist");
    let decoded = |uri: &str| -> Vec<String> {
        let body = get_ok(get, &format!("/live/{name}/{uri}"));
        let file = dir.join(&format!("{name}-{uri}"));
        std::fs::write(&file, &body).unwrap();
        assert_eq!(decode_errors(&file), "", "{uri} decodes cleanly");
        framemd5(&file, "v:0")
    };
    let at_cut = decoded(&es[o].uri);
    let before = decoded(&es[o - 1].uri);
    let at_return = decoded(&es[i].uri);
    assert_eq!(
        at_cut.first(),
        Some(&b.boundary_md5),
        "segment {n_out} starts with the source's keyframe at {}",
        b.boundary_90k
    );
    assert_eq!(
        before.last(),
        Some(&b.before_md5),
        "segment {} ends with the frame before the boundary",
        n_out - 1
    );
    assert_eq!(
        at_return.first(),
        Some(&b.return_md5),
        "segment {n_in} starts with the source's keyframe at {}",
        b.return_90k
    );
    println!(
        "{name}: TS playlist: CUE-OUT before {} ({} frames decoded, first = source keyframe at {} ticks), \
         {} CUE-OUT-CONT, CUE-IN before {} (first = keyframe at {} ticks)",
        es[o].uri,
        at_cut.len(),
        b.boundary_90k,
        i - o - 1,
        es[i].uri,
        b.return_90k
    );

    // 2. The DATERANGE's SCTE-35, decoded by threefive.
    let (out_hex, in_hex) = dateranges("TS playlist", &es, o, i, b);
    let mut texts = vec![out_hex.clone(), in_hex.clone()];

    // 3. The fMP4 playlists.
    let mv = get_text(get, &format!("/live/{name}/cmaf.m3u8"));
    let mut renditions: Vec<String> = Vec::new();
    for line in mv.lines() {
        let uri = if line.starts_with("#EXT-X-MEDIA:") {
            attr(line, "URI").map(str::to_string)
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            Some(line.trim().to_string())
        } else {
            None
        };
        if let Some(u) = uri {
            let r = u
                .strip_suffix("/media.m3u8")
                .unwrap_or_else(|| panic!("rendition URI {u}"));
            if !renditions.iter().any(|x| x == r) {
                renditions.push(r.to_string());
            }
        }
    }
    assert!(renditions.len() >= 2, "video and audio renditions: {mv}");
    for r in &renditions {
        let text = get_text(get, &format!("/live/{name}/{r}/media.m3u8"));
        let es = entries(&text);
        let what = format!("fMP4 playlist {r}");
        // The segmenter cuts every track where the video keyframe arrives: an audio
        // rendition's fragments start near the cut, as the input interleaves audio
        // (FFmpeg's MPEG-TS muxer holds audio up to 0.7 s).
        let slack = if r.starts_with('v') {
            0
        } else {
            AUDIO_SLACK_MS
        };
        let (ro, ri, _) = break_in_playlist(&what, &es, b, &text, Some(&conts), slack);
        assert_eq!(
            es[ro].uri,
            format!("{n_out}.m4s"),
            "{what}: cut at the same number"
        );
        assert_eq!(
            es[ri].uri,
            format!("{n_in}.m4s"),
            "{what}: return at the same number"
        );
        let (o2, i2) = dateranges(&what, &es, ro, ri, b);
        assert_eq!(o2, out_hex, "{what}: SCTE35-OUT as in the TS playlist");
        texts.push(i2);
    }

    // 4. emsg boxes in the fragments where the break starts and ends; each fragment's
    // tfdt (mp4-atom) and earliest presentation time (ffprobe) for the MPD check.
    // (rendition, number, tfdt in track ticks, earliest presentation time in 90 kHz)
    let mut frag_times: Vec<(String, u64, u64, i64)> = Vec::new();
    let mut emsg_texts = Vec::new();
    let mut emsgs = 0;
    for r in &renditions {
        let init = get_ok(get, &format!("/live/{name}/{r}/init.mp4"));
        for (n, section, at_90k) in [
            (n_out, &b.out_section, b.boundary_90k),
            (n_in, &b.in_section, b.return_90k),
            (n_out + 1, &Vec::new(), 0),
        ] {
            let path = format!("/live/{name}/{r}/{n}.m4s");
            let frag = get_ok(get, &path);
            let (kinds, found) = fragment_emsgs(&frag);
            let tfdt = boxes(&frag)
                .into_iter()
                .find(|(k, _)| k == b"moof")
                .and_then(|(_, mut bytes)| match Any::decode(&mut bytes) {
                    Ok(Any::Moof(m)) => m
                        .traf
                        .first()?
                        .tfdt
                        .as_ref()
                        .map(|t| t.base_media_decode_time),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{path}: a moof with a tfdt"));
            if section.is_empty() {
                assert!(
                    found.is_empty(),
                    "{path}: no emsg inside the break: {kinds:?}"
                );
                continue;
            }
            assert_eq!(found.len(), 1, "{path}: one emsg: {kinds:?}");
            assert_eq!(kinds.first().map(String::as_str), Some("styp"), "{path}");
            let moof = kinds.iter().position(|k| k == "moof").expect("moof");
            let at = kinds.iter().position(|k| k == "emsg").unwrap();
            assert!(at < moof, "{path}: the emsg precedes the moof: {kinds:?}");
            let e = &found[0];
            assert_eq!(e.scheme_id_uri, EMSG_SCHEME, "{path}");
            assert_eq!(Some(e.id), b.out.event_id, "{path}: emsg id");
            assert_eq!(
                &e.message_data[..],
                &section[..],
                "{path}: message_data is the section"
            );
            let t = emsg_start_90k(e, None);
            assert!(
                (t - at_90k).abs() * i64::from(e.timescale) < 90_000,
                "{path}: emsg time {t} (90 kHz) vs the cut {at_90k}"
            );
            emsg_texts.push(format!("0x{}", hex(&e.message_data)));
            emsgs += 1;
            // FFmpeg reads init + fragment, emsg and all.
            let file = dir.join(&format!("{name}-{r}-{n}.mp4"));
            let mut whole = init.clone();
            whole.extend_from_slice(&frag);
            std::fs::write(&file, &whole).unwrap();
            assert_eq!(decode_errors(&file), "", "{path}: FFmpeg reads it cleanly");
            let probed = packets(&file, "0");
            let ept = probed
                .packets
                .iter()
                .filter_map(|p| p.pts)
                .min()
                .unwrap_or_else(|| panic!("{path}: ffprobe sees no frame"));
            let (num, den) = probed.time_base;
            let ept_90k = (i128::from(ept) * 90_000 * i128::from(num) / i128::from(den)) as i64;
            // Video fragments start exactly at the cut; audio ones near it.
            let slack = if r.starts_with('v') {
                0
            } else {
                AUDIO_SLACK_MS * 90
            };
            assert!(
                (ept_90k - at_90k).abs() <= slack,
                "{path}: earliest presentation time {ept_90k} vs the cut {at_90k}"
            );
            frag_times.push((r.clone(), n, tfdt, ept_90k));
        }
    }
    // 5. The MPD.
    let mpd_text = get_text(get, &format!("/live/{name}/manifest.mpd"));
    let mpd = dash_mpd_core::parse(&mpd_text)
        .unwrap_or_else(|e| panic!("dash-mpd-core: {e}\n{mpd_text}"));
    assert_eq!(mpd.periods.len(), 1, "{mpd_text}");
    let period = &mpd.periods[0];
    let streams: Vec<_> = period
        .event_streams
        .iter()
        .filter(|s| s.schemeIdUri == XML_BIN)
        .collect();
    assert_eq!(streams.len(), 1, "one SCTE-35 EventStream\n{mpd_text}");
    let es_ = streams[0];
    let scale = es_.timescale.unwrap_or(1);
    let pto = es_.presentationTimeOffset.unwrap_or(0);
    assert_eq!(es_.event.len(), 1, "one Event\n{mpd_text}");
    let ev = &es_.event[0];
    // On the Period's timeline (it starts at 0, where the media timeline does).
    let ev_90k =
        ((ev.presentationTime.unwrap_or(0) as i128 - pto as i128) * 90_000 / scale as i128) as i64;
    assert_eq!(
        ev_90k, b.boundary_90k,
        "Event@presentationTime at the boundary\n{mpd_text}"
    );
    assert_eq!(
        ev.id.as_deref(),
        Some(b.out.event_id.unwrap().to_string().as_str())
    );
    assert_eq!(
        ev.duration
            .map(|d| (d as i128 * 90_000 / scale as i128) as i64),
        Some(b.return_90k - b.boundary_90k),
        "Event@duration: the break as cut"
    );
    assert_eq!(ev.signal.len(), 1, "{mpd_text}");
    let binary = ev.signal[0]
        .content
        .as_ref()
        .expect("scte35:Binary")
        .content
        .trim()
        .to_string();
    texts.push(binary);
    let mut reps = 0;
    for set in &period.adaptations {
        assert!(
            set.InbandEventStream
                .iter()
                .any(|s| s.schemeIdUri == EMSG_SCHEME),
            "InbandEventStream on every AdaptationSet\n{mpd_text}"
        );
        for rep in &set.representations {
            let tpl = rep
                .SegmentTemplate
                .as_ref()
                .or(set.SegmentTemplate.as_ref())
                .expect("SegmentTemplate");
            let ts = tpl.timescale.expect("timescale");
            assert_eq!(tpl.presentationTimeOffset.unwrap_or(0), 0, "{mpd_text}");
            // The fragments where the break starts and ends are listed: S@t is the
            // fragment's tfdt (its decode time), the Event at the keyframe's
            // presentation time.
            let rendition = rep.id.clone().unwrap_or_default();
            let starts = timeline_starts(tpl.SegmentTimeline.as_ref().expect("timeline"));
            let mine: Vec<_> = frag_times.iter().filter(|f| f.0 == rendition).collect();
            assert_eq!(
                mine.len(),
                2,
                "representation {rendition} is a rendition of the playlists"
            );
            // Audio entries may move by a tick: the timeline is kept contiguous over
            // durations rounded to the timescale.
            let tick = if rendition.starts_with('v') {
                0
            } else {
                (ts / 1000).max(1)
            };
            for (r, n, tfdt, ept_90k) in mine {
                assert!(
                    starts.iter().any(|s| s.abs_diff(*tfdt) <= tick),
                    "representation {rendition}: fragment {n} (tfdt {tfdt}) listed: {starts:?}"
                );
                let st_90k = (i128::from(*tfdt) * 90_000 / i128::from(ts)) as i64;
                println!(
                    "{name}: MPD {r} lists fragment {n} at S@t {tfdt} ({st_90k} in 90 kHz); its earliest \
                     presentation time is {ept_90k} ({} ticks later)",
                    ept_90k - st_90k
                );
            }
            reps += 1;
        }
    }
    assert!(reps >= 2);

    texts.extend(emsg_texts);

    // threefive on everything gathered: the DATERANGEs (hex), the MPD (base64), the emsgs.
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let decoded: Vec<Section> = tf::decode_text(&refs)
        .into_iter()
        .zip(&texts)
        .map(|(r, t)| r.unwrap_or_else(|e| panic!("threefive cannot decode {t}: {e}")))
        .collect();
    let n_r = renditions.len();
    // [out, in] from the TS playlist, one in per fMP4 playlist, the MPD's, then per
    // rendition the out and in emsgs.
    let mut expect = vec![&b.out, &b.inn];
    expect.extend(std::iter::repeat_n(&b.inn, n_r));
    expect.push(&b.out);
    for _ in 0..n_r {
        expect.push(&b.out);
        expect.push(&b.inn);
    }
    assert_eq!(decoded.len(), expect.len());
    for ((got, want), text) in decoded.iter().zip(&expect).zip(&texts) {
        assert_eq!(&got, want, "threefive's reading of {text}");
    }
    println!(
        "{name}: threefive decoded {} sections from the DATERANGEs, the MPD and {emsgs} emsg boxes: \
         splice_insert {} out at {} ticks (planned {} ticks), in at {} ticks; MPD Event at {} ticks; \
         renditions {renditions:?}",
        decoded.len(),
        b.out.event_id.unwrap(),
        b.out.pts_ticks.unwrap(),
        b.out.duration_ticks.unwrap(),
        b.inn.pts_ticks.unwrap(),
        ev_90k
    );
    Figures {
        out_segment: n_out,
        in_segment: n_in,
        renditions,
        emsgs,
    }
}

/// The source's video: (pts of the keyframes, every pts sorted = display order, the
/// framemd5 of every frame in display order), times in 90 kHz.
fn source_video(path: &Path) -> (Vec<i64>, Vec<i64>, Vec<String>) {
    let p = packets(path, "v:0");
    let to_90k = |t: i64| {
        (i128::from(t) * 90_000 * i128::from(p.time_base.0) / i128::from(p.time_base.1)) as i64
    };
    let keys: Vec<i64> = p
        .packets
        .iter()
        .filter(|x| x.key)
        .map(|x| to_90k(x.pts.expect("pts")))
        .collect();
    let mut all: Vec<i64> = p
        .packets
        .iter()
        .map(|x| to_90k(x.pts.expect("pts")))
        .collect();
    all.sort_unstable();
    let md5 = framemd5(path, "v:0");
    assert_eq!(md5.len(), all.len(), "one decoded frame per packet");
    (keys, all, md5)
}

/// The [`Break`] for sections `out` / `inn` on a source whose video is `video`.
fn expect_break(
    name: &'static str,
    video: &(Vec<i64>, Vec<i64>, Vec<String>),
    out_section: Vec<u8>,
    in_section: Vec<u8>,
) -> Break {
    let (keys, all, md5) = video;
    let read = tf::decode(&[&out_section, &in_section]);
    let (out, inn) = (read[0].clone(), read[1].clone());
    let first_key = |t: u64| -> i64 {
        *keys
            .iter()
            .find(|&&k| k >= t as i64)
            .unwrap_or_else(|| panic!("no keyframe at or after {t}"))
    };
    let boundary_90k = first_key(out.pts_ticks.expect("out PTS"));
    let return_90k = first_key(inn.pts_ticks.expect("in PTS"));
    let idx = |t: i64| {
        all.iter()
            .position(|&x| x == t)
            .expect("a frame at the keyframe")
    };
    Break {
        name,
        boundary_md5: md5[idx(boundary_90k)].clone(),
        before_md5: md5[idx(boundary_90k) - 1].clone(),
        return_md5: md5[idx(return_90k)].clone(),
        out_section,
        in_section,
        out,
        inn,
        boundary_90k,
        return_90k,
    }
}

// ---------------------------------------------------------------------------------------
// TS input: SCTE-35 packets injected into an FFmpeg transport stream.
// ---------------------------------------------------------------------------------------

/// CRC-32/MPEG-2 (ISO/IEC 13818-1 Annex A): polynomial 0x04C11DB7, no reflection.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn pid_of(p: &[u8]) -> u16 {
    (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2])
}

/// The payload of a transport packet (after the adaptation field), if any.
fn payload(p: &[u8]) -> &[u8] {
    match (p[3] >> 4) & 3 {
        1 => &p[4..],
        3 => p.get(5 + p[4] as usize..).unwrap_or(&[]),
        _ => &[],
    }
}

/// The section a packet with `payload_unit_start_indicator` starts (after the pointer
/// field), whole: `section_length` says how long.
fn section_in(p: &[u8]) -> &[u8] {
    let pl = payload(p);
    let s = &pl[1 + pl[0] as usize..];
    let len = 3 + ((usize::from(s[1] & 0x0F) << 8) | usize::from(s[2]));
    assert!(len <= s.len(), "the section fits in its packet");
    &s[..len]
}

/// A packet on `pid` starting a section (pointer_field 0), stuffed with 0xFF.
fn section_packet(pid: u16, cc: u8, section: &[u8]) -> [u8; 188] {
    assert!(section.len() <= 183, "one packet per section here");
    let mut p = [0xFFu8; 188];
    p[..4].copy_from_slice(&[0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10 | (cc & 0x0F)]);
    p[4] = 0;
    p[5..5 + section.len()].copy_from_slice(section);
    p
}

/// The PMT `section` with a "CUEI" registration descriptor in its program loop and a
/// `stream_type` 0x86 stream on [`CUE_PID`] (SCTE 35 §8.1), its CRC computed again.
fn pmt_with_cue_pid(section: &[u8]) -> Vec<u8> {
    let info_len = (usize::from(section[10] & 0x0F) << 8) | usize::from(section[11]);
    let body_end = section.len() - 4;
    let cuei = [0x05, 4, b'C', b'U', b'E', b'I'];
    let mut s = Vec::with_capacity(section.len() + 11);
    s.extend_from_slice(&section[..10]);
    let new_info = (info_len + cuei.len()) as u16;
    s.extend_from_slice(&(0xF000 | new_info).to_be_bytes());
    s.extend_from_slice(&cuei);
    s.extend_from_slice(&section[12..body_end]);
    s.extend_from_slice(&[0x86, 0xE0 | (CUE_PID >> 8) as u8, CUE_PID as u8, 0xF0, 0x00]);
    let len = (s.len() + 4 - 3) as u16;
    s[1] = (s[1] & 0xF0) | (len >> 8) as u8;
    s[2] = len as u8;
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// The PTS of the PES packet a video packet starts, if it has one.
fn pes_pts(p: &[u8]) -> Option<i64> {
    let pes = payload(p);
    if pes.len() < 14 || pes[..3] != [0, 0, 1] || pes[7] & 0x80 == 0 {
        return None;
    }
    let b = &pes[9..14];
    Some(
        (i64::from(b[0] & 0x0E) << 29)
            | (i64::from(b[1]) << 22)
            | (i64::from(b[2] & 0xFE) << 14)
            | (i64::from(b[3]) << 7)
            | (i64::from(b[4]) >> 1),
    )
}

/// `ts` with every PMT announcing the SCTE-35 PID, and each `(send_pts, section)` of
/// `cues` on it right before the first video PES whose PTS reaches `send_pts`.
fn inject_scte35(ts: &[u8], cues: &[(i64, &[u8])]) -> Vec<u8> {
    assert_eq!(ts.len() % 188, 0);
    let pmt_pid = ts
        .chunks(188)
        .find(|p| pid_of(p) == 0 && p[1] & 0x40 != 0)
        .map(|p| {
            let pat = section_in(p);
            let programs = &pat[8..pat.len() - 4];
            programs
                .chunks(4)
                .find(|e| e[0] != 0 || e[1] != 0)
                .map(|e| (u16::from(e[2] & 0x1F) << 8) | u16::from(e[3]))
                .expect("a program in the PAT")
        })
        .expect("a PAT");
    let pmt = ts
        .chunks(188)
        .find(|p| pid_of(p) == pmt_pid && p[1] & 0x40 != 0)
        .map(section_in)
        .expect("a PMT")
        .to_vec();
    // The video PID: the first stream_type 0x1B of the ES loop.
    let info_len = (usize::from(pmt[10] & 0x0F) << 8) | usize::from(pmt[11]);
    let mut at = 12 + info_len;
    let mut video = None;
    while at + 5 <= pmt.len() - 4 {
        let es_len = (usize::from(pmt[at + 3] & 0x0F) << 8) | usize::from(pmt[at + 4]);
        if pmt[at] == 0x1B && video.is_none() {
            video = Some((u16::from(pmt[at + 1] & 0x1F) << 8) | u16::from(pmt[at + 2]));
        }
        at += 5 + es_len;
    }
    let video = video.expect("an H.264 stream in the PMT");
    let new_pmt = pmt_with_cue_pid(&pmt);
    let mut out = Vec::with_capacity(ts.len() + 188 * (cues.len() + 1));
    let mut next = 0;
    let mut cc = 0u8;
    for p in ts.chunks(188) {
        let pid = pid_of(p);
        if pid == pmt_pid && p[1] & 0x40 != 0 {
            assert_eq!(section_in(p), &pmt[..], "one PMT version in the input");
            out.extend_from_slice(&section_packet(pmt_pid, p[3] & 0x0F, &new_pmt));
            continue;
        }
        if pid == video && p[1] & 0x40 != 0 {
            if let Some(pts) = pes_pts(p) {
                while next < cues.len() && pts >= cues[next].0 {
                    out.extend_from_slice(&section_packet(CUE_PID, cc, cues[next].1));
                    cc = cc.wrapping_add(1);
                    next += 1;
                }
            }
        }
        out.extend_from_slice(p);
    }
    assert_eq!(next, cues.len(), "every cue was sent");
    out
}

#[test]
fn ts_input_splice_insert_reaches_every_manifest() {
    const EVENT: u32 = 4_711;
    const DURATION_90K: u64 = 495_000; // 5.5 s planned
    let dir = TempDir::new("ad-markers-ts");
    let mp4 = avc_aac_small_25(30, Container::Mp4);
    let mp4_arg = mp4.to_string_lossy().into_owned();
    let plain = media(
        "ad_markers_src.ts",
        &["-i", &mp4_arg, "-map", "0", "-c", "copy", "-f", "mpegts"],
    );
    let video = source_video(&plain);
    let keys = &video.0;
    assert!(keys.len() >= 12, "keyframes every 2 s: {keys:?}");
    // The splice: 1/16 s steps (exact in threefive's seconds), at least 0.2 s before the
    // sixth keyframe and not on a keyframe; the return after the planned duration.
    let out_pts = ((keys[5] - 18_000) / 5625 * 5625) as u64;
    assert!(!keys.contains(&(out_pts as i64)) && out_pts as i64 > keys[4]);
    let in_pts = out_pts + DURATION_90K;
    let out_section = tf::splice_insert(EVENT, Some(out_pts), Some(DURATION_90K), true);
    let in_section = tf::splice_insert(EVENT, Some(in_pts), None, false);
    let b = expect_break("tsin", &video, out_section.clone(), in_section.clone());
    assert_eq!(
        b.out.pts_ticks,
        Some(out_pts),
        "threefive holds the PTS exactly"
    );
    assert_eq!(
        (
            b.out.command_type,
            b.out.out_of_network,
            b.out.duration_ticks
        ),
        (5, Some(true), Some(DURATION_90K))
    );
    assert_eq!((b.inn.command_type, b.inn.out_of_network), (5, Some(false)));
    println!(
        "TS input: keyframes at {:?} ticks; splice_insert {EVENT} out at {out_pts} (planned {DURATION_90K}), \
         in at {in_pts}; expected cuts at {} and {}",
        &keys[..10],
        b.boundary_90k,
        b.return_90k
    );
    assert!(b.boundary_90k > out_pts as i64 && b.return_90k > in_pts as i64);

    // The input: the sections 4 s ahead of their splice times, verified by threefive.
    let ts = std::fs::read(&plain).unwrap();
    let cues: [(i64, &[u8]); 2] = [
        (out_pts as i64 - 360_000, &out_section),
        (in_pts as i64 - 360_000, &in_section),
    ];
    let input = inject_scte35(&ts, &cues);
    let input_path = dir.join("input.ts");
    std::fs::write(&input_path, &input).unwrap();
    let found = tf::decode_ts(&input_path);
    assert_eq!(found.len(), 2, "threefive finds both sections: {found:?}");
    for (f, want) in found.iter().zip([&b.out, &b.inn]) {
        assert_eq!(f.pid, Some(CUE_PID));
        assert_eq!(&f.section, want);
    }
    let probed = streams(&input_path);
    assert!(
        probed.iter().any(|s| s.codec_name == "scte_35"),
        "ffprobe sees the SCTE-35 stream: {probed:?}"
    );
    assert_eq!(packets(&input_path, "v:0").packets.len(), video.1.len());
    println!(
        "TS input: {} bytes, SCTE-35 PID {CUE_PID:#x} in the PMT (ffprobe: {}), threefive: {} sections",
        input.len(),
        probed
            .iter()
            .map(|s| s.codec_name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        found.len()
    );

    // TsDemuxer -> Origin on a simulated clock (the media's pace).
    let mut demux = TsDemuxer::new();
    let mut items = Vec::new();
    for chunk in input.chunks(188 * 64) {
        demux.push(Bytes::copy_from_slice(chunk)).expect("TS input");
        while let Some(i) = demux.poll() {
            items.push(i.expect("TS item"));
        }
    }
    demux.finish().expect("TS end");
    while let Some(i) = demux.poll() {
        items.push(i.expect("TS item"));
    }
    let cue_events: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Item::Event(Event::Cue(c)) => Some((c.id, c.kind, c.at.ticks(), c.raw.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        cue_events,
        vec![
            (
                EVENT,
                CueKind::Out,
                out_pts as i64,
                Bytes::from(out_section.clone())
            ),
            (
                EVENT,
                CueKind::In,
                in_pts as i64,
                Bytes::from(in_section.clone())
            ),
        ],
        "the demuxer's cues: {:?}",
        demux.stats()
    );
    let mut store_opts = MemoryStoreOptions::default();
    store_opts.max_segments_per_stream = 1000;
    store_opts.max_bytes_per_stream = 1 << 30;
    let mut opts = OriginOptions::default();
    opts.live.window = 1000; // the whole run stays listed
    let mut origin = Origin::new(MemoryStore::new(store_opts), opts);
    origin.publish(b.name, T0).expect("publish");
    let mut first_dts = None;
    let mut now = T0;
    for item in items {
        if let Some(f) = item.as_frame() {
            let d = f.dts.ticks();
            let first = *first_dts.get_or_insert(d);
            now = now.max(T0 + (d - first) / 90);
        }
        origin.push(b.name, item, now).expect("push");
    }
    origin.unpublish(b.name, now + 40).expect("unpublish");
    let late = now + 60_000;

    // The index records: the cut segments start exactly at the keyframes.
    let mut records = Vec::new();
    origin
        .store()
        .records(b.name, Series::Ts, 0, &mut |r| {
            records.push((
                r.number,
                r.start.ticks_in(strom::time::Timescale::MPEG),
                r.duration.as_millis(),
                r.ad,
            ));
            true
        })
        .expect("records");
    let at = |t: i64| records.iter().position(|r| r.1 == t);
    let (ro, ri) = (
        at(b.boundary_90k)
            .unwrap_or_else(|| panic!("a record starts at the boundary: {records:?}")),
        at(b.return_90k).unwrap_or_else(|| panic!("a record starts at the return: {records:?}")),
    );
    assert!(records[ro].3.is_some_and(|a| a.first), "{:?}", records[ro]);
    assert!(records[ro + 1..ri]
        .iter()
        .all(|r| r.3.is_some_and(|a| !a.first)));
    assert!(records[ri].3.is_none() && records[ro - 1].3.is_none());
    println!(
        "TS input: {} segments; records {}..{} are the break ({} -> {} ticks, {} ms), starts {:?}",
        records.len(),
        records[ro].0,
        records[ri].0,
        b.boundary_90k,
        b.return_90k,
        (b.return_90k - b.boundary_90k) / 90,
        records.iter().map(|r| r.1).collect::<Vec<_>>()
    );

    let get = |path: &str| {
        let r = origin.handle(&Request::get(path), late);
        (r.status, r.body.to_vec())
    };
    let fig = check_break(&get, &b, &dir);
    assert_eq!(
        (fig.out_segment, fig.in_segment),
        (records[ro].0, records[ri].0)
    );
    println!("TS input: {fig:?}");
    assert_eq!(
        fig.emsgs,
        2 * fig.renditions.len(),
        "out and in emsg per rendition"
    );
}

// ---------------------------------------------------------------------------------------
// RTMP input: RtmpClient publishing onCuePoint data messages to live_origin.
// ---------------------------------------------------------------------------------------

/// An `onCuePoint` script tag body in the broadcast-encoder form.
fn cue_point(time_s: f64, section: &[u8], kind: &str, event_id: u32, duration_s: f64) -> Bytes {
    let mut b = BytesMut::new();
    amf0::encode_all(
        &[
            Value::from("onCuePoint"),
            Value::object([
                ("name", Value::from("scte35")),
                ("time", Value::Number(time_s)),
                ("type", Value::from("event")),
                (
                    "parameters",
                    Value::object([
                        ("cue", Value::from(base64(section).as_str())),
                        ("kind", Value::from(kind)),
                        ("event_id", Value::from(event_id.to_string().as_str())),
                        ("duration", Value::from(format!("{duration_s}").as_str())),
                    ]),
                ),
            ]),
        ],
        &mut b,
    );
    b.freeze()
}

/// Reads what the origin sent into the client without blocking.
fn pump(sock: &mut TcpStream, client: &mut RtmpClient) -> bool {
    let mut buf = [0u8; 16 * 1024];
    sock.set_nonblocking(true).unwrap();
    let alive = loop {
        match sock.read(&mut buf) {
            Ok(0) => break false,
            Ok(n) => client.handle_input(&buf[..n]).expect("client input"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
            Err(e) => panic!("read: {e}"),
        }
    };
    sock.set_nonblocking(false).unwrap();
    while let Some(ev) = client.poll_event() {
        assert!(
            !matches!(ev, RtmpClientEvent::Rejected { .. }),
            "rejected: {ev:?}"
        );
    }
    alive
}

fn flush(sock: &mut TcpStream, client: &mut RtmpClient) {
    let mut out = BytesMut::new();
    client.poll_transmit(&mut out);
    sock.write_all(&out).expect("write to the origin");
}

#[test]
fn rtmp_on_cue_point_reaches_every_manifest_and_vod_drops_the_break() {
    const EVENT: u32 = 1_001;
    const OUT_MS: i64 = 6_500; // not a keyframe (they are at 80 ms + 2 s k)
    const DURATION_MS: i64 = 6_000;
    const LEAD_MS: i64 = 4_000;
    let name = "rtmpin";
    let dir = TempDir::new("ad-markers-rtmp");
    let flv = avc_aac_small_25(30, Container::Flv);
    let video = source_video(&flv);
    let out_section = tf::splice_insert(
        EVENT,
        Some((OUT_MS * 90) as u64),
        Some((DURATION_MS * 90) as u64),
        true,
    );
    let in_ms = OUT_MS + DURATION_MS;
    let in_section = tf::splice_insert(EVENT, Some((in_ms * 90) as u64), None, false);
    let b = expect_break("rtmpin", &video, out_section.clone(), in_section.clone());
    assert_eq!(b.out.pts_ticks, Some((OUT_MS * 90) as u64));
    assert_eq!(b.inn.pts_ticks, Some((in_ms * 90) as u64));
    assert!(
        !video.0.contains(&(OUT_MS * 90)),
        "the splice is not on a keyframe"
    );
    println!(
        "RTMP input: keyframes at {:?} ms; onCuePoint splice_insert {EVENT} out at {OUT_MS} ms (planned {DURATION_MS} ms), \
         in at {in_ms} ms, each sent {LEAD_MS} ms ahead; expected cuts at {} and {} ms",
        video.0.iter().take(12).map(|k| k / 90).collect::<Vec<_>>(),
        b.boundary_90k / 90,
        b.return_90k / 90
    );

    // The FLV's tags with the two onCuePoint tags inserted at their send times.
    let data = Bytes::from(std::fs::read(&flv).unwrap());
    let mut cues = vec![
        (
            in_ms - LEAD_MS,
            cue_point(
                (in_ms - LEAD_MS) as f64 / 1000.0,
                &in_section,
                "in",
                EVENT,
                0.0,
            ),
        ),
        (
            OUT_MS - LEAD_MS,
            cue_point(
                (OUT_MS - LEAD_MS) as f64 / 1000.0,
                &out_section,
                "out",
                EVENT,
                DURATION_MS as f64 / 1000.0,
            ),
        ),
    ];
    let mut tags: Vec<(TagType, u32, Bytes)> = Vec::new();
    for t in TagReader::new(data).unwrap() {
        let t = t.unwrap();
        while cues
            .last()
            .is_some_and(|(at, _)| i64::from(t.timestamp) >= *at)
        {
            let (at, body) = cues.pop().unwrap();
            tags.push((TagType::Script, at as u32, body));
        }
        tags.push((t.tag_type, t.timestamp, t.body));
    }
    assert!(cues.is_empty());
    // The first part ends a few seconds past the break: after the keyframe 4 s past the
    // return (its decode time), so the segment after the break is cut.
    let first_part = b.return_90k / 90 + LEAD_MS + 200;
    let split = tags
        .iter()
        .position(|t| i64::from(t.1) > first_part)
        .expect("the clip goes on after the break");

    let origin = common::live::Origin::start_with(&[
        "--dvr-window-s",
        "3600",
        "--idle-timeout-ms",
        "120000",
    ]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut sock = TcpStream::connect(origin.rtmp_addr()).expect("connect to RTMP");
    sock.set_nodelay(true).unwrap();
    let cfg = RtmpClientConfig::from_url(&origin.publish_url(name, "")).unwrap();
    let mut client = RtmpClient::new(cfg);
    let t0 = Instant::now();
    while !client.is_publishing() {
        assert!(
            Instant::now() < deadline,
            "no publish start:\n{}",
            origin.log()
        );
        flush(&mut sock, &mut client);
        assert!(
            pump(&mut sock, &mut client),
            "origin closed:\n{}",
            origin.log()
        );
        client
            .handle_timeout(t0.elapsed().as_millis() as i64)
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let publish =
        |client: &mut RtmpClient, sock: &mut TcpStream, part: &[(TagType, u32, Bytes)]| {
            for (i, (k, t, body)) in part.iter().enumerate() {
                client.send_tag(*k, *t, body).expect("send_tag");
                flush(sock, client);
                if i % 32 == 0 {
                    assert!(pump(sock, client), "origin closed:\n{}", origin.log());
                }
            }
        };
    let sent = Instant::now();
    publish(&mut client, &mut sock, &tags[..split]);
    println!(
        "RTMP input: {} tags (up to {first_part} ms of media) sent in {} ms",
        split,
        sent.elapsed().as_millis()
    );

    // Until the MPD lists the break (its fragments are available on the wall clock).
    let http = |path: &str| match origin.get(path) {
        Some(r) => (r.status, r.body),
        None => (0, Vec::new()),
    };
    let poll_t0 = Instant::now();
    let mut polls = 0;
    loop {
        polls += 1;
        assert!(
            pump(&mut sock, &mut client),
            "origin closed:\n{}",
            origin.log()
        );
        let (status, body) = http(&format!("/live/{name}/manifest.mpd"));
        let listed = status == 200
            && dash_mpd_core::parse(&String::from_utf8_lossy(&body)).is_ok_and(|m| {
                let p = &m.periods[0];
                !p.event_streams.is_empty()
                    && p.adaptations.iter().all(|a| {
                        a.representations.iter().all(|r| {
                            let tpl = r.SegmentTemplate.as_ref().or(a.SegmentTemplate.as_ref());
                            tpl.and_then(|t| {
                                Some((t.timescale?, timeline_starts(t.SegmentTimeline.as_ref()?)))
                            })
                            .is_some_and(|(ts, starts)| {
                                starts.iter().any(|&s| {
                                    (s as i128 * 90_000 / ts as i128) as i64
                                        >= b.return_90k - AUDIO_SLACK_MS * 90
                                })
                            })
                        })
                    })
            });
        if listed {
            break;
        }
        assert!(
            poll_t0.elapsed() < Duration::from_secs(30),
            "the MPD did not list the break within 30 s (status {status}):\n{}\n{}",
            String::from_utf8_lossy(&body),
            origin.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    println!(
        "RTMP input: the MPD lists the break after {} ms ({polls} polls)",
        poll_t0.elapsed().as_millis()
    );
    let fig = check_break(&http, &b, &dir);
    println!("RTMP input: {fig:?}");
    assert_eq!(
        fig.emsgs,
        2 * fig.renditions.len(),
        "out and in emsg per rendition"
    );
    assert_eq!(
        fig.in_segment - fig.out_segment,
        3,
        "three 2 s segments in the break"
    );

    // The rest, then the publisher leaves: live-to-VOD without the break, at once.
    publish(&mut client, &mut sock, &tags[split..]);
    client.unpublish().expect("unpublish");
    flush(&mut sock, &mut client);
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    let gone = Instant::now();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while gone.elapsed() < Duration::from_secs(5) {
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    drop(sock);
    let vod_path = format!("/live/{name}/vod.m3u8");
    let vod = loop {
        let (status, body) = http(&vod_path);
        let text = String::from_utf8_lossy(&body).into_owned();
        if status == 200 && text.contains("#EXT-X-ENDLIST") {
            break text;
        }
        assert!(
            gone.elapsed() < Duration::from_secs(5),
            "no VOD playlist within 5 s of the disconnect ({status}):\n{text}\n{}",
            origin.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let vod_after = gone.elapsed();
    let pl = m3u8_rs::parse_media_playlist_res(vod.as_bytes())
        .unwrap_or_else(|e| panic!("m3u8-rs: {e:?}\n{vod}"));
    assert_eq!(
        pl.playlist_type,
        Some(m3u8_rs::MediaPlaylistType::Vod),
        "{vod}"
    );
    assert!(
        !vod.contains("CUE-OUT") && !vod.contains("DISCONTINUITY"),
        "ads removed, one timeline:\n{vod}"
    );
    let dvr = get_text(&http, &format!("/live/{name}/dvr.m3u8"));
    let live_ms: i64 = entries(&dvr).iter().map(|e| e.duration_ms).sum();
    let vod_ms: i64 = entries(&vod).iter().map(|e| e.duration_ms).sum();
    let break_ms = (b.return_90k - b.boundary_90k) / 90;
    println!(
        "RTMP input: vod.m3u8 ready {} ms after the disconnect: {vod_ms} ms in {} segments; \
         live {live_ms} ms (dvr.m3u8) - break {break_ms} ms = {} ms",
        vod_after.as_millis(),
        pl.segments.len(),
        live_ms - break_ms
    );
    assert!(
        (vod_ms - (live_ms - break_ms)).abs() <= FRAME_90K / 90,
        "VOD lasts the live duration minus the break within one frame"
    );
    assert!(
        (live_ms - video.1.len() as i64 * 40).abs() <= 2 * FRAME_90K / 90,
        "the recording holds the whole clip ({} frames)",
        video.1.len()
    );

    // Bonus: hls.js plays the VOD playlist to its end.
    let url = origin.http_url(&vod_path);
    let seconds = 12;
    // From `seconds - 1` before the end: play.mjs wants 80 % of `seconds` played, and
    // the end comes before the time is up.
    let start = (vod_ms / 1000 - i64::from(seconds) + 1).max(0) as u32;
    if let Some(o) = players::play(&PlayOpts::url(Player::HlsJs, &url, seconds).start_at(start)) {
        println!("hls.js vod.m3u8 from {start} s: {}", o.summary());
        assert!(o.ok, "{}", o.raw);
        assert!(
            o.fatal_errors.is_empty() && o.http_errors.is_empty(),
            "{}",
            o.raw
        );
        assert!(o.ended, "played to the end: {}", o.raw);
        let d = o.duration.expect("a VOD duration");
        assert!(
            (d * 1000.0 - vod_ms as f64).abs() <= 150.0,
            "hls.js duration {d} s vs {vod_ms} ms listed"
        );
        let expected = d - f64::from(start);
        assert!(
            o.advanced_s >= expected - 0.5,
            "no stall: played {} s of the {expected} s to the end",
            o.advanced_s
        );
    }
}
