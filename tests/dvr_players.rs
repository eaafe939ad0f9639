//! Real players on the live origin's DVR / timeshift window (`examples/live_origin.rs
//! --dvr-window-s`): hls.js seeks ten minutes back in a live DVR playlist and plays, a
//! start-over URL (`index.m3u8?offset=-600`) plays from ten minutes back, and Shaka
//! Player plays the DASH timeshift window from near its start.
//!
//! * Memory store: ffmpeg pushes twelve minutes of a small clip as fast as it can, then
//!   continues in real time (`-readrate_initial_burst`); hls.js plays `dvr.m3u8` live and
//!   seeks back 600 s.
//! * Disk store (`--record DIR`, the main deployment): twelve minutes recorded on a
//!   simulated clock that ends now (an `Origin` on a `DiskStore` in this process, so the
//!   segments' wall-clock dates are ten minutes old for real), the example started on
//!   that directory takes the stream up, ffmpeg publishes in real time; hls.js seeks back
//!   600 s in `dvr.m3u8` and plays the start-over playlist from its first segment.
//! * Shaka: a real-time publish of ~75 s; the MPD's `timeShiftBufferDepth` covers it and
//!   Shaka seeks back to near the start of the window.
//!
//! Run: `cargo test --release --test dvr_players -- --nocapture` (the figures are printed).
//! `STROM_SKIP_BROWSER=1` skips the playbacks with SKIP lines.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::live::*;
use common::players::{play, PlayOpts, PlayOutcome, Player, SeekBack};
use common::*;
use strom::ingest::flv::FlvDemuxer;
use strom::media::Item;
use strom::origin::{
    DiskStore, DiskStoreOptions, Origin as LibOrigin, OriginOptions, SegmentStore, Series,
    SyncPolicy,
};
use strom::pipeline::Stage;

/// Seconds of content published before anyone seeks back.
const HISTORY_S: u32 = 720;
/// How far back the players go.
const BACK_S: u32 = 600;
/// Seconds of playback per player run.
const PLAY_S: u32 = 12;

/// 320x180 25 fps H.264 (keyframe every 2 s) + AAC 48 kHz, 20 s: small enough to push
/// twelve minutes of it in a few seconds.
fn small_clip() -> PathBuf {
    avc_aac_small_25(20, Container::Flv)
}

/// The small clip looped to `seconds` (`-stream_loop ... -c copy`: timestamps continue).
fn looped_clip(seconds: u32) -> PathBuf {
    let clip = small_clip().to_string_lossy().into_owned();
    let loops = (seconds / 20).to_string();
    media(
        &format!("dvr_small_{seconds}s.flv"),
        &[
            "-stream_loop",
            &loops,
            "-i",
            &clip,
            "-t",
            &seconds.to_string(),
            "-c",
            "copy",
            "-f",
            "flv",
        ],
    )
}

/// Polls `f` every 200 ms until it returns `Some`, at most `limit`.
fn wait<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// GET `path`: the text of a 200, else a panic naming the status.
fn text(o: &Origin, path: &str) -> String {
    let r = o
        .get(path)
        .unwrap_or_else(|| panic!("GET {path}: no answer"));
    assert_eq!(
        r.status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    String::from_utf8(r.body).expect("UTF-8 text")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The segment number of a request path (`/live/cam/62.ts`, `/live/cam/v1/62.m4s?x`).
fn number(path: &str) -> Option<u64> {
    let file = path.split('?').next()?.rsplit('/').next()?;
    file.split('.').next()?.parse().ok()
}

/// Each segment of a media playlist: (number, start in seconds from the playlist's first
/// segment, duration in seconds), from its EXTINF values.
fn timeline(p: &Playlist) -> Vec<(u64, f64, f64)> {
    let mut out = Vec::new();
    let mut t = 0.0;
    let mut extinf: Option<f64> = None;
    for line in p.text.lines() {
        if let Some(v) = line.strip_prefix("#EXTINF:") {
            extinf = v.split(',').next().and_then(|d| d.trim().parse().ok());
        } else if !line.is_empty() && !line.starts_with('#') {
            let d = extinf.take().expect("EXTINF before every URI");
            out.push((number(line).expect("numbered segment"), t, d));
            t += d;
        }
    }
    out
}

/// The segment of `tl` playing at `t` seconds.
fn segment_at(tl: &[(u64, f64, f64)], t: f64) -> u64 {
    tl.iter()
        .find(|(_, s, d)| t < s + d)
        .or(tl.last())
        .map(|x| x.0)
        .expect("a segment")
}

/// `PT1H2M3.5S` in seconds (the forms the MPD writer uses).
fn xs_duration_s(v: &str) -> f64 {
    let mut rest = v
        .strip_prefix("PT")
        .unwrap_or_else(|| panic!("not PT...: {v}"));
    let mut total = 0.0;
    for (unit, scale) in [('H', 3600.0), ('M', 60.0), ('S', 1.0)] {
        if let Some(at) = rest.find(unit) {
            let n: f64 = rest[..at].parse().unwrap_or_else(|_| panic!("bad {v}"));
            total += n * scale;
            rest = &rest[at + 1..];
        }
    }
    total
}

/// An attribute of the root `<MPD>` element.
fn mpd_attr<'a>(mpd: &'a str, name: &str) -> Option<&'a str> {
    let root = &mpd[mpd.find("<MPD")?..];
    let root = &root[..root.find('>')?];
    let at = root.find(&format!(" {name}=\""))? + name.len() + 3;
    root[at..].split('"').next()
}

/// The numbers of the segments in `paths` (media segments only).
fn numbers(paths: &[String]) -> Vec<u64> {
    paths.iter().filter_map(|p| number(p)).collect()
}

/// The seek report; panics with the whole play.mjs line when there is none.
fn seek_of(o: &PlayOutcome) -> &SeekBack {
    o.seek
        .as_ref()
        .unwrap_or_else(|| panic!("no seek report: {}", o.raw))
}

/// hls.js on `dvr.m3u8` (live, no ENDLIST) seeks back [`BACK_S`] from the live edge:
/// checks where it went and landed, that it played on from there, and that it fetched
/// the segments of ten minutes back (their numbers, from `dvr` as fetched just before).
/// Returns the first segment number fetched after the seek.
fn hls_seek_back(o: &Origin, name: &str, what: &str) -> Option<u64> {
    let dvr = Playlist::parse(&text(o, &format!("/live/{name}/dvr.m3u8")));
    assert!(!dvr.text.contains("#EXT-X-ENDLIST"), "{what}: {}", dvr.text);
    assert!(
        !dvr.text.contains("#EXT-X-PLAYLIST-TYPE"),
        "{what}: {}",
        dvr.text
    );
    let tl = timeline(&dvr);
    let span = tl.last().map_or(0.0, |(_, s, d)| s + d);
    assert!(
        span > f64::from(BACK_S) + 60.0,
        "{what}: the DVR playlist spans {span} s"
    );
    let url = o.http_url(&format!("/live/{name}/dvr.m3u8"));
    let opts = PlayOpts::url(Player::HlsJs, &url, PLAY_S)
        .live()
        .seek_back(BACK_S)
        .seek_tolerance(4);
    let out = play(&opts)?;
    assert!(out.ok, "{what}: {}", out.raw);
    assert!(
        out.live,
        "{what}: hls.js does not see a live playlist: {}",
        out.raw
    );
    assert!(out.fatal_errors.is_empty(), "{what}: {}", out.raw);
    assert!(out.http_errors.is_empty(), "{what}: {}", out.raw);
    let k = seek_of(&out);
    let (edge, target, landed) = (
        k.edge_s.expect("edge"),
        k.target_s.expect("target"),
        k.landed_s.expect("landed"),
    );
    // The seek went 600 s back from the live edge hls.js plays at, inside the window.
    assert!(
        (edge - target - f64::from(BACK_S)).abs() < 0.01,
        "{what}: {}",
        out.raw
    );
    assert!((landed - target).abs() < 4.0, "{what}: {}", out.raw);
    let after = k.advanced_after_s.expect("advanced after");
    assert!(
        after >= 0.8 * (f64::from(PLAY_S) - k.wall_s.unwrap_or(0.0)),
        "{what}: {}",
        out.raw
    );
    // Before the seek it played at the live edge; after it, the segments of ten minutes
    // back: the one the target falls in (the playlist fetched above starts where hls.js's
    // timeline starts: the window does not slide within an hour).
    let before = numbers(&k.segments_before);
    let after_n = numbers(&k.segments_after);
    let first_after = *after_n
        .first()
        .unwrap_or_else(|| panic!("{what}: nothing fetched after the seek: {}", out.raw));
    let want = segment_at(&tl, target);
    assert!(
        first_after.abs_diff(want) <= 1,
        "{what}: first segment after the seek {first_after}, the target {target} s is in {want}: {}",
        out.raw
    );
    let edge_seg = before
        .iter()
        .copied()
        .max()
        .expect("segments before the seek");
    // 2 s segments: 600 s is ~300 segments back from what was played at the edge.
    let back_segs = edge_seg.saturating_sub(first_after);
    assert!(
        (290..=310).contains(&back_segs),
        "{what}: {back_segs} segments between the live edge ({edge_seg}) and the seek ({first_after}): {}",
        out.raw
    );
    assert!(after_n.len() >= 4, "{what}: {}", out.raw);
    println!(
        "{what}: hls.js {} on dvr.m3u8 ({} segments, {span:.1} s, live, no ENDLIST): live edge {edge:.3} s, \
         seek target {target:.3} s, landed {landed:.3} s after {:?} ms, advanced {after:.3} s after the seek \
         ({:.3} s before); segments at the edge {:?}, after the seek {:?} (target in {want}, {back_segs} segments back)",
        out.player,
        tl.len(),
        k.seek_ms,
        k.advanced_before_s.unwrap_or(0.0),
        before,
        after_n,
    );
    Some(first_after)
}

#[test]
fn hlsjs_seeks_back_ten_minutes_in_a_live_dvr_playlist() {
    let dir = TempDir::new("dvr-hls");
    let o = Origin::start_with(&["--publish-secret", PUBLISH_SECRET, "--dvr-window-s", "3600"]);
    let name = "burst";
    let url = o.publish_url(name, &Origin::token_query(name));
    // Twelve minutes as fast as ffmpeg reads them, then real time: a current FFmpeg's
    // initial burst (Debian's 5.1 has no -readrate_initial_burst).
    let ff = ffmpeg_current();
    let mut cmd = std::process::Command::new(&ff);
    cmd.args(["-nostdin", "-v", "error", "-re", "-readrate_initial_burst"])
        .arg(HISTORY_S.to_string())
        .args(["-stream_loop", "-1", "-i"])
        .arg(small_clip())
        .args(["-t", "1200", "-c", "copy", "-f", "flv", &url])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("ffmpeg.log")).expect("log"));
    let mut publisher = Proc(Some(cmd.spawn().expect("ffmpeg")));
    let t0 = Instant::now();
    let history = wait(
        Duration::from_secs(60),
        "twelve minutes in the DVR playlist",
        || {
            assert!(
                publisher.exited().is_none(),
                "ffmpeg stopped: {}",
                std::fs::read_to_string(dir.join("ffmpeg.log")).unwrap_or_default()
            );
            let r = o
                .get(&format!("/live/{name}/dvr.m3u8"))
                .filter(|r| r.status == 200)?;
            let p = Playlist::parse(&String::from_utf8_lossy(&r.body));
            (p.segments.len() as u32 >= HISTORY_S / 2).then_some(p)
        },
    );
    println!(
        "{} segments ({:.0} s of media) in the DVR playlist {:.1} s after ffmpeg started",
        history.segments.len(),
        timeline(&history).last().map_or(0.0, |(_, s, d)| s + d),
        t0.elapsed().as_secs_f64()
    );
    // Real time from here on: a few more segments at wall-clock pace.
    let newest = history.newest();
    wait(Duration::from_secs(30), "real-time segments", || {
        let p = Playlist::parse(&o.playlist(name)?);
        (p.newest() >= newest + 2).then_some(())
    });
    let live = Playlist::parse(&o.playlist(name).expect("live playlist"));
    assert!(!live.text.contains("#EXT-X-ENDLIST"), "{}", live.text);
    hls_seek_back(&o, name, "memory store, burst");
    assert!(
        publisher.exited().is_none(),
        "the publisher stopped during playback"
    );
    publisher.kill();
}

/// Twelve minutes of `flv` recorded into a `DiskStore` at `dir` as the live origin would
/// have stored them, on a simulated clock that ends at `end_ms` (each frame arrives at
/// `end_ms - duration + its dts`): the segments' wall-clock dates are really that old.
/// Returns each TS segment's (number, program date time ms, duration ms).
fn prerecord(dir: &Path, name: &str, flv: &Path, end_ms: i64) -> Vec<(u64, i64, i64)> {
    let mut sopts = DiskStoreOptions::default();
    sopts.sync = SyncPolicy::Never;
    sopts.max_age_ms = Some(48 * 3600 * 1000);
    let store = DiskStore::open(dir, sopts).expect("open the store");
    let mut opts = OriginOptions::default();
    opts.dvr_window_ms = 3600 * 1000;
    opts.keep_recordings = true;
    let mut o = LibOrigin::new(store, opts);
    let mut demux = FlvDemuxer::new();
    demux
        .push(Bytes::from(std::fs::read(flv).expect("read the clip")))
        .expect("FLV");
    demux.finish().expect("FLV end");
    let mut items: Vec<Item> = Vec::new();
    while let Some(i) = demux.poll() {
        items.push(i.expect("FLV item"));
    }
    let last_ms = items
        .iter()
        .filter_map(Item::as_frame)
        .map(|f| f.dts.as_millis())
        .max()
        .expect("frames");
    let t0 = end_ms - last_ms;
    o.publish(name, t0).expect("publish");
    let mut now = t0;
    for item in items {
        if let Some(f) = item.as_frame() {
            now = now.max(t0 + f.dts.as_millis());
        }
        o.push(name, item, now).expect("push");
    }
    // No unpublish: the process "dies" here; the example takes the stream up.
    let mut out = Vec::new();
    o.store()
        .records(name, Series::Ts, 0, &mut |r| {
            out.push((r.number, r.program_date_time, r.duration.as_millis()));
            true
        })
        .expect("records");
    out
}

#[test]
fn hlsjs_on_a_recorded_dvr_window_and_start_over() {
    let dir = TempDir::new("dvr-record");
    let rec = dir.join("rec");
    std::fs::create_dir_all(&rec).expect("mkdir");
    let name = "rec";
    let t_rec = Instant::now();
    let records = prerecord(&rec, name, &looped_clip(HISTORY_S), now_ms());
    let last_recorded = records.last().expect("records").0;
    println!(
        "recorded {} segments ({} s) on a simulated clock in {:.1} s",
        records.len(),
        records.iter().map(|r| r.2).sum::<i64>() / 1000,
        t_rec.elapsed().as_secs_f64()
    );
    let rec_s = rec.to_str().expect("UTF-8 path").to_string();
    let o = Origin::start_with(&[
        "--publish-secret",
        PUBLISH_SECRET,
        "--record",
        &rec_s,
        "--sync",
        "never",
        "--dvr-window-s",
        "3600",
    ]);
    let url = o.publish_url(name, &Origin::token_query(name));
    let mut publisher = publish(&small_clip(), &url, 300, &dir.join("ffmpeg.log"));
    wait(
        Duration::from_secs(40),
        "live segments after the recording",
        || {
            let p = Playlist::parse(&o.playlist(name)?);
            (p.newest() >= last_recorded + 3).then_some(())
        },
    );
    let dvr = Playlist::parse(&text(&o, &format!("/live/{name}/dvr.m3u8")));
    assert_eq!(dvr.media_sequence, 0, "{}", dvr.text);
    assert!(
        dvr.segments.iter().any(|s| s.0 == last_recorded + 1 && s.2),
        "the publisher's return follows a discontinuity:\n{}",
        dvr.text
    );
    hls_seek_back(&o, name, "disk store (--record), recorded + live");

    // Start-over: the multivariant playlist hands its media playlist the absolute start
    // of ten minutes ago; that playlist starts at the segment playing then (wall clock,
    // from the recording's dates), EVENT while live.
    let asked_at = now_ms();
    let mv = text(&o, &format!("/live/{name}/index.m3u8?offset=-{BACK_S}"));
    let media = mv
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no media playlist in\n{mv}"))
        .to_string();
    let start = media
        .split_once("?start=")
        .map(|(_, q)| q.split('&').next().unwrap_or(q))
        .unwrap_or_else(|| panic!("no ?start= in {media}"));
    let (whole, frac) = start.split_once('.').unwrap_or((start, "0"));
    let start_ms: i64 = whole.parse::<i64>().expect("seconds") * 1000
        + format!("{frac:0<3}")[..3].parse::<i64>().expect("ms");
    let wanted = asked_at - i64::from(BACK_S) * 1000;
    assert!(
        (start_ms - wanted).abs() < 3000,
        "{media}: start {start_ms} ms, 600 s before the request is {wanted} ms"
    );
    let so = Playlist::parse(&text(&o, &format!("/live/{name}/{media}")));
    assert!(
        so.text.contains("#EXT-X-PLAYLIST-TYPE:EVENT"),
        "{}",
        so.text
    );
    assert!(!so.text.contains("#EXT-X-ENDLIST"), "{}", so.text);
    let first = so.segments.first().expect("segments").0;
    let (n, pdt, d) = *records
        .iter()
        .find(|r| r.1 + r.2 > start_ms)
        .expect("a recorded segment ten minutes back");
    assert_eq!(
        first, n,
        "the start-over playlist starts at the segment playing at {start_ms}:\n{}",
        so.text
    );
    let back_s = (asked_at - pdt) as f64 / 1000.0;
    println!(
        "start-over {media}: EVENT playlist from segment {first} (recorded at {pdt} ms, {d} ms long), \
         {back_s:.1} s before the request, {} segments to the live edge",
        so.segments.len()
    );
    // hls.js from the start of the start-over playlist (a start-over UI asks for
    // position 0: the playlist has no EXT-X-START, so hls.js alone would join at the edge).
    let url = o.http_url(&format!("/live/{name}/index.m3u8?offset=-{BACK_S}"));
    let Some(out) = play(
        &PlayOpts::url(Player::HlsJs, &url, PLAY_S)
            .live()
            .start_at(0),
    ) else {
        return;
    };
    assert!(out.ok, "{}", out.raw);
    assert!(out.live, "{}", out.raw);
    assert!(out.http_errors.is_empty(), "{}", out.raw);
    let got = numbers(&out.segment_requests);
    let first_req = *got
        .first()
        .unwrap_or_else(|| panic!("no segment requested: {}", out.raw));
    // hls.js loaded the multivariant playlist a few seconds after the test did.
    assert!(
        first_req >= first && first_req <= first + 3,
        "hls.js started at segment {first_req}, the start-over playlist at {first}: {}",
        out.raw
    );
    assert!(out.start_time_s.is_some_and(|t| t < 2.0), "{}", out.raw);
    let behind = last_recorded.saturating_sub(first_req);
    println!(
        "start-over in hls.js: started at currentTime {:?} s with segment {first_req} ({behind} segments \
         before the recording's end), advanced {:.3} s, {} segments requested ({first_req}..={}), non-fatal {:?}",
        out.start_time_s,
        out.advanced_s,
        got.len(),
        got.iter().max().copied().unwrap_or(0),
        out.nonfatal_errors
    );
    assert!(
        publisher.exited().is_none(),
        "the publisher stopped during playback"
    );
    publisher.kill();
}

#[test]
fn shaka_plays_the_dash_timeshift_window() {
    let dir = TempDir::new("dvr-shaka");
    let o = Origin::start_with(&["--publish-secret", PUBLISH_SECRET, "--dvr-window-s", "3600"]);
    let name = "tsb";
    let url = o.publish_url(name, &Origin::token_query(name));
    let mut publisher = publish(&small_clip(), &url, 300, &dir.join("ffmpeg.log"));
    let t0 = Instant::now();
    let mpd_path = format!("/live/{name}/manifest.mpd");
    wait(Duration::from_secs(30), "the MPD", || {
        o.get(&mpd_path).filter(|r| r.status == 200).map(|_| ())
    });
    let first_at = t0.elapsed();
    // ~75 s of real-time publishing (bounded: the publisher must still be running).
    let published = Duration::from_secs(75);
    while t0.elapsed() - first_at < published {
        assert!(publisher.exited().is_none(), "the publisher stopped");
        std::thread::sleep(Duration::from_millis(500));
    }
    let mpd = text(&o, &mpd_path);
    let depth = xs_duration_s(
        mpd_attr(&mpd, "timeShiftBufferDepth")
            .unwrap_or_else(|| panic!("no timeShiftBufferDepth:\n{mpd}")),
    );
    let since_first = (t0.elapsed() - first_at).as_secs_f64();
    // Everything published is listed once available: from the first fragment to the
    // one that ended by now (AST + end <= now).
    assert!(
        depth >= since_first - 6.0 && depth <= since_first + 6.0,
        "timeShiftBufferDepth {depth} s, the MPD exists since {since_first:.1} s:\n{mpd}"
    );
    assert!(mpd.contains("type=\"dynamic\""), "{mpd}");
    let url = o.http_url(&mpd_path);
    // Back to the start of the window (Shaka keeps a safe distance from its start).
    let back = depth.ceil() as u32;
    let Some(out) = play(
        &PlayOpts::url(Player::Shaka, &url, PLAY_S)
            .live()
            .seek_back(back)
            .seek_tolerance(10),
    ) else {
        return;
    };
    assert!(out.ok, "{}", out.raw);
    assert!(out.live, "{}", out.raw);
    assert!(out.http_errors.is_empty(), "{}", out.raw);
    let k = seek_of(&out);
    let (start, end) = k.range_s.expect("seek range");
    let landed = k.landed_s.expect("landed");
    assert!(
        landed - start < 10.0,
        "landed {landed} s, window start {start} s: {}",
        out.raw
    );
    assert!(end - landed > depth - 20.0, "{}", out.raw);
    let before = numbers(&k.segments_before);
    let after = numbers(&k.segments_after);
    let lowest_after = after
        .iter()
        .copied()
        .min()
        .unwrap_or_else(|| panic!("nothing fetched after the seek: {}", out.raw));
    let edge_seg = before
        .iter()
        .copied()
        .max()
        .expect("segments before the seek");
    let start_number: u64 = mpd
        .split("startNumber=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no startNumber:\n{mpd}"));
    // Near the window's start (its first fragments), far from the edge.
    assert!(
        lowest_after <= start_number + 5 && edge_seg >= lowest_after + 25,
        "after the seek Shaka fetched from fragment {lowest_after} (window from {start_number}, edge {edge_seg}): {}",
        out.raw
    );
    println!(
        "Shaka {} on manifest.mpd: timeShiftBufferDepth {depth:.3} s after {since_first:.1} s of MPD, \
         seek range [{start:.3}, {end:.3}] s, target {:?} s, landed {landed:.3} s after {:?} ms, \
         then at {:?} s, advanced {:?} s after the seek; fragments at the edge {:?}, after the seek {:?}",
        out.player,
        k.target_s,
        k.seek_ms,
        k.seeked_s,
        k.advanced_after_s,
        before,
        after
    );
    publisher.kill();
}
