//! Live-to-VOD DASH with the ad breaks joined or replaced (`/live/{s}/vod.mpd?ads=join`,
//! `?ads=replace`): an Origin records a live stream whose publisher sent two SCTE-35
//! breaks (cut at 10 s .. 18 s and 32 s .. 38 s); right after the publisher stops,
//!
//! * `ads=join` is a static MPD (parsed by `dash-mpd-core`) of one Period per run of
//!   programme (three), whose starts add up and whose total is the `ads=remove`
//!   variant's; every fragment it addresses is served as stored (its `tfdt` is its
//!   timeline time, the Period's `presentationTimeOffset` the run's start), and FFmpeg
//!   decodes each Period's fragments to the frames of the `ads=remove` variant (read by
//!   FFmpeg's DASH demuxer), which are the source's without the breaks;
//! * `ads=replace`, with two ffmpeg-made creatives (4 s and 3 s) registered (and one
//!   without a CMAF form, which DASH cannot play), alternates content Periods with the
//!   creatives' Periods (both, by id, in full, for each break), every URL it addresses
//!   fetches 200 from the Origin, its total is the programme's plus the ads' (their
//!   MPEG-TS durations), and it decodes Period by Period to the source's frames with the
//!   creatives' own frames where the breaks were; without a creative it answers 409.
//!
//! Run: `cargo test --release --test l2v_dash -- --nocapture`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use strom::origin::{CmafKey, MemoryStore, Method, Origin, Request, SegmentStore, Series};
use strom::package::ssai::{Creative, CreativeSegment};
use strom::time::Timestamp;

use common::l2v::*;

/// The host clock of the requests (Unix ms): after the publisher stopped.
const NOW: i64 = T0 + 120_000;

/// Through the origin's whole router ([`Origin::handle_mut`]: creatives are served there).
fn get(o: &mut Origin<MemoryStore>, path: &str) -> (u16, Bytes) {
    let r = o.handle_mut(&Request::new(Method::Get, path), NOW);
    (r.status, r.body)
}

/// `vod.mpd?ads={mode}`: its text and its parse by `dash-mpd-core`.
fn vod_mpd(o: &mut Origin<MemoryStore>, mode: &str) -> (String, dash_mpd_core::MPD) {
    let (status, body) = get(o, &format!("/live/show/vod.mpd?ads={mode}"));
    let text = String::from_utf8(body.to_vec()).expect("UTF-8 MPD");
    assert_eq!(status, 200, "ads={mode}: {text}");
    let mpd = dash_mpd_core::parse(&text)
        .unwrap_or_else(|e| panic!("dash-mpd-core cannot parse ads={mode}: {e:?}\n{text}"));
    assert_eq!(mpd.mpdtype.as_deref(), Some("static"), "{text}");
    (text, mpd)
}

/// An `xs:duration` of the MPD in whole milliseconds (`None`: absent).
fn ms(d: Option<std::time::Duration>) -> Option<i64> {
    d.map(|d| ((d.as_nanos() + 500_000) / 1_000_000) as i64)
}

/// One Representation of a parsed Period, its URLs resolved against `/live/show/`.
struct Rep {
    id: String,
    content_type: String,
    timescale: u64,
    pto: u64,
    /// `(number, t, d)` of every segment.
    segments: Vec<(u64, u64, u64)>,
    init: String,
    media: String,
}

impl Rep {
    fn url(&self, number: u64) -> String {
        self.media.replace("$Number$", &number.to_string())
    }

    /// Its span on the Period's timeline: `(first t - pto, last end - pto)` in ms.
    fn span_ms(&self) -> (i64, i64) {
        let first = self.segments.first().expect("a segment");
        let last = self.segments.last().expect("a segment");
        let to_ms = |t: u64| (t as i64 - self.pto as i64) * 1000 / self.timescale as i64;
        (to_ms(first.1), to_ms(last.1 + last.2))
    }
}

fn resolve(template: &str, id: &str) -> String {
    let t = template.replace("$RepresentationID$", id);
    if t.starts_with('/') {
        t
    } else {
        format!("/live/show/{t}")
    }
}

/// The Representations of `period`, video first, their timelines expanded.
fn reps(period: &dash_mpd_core::Period) -> Vec<Rep> {
    let mut out = Vec::new();
    for set in &period.adaptations {
        for r in &set.representations {
            let id = r.id.clone().expect("Representation@id");
            let t = r.SegmentTemplate.as_ref().expect("a SegmentTemplate");
            let mut segments = Vec::new();
            let mut number = t.startNumber.unwrap_or(1);
            let mut at = 0u64;
            for s in &t
                .SegmentTimeline
                .as_ref()
                .expect("a SegmentTimeline")
                .segments
            {
                at = s.t.unwrap_or(at);
                let repeat = s.r.unwrap_or(0);
                assert!(repeat >= 0, "{id}: open-ended S@r");
                for _ in 0..=repeat {
                    segments.push((number, at, s.d));
                    number += 1;
                    at += s.d;
                }
            }
            out.push(Rep {
                content_type: set.contentType.clone().unwrap_or_default(),
                timescale: t.timescale.unwrap_or(1),
                pto: t.presentationTimeOffset.unwrap_or(0),
                init: resolve(t.initialization.as_deref().expect("init template"), &id),
                media: resolve(t.media.as_deref().expect("media template"), &id),
                segments,
                id,
            });
        }
    }
    out
}

/// `baseMediaDecodeTime` of a fragment's (first) `tfdt`.
fn tfdt(fragment: &[u8]) -> u64 {
    let at = fragment
        .windows(4)
        .position(|w| w == b"tfdt")
        .expect("a tfdt");
    let field = &fragment[at + 8..];
    if fragment[at + 4] == 1 {
        u64::from_be_bytes(field[..8].try_into().unwrap())
    } else {
        u64::from(u32::from_be_bytes(field[..4].try_into().unwrap()))
    }
}

/// Fetches the init segment and every fragment of `rep` (all must answer 200), writes
/// them one after the other into `dir/{name}.mp4` and returns that file.
fn fetch_rep(o: &mut Origin<MemoryStore>, rep: &Rep, dir: &TempDir, name: &str) -> PathBuf {
    let (status, init) = get(o, &rep.init);
    assert_eq!(
        status,
        200,
        "{}: {}",
        rep.init,
        String::from_utf8_lossy(&init)
    );
    assert_eq!(&init[4..8], b"ftyp", "{}: an init segment", rep.init);
    let mut file = init.to_vec();
    for &(n, _, _) in &rep.segments {
        let url = rep.url(n);
        let (status, frag) = get(o, &url);
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&frag));
        assert!(frag.windows(4).any(|w| w == b"moof"), "{url}: a fragment");
        file.extend_from_slice(&frag);
    }
    let path = dir.join(&format!("{name}.mp4"));
    std::fs::write(&path, &file).expect("write");
    path
}

/// Writes `vod.mpd?ads=remove` with its init segments and fragments into `dir` (the
/// query dropped from the template, so FFmpeg's DASH demuxer reads plain files).
fn localize_remove(
    o: &mut Origin<MemoryStore>,
    text: &str,
    mpd: &dash_mpd_core::MPD,
    dir: &TempDir,
) -> PathBuf {
    assert_eq!(mpd.periods.len(), 1, "ads=remove: one Period");
    for rep in reps(&mpd.periods[0]) {
        std::fs::create_dir_all(dir.join(&format!("vod/{}", rep.id))).unwrap();
        let (status, init) = get(o, &rep.init);
        assert_eq!(status, 200, "{}", rep.init);
        std::fs::write(dir.join(&format!("{}/init.mp4", rep.id)).as_path(), &init)
            .or_else(|_| {
                std::fs::create_dir_all(dir.join(&rep.id))?;
                std::fs::write(dir.join(&format!("{}/init.mp4", rep.id)), &init)
            })
            .unwrap();
        for &(n, _, _) in &rep.segments {
            let (status, frag) = get(o, &rep.url(n));
            assert_eq!(status, 200, "{}", rep.url(n));
            std::fs::write(dir.join(&format!("vod/{}/{n}.m4s", rep.id)), &frag).unwrap();
        }
    }
    let file = dir.join("vod.mpd");
    std::fs::write(&file, text.replace("?ads=remove", "")).unwrap();
    file
}

/// The source's video frames outside the breaks.
fn source_without_breaks(source: &[String]) -> Vec<String> {
    source
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let t = *i as i64 * 1000 / FPS;
            !CUTS_MS.iter().any(|(a, b)| (*a..*b).contains(&t))
        })
        .map(|(_, m)| m.clone())
        .collect()
}

/// Numbers of the programme fragments of `rendition` in the index, in order (the `k`-th
/// kept fragment is stored as `kept_numbers(..)[k]`).
fn kept_numbers(o: &Origin<MemoryStore>, rendition: &str) -> Vec<u64> {
    let mut out = Vec::new();
    o.store()
        .records("show", Series::Cmaf { rendition }, 0, &mut |r| {
            if r.ad.is_none() {
                out.push(r.number);
            }
            true
        })
        .expect("records");
    out
}

/// `[start, end)` ms of each run of programme fragments of `rendition` in the index.
fn programme_runs(o: &Origin<MemoryStore>, rendition: &str) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    let mut in_run = false;
    o.store()
        .records("show", Series::Cmaf { rendition }, 0, &mut |r| {
            let (start, end) = (r.start.as_millis(), (r.start + r.duration).as_millis());
            match (r.ad.is_some(), in_run, runs.last_mut()) {
                (true, _, _) => in_run = false,
                (false, true, Some(last)) => last.1 = end,
                (false, _, _) => {
                    runs.push((start, end));
                    in_run = true;
                }
            }
            true
        })
        .expect("records");
    runs
}

#[test]
fn vod_mpd_join_is_one_period_per_programme_run() {
    let mut o = record();
    let dir = TempDir::new("l2v-dash-join");
    let (remove_text, remove) = vod_mpd(&mut o, "remove");
    let (text, join) = vod_mpd(&mut o, "join");
    println!("vod.mpd?ads=join:\n{text}");

    let video = reps(&remove.periods[0])
        .into_iter()
        .find(|r| r.content_type == "video")
        .expect("a video representation");
    let runs = programme_runs(&o, &video.id);
    println!("programme runs of {} in the index (ms): {runs:?}", video.id);
    let expected_runs: Vec<(i64, i64)> = vec![
        (0, CUTS_MS[0].0),
        (CUTS_MS[0].1, CUTS_MS[1].0),
        (CUTS_MS[1].1, 60_000),
    ];
    assert_eq!(runs, expected_runs, "the programme between the cuts");

    // One Period per run, ids c0.., each starting where the ones before end.
    assert_eq!(join.periods.len(), runs.len(), "{text}");
    let mut at = 0i64;
    let mut numbers: Vec<(String, u64)> = Vec::new();
    let mut ours: Vec<String> = Vec::new();
    let mut worst_tick = 0u64;
    for (k, p) in join.periods.iter().enumerate() {
        assert_eq!(p.id.as_deref(), Some(format!("c{k}").as_str()));
        let start = ms(p.start).expect("Period@start");
        let dur = ms(p.duration).expect("Period@duration");
        println!("Period c{k}: start {start} ms, duration {dur} ms");
        assert_eq!(
            start, at,
            "Period c{k} starts where the Periods before it end"
        );
        assert_eq!(dur, runs[k].1 - runs[k].0, "Period c{k} lasts its run");
        assert!(p.event_streams.is_empty(), "no break is left to signal");
        at += dur;
        for rep in reps(p) {
            // Fragments as stored: numbered as the kept fragments, their tfdt on the
            // recording's timeline; the offset is the run's start (the video's).
            let first = rep.segments.first().expect("a fragment");
            let next = numbers
                .iter()
                .find(|(id, _)| *id == rep.id)
                .map_or(0, |(_, n)| *n);
            assert_eq!(
                first.0, next,
                "{}: numbers follow on across Periods",
                rep.id
            );
            numbers.retain(|(id, _)| *id != rep.id);
            numbers.push((rep.id.clone(), first.0 + rep.segments.len() as u64));
            assert_eq!(
                (rep.pto * 1000 / rep.timescale) as i64,
                runs[k].0,
                "{} in c{k}: presentationTimeOffset at the run's start",
                rep.id
            );
            let (from, to) = rep.span_ms();
            assert!(
                from.abs() <= 100 && (to - dur).abs() <= 150,
                "{} in c{k}: media {from}..{to} ms of a {dur} ms Period",
                rep.id
            );
            let file = fetch_rep(&mut o, &rep, &dir, &format!("c{k}-{}", rep.id));
            let stored = kept_numbers(&o, &rep.id);
            for &(n, t, _) in &rep.segments {
                let (_, frag) = get(&mut o, &rep.url(n));
                let number = stored[n as usize];
                let key = CmafKey::Fragment {
                    rendition: &rep.id,
                    number,
                };
                let original = o.store().get_cmaf("show", key).expect("stored");
                assert_eq!(
                    tfdt(&frag),
                    tfdt(&original),
                    "{} {n}.m4s: fragment {number} as stored",
                    rep.id
                );
                let off = tfdt(&frag).abs_diff(t);
                assert!(
                    off <= 1,
                    "{} {n}.m4s: tfdt {} listed at {t}",
                    rep.id,
                    tfdt(&frag)
                );
                worst_tick = worst_tick.max(off);
                assert!(!frag.windows(4).any(|w| w == b"emsg"), "no emsg left");
            }
            if rep.content_type == "video" {
                let frames = framemd5(&file, "v:0");
                println!("c{k}: {} decodes to {} frames", rep.id, frames.len());
                assert_eq!(frames.len() as i64, dur * FPS / 1000, "c{k}: frames");
                ours.extend(frames);
            }
        }
    }
    println!(
        "fragments served as stored; tfdt and listed time differ by at most {worst_tick} tick"
    );
    let total = ms(join.mediaPresentationDuration).expect("mediaPresentationDuration");
    let remove_total = ms(remove.mediaPresentationDuration).expect("remove's duration");
    let remove_video = reps(&remove.periods[0])
        .into_iter()
        .find(|r| r.content_type == "video")
        .map(|r| r.span_ms())
        .expect("video");
    println!(
        "ads=join lasts {total} ms (Periods: {at} ms); ads=remove lasts {remove_total} ms, \
         its video {} ms",
        remove_video.1 - remove_video.0
    );
    assert_eq!(total, at, "the Periods fill the presentation");
    assert_eq!(
        total,
        remove_video.1 - remove_video.0,
        "the remove variant's video"
    );
    assert!(
        (total - remove_total).abs() < 1000 / FPS,
        "the remove variant's duration {remove_total} ms"
    );

    // Only breaks of segmentation type 0x34: the first break (a splice_insert) stays in
    // the programme; the fragment URLs carry the query, so they walk the same fragments.
    let (text, typed) = vod_mpd(&mut o, "join&types=0x34&token=abc");
    let spans: Vec<(i64, i64)> = typed
        .periods
        .iter()
        .map(|p| (ms(p.start).unwrap(), ms(p.duration).unwrap()))
        .collect();
    println!("ads=join&types=0x34: Periods (start, duration) {spans:?} ms");
    assert_eq!(
        spans,
        [(0, CUTS_MS[1].0), (CUTS_MS[1].0, 60_000 - CUTS_MS[1].1)]
    );
    assert!(
        text.contains("?ads=join&amp;types=0x34&amp;token=abc"),
        "{text}"
    );
    for p in &typed.periods {
        for rep in reps(p) {
            let (n, t, _) = rep.segments[0];
            let url = rep.url(n);
            let (status, frag) = get(&mut o, &url);
            assert_eq!(status, 200, "{url}");
            assert!(
                tfdt(&frag).abs_diff(t) <= 1,
                "{url}: tfdt {} listed at {t}",
                tfdt(&frag)
            );
            // After the second break: numbered after everything before it but that
            // break (the first one is kept), at the return.
            if p.id.as_deref() == Some("c1") {
                let mut before = 0;
                o.store()
                    .records("show", Series::Cmaf { rendition: &rep.id }, 0, &mut |r| {
                        before += u64::from(r.start.as_millis() < CUTS_MS[1].0);
                        true
                    })
                    .expect("records");
                assert_eq!(n, before, "{url}");
                assert_eq!(
                    (t * 1000 / rep.timescale) as i64 / 100,
                    CUTS_MS[1].1 / 100,
                    "{url}"
                );
            }
        }
    }

    // The frames: the remove variant's (FFmpeg's DASH demuxer), the source's without
    // the breaks.
    let rdir = TempDir::new("l2v-dash-remove");
    let file = localize_remove(&mut o, &remove_text, &remove, &rdir);
    let removed = framemd5(&file, "v:0");
    let source = framemd5(&avc_aac_small_25(60, Container::Flv), "v:0");
    let kept = source_without_breaks(&source);
    println!(
        "ads=join decodes to {} frames; ads=remove to {}; the source has {} ({} outside the breaks)",
        ours.len(),
        removed.len(),
        source.len(),
        kept.len()
    );
    assert_eq!(removed.len(), kept.len(), "remove: frame count");
    assert!(
        removed == kept,
        "remove: the source's frames without the breaks"
    );
    assert_eq!(ours.len(), removed.len(), "join: frame count");
    assert!(ours == removed, "join: the remove variant's frames");
}

#[test]
fn vod_mpd_replace_alternates_programme_and_creatives() {
    let mut o = record();
    let replace = "/live/show/vod.mpd?ads=replace";
    // No creative: 409 Conflict.
    let (status, body) = get(&mut o, replace);
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    // A creative without a CMAF form (MPEG-TS only, as `Creative::from_segments` makes
    // them) cannot play in DASH: still 409, and it is left out below.
    let ts_only = Creative::from_segments(
        "ad-ab",
        vec![CreativeSegment::new(
            Timestamp::from_secs(2),
            Bytes::from(vec![0x47u8; 188]),
        )],
        vec![],
    )
    .expect("a TS-only creative");
    o.add_creative(Arc::new(ts_only)).expect("add it");
    let (status, body) = get(&mut o, replace);
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("no creative"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    let tracks = o.stream("show").expect("held").tracks().to_vec();
    // (id, ms by its MPEG-TS segments, decoded frames of its MP4)
    let mut ads: Vec<(String, i64, Vec<String>)> = Vec::new();
    for (id, picture, tone, seconds) in CREATIVES {
        let mp4 = creative_mp4(id, picture, tone, seconds);
        let data = Bytes::from(std::fs::read(&mp4).expect("read the creative"));
        let c = Creative::from_mp4(id, data, Timestamp::from_secs(2), &tracks)
            .expect("the creative matches the content's tracks");
        assert!(c.cmaf.is_some(), "{id}: a CMAF form");
        let ts_ms: i64 = c.segments.iter().map(|s| s.duration.as_millis()).sum();
        assert_eq!(ts_ms, i64::from(seconds) * 1000, "{id}");
        o.add_creative(Arc::new(c)).expect("add the creative");
        ads.push((id.to_string(), ts_ms, framemd5(&mp4, "v:0")));
    }
    let ad_ms: i64 = ads.iter().map(|a| a.1).sum();

    let (_, join) = vod_mpd(&mut o, "join");
    let content_ms = ms(join.mediaPresentationDuration).expect("join's duration");
    let mut ts_content_ms = 0;
    o.store()
        .records("show", Series::Ts, 0, &mut |r| {
            if r.ad.is_none() {
                ts_content_ms += r.duration.as_millis();
            }
            true
        })
        .expect("records");
    assert_eq!(
        content_ms, ts_content_ms,
        "join: the programme without the breaks"
    );

    let (text, mpd) = vod_mpd(&mut o, "replace");
    println!("vod.mpd?ads=replace:\n{text}");
    assert!(!text.contains("ad-ab"), "the TS-only creative is left out");
    // Content and ads alternate: every creative, by id, in each break's place.
    let ids: Vec<&str> = mpd
        .periods
        .iter()
        .map(|p| p.id.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        ["c0", "ad0-0", "ad0-1", "c1", "ad1-0", "ad1-1", "c2"],
        "{text}"
    );
    let join_durations: Vec<i64> = join
        .periods
        .iter()
        .map(|p| ms(p.duration).unwrap())
        .collect();
    let source = framemd5(&avc_aac_small_25(60, Container::Flv), "v:0");
    let dir = TempDir::new("l2v-dash-replace");
    let mut at = 0i64;
    let mut ours: Vec<String> = Vec::new();
    let mut urls = 0usize;
    for (i, p) in mpd.periods.iter().enumerate() {
        let id = ids[i];
        let start = ms(p.start).expect("Period@start");
        let dur = ms(p.duration).expect("Period@duration");
        println!("Period {id}: start {start} ms, duration {dur} ms");
        assert_eq!(start, at, "{id} starts where the Periods before it end");
        at += dur;
        let ad = id
            .strip_prefix("ad")
            .and_then(|s| s.split_once('-'))
            .map(|(_, n)| &ads[n.parse::<usize>().unwrap()]);
        match ad {
            Some((ad_id, ts_ms, _)) => assert_eq!(dur, *ts_ms, "{id}: the creative {ad_id}"),
            None => {
                let k: usize = id[1..].parse().unwrap();
                assert_eq!(dur, join_durations[k], "{id}: as in ads=join");
            }
        }
        for rep in reps(p) {
            if let Some((ad_id, _, _)) = ad {
                let prefix = format!("/ads/{ad_id}/{}/", rep.id);
                assert!(
                    rep.init.starts_with(&prefix) && rep.media.starts_with(&prefix),
                    "{id}: {} and {} under {prefix}",
                    rep.init,
                    rep.media
                );
            }
            let file = fetch_rep(&mut o, &rep, &dir, &format!("{id}-{}", rep.id));
            urls += 1 + rep.segments.len();
            if rep.content_type == "video" {
                let frames = framemd5(&file, "v:0");
                if let Some((ad_id, _, expected)) = ad {
                    assert!(frames == *expected, "{id}: the frames of {ad_id}");
                }
                ours.extend(frames);
            }
        }
    }
    let total = ms(mpd.mediaPresentationDuration).expect("mediaPresentationDuration");
    let breaks = CUTS_MS.len() as i64;
    println!(
        "ads=replace lasts {total} ms = programme {content_ms} ms + {breaks} x {ad_ms} ms of \
         ads; {urls} URLs fetched 200"
    );
    assert_eq!(total, at, "the Periods fill the presentation");
    assert_eq!(
        total,
        content_ms + breaks * ad_ms,
        "programme + inserted ads"
    );

    // The source's frames with each break cut out and the creatives' in its place.
    let mut expected: Vec<String> = Vec::new();
    for (i, m) in source.iter().enumerate() {
        let t = i as i64 * 1000 / FPS;
        if CUTS_MS.iter().any(|(a, _)| *a == t) {
            for (_, _, frames) in &ads {
                expected.extend(frames.iter().cloned());
            }
        }
        if !CUTS_MS.iter().any(|(a, b)| (*a..*b).contains(&t)) {
            expected.push(m.clone());
        }
    }
    println!(
        "ads=replace decodes Period by Period to {} frames ({} expected)",
        ours.len(),
        expected.len()
    );
    assert_eq!(ours.len(), expected.len(), "frame count");
    assert!(
        ours == expected,
        "the source's frames with the creatives' where the breaks were"
    );
}
