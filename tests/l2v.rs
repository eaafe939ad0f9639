//! Live-to-VOD with ad breaks: an Origin records a live stream whose publisher sent two
//! SCTE-35 breaks; right after the publisher stops, `/live/{s}/vod.m3u8` exists and
//!
//! * with `ads=remove` lasts the live duration minus the breaks (the cuts are on
//!   keyframes, so exactly), lists no discontinuity (later segments are re-timed), and
//!   decodes (FFmpeg, through its HLS demuxer) to the source's frames with the break
//!   frames cut out, frame for frame;
//! * with `ads=join` decodes to the same frames, the programme joined by discontinuities;
//! * with `ads=keep` decodes to every source frame;
//! * `types=` leaves breaks of other segmentation types in;
//! * with `ads=replace` (two ffmpeg-made creatives, 4 s and 3 s, registered with
//!   `Origin::add_creative`) lists every creative in full in place of each break (the
//!   8 s break gets 7 s of ads, the 6 s one 7 s too: nothing is cut or padded), each
//!   creative after a discontinuity and the programme after one, and decodes to the
//!   source's frames with the creatives' own frames exactly where the breaks were;
//!   without a creative it answers 409.
//!
//! Run: `cargo test --release --test l2v -- --nocapture`.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use strom::origin::{MemoryStore, Method, Origin, Request, SegmentStore, Series};
use strom::package::ssai::Creative;
use strom::time::Timestamp;

use common::l2v::*;

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

/// The host clock of the requests (Unix ms): after the publisher stopped.
const NOW: i64 = T0 + 120_000;

/// Through the origin's whole router ([`Origin::handle_mut`]: creatives' segments are
/// served there).
fn get_mut(o: &mut Origin<MemoryStore>, path: &str) -> (u16, Bytes) {
    let r = o.handle_mut(&Request::new(Method::Get, path), NOW);
    (r.status, r.body)
}

/// Where two frame lists first differ, for the failure message.
fn first_difference(ours: &[String], expected: &[String]) -> String {
    let at = ours
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(expected.len()));
    format!(
        "{} frames decoded, {} expected; first difference at frame {at} ({:?} vs {:?})",
        ours.len(),
        expected.len(),
        ours.get(at),
        expected.get(at)
    )
}

/// `ads=replace`: the breaks' segments replaced by every registered creative, in full,
/// between discontinuities.
#[test]
fn vod_with_ads_replaced_decodes_to_the_creatives_where_the_breaks_were() {
    let mut o = record();
    // No creative registered: 409 Conflict, nothing listed.
    let (status, body) = get_mut(&mut o, "/live/show/vod.m3u8?ads=replace");
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("no creative"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // The index: (number, ms, in a break), and the breaks' lengths.
    let mut records: Vec<(u64, i64, bool)> = Vec::new();
    o.store()
        .records("show", Series::Ts, 0, &mut |r| {
            records.push((r.number, r.duration.as_millis(), r.ad.is_some()));
            true
        })
        .expect("records");
    let mut breaks_ms: Vec<i64> = Vec::new();
    for (i, (_, ms, ad)) in records.iter().enumerate() {
        match breaks_ms.last_mut() {
            Some(b) if *ad && i > 0 && records[i - 1].2 => *b += ms,
            _ if *ad => breaks_ms.push(*ms),
            _ => {}
        }
    }
    let cuts: Vec<i64> = CUTS_MS.iter().map(|(a, b)| b - a).collect();
    assert_eq!(breaks_ms, cuts, "the breaks as recorded");
    let content_ms: i64 = records.iter().filter(|r| !r.2).map(|r| r.1).sum();

    // The creatives, packaged against the content's tracks (2 s segments, as the content).
    let tracks = o
        .stream("show")
        .expect("the stream is held after its publisher stopped")
        .tracks()
        .to_vec();
    let source = framemd5(&avc_aac_small_25(60, Container::Flv), "v:0");
    // (id, segment durations in ms, decoded frames of its MP4)
    let mut ads: Vec<(String, Vec<i64>, Vec<String>)> = Vec::new();
    for (id, picture, tone, seconds) in CREATIVES {
        let mp4 = creative_mp4(id, picture, tone, seconds);
        let data = Bytes::from(std::fs::read(&mp4).expect("read the creative"));
        let c = Creative::from_mp4(id, data, Timestamp::from_secs(2), &tracks)
            .expect("the creative matches the content's tracks");
        let seg_ms: Vec<i64> = c.segments.iter().map(|s| s.duration.as_millis()).collect();
        assert_eq!(
            seg_ms.iter().sum::<i64>(),
            i64::from(seconds) * 1000,
            "{id}: {seg_ms:?}"
        );
        let frames = framemd5(&mp4, "v:0");
        assert_eq!(
            frames.len() as i64,
            i64::from(seconds) * FPS,
            "{id}: frames"
        );
        assert!(
            frames.iter().all(|f| !source.contains(f)),
            "{id}: its pictures must differ from the content's"
        );
        o.add_creative(Arc::new(c)).expect("add the creative");
        ads.push((id.to_string(), seg_ms, frames));
    }
    // A slate fills unfilled time in live sessions; it does not replace breaks.
    let slate_mp4 = creative_mp4("slate", "smptehdbars", 440, 2);
    let slate = Creative::from_mp4(
        "slate",
        Bytes::from(std::fs::read(&slate_mp4).expect("read the slate")),
        Timestamp::from_secs(2),
        &tracks,
    )
    .expect("the slate matches the content's tracks");
    o.set_slate(Some(Arc::new(slate))).expect("set the slate");
    let ad_ms: i64 = ads.iter().flat_map(|a| &a.1).sum();
    // The rule: every break gets every creative in full, whatever its length (no cut,
    // no fill): the 8 s break is longer than the 7 s of ads, the 6 s one shorter.
    assert!(
        breaks_ms[0] > ad_ms && breaks_ms[1] < ad_ms,
        "the breaks {breaks_ms:?} ms straddle the creatives' {ad_ms} ms"
    );

    let dir = TempDir::new("l2v-replace");
    let (status, body) = get_mut(&mut o, "/live/show/vod.m3u8?ads=replace");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8(body.to_vec()).expect("UTF-8 playlist");
    let pl = m3u8_rs::parse_media_playlist_res(&body)
        .unwrap_or_else(|e| panic!("m3u8-rs cannot parse: {e:?}\n{text}"));
    assert!(
        pl.end_list,
        "VOD right after the publisher stopped:\n{text}"
    );
    assert_eq!(pl.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
    for s in &pl.segments {
        let rounded = (s.duration as f64).round() as u64;
        assert!(
            rounded <= pl.target_duration,
            "{}: EXTINF {} over the target {}",
            s.uri,
            s.duration,
            pl.target_duration
        );
    }

    // Runs of creative segments: a discontinuity before each creative, one after the
    // run; every run is all the creatives, in id order, in full.
    let listed: Vec<(String, i64, bool)> = pl
        .segments
        .iter()
        .map(|s| {
            (
                s.uri.clone(),
                (f64::from(s.duration) * 1000.0).round() as i64,
                s.discontinuity,
            )
        })
        .collect();
    let one_run: Vec<(String, i64, bool)> = ads
        .iter()
        .flat_map(|(id, seg_ms, _)| {
            seg_ms
                .iter()
                .enumerate()
                .map(move |(n, ms)| (format!("/ads/{id}/{n}.ts"), *ms, n == 0))
        })
        .collect();
    let mut runs = 0;
    let mut i = 0;
    while i < listed.len() {
        if !listed[i].0.starts_with("/ads/") {
            // Content: a discontinuity only right after a run.
            let after_run = i > 0 && listed[i - 1].0.starts_with("/ads/");
            assert_eq!(listed[i].2, after_run, "discontinuity of {:?}", listed[i]);
            i += 1;
            continue;
        }
        let len = listed[i..]
            .iter()
            .take_while(|s| s.0.starts_with("/ads/"))
            .count();
        assert_eq!(
            listed[i..i + len],
            one_run[..],
            "ad run {runs}: every creative, in full, each after a discontinuity"
        );
        let run_ms: i64 = listed[i..i + len].iter().map(|s| s.1).sum();
        assert_eq!(run_ms, ad_ms, "ad run {runs}: neither cut nor filled");
        runs += 1;
        i += len;
    }
    assert_eq!(runs, breaks_ms.len(), "one run per break:\n{text}");
    let content: Vec<(String, i64)> = listed
        .iter()
        .filter(|s| !s.0.starts_with("/ads/"))
        .map(|s| (s.0.clone(), s.1))
        .collect();
    let recorded: Vec<(String, i64)> = records
        .iter()
        .filter(|r| !r.2)
        .map(|r| (format!("{}.ts", r.0), r.1))
        .collect();
    assert_eq!(content, recorded, "the programme's segments, as stored");
    let dur = total_ms(&pl);
    let disc = listed.iter().filter(|s| s.2).count();
    println!(
        "ads=replace: {dur} ms listed (content {content_ms} ms + {runs} x {ad_ms} ms of ads \
         for breaks of {breaks_ms:?} ms), {disc} discontinuities, {} segments",
        listed.len()
    );
    assert_eq!(dur, content_ms + runs as i64 * ad_ms, "total duration");

    // Every URI through the router, written under local names.
    let mut local = String::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            local.push_str(line);
        } else {
            let path = match line.strip_prefix('/') {
                Some(_) => line.to_string(),
                None => format!("/live/show/{line}"),
            };
            let (status, seg) = get_mut(&mut o, &path);
            assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&seg));
            assert!(
                !seg.is_empty() && seg.len() % 188 == 0 && seg[0] == 0x47,
                "{path}: MPEG-TS"
            );
            let name = format!("s{}.ts", local.len());
            std::fs::write(dir.join(&name), &seg).expect("write segment");
            local.push_str(&name);
        }
        local.push('\n');
    }
    let file = dir.join("vod.m3u8");
    std::fs::write(&file, local).expect("write playlist");

    // The source's frames with each break's cut out and all the creatives' frames in
    // its place.
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
    let ours = hls_framemd5(&tool("ffmpeg"), &file, "v:0");
    println!(
        "ads=replace decodes to {} frames ({} of content, {} of ads)",
        ours.len(),
        source.len() as i64 - breaks_ms.iter().sum::<i64>() * FPS / 1000,
        runs as i64 * ad_ms * FPS / 1000
    );
    assert!(
        ours == expected,
        "replace: {}",
        first_difference(&ours, &expected)
    );
    // FFmpeg's HLS demuxer joins a discontinuity on the video's DTS: a creative's
    // audio outlasts that by its B-frame delay (80 ms) and its last AAC frame's padding,
    // so the CLI's muxer sees the audio step back there. Anything else, or that anywhere
    // but at the end of a creative, is an error.
    let mut splices_ms: Vec<i64> = Vec::new();
    let mut at = 0;
    for (i, (_, ms, disc)) in listed.iter().enumerate() {
        if *disc && i > 0 && listed[i - 1].0.starts_with("/ads/") {
            splices_ms.push(at);
        }
        at += ms;
    }
    let errors = decode_errors(&file);
    let mut overlaps = 0;
    for line in errors.lines() {
        let step_back = line
            .split_once("non monotonically increasing dts to muxer in stream 1: ")
            .and_then(|(_, v)| v.split_once(" >= "))
            .and_then(|(a, _)| a.parse::<i64>().ok())
            .map(|dts| dts * 1000 / 48_000);
        match step_back {
            Some(ms) if splices_ms.iter().any(|s| (ms - s).abs() <= 150) => overlaps += 1,
            _ => panic!("replace: decode error: {line}\n(splices at {splices_ms:?} ms)\n{errors}"),
        }
    }
    println!("ads=replace: {overlaps} audio steps back at the ends of creatives (splices at {splices_ms:?} ms)");
}
