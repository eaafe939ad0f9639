//! DASH ad signalling against independent readers: an MPD `EventStream` of SCTE-35
//! `xml+bin` events and `emsg` boxes (versions 0 and 1) inserted into CMAF fragments.
//!
//! * `dash-mpd-core` parses the MPD (no conformity error) and sees the EventStream, its
//!   events' ids, times and durations, the `InbandEventStream`, and a `scte35:Binary`
//!   that decodes to the very section written.
//! * threefive (`/work/shared/harness/scte35.py`) decodes the SCTE-35 of the MPD and of
//!   the `emsg` boxes of a segment.
//! * mp4-atom decodes our `emsg` boxes; strom's own fMP4 reader and ffmpeg read fragments
//!   carrying them, and every frame decodes identical to the source, through the MPD
//!   and as one fragmented file.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bytes::{Bytes, BytesMut};
use common::cmaf::{cut, demux, shift_to_zero};
use common::{avc_aac_25, decode_errors, framemd5, packets, Container, TempDir};
use mp4_atom::{Any, Decode, EmsgTimestamp};
use strom::container::fmp4::{emsg_insert_offset, Emsg, EmsgTime, Fmp4Reader, Fmp4Writer};
use strom::media::{Frame, MediaKind, TrackInfo};
use strom::package::dash::{
    scte35_emsg, AdaptationSet, DashEvent, EventMessage, EventStream, InbandEventStream, Mpd,
    MpdType, Representation, Role, SegmentTemplate, SCHEME_SCTE35_BIN, SCHEME_SCTE35_XML_BIN,
};
use strom::scte35::splice_insert_section;
use strom::time::Timestamp;

const HARNESS: &str = "/work/shared/harness/scte35.py";

/// The ad break: out at 2 s for 4 s (event 1001), back in at 6 s (event 1002), in
/// 90 kHz; the splice times are those of the MPD timeline (no `pts_adjustment`).
fn cues() -> [(u32, u64, Option<u64>, Bytes); 2] {
    [
        (
            1001,
            180_000,
            Some(360_000),
            splice_insert_section(1001, true, Some(180_000), Some(360_000), true),
        ),
        (
            1002,
            540_000,
            None,
            splice_insert_section(1002, false, Some(540_000), None, false),
        ),
    ]
}

/// The `emsg` boxes put in every fragment, in `timescale` ticks: version 1 with the cue
/// of the break (its absolute time), version 0 with the return (1 s after the fragment
/// start). A cue repeated in several segments keeps its id.
fn emsgs(timescale: u32) -> Vec<Emsg> {
    let [(out_id, out_at, out_dur, out), (in_id, _, _, back)] = cues();
    let to_track = |t90k: u64| t90k * u64::from(timescale) / 90_000;
    let v1 = scte35_emsg(
        timescale,
        to_track(out_at),
        out_dur.map(to_track),
        out_id,
        out,
    )
    .unwrap();
    let v0 = Emsg::new(
        SCHEME_SCTE35_BIN,
        "",
        timescale,
        EmsgTime::Delta(timescale),
        back,
    )
    .with_id(in_id)
    .with_duration(0);
    assert_eq!((v1.version(), v0.version()), (1, 0));
    vec![v1, v0]
}

/// One written fragment: the file bytes without and with `emsg`, and its boxes.
struct Written {
    plain: Vec<u8>,
    with_emsg: Vec<u8>,
    emsgs: Vec<Emsg>,
    base_decode_time: u64,
    duration: u64,
    frames: usize,
}

/// The video track of the 8 s test clip as CMAF fragments of about 2 s.
fn video_fragments() -> (PathBuf, TrackInfo, Vec<u8>, Vec<Written>) {
    let source = avc_aac_25(8, Container::Mp4);
    let (tracks, mut frames) = demux(&source);
    let track = tracks
        .iter()
        .find(|t| t.kind == MediaKind::Video)
        .unwrap()
        .clone();
    let frames: &mut Vec<Frame> = frames.get_mut(&track.id).unwrap();
    shift_to_zero(frames);
    let mut w = Fmp4Writer::new(track.clone()).unwrap();
    let mut init = BytesMut::new();
    w.init_segment(&mut init).unwrap();
    let runs = cut(frames, 2 * i64::from(track.timescale.get()), true);
    assert!(runs.len() >= 3, "{} fragments", runs.len());
    let mut out = Vec::new();
    for (n, r) in runs.iter().enumerate() {
        let next = frames.get(r.end).map(|f| f.dts);
        let mut seg = BytesMut::new();
        let info = w
            .media_segment(&frames[r.clone()], n as u32 + 1, next, &mut seg)
            .unwrap();
        // The writer's fragments are styp moof mdat: the boxes go after styp.
        let styp = u32::from_be_bytes(seg[..4].try_into().unwrap()) as usize;
        assert_eq!(&seg[4..8], b"styp");
        let at = emsg_insert_offset(&seg).unwrap();
        assert_eq!(at, styp);
        let emsgs = emsgs(track.timescale.get());
        let mut with = BytesMut::from(&seg[..at]);
        for e in &emsgs {
            e.write(&mut with).unwrap();
        }
        with.extend_from_slice(&seg[at..]);
        // Still a place for more: after styp, before the emsg boxes already there.
        assert_eq!(emsg_insert_offset(&with).unwrap(), at);
        out.push(Written {
            plain: seg.to_vec(),
            with_emsg: with.to_vec(),
            emsgs,
            base_decode_time: info.base_decode_time,
            duration: info.duration,
            frames: r.len(),
        });
    }
    (source, track, init.to_vec(), out)
}

/// The MPD: the video AdaptationSet announcing SCTE-35 `emsg` boxes, and the Period's
/// SCTE-35 `xml+bin` EventStream with both cues.
fn mpd_for(track: &TrackInfo, fragments: &[Written]) -> Mpd {
    let mut template = SegmentTemplate::new(track.timescale);
    let mut end = 0;
    for f in fragments {
        template
            .timeline
            .push(f.base_decode_time, f.duration)
            .unwrap();
        end = f.base_decode_time + f.duration;
    }
    let rep = Representation::for_track("video", track, 700_000, template);
    let mut set = AdaptationSet::for_track(0, track, rep)
        .unwrap()
        .with_role(Role::Main);
    set.inband_event_streams.push(InbandEventStream::scte35());
    let mut mpd = Mpd::new(MpdType::Static {
        media_presentation_duration: Timestamp::new(end as i64, track.timescale),
    });
    mpd.period_mut().adaptation_sets.push(set);
    let mut stream = EventStream::new(SCHEME_SCTE35_XML_BIN, 90_000);
    for (id, at, duration, section) in cues() {
        let mut e = DashEvent::new(u64::from(id), at, EventMessage::Scte35Binary(section));
        e.duration = duration;
        stream.events.push(e);
    }
    mpd.period_mut().event_streams.push(stream);
    mpd
}

/// Writes `init.mp4`, `N.m4s` (from 1, with their `emsg` boxes) and `manifest.mpd`
/// into `dir/video`; returns the MPD text.
fn write_presentation(dir: &Path, track: &TrackInfo, init: &[u8], fragments: &[Written]) -> String {
    let sub = dir.join("video");
    fs::create_dir_all(&sub).unwrap();
    fs::write(sub.join("init.mp4"), init).unwrap();
    for (n, f) in fragments.iter().enumerate() {
        fs::write(sub.join(format!("{}.m4s", n + 1)), &f.with_emsg).unwrap();
    }
    let text = mpd_for(track, fragments).write().unwrap();
    fs::write(dir.join("manifest.mpd"), &text).unwrap();
    text
}

/// Standard base64 (RFC 4648 §4) decoding, written here so the check does not rest on
/// the crate's encoder.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:#x} in {text:?}"),
        }
    };
    let bytes: Vec<u8> = text.trim().bytes().collect();
    assert_eq!(bytes.len() % 4, 0, "{text:?}");
    let mut out = Vec::new();
    for q in bytes.chunks(4) {
        let pad = q.iter().filter(|&&c| c == b'=').count();
        let n = q
            .iter()
            .map(|&c| if c == b'=' { 0 } else { value(c) })
            .fold(0u32, |acc, v| (acc << 6) | v);
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    out
}

/// Runs the threefive harness; returns its JSON lines. Panics with its output when it
/// fails (exit status 1: no cue, or a cue that does not decode).
fn harness(what: &str, file: &Path) -> Vec<String> {
    let out = Command::new("python3")
        .arg(HARNESS)
        .arg(what)
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {HARNESS}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{HARNESS} {what} {} failed ({}); threefive missing? \
         `python3 -m pip install --user threefive==3.1.5`\n{stdout}\n{}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

fn assert_has(line: &str, needles: &[&str]) {
    for n in needles {
        assert!(line.contains(n), "{line}\nlacks {n}");
    }
}

#[test]
fn mpd_events_read_back_independently() {
    let (source, track, init, fragments) = video_fragments();
    let dir = TempDir::new("dash-events-mpd");
    let xml = write_presentation(dir.path(), &track, &init, &fragments);
    assert!(
        xml.contains(r#"xmlns:scte35="http://www.scte.org/schemas/35/2016""#),
        "{xml}"
    );
    // The EventStream precedes the AdaptationSet (ISO/IEC 23009-1 §5.3.2 order).
    assert!(xml.find("<EventStream").unwrap() < xml.find("<AdaptationSet").unwrap());

    let mpd = dash_mpd_core::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let errors = dash_mpd_core::check_conformity(&mpd);
    assert!(errors.is_empty(), "conformity: {errors:?}\n{xml}");
    let period = &mpd.periods[0];
    assert_eq!(period.event_streams.len(), 1);
    let stream = &period.event_streams[0];
    assert_eq!(stream.schemeIdUri, SCHEME_SCTE35_XML_BIN);
    assert_eq!(stream.timescale, Some(90_000));
    assert_eq!(stream.event.len(), 2);
    for (event, (id, at, duration, section)) in stream.event.iter().zip(cues()) {
        assert_eq!(event.id.as_deref(), Some(id.to_string().as_str()));
        assert_eq!(event.presentationTime, Some(at));
        assert_eq!(event.duration, duration);
        assert_eq!(event.signal.len(), 1, "{event:?}");
        let binary = event.signal[0].content.as_ref().expect("scte35:Binary");
        assert_eq!(base64_decode(&binary.content), section.to_vec());
    }
    let set = &period.adaptations[0];
    assert_eq!(set.InbandEventStream.len(), 1);
    assert_eq!(set.InbandEventStream[0].schemeIdUri, SCHEME_SCTE35_BIN);
    assert_eq!(set.InbandEventStream[0].value, None);

    // threefive decodes both cues of the MPD, with the times and ids written.
    let lines = harness("mpd", &dir.join("manifest.mpd"));
    let events: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"MPD EventStream\""))
        .collect();
    assert_eq!(events.len(), 2, "{lines:#?}");
    assert_has(
        events[0],
        &[
            "\"event_id\": \"1001\"",
            "\"presentation_time_s\": 2.0",
            "\"duration_s\": 4.0",
            "\"command\": \"Splice Insert\"",
            "\"splice_event_id\": 1001",
            "\"out_of_network_indicator\": true",
            "\"pts_time\": 2.0",
            "\"break_duration\": 4.0",
            "\"break_auto_return\": true",
        ],
    );
    assert_has(
        events[1],
        &[
            "\"event_id\": \"1002\"",
            "\"presentation_time_s\": 6.0",
            "\"duration_s\": null",
            "\"splice_event_id\": 1002",
            "\"out_of_network_indicator\": false",
            "\"pts_time\": 6.0",
        ],
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"InbandEventStream\"") && l.contains(SCHEME_SCTE35_BIN)),
        "{lines:#?}"
    );

    // ffmpeg's DASH demuxer reads the presentation, emsg boxes and all: every frame
    // decodes, identical to the source.
    let manifest = dir.join("manifest.mpd");
    assert_eq!(decode_errors(&manifest), "");
    let a = framemd5(&source, "v:0");
    let b = framemd5(&manifest, "v:0");
    assert_eq!(a.len(), 200, "source frames");
    assert!(
        a == b,
        "decoded video differs ({} vs {} frames)",
        a.len(),
        b.len()
    );
}

#[test]
fn emsg_boxes_in_fragments_read_back_independently() {
    let (source, track, init, fragments) = video_fragments();
    let dir = TempDir::new("dash-events-emsg");

    for (n, f) in fragments.iter().enumerate() {
        // Our parser and mp4-atom read the top-level boxes; the emsg boxes come back
        // field for field, in both versions.
        let mut rest = &f.with_emsg[..];
        let mut kinds = Vec::new();
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        while !rest.is_empty() {
            let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            kinds.push(String::from_utf8_lossy(&rest[4..8]).into_owned());
            if &rest[4..8] == b"emsg" {
                let (e, used) = Emsg::parse(rest).unwrap();
                assert_eq!(used, size);
                ours.push(e);
            }
            let mut view = &rest[..size];
            match Any::decode(&mut view).unwrap() {
                Any::Emsg(e) => theirs.push(e),
                any @ Any::Unknown(..) => panic!("mp4-atom does not know {:?}", any.kind()),
                _ => {}
            }
            assert!(view.is_empty());
            rest = &rest[size..];
        }
        assert_eq!(
            kinds,
            ["styp", "emsg", "emsg", "moof", "mdat"],
            "fragment {n}"
        );
        assert_eq!(ours, f.emsgs);
        assert_eq!(theirs.len(), 2);
        for (mine, atom) in f.emsgs.iter().zip(&theirs) {
            assert_eq!(atom.scheme_id_uri, mine.scheme_id_uri);
            assert_eq!(atom.value, mine.value);
            assert_eq!(atom.timescale, mine.timescale);
            assert_eq!(atom.event_duration, mine.event_duration);
            assert_eq!(atom.id, mine.id);
            assert_eq!(atom.message_data, mine.message_data.to_vec());
            match (atom.presentation_time.clone(), mine.time) {
                (EmsgTimestamp::Relative(a), EmsgTime::Delta(b)) => assert_eq!(a, b),
                (EmsgTimestamp::Absolute(a), EmsgTime::Absolute(b)) => assert_eq!(a, b),
                (a, b) => panic!("version mismatch: {a:?} / {b:?}"),
            }
        }
        // The version 1 box holds the break's absolute time in track ticks.
        let scale = u64::from(track.timescale.get());
        assert_eq!(
            theirs[0].presentation_time,
            EmsgTimestamp::Absolute(2 * scale)
        );
        assert_eq!(theirs[0].event_duration as u64, 4 * scale);

        // strom's fMP4 reader skips the emsg boxes and reads the same frames.
        let mut reader = Fmp4Reader::new(Bytes::from(init.clone())).unwrap();
        let with = reader
            .read_segment(Bytes::from(f.with_emsg.clone()))
            .unwrap();
        let mut reader = Fmp4Reader::new(Bytes::from(init.clone())).unwrap();
        let plain = reader.read_segment(Bytes::from(f.plain.clone())).unwrap();
        assert_eq!(with.len(), f.frames);
        assert_eq!(with, plain);
    }

    // threefive decodes the SCTE-35 of both boxes of a segment, version 0 and 1.
    let segment = dir.join("2.m4s");
    fs::write(&segment, &fragments[1].with_emsg).unwrap();
    let lines = harness("emsg", &segment);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let scale = track.timescale.get();
    assert_has(
        &lines[0],
        &[
            "\"version\": 1",
            "\"scheme\": \"urn:scte:scte35:2013:bin\"",
            &format!("\"timescale\": {scale}"),
            &format!("\"presentation_time\": {}", 2 * scale),
            &format!("\"duration\": {}", 4 * scale),
            "\"id\": 1001",
            "\"command\": \"Splice Insert\"",
            "\"splice_event_id\": 1001",
            "\"out_of_network_indicator\": true",
            "\"pts_time\": 2.0",
            "\"break_duration\": 4.0",
        ],
    );
    assert_has(
        &lines[1],
        &[
            "\"version\": 0",
            &format!("\"presentation_time_delta\": {scale}"),
            "\"duration\": 0",
            "\"id\": 1002",
            "\"splice_event_id\": 1002",
            "\"out_of_network_indicator\": false",
            "\"pts_time\": 6.0",
        ],
    );

    // One fragmented file, init + fragments with emsg boxes: ffprobe counts every
    // frame and ffmpeg decodes them cleanly, identical to the source and to the same
    // file without the boxes.
    let cat = |with: bool| {
        let mut file = init.clone();
        for f in &fragments {
            file.extend_from_slice(if with { &f.with_emsg } else { &f.plain });
        }
        file
    };
    let with_path = dir.join("with_emsg.mp4");
    let plain_path = dir.join("plain.mp4");
    fs::write(&with_path, cat(true)).unwrap();
    fs::write(&plain_path, cat(false)).unwrap();
    let total: usize = fragments.iter().map(|f| f.frames).sum();
    assert_eq!(total, 200);
    assert_eq!(packets(&with_path, "v:0").packets.len(), total);
    assert_eq!(decode_errors(&with_path), "");
    let a = framemd5(&source, "v:0");
    let b = framemd5(&with_path, "v:0");
    let c = framemd5(&plain_path, "v:0");
    assert_eq!(b.len(), total);
    assert!(a == b, "decoded video differs from the source");
    assert!(b == c, "the emsg boxes changed the decoded video");
}
