//! Live-to-VOD with ad breaks: an Origin records a live stream whose publisher sent two
//! SCTE-35 breaks; right after the publisher stops, `/live/{s}/vod.m3u8` exists and
//!
//! * with `ads=remove` lasts the live duration minus the breaks (the cuts are on
//!   keyframes, so exactly), lists no discontinuity (later segments are re-timed), and
//!   decodes (FFmpeg, through its HLS demuxer) to the source's frames with the break
//!   frames cut out, frame for frame;
//! * with `ads=join` decodes to the same frames, the programme joined by discontinuities;
//! * with `ads=keep` decodes to every source frame;
//! * `types=` leaves breaks of other segmentation types in.
//!
//! Run: `cargo test --release --test l2v -- --nocapture`.

mod common;

use bytes::Bytes;
use common::*;
use strom::ingest::flv::FlvDemuxer;
use strom::media::{CueKind, Event, Item, SpliceCue};
use strom::origin::{
    MemoryStore, MemoryStoreOptions, Method, Origin, OriginOptions, Request, SegmentStore, Series,
};
use strom::pipeline::Stage;
use strom::time::Timestamp;

const T0: i64 = 1_760_000_000_000;
/// Frames per second of the clip.
const FPS: i64 = 25;

/// (event id, splice time ms, duration ms, segmentation type) of the breaks, and where
/// each is cut: keyframes every 2 s, so 10 s -> 10 s .. 18 s, and 31 s -> 32 s .. 38 s
/// (37 s asked for the return: the next keyframe is 38 s).
const BREAKS: [(u32, i64, i64, Option<u8>); 2] =
    [(11, 10_000, 8_000, None), (12, 31_000, 6_000, Some(0x34))];
const CUTS_MS: [(i64, i64); 2] = [(10_000, 18_000), (32_000, 38_000)];

fn record() -> Origin<MemoryStore> {
    let flv = avc_aac_small_25(60, Container::Flv);
    let mut demux = FlvDemuxer::new();
    demux
        .push(Bytes::from(std::fs::read(&flv).expect("read the clip")))
        .expect("FLV");
    demux.finish().expect("FLV end");
    let mut items: Vec<Item> = Vec::new();
    while let Some(i) = demux.poll() {
        items.push(i.expect("FLV item"));
    }
    let mut store_opts = MemoryStoreOptions::default();
    store_opts.max_segments_per_stream = 1000;
    store_opts.max_bytes_per_stream = 1 << 30;
    let mut o = Origin::new(MemoryStore::new(store_opts), OriginOptions::default());
    o.publish("show", T0).expect("publish");
    let mut cues: Vec<(i64, Item)> = Vec::new();
    for (id, at, dur, seg_type) in BREAKS {
        let raw = strom::scte35::splice_insert_section(
            id,
            true,
            Some((at * 90) as u64),
            Some((dur * 90) as u64),
            true,
        );
        let mut cue = SpliceCue::new(
            id,
            CueKind::Out,
            Timestamp::from_millis(at),
            Some(Timestamp::from_millis(dur)),
        )
        .with_raw(raw);
        if let Some(t) = seg_type {
            cue = cue.with_segmentation_type(t);
        }
        // Sent four seconds ahead, as encoders do.
        cues.push((at - 4_000, Item::Event(Event::Cue(cue))));
    }
    let mut now = T0;
    for item in items {
        if let Some(f) = item.as_frame() {
            let t = f.dts.as_millis();
            now = now.max(T0 + t);
            while cues.first().is_some_and(|(send, _)| *send <= t) {
                let (_, cue) = cues.remove(0);
                o.push("show", cue, now).expect("cue");
            }
        }
        o.push("show", item, now).expect("push");
    }
    o.unpublish("show", now + 40).expect("unpublish");
    o
}

fn get(o: &Origin<MemoryStore>, path: &str) -> (u16, Bytes) {
    let r = o.handle(&Request::new(Method::Get, path), T0 + 120_000);
    (r.status, r.body)
}

/// Writes the playlist at `path` and every segment it lists into `dir` under local
/// names; returns the local playlist and the parsed original.
fn localize(
    o: &Origin<MemoryStore>,
    path: &str,
    dir: &TempDir,
) -> (std::path::PathBuf, m3u8_rs::MediaPlaylist) {
    let (status, body) = get(o, path);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    let pl = m3u8_rs::parse_media_playlist_res(&body).expect("m3u8-rs parses the VOD playlist");
    let base = path.rsplit_once('/').map(|(b, _)| b).unwrap_or("");
    let mut text = String::new();
    for line in String::from_utf8_lossy(&body).lines() {
        if line.starts_with('#') || line.is_empty() {
            text.push_str(line);
        } else {
            let (status, seg) = get(o, &format!("{base}/{line}"));
            assert_eq!(status, 200, "segment {line}");
            let local = format!("s{}.ts", text.len());
            std::fs::write(dir.join(&local), &seg).expect("write segment");
            text.push_str(&local);
        }
        text.push('\n');
    }
    let file = dir.join("vod.m3u8");
    std::fs::write(&file, text).expect("write playlist");
    (file, pl)
}

/// Writes `vod.mpd` with every init segment and fragment it addresses into `dir` (the
/// `?ads=remove` query dropped from the template, so FFmpeg reads plain files); returns
/// the local MPD, the served MPD text and how many fragments were fetched.
fn localize_mpd(o: &Origin<MemoryStore>, dir: &TempDir) -> (std::path::PathBuf, String, usize) {
    let (status, body) = get(o, "/live/show/vod.mpd");
    let text = String::from_utf8(body.to_vec()).expect("UTF-8 MPD");
    assert_eq!(status, 200, "{text}");
    let ids: Vec<String> = text
        .split("<Representation id=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next().map(str::to_string))
        .collect();
    assert!(ids.len() >= 2, "video and audio: {ids:?}");
    let mut count = 0;
    for id in &ids {
        std::fs::create_dir_all(dir.join(&format!("vod/{id}"))).unwrap();
        let (status, init) = get(o, &format!("/live/show/{id}/init.mp4"));
        assert_eq!(status, 200, "init of {id}");
        std::fs::create_dir_all(dir.join(id)).unwrap();
        std::fs::write(dir.join(&format!("{id}/init.mp4")), &init).unwrap();
        for k in 0..10_000 {
            let (status, frag) = get(o, &format!("/live/show/vod/{id}/{k}.m4s?ads=remove"));
            if status == 404 {
                break;
            }
            assert_eq!(status, 200, "fragment {k} of {id}");
            assert!(!frag.windows(4).any(|w| w == b"emsg"), "no emsg left");
            std::fs::write(dir.join(&format!("vod/{id}/{k}.m4s")), &frag).unwrap();
            count += 1;
        }
    }
    let file = dir.join("vod.mpd");
    std::fs::write(&file, text.replace("?ads=remove", "")).unwrap();
    (file, text, count)
}

fn total_ms(pl: &m3u8_rs::MediaPlaylist) -> i64 {
    pl.segments
        .iter()
        .map(|s| (s.duration as f64 * 1000.0).round() as i64)
        .sum()
}

#[test]
fn vod_without_ads_decodes_to_the_source_minus_the_breaks() {
    let o = record();
    let mut live_ms = 0;
    let mut ad_ms = 0;
    o.store()
        .records("show", Series::Ts, 0, &mut |r| {
            live_ms += r.duration.as_millis();
            if r.ad.is_some() {
                ad_ms += r.duration.as_millis();
            }
            true
        })
        .expect("records");
    let breaks_ms: i64 = CUTS_MS.iter().map(|(a, b)| b - a).sum();
    println!("recorded {live_ms} ms, {ad_ms} ms of it in ad breaks (cut at {CUTS_MS:?})");
    assert_eq!(ad_ms, breaks_ms, "the break segments span exactly the cuts");

    let source = framemd5(&avc_aac_small_25(60, Container::Flv), "v:0");
    let kept: Vec<String> = source
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let t = *i as i64 * 1000 / FPS;
            !CUTS_MS.iter().any(|(a, b)| (*a..*b).contains(&t))
        })
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(source.len() - kept.len(), (breaks_ms * FPS / 1000) as usize);

    for (mode, expect_disc) in [("remove", 0), ("join", 2)] {
        let dir = TempDir::new(&format!("l2v-{mode}"));
        let (file, pl) = localize(&o, &format!("/live/show/vod.m3u8?ads={mode}"), &dir);
        assert!(pl.end_list, "{mode}: VOD right after the publisher stopped");
        assert_eq!(pl.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        let disc = pl.segments.iter().filter(|s| s.discontinuity).count();
        assert_eq!(disc, expect_disc, "{mode}: discontinuities");
        let dur = total_ms(&pl);
        println!("ads={mode}: {dur} ms listed (live {live_ms} ms - breaks {breaks_ms} ms), {disc} discontinuities");
        assert!(
            (dur - (live_ms - breaks_ms)).abs() <= 2 * 1000 / FPS,
            "{mode}: {dur} ms"
        );
        let ours = hls_framemd5(&tool("ffmpeg"), &file, "v:0");
        assert_eq!(ours.len(), kept.len(), "{mode}: frame count");
        assert!(
            ours == kept,
            "{mode}: frames differ from the source minus the breaks"
        );
        let errors = decode_errors(&file);
        assert!(errors.is_empty(), "{mode}: decode errors: {errors}");
    }

    // Everything, as recorded.
    let dir = TempDir::new("l2v-keep");
    let (file, pl) = localize(&o, "/live/show/vod.m3u8?ads=keep", &dir);
    assert_eq!(total_ms(&pl), live_ms);
    assert!(
        hls_framemd5(&tool("ffmpeg"), &file, "v:0") == source,
        "keep: every source frame"
    );

    // Only breaks of segmentation type 0x34: the first break (a splice_insert) stays.
    let (_, body) = get(&o, "/live/show/vod.m3u8?ads=remove&types=0x34");
    let pl = m3u8_rs::parse_media_playlist_res(&body).expect("parse");
    assert_eq!(total_ms(&pl), live_ms - (CUTS_MS[1].1 - CUTS_MS[1].0));

    // DASH: one static Period, the break fragments left out, the rest re-timed.
    let dir = TempDir::new("l2v-dash");
    let (mpd_file, mpd_text, count) = localize_mpd(&o, &dir);
    assert!(mpd_text.contains("type=\"static\""), "{mpd_text}");
    assert_eq!(mpd_text.matches("<Period").count(), 1);
    assert!(
        !mpd_text.contains("EventStream"),
        "no break is left to signal"
    );
    println!("vod.mpd: {count} fragments over its representations");
    let ours = framemd5(&mpd_file, "v:0");
    assert_eq!(ours.len(), kept.len(), "DASH: frame count");
    assert!(
        ours == kept,
        "DASH: frames differ from the source minus the breaks"
    );
    let dash = dash_mpd_core::parse(&mpd_text).expect("dash-mpd-core parses the VOD MPD");
    let dur = dash.mediaPresentationDuration.expect("a duration");
    let listed_ms = dur.as_millis() as i64;
    println!("vod.mpd lasts {listed_ms} ms");
    assert!(
        (listed_ms - (live_ms - breaks_ms)).abs() <= 2 * 1000 / FPS,
        "DASH duration {listed_ms} ms"
    );

    // Bad queries and the DASH variant.
    assert_eq!(get(&o, "/live/show/vod.m3u8?ads=drop").0, 400);
    assert_eq!(get(&o, "/live/nobody/vod.m3u8").0, 404);
    assert_eq!(get(&o, "/live/show/vod/3.ts?shift=12").0, 400);
}
