//! `onCuePoint` script tags as `Event::Cue`: tags built like the harness fixture
//! (`/work/shared/harness/scte35.py make-flv`: `{name, time, type: "event",
//! parameters: {cue: <base64 section>, kind, event_id, duration}}`), sections made by
//! threefive, fed to the FLV demuxer as a file, tag by tag (`push_tag`, the RTMP path)
//! and through RtmpClient -> RtmpSession -> FlvDemuxer; and the harness's own
//! `make-flv` output, checked against threefive's decoding of the same file.

mod common;

use std::process::{Command, Stdio};

use bytes::{Bytes, BytesMut};
use common::{Container, TempDir};
use strom::crypto::base64;
use strom::ingest::amf0::{self, Value};
use strom::ingest::flv::{
    write_tag, FlvDemuxer, FlvHeader, FlvMuxer, TagReader, TagType, MAX_SECTION_CLOCK_GAP_90K,
};
use strom::ingest::rtmp::{
    RtmpClient, RtmpClientConfig, RtmpClientEvent, RtmpConfig, RtmpEvent, RtmpSession,
};
use strom::media::{CueKind, Event, Item, SpliceCue};
use strom::pipeline::{drain, Stage};
use strom::scte35::SpliceInfo;
use strom::time::{Timescale, Timestamp};

/// threefive 3.1.5: `mk_splice_null().encode()`.
const NULL_B64: &str = "/DARAAAAAAAAAP/wAAAAAHpPv/8=";
/// `mk_splice_insert(1001, pts=2.0, duration=2.0, out=True).encode()`.
const OUT_B64: &str = "/DAlAAAAAAAAAP/wFAUAAAPpf+/+AAK/IP4AAr8gA+kAAAAAkKar6w==";
/// `mk_splice_insert(1002, pts=4.0, out=False).encode()`.
const IN_B64: &str = "/DAgAAAAAAAAAP/wDwUAAAPqf0/+AAV+QAPqAAAAAIOloew=";

/// An `onCuePoint` body as the harness's `make_flv` writes it.
fn harness_cue(name: &str, time_s: f64, b64: &str, kind: &str) -> Bytes {
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
                    Value::object([
                        ("cue", Value::from(b64)),
                        ("kind", Value::from(kind)),
                        ("event_id", Value::from("1001")),
                        ("duration", Value::from("2.0")),
                    ]),
                ),
            ]),
        ],
        &mut b,
    );
    b.freeze()
}

fn cues(items: &[Item]) -> Vec<&SpliceCue> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Event(Event::Cue(c)) => Some(c),
            _ => None,
        })
        .collect()
}

fn data_names(items: &[Item]) -> Vec<(i64, &str)> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Event(Event::Data { at, name, .. }) => Some((at.as_millis(), name.as_str())),
            _ => None,
        })
        .collect()
}

/// (id, kind, time in ms, duration in ms, raw as base64, immediate)
type CueRow = (u32, CueKind, i64, Option<i64>, String, bool);

fn rows(items: &[Item]) -> Vec<CueRow> {
    cues(items)
        .iter()
        .map(|c| {
            (
                c.id,
                c.kind,
                c.at.as_millis(),
                c.duration.map(|d| d.as_millis()),
                base64::standard(&c.raw),
                c.immediate,
            )
        })
        .collect()
}

/// The FFmpeg clip's tags with the three harness cues inserted before the first tag
/// at or after 40 ms, 2 s and 4 s (as `make_flv` does).
fn clip_with_cues() -> Vec<(TagType, u32, Bytes)> {
    let data = Bytes::from(std::fs::read(common::avc_aac_small_25(6, Container::Flv)).unwrap());
    let mut pending = vec![
        (4000, harness_cue("scte35", 4.0, IN_B64, "in")),
        (2000, harness_cue("scte35", 2.0, OUT_B64, "out")),
        (
            40,
            harness_cue("scte35-heartbeat", 0.04, NULL_B64, "heartbeat"),
        ),
    ];
    let mut tags = Vec::new();
    for t in TagReader::new(data).unwrap() {
        let t = t.unwrap();
        while pending.last().is_some_and(|(at, _)| t.timestamp >= *at) {
            let (at, body) = pending.pop().unwrap();
            tags.push((TagType::Script, at, body));
        }
        tags.push((t.tag_type, t.timestamp, t.body));
    }
    tags
}

fn expected() -> Vec<CueRow> {
    vec![
        (1001, CueKind::Out, 2000, Some(2000), OUT_B64.into(), false),
        (1002, CueKind::In, 4000, None, IN_B64.into(), false),
    ]
}

/// Every cue comes right where its tag was: after the frames before 2 s / 4 s and
/// before the ones at or after.
fn check_order(items: &[Item]) {
    let mut last_frame_ms = i64::MIN;
    for item in items {
        match item {
            Item::Frame(f) => last_frame_ms = f.dts.as_millis(),
            Item::Event(Event::Cue(c)) => {
                assert!(
                    last_frame_ms < c.at.as_millis(),
                    "cue {} after its frames",
                    c.id
                )
            }
            _ => {}
        }
    }
}

#[test]
fn harness_form_in_a_file_and_tag_by_tag() {
    let tags = clip_with_cues();
    // As an FLV file.
    let mut file = BytesMut::new();
    FlvHeader::new(true, true).write(&mut file);
    for (k, t, b) in &tags {
        write_tag(*k, *t, b, &mut file).unwrap();
    }
    let mut d = FlvDemuxer::new();
    d.push(file.freeze()).unwrap();
    d.finish().unwrap();
    let from_file = drain(&mut d).unwrap();
    assert_eq!(rows(&from_file), expected());
    // The splice_null heartbeat is no cue: it stays a data event; onMetaData too.
    assert_eq!(
        data_names(&from_file),
        vec![(0, "onMetaData"), (40, "onCuePoint")]
    );
    assert_eq!(d.cue_stats().cues, 2);
    assert_eq!(d.cue_stats().malformed, 0);
    check_order(&from_file);
    let c = cues(&from_file);
    assert_eq!(c[0].at.scale(), Timescale::MPEG);
    assert_eq!(c[0].at.ticks(), 180_000);
    // The raw section is threefive's, and says the same.
    let sig = SpliceInfo::parse(c[0].raw.clone())
        .unwrap()
        .signal()
        .unwrap();
    assert_eq!((sig.pts, sig.duration), (Some(180_000), Some(180_000)));
    // Muxed again, the cues become onCuePoint tags that read back as the same items.
    let mut mux = FlvMuxer::new();
    let mut again = BytesMut::new();
    for item in &from_file {
        mux.write(item, &mut again).unwrap();
    }
    let mut d = FlvDemuxer::new();
    d.push(again.freeze()).unwrap();
    d.finish().unwrap();
    assert_eq!(drain(&mut d).unwrap(), from_file);
    // Tag by tag, as the RTMP path feeds it: the same items.
    let mut d = FlvDemuxer::without_header();
    let mut by_tag = Vec::new();
    for (k, t, b) in &tags {
        d.push_tag(*k, *t, b.clone()).unwrap();
        by_tag.extend(drain(&mut d).unwrap());
    }
    d.finish().unwrap();
    by_tag.extend(drain(&mut d).unwrap());
    assert_eq!(by_tag, from_file);
}

#[test]
fn through_rtmp_client_and_session() {
    let tags = clip_with_cues();
    let mut client =
        RtmpClient::new(RtmpClientConfig::from_url("rtmp://127.0.0.1/live/x").unwrap());
    let mut server = RtmpSession::new(RtmpConfig::default());
    let mut demux = FlvDemuxer::without_header();
    let mut items = Vec::new();
    let mut next = 0;
    for _ in 0..10_000 {
        if client.is_publishing() {
            if next == tags.len() {
                break;
            }
            let (k, t, b) = &tags[next];
            client.send_tag(*k, *t, b).unwrap();
            next += 1;
        }
        let mut up = BytesMut::new();
        client.poll_transmit(&mut up);
        server.handle_input(&up).unwrap();
        while let Some(ev) = server.poll_event() {
            match ev {
                RtmpEvent::PublishRequested { id, .. } => server.accept(id).unwrap(),
                RtmpEvent::Media {
                    kind,
                    timestamp_ms,
                    body,
                    ..
                } => {
                    demux.push_tag(kind, timestamp_ms, body).unwrap();
                    items.extend(drain(&mut demux).unwrap());
                }
                _ => {}
            }
        }
        let mut down = BytesMut::new();
        server.poll_transmit(&mut down);
        client.handle_input(&down).unwrap();
        while let Some(ev) = client.poll_event() {
            assert!(!matches!(ev, RtmpClientEvent::Rejected { .. }), "{ev:?}");
        }
    }
    assert_eq!(next, tags.len(), "every tag sent");
    assert_eq!(rows(&items), expected());
    assert_eq!(
        data_names(&items),
        vec![(0, "onMetaData"), (40, "onCuePoint")]
    );
    check_order(&items);
}

/// One tag through a fresh demuxer at `tag_ms`.
fn one(body: Bytes, tag_ms: u32) -> (Vec<Item>, FlvDemuxer) {
    let mut d = FlvDemuxer::without_header();
    d.push_tag(TagType::Script, tag_ms, body).unwrap();
    let items = drain(&mut d).unwrap();
    (items, d)
}

#[test]
fn section_clock_immediate_and_malformed() {
    // A section on the source's clock (10 h): placed at the tag time.
    let far = strom::scte35::splice_insert_section(9, true, Some(36_000 * 90_000), None, false);
    let (items, d) = one(
        harness_cue("scte35", 7.0, &base64::standard(&far), "out"),
        7_000,
    );
    assert_eq!(rows(&items)[0].2, 7_000);
    assert_eq!(d.cue_stats().unrelated_clock, 1);
    // 9 s ahead of the tag: the section time.
    let near = strom::scte35::splice_insert_section(9, true, Some(16 * 90_000), None, false);
    let (items, _) = one(
        harness_cue("scte35", 7.0, &base64::standard(&near), "out"),
        7_000,
    );
    assert_eq!(rows(&items)[0].2, 16_000);
    // Just past MAX_SECTION_CLOCK_GAP_90K (10 s) ahead: the tag time again.
    let past = strom::scte35::splice_insert_section(
        9,
        true,
        Some((7 * 90_000 + MAX_SECTION_CLOCK_GAP_90K + 1) as u64),
        None,
        false,
    );
    let (items, d) = one(
        harness_cue("scte35", 7.0, &base64::standard(&past), "out"),
        7_000,
    );
    assert_eq!(rows(&items)[0].2, 7_000);
    assert_eq!(d.cue_stats().unrelated_clock, 1);
    // Immediate: the tag time, flagged.
    let now = strom::scte35::splice_insert_section(10, false, None, None, false);
    let (items, _) = one(
        harness_cue("scte35", 7.0, &base64::standard(&now), "in"),
        7_500,
    );
    assert_eq!(
        rows(&items),
        vec![(10, CueKind::In, 7_500, None, base64::standard(&now), true)]
    );
    // Malformed base64 and a section with a bad CRC: data events, counted.
    for bad in [
        "not base64!",
        "/DAlAAAAAAAAAP/wFAUAAAPpf+/+AAK/IP4AAr8gA+kAAAAAkKar6A==",
    ] {
        let body = harness_cue("scte35", 1.0, bad, "out");
        let (items, d) = one(body.clone(), 1_000);
        assert_eq!(
            items,
            vec![Item::Event(Event::Data {
                at: Timestamp::from_millis(1_000),
                name: "onCuePoint".into(),
                payload: body,
            })]
        );
        assert_eq!((d.cue_stats().malformed, d.cue_stats().cues), (1, 0));
    }
}

#[test]
fn simple_markers_get_built_sections() {
    let marker = |pairs: Vec<(&str, Value)>| {
        let mut b = BytesMut::new();
        amf0::encode_all(&[Value::from("onCuePoint"), Value::object(pairs)], &mut b);
        b.freeze()
    };
    let mut d = FlvDemuxer::without_header();
    let tags = [
        (
            3_000,
            marker(vec![
                ("name", Value::from("ad-break")),
                ("type", Value::from("cue-out")),
                ("duration", Value::Number(30.0)),
                ("id", Value::Number(77.0)),
            ]),
        ),
        (
            33_000,
            marker(vec![
                ("name", Value::from("ad-break")),
                ("type", Value::from("cue-in")),
                ("time", Value::Number(33.04)),
                ("id", Value::Number(77.0)),
            ]),
        ),
        (
            40_000,
            marker(vec![
                ("name", Value::from("start")),
                ("type", Value::from("event")),
                (
                    "parameters",
                    Value::object([("duration", Value::from("10"))]),
                ),
            ]),
        ),
        (50_000, marker(vec![("name", Value::from("return"))])),
    ];
    let mut items = Vec::new();
    for (t, b) in tags {
        d.push_tag(TagType::Script, t, b).unwrap();
        items.extend(drain(&mut d).unwrap());
    }
    let got: Vec<_> = rows(&items)
        .into_iter()
        .map(|(id, k, at, dur, _, imm)| (id, k, at, dur, imm))
        .collect();
    assert_eq!(
        got,
        vec![
            (77, CueKind::Out, 3_000, Some(30_000), false),
            (77, CueKind::In, 33_040, None, false),
            (1, CueKind::Out, 40_000, Some(10_000), false),
            (1, CueKind::In, 50_000, None, false),
        ]
    );
    // Each carries a splice_insert that says the same thing.
    for c in cues(&items) {
        let sig = SpliceInfo::parse(c.raw.clone()).unwrap().signal().unwrap();
        assert_eq!((sig.id, sig.kind), (c.id, c.kind));
        assert_eq!(sig.pts, Some(c.at.ticks_in(Timescale::MPEG) as u64));
        assert_eq!(
            sig.duration,
            c.duration.map(|d| d.ticks_in(Timescale::MPEG) as u64)
        );
    }
}

/// The value after `"key": ` in one line of the harness's JSON output (numbers,
/// booleans and strings without escapes, which is all it prints for these keys).
fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = &line[at..];
    if let Some(s) = rest.strip_prefix('"') {
        return s.split('"').next();
    }
    rest.split([',', '}']).next().map(str::trim)
}

fn threefive_available() -> bool {
    Command::new("python3")
        .args(["-c", "import threefive"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn harness_make_flv_output() {
    let harness = std::path::Path::new("/work/shared/harness/scte35.py");
    if !harness.is_file() || !threefive_available() {
        eprintln!(
            "SKIP harness_make_flv_output: needs python3 with threefive \
             (python3 -m pip install --user threefive==3.1.5) and {}",
            harness.display()
        );
        return;
    }
    let dir = TempDir::new("flv-cues");
    let src = common::avc_aac_small_25(12, Container::Flv);
    let out = dir.join("cues.flv");
    let made = Command::new("python3")
        .arg(harness)
        .arg("make-flv")
        .arg(&src)
        .arg(&out)
        .args(["--at", "4", "--duration", "5", "--event-id", "3001"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // threefive's reading of the file: one JSON line per onCuePoint.
    let decoded = Command::new("python3")
        .arg(harness)
        .arg("flv")
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(decoded.status.success());
    let text = String::from_utf8(decoded.stdout).unwrap();
    let mut want = Vec::new();
    for line in text.lines() {
        let Some(id) = json_field(line, "splice_event_id") else {
            assert_eq!(json_field(line, "command"), Some("Splice Null"), "{line}");
            continue;
        };
        let secs =
            |k| json_field(line, k).map(|v| (v.parse::<f64>().unwrap() * 1000.0).round() as i64);
        let kind = match json_field(line, "out_of_network_indicator") {
            Some("true") => CueKind::Out,
            _ => CueKind::In,
        };
        want.push((
            id.parse::<u32>().unwrap(),
            kind,
            secs("pts_time").unwrap(),
            secs("break_duration"),
            json_field(line, "cue").unwrap().to_owned(),
            false,
        ));
    }
    assert_eq!(
        want.len(),
        2,
        "threefive found the out and in cues:\n{text}"
    );
    println!("threefive decoded: {want:?}");
    assert_eq!(
        (want[0].0, want[0].2, want[0].3),
        (3001, 4_000, Some(5_000))
    );
    // Our demuxer on the same file.
    let mut d = FlvDemuxer::new();
    d.push(Bytes::from(std::fs::read(&out).unwrap())).unwrap();
    d.finish().unwrap();
    let items = drain(&mut d).unwrap();
    assert_eq!(rows(&items), want);
    assert_eq!(d.cue_stats().malformed, 0);
    check_order(&items);
    let frames = items.iter().filter(|i| i.as_frame().is_some()).count();
    assert!(frames > 500, "{frames} frames");
}
