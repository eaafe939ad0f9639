//! Server-side ad insertion for live HLS (`strom::package::ssai`, `Origin::set_ad_decider`):
//!
//! * Library level, on a simulated clock: an ffmpeg-made FLV (320x180 H.264 + AAC) is
//!   demuxed by `FlvDemuxer` into an `Origin` on a `MemoryStore`; an operator's cue
//!   (`Origin::cue`) opens a 10 s break; a 4 s creative packaged from an ffmpeg-made MP4
//!   with the same codec parameters replaces its first 4 s for every session. Sessions
//!   reload every simulated second: m3u8-rs parses each playlist; numbering, the
//!   discontinuity sequence, the ads' pacing and dates and the durations are checked;
//!   ffmpeg's concat demuxer decodes the session's segments in order (every frame, no
//!   error). Mismatched creatives are refused.
//! * Real player: the live_origin example with `--ad-creative` and `--cue-key`, ffmpeg
//!   publishing RTMP in real time, hls.js in headless Chromium playing
//!   `/live/NAME/ssai/viewer1/index.m3u8` through a break (`POST /live/NAME/cue`): it
//!   fetches the ad segments and plays on without stalling (played time vs wall time).
//!
//! Run: `cargo test --release --test ssai -- --nocapture` (figures are printed).
//! `STROM_SKIP_BROWSER=1` skips the playback with a SKIP line.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::players::{play, PlayOpts, Player};
use common::*;
use strom::ingest::flv::FlvDemuxer;
use strom::media::Item;
use strom::origin::{
    CueRequest, MemoryStore, MemoryStoreOptions, Method, Origin, OriginOptions, Request, Response,
};
use strom::package::ssai::{Creative, StaticDecider};
use strom::pipeline::Stage;
use strom::time::Timestamp;
use strom::ErrorKind;

/// The host clock at the start (Unix ms).
const T0: i64 = 1_763_900_000_000;
/// Media time of the operator's cue, ms.
const CUE_AT_MS: i64 = 12_000;
/// Planned (and actual) break duration, ms.
const BREAK_MS: i64 = 10_000;

/// The tests here are heavy (ffmpeg, a browser): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A 4 s ad (SMPTE bars, 880 Hz) with the content's codec parameters: 320x180 25 fps
/// H.264 High, GOP 2 s; AAC-LC 48 kHz stereo.
fn ad_mp4() -> PathBuf {
    small_clip_mp4("ssai_ad_320x180_4s.mp4", "smptebars", 880, 48_000, 2, 4)
}

/// The same ad with mono 44.1 kHz audio.
fn ad_mp4_mono_44k() -> PathBuf {
    small_clip_mp4(
        "ssai_ad_320x180_mono44k_4s.mp4",
        "smptebars",
        880,
        44_100,
        1,
        4,
    )
}

/// Every item of an FLV file through `FlvDemuxer`.
fn flv_items(path: &Path) -> Vec<Item> {
    let data = Bytes::from(fs::read(path).unwrap());
    let mut demux = FlvDemuxer::new();
    let mut out = Vec::new();
    for chunk in data.chunks(64 * 1024) {
        demux.push(data.slice_ref(chunk)).unwrap();
        while let Some(item) = demux.poll() {
            out.push(item.unwrap());
        }
    }
    demux.finish().unwrap();
    while let Some(item) = demux.poll() {
        out.push(item.unwrap());
    }
    out
}

fn get(origin: &mut Origin<MemoryStore>, path: &str, now: i64) -> Response {
    origin.handle_mut(&Request::get(path), now)
}

fn media_playlist(body: &[u8]) -> m3u8_rs::MediaPlaylist {
    m3u8_rs::parse_media_playlist_res(body).unwrap_or_else(|e| {
        panic!(
            "m3u8-rs cannot parse: {e:?}\n{}",
            String::from_utf8_lossy(body)
        )
    })
}

fn ms_of(d: f32) -> i64 {
    (f64::from(d) * 1000.0).round() as i64
}

/// The origin path of a session playlist URI.
fn resolve(stream: &str, uri: &str) -> String {
    match uri.strip_prefix("../../") {
        Some(file) => format!("/live/{stream}/{file}"),
        None => uri.to_string(),
    }
}

/// One listed item: URI, duration (ms), discontinuity, date (Unix ms).
type Listed = (String, i64, bool, Option<i64>);

/// What a session has seen: each number's item.
#[derive(Default)]
struct SessionLog {
    items: BTreeMap<u64, Listed>,
    last: Option<(u64, u64)>,
    reloads: u32,
}

impl SessionLog {
    /// Checks one reload against everything seen before and records it.
    fn record(&mut self, who: &str, pl: &m3u8_rs::MediaPlaylist) {
        self.reloads += 1;
        let (msn, ds) = (pl.media_sequence, pl.discontinuity_sequence);
        if let Some((m, d)) = self.last {
            assert!(msn >= m, "{who}: MEDIA-SEQUENCE went back {m} -> {msn}");
            assert!(
                ds >= d,
                "{who}: DISCONTINUITY-SEQUENCE went back {d} -> {ds}"
            );
            // The discontinuity sequence counts exactly the flags that left the window.
            let gone: u64 = (m..msn)
                .map(|n| u64::from(self.items.get(&n).expect("seen before").2))
                .sum();
            assert_eq!(ds, d + gone, "{who}: DISCONTINUITY-SEQUENCE at {msn}");
        }
        self.last = Some((msn, ds));
        for (i, s) in pl.segments.iter().enumerate() {
            let n = msn + i as u64;
            let item = (
                s.uri.clone(),
                ms_of(s.duration),
                s.discontinuity,
                s.program_date_time.map(|t| t.timestamp_millis()),
            );
            match self.items.get(&n) {
                Some(old) => assert_eq!(old, &item, "{who}: number {n} changed"),
                None => {
                    self.items.insert(n, item);
                }
            }
        }
    }
}

/// Content published inside the break, from the content playlist's `EXT-X-CUE-OUT` /
/// `-CONT` / `-IN` tags (ms), when the break's start is in the window.
fn content_in_break_ms(text: &str) -> Option<i64> {
    let mut inside = false;
    let mut started = false;
    let mut total = 0;
    let mut extinf = 0;
    for line in text.lines() {
        if line.starts_with("#EXT-X-CUE-OUT:") {
            inside = true;
            started = true;
        } else if line == "#EXT-X-CUE-IN" {
            inside = false;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            extinf = ms_of(v.trim_end_matches(',').parse().unwrap());
        } else if !line.starts_with('#') && inside {
            total += extinf;
        }
    }
    started.then_some(total)
}

fn command_output(cmd: &mut Command) -> std::process::Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

/// Decoded frames of `stream` (`v:0`, `a:0`) of `input` (ffprobe `-count_frames`);
/// `concat` reads it as an ffmpeg concat list.
fn decoded_frames(input: &Path, stream: &str, concat: bool) -> u64 {
    let mut cmd = Command::new(tool("ffprobe"));
    cmd.args(["-v", "error"]);
    if concat {
        cmd.args(["-f", "concat", "-safe", "0"]);
    }
    cmd.arg("-i").arg(input).args([
        "-count_frames",
        "-select_streams",
        stream,
        "-show_entries",
        "stream=nb_read_frames",
        "-of",
        "csv=p=0",
    ]);
    let out = command_output(&mut cmd);
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // MPEG-TS: the stream is listed again under its program; the first line is enough.
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|l| l.trim().trim_end_matches(','))
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe frame count of {}", input.display()))
}

#[test]
fn sessions_get_paced_ads_with_stable_numbering_and_decode_in_order() {
    let _serial = serial();
    let content = flv_items(&avc_aac_small_25(40, Container::Flv));
    let mut origin = Origin::new(
        MemoryStore::new({
            let mut o = MemoryStoreOptions::default();
            o.max_segments_per_stream = 12;
            o
        }),
        OriginOptions::default(),
    );
    let name = "cam";
    origin.publish(name, T0).unwrap();
    let mut viewer1 = SessionLog::default();
    let mut viewer2 = SessionLog::default();
    let mut late = SessionLog::default();
    let mut late_markers = false;
    // Content segments seen: number -> duration (ms), and every segment's bytes.
    let mut content_ms: BTreeMap<u64, i64> = BTreeMap::new();
    let mut bytes: HashMap<String, Bytes> = HashMap::new();
    let mut ads_at: Vec<(String, i64, i64)> = Vec::new(); // (uri, clock, content in break)
    let mut spot: Option<Arc<Creative>> = None;
    let mut cued = false;
    let mut next_reload = T0 + 1000;
    let mut now = T0;
    let mut reload = |origin: &mut Origin<MemoryStore>,
                      now: i64,
                      spot: &Option<Arc<Creative>>,
                      viewer1: &mut SessionLog,
                      viewer2: &mut SessionLog,
                      late: &mut SessionLog| {
        let r = get(origin, &format!("/live/{name}/media.m3u8"), now);
        if r.status != 200 {
            return;
        }
        let text = String::from_utf8(r.body.to_vec()).unwrap();
        let content_pl = media_playlist(text.as_bytes());
        for (i, s) in content_pl.segments.iter().enumerate() {
            content_ms.insert(content_pl.media_sequence + i as u64, ms_of(s.duration));
        }
        if spot.is_none() {
            // No decider yet: the session playlist is the content's (URIs from the
            // session's path).
            let r = get(
                origin,
                &format!("/live/{name}/ssai/viewer1/media.m3u8"),
                now,
            );
            assert_eq!(r.status, 200);
            let got = String::from_utf8(r.body.to_vec()).unwrap();
            assert_eq!(got.lines().count(), text.lines().count());
            let pl = media_playlist(&r.body);
            assert_eq!(pl.media_sequence, content_pl.media_sequence);
            assert!(pl
                .segments
                .iter()
                .zip(&content_pl.segments)
                .all(|(a, b)| a.uri == format!("../../{}", b.uri)));
            return;
        }
        let in_break = content_in_break_ms(&text);
        let joined_mid = now >= T0 + CUE_AT_MS + 5000;
        let joined_late = now >= T0 + CUE_AT_MS + BREAK_MS + 5000;
        for (who, log, on) in [
            ("viewer1", &mut *viewer1, true),
            ("viewer2", &mut *viewer2, joined_mid),
            ("late", &mut *late, joined_late),
        ] {
            if !on {
                continue;
            }
            let r = get(origin, &format!("/live/{name}/ssai/{who}/media.m3u8"), now);
            assert_eq!(r.status, 200, "{who}");
            assert_eq!(
                r.header("content-type"),
                Some("application/vnd.apple.mpegurl")
            );
            let pl = media_playlist(&r.body);
            let body = String::from_utf8_lossy(&r.body).into_owned();
            if who != "late" {
                assert!(
                    !body.contains("#EXT-X-CUE") && !body.contains("DATERANGE"),
                    "{body}"
                );
            } else {
                late_markers |= body.contains("#EXT-X-CUE-IN") && body.contains("DATERANGE");
            }
            for s in &pl.segments {
                if s.uri.starts_with("/ads/")
                    && !ads_at.iter().any(|a| a.0 == s.uri)
                    && who == "viewer1"
                {
                    ads_at.push((
                        s.uri.clone(),
                        now,
                        in_break.expect("break start in the window"),
                    ));
                }
                let path = resolve(name, &s.uri);
                if let std::collections::hash_map::Entry::Vacant(e) = bytes.entry(path) {
                    let seg = get(origin, e.key(), now);
                    assert_eq!(seg.status, 200, "GET {}", e.key());
                    assert_eq!(seg.header("content-type"), Some("video/mp2t"));
                    e.insert(seg.body);
                }
            }
            log.record(who, &pl);
        }
    };
    for item in content {
        if let Item::Frame(f) = &item {
            now = now.max(T0 + f.dts.as_millis());
        }
        origin.push(name, item, now).unwrap();
        if spot.is_none() && origin.stream(name).unwrap().has_segments() && now >= T0 + 4000 {
            reload(
                &mut origin,
                now,
                &spot,
                &mut viewer1,
                &mut viewer2,
                &mut late,
            );
            // The content's tracks are known: package the ads against them.
            let tracks = origin.stream(name).unwrap().tracks().to_vec();
            assert_eq!(tracks.len(), 2);
            let two_s = Timestamp::from_secs(2);
            let mp4 = Bytes::from(fs::read(ad_mp4()).unwrap());
            let ad = Creative::from_mp4("spot", mp4, two_s, &tracks).unwrap();
            let d: Vec<i64> = ad.segments.iter().map(|s| s.duration.as_millis()).collect();
            assert_eq!(d, [2000, 2000], "the creative's segments");
            // A creative of another size or audio format is refused, saying why.
            let big = Bytes::from(fs::read(avc_aac_25(4, Container::Mp4)).unwrap());
            let e = Creative::from_mp4("big", big, two_s, &tracks).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported);
            assert!(e.to_string().contains("640x360"), "{e}");
            let mono = Bytes::from(fs::read(ad_mp4_mono_44k()).unwrap());
            let e = Creative::from_mp4("mono", mono, two_s, &tracks).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported);
            assert!(e.to_string().contains("sample rate 44100"), "{e}");
            let ad = Arc::new(ad);
            origin.add_creative(Arc::clone(&ad)).unwrap();
            origin.set_ad_decider(Box::new(StaticDecider(vec![Arc::clone(&ad)])));
            spot = Some(ad);
        }
        if !cued && now >= T0 + CUE_AT_MS {
            origin.cue(name, &CueRequest::out(BREAK_MS), now).unwrap();
            cued = true;
        }
        while now >= next_reload {
            reload(
                &mut origin,
                now,
                &spot,
                &mut viewer1,
                &mut viewer2,
                &mut late,
            );
            next_reload += 1000;
        }
    }
    now += 1000;
    origin.unpublish(name, now).unwrap();
    reload(
        &mut origin,
        now,
        &spot,
        &mut viewer1,
        &mut viewer2,
        &mut late,
    );
    assert!(spot.is_some() && cued);
    println!(
        "reloads: viewer1 {}, viewer2 {}, late {}; sessions {}",
        viewer1.reloads,
        viewer2.reloads,
        late.reloads,
        origin.ad_sessions(name)
    );
    assert_eq!(origin.ad_sessions(name), 3);

    // The break as the content has it.
    let brk = origin
        .stream(name)
        .unwrap()
        .ad_breaks()
        .last()
        .unwrap()
        .clone();
    let (first, end) = (
        brk.first_sequence,
        brk.end_sequence.expect("the break ended"),
    );
    let break_ms: i64 = (first..end).map(|s| content_ms[&s]).sum();
    println!(
        "break: content {first}..{end} ({break_ms} ms), started at {} ms",
        brk.start.as_millis()
    );
    // The cue came a little after the keyframe at 12 s: the break starts at the next
    // one, and returns at the keyframe at or after the requested time + 10 s.
    let actual = brk.duration().expect("ended").as_millis();
    assert!(actual > 4000 && actual <= BREAK_MS, "{actual} ms");
    assert_eq!(actual, break_ms);

    // viewer1 saw the whole run: content, DISCONTINUITY, the two ads, DISCONTINUITY,
    // the break's content from 4 s in, then the programme.
    let items: Vec<(u64, Listed)> = viewer1.items.clone().into_iter().collect();
    assert!(
        items.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "contiguous numbers"
    );
    let uris: Vec<&str> = items.iter().map(|(_, i)| i.0.as_str()).collect();
    let ad0 = uris
        .iter()
        .position(|u| *u == "/ads/spot/0.ts")
        .expect("ad 0 listed");
    assert_eq!(uris[ad0 + 1], "/ads/spot/1.ts");
    let rejoin = format!("../../{}.ts", first + 2);
    assert_eq!(uris[ad0 + 2], rejoin, "content fills the break from 4 s");
    assert_eq!(uris[ad0 - 1], format!("../../{}.ts", first - 1));
    let flags: Vec<bool> = items.iter().map(|(_, i)| i.2).collect();
    assert!(
        flags[ad0] && !flags[ad0 + 1] && flags[ad0 + 2],
        "{uris:?} {flags:?}"
    );
    assert_eq!(
        flags.iter().filter(|f| **f).count(),
        2,
        "only around the ad"
    );
    // Numbers: the content's until the break, the ads take the place of its first two
    // segments, so the numbering goes on unchanged.
    assert_eq!(items[ad0].0, first);
    let last = items.last().unwrap();
    assert_eq!(last.1 .0, format!("../../{}.ts", last.0));
    // Dates: the ads at the break's start date and 2 s later; content keeps its own.
    assert_eq!(items[ad0].1 .3, Some(brk.start_date));
    assert_eq!(items[ad0 + 1].1 .3, Some(brk.start_date + 2000));
    // Durations: the session lists exactly the content's time.
    let session_total: i64 = items.iter().map(|(_, i)| i.1).sum();
    let first_seq = items[0].0;
    let content_total: i64 = (first_seq..=last.0).map(|s| content_ms[&s]).sum();
    println!(
        "viewer1: {} items, {session_total} ms; content {content_total} ms",
        items.len()
    );
    assert_eq!(session_total, content_total);
    // Pacing: each ad was listed once the content of the break covered its end.
    println!(
        "ads listed (uri, clock - T0, content in the break): {:?}",
        ads_at
            .iter()
            .map(|(u, t, c)| (u.as_str(), t - T0, *c))
            .collect::<Vec<_>>()
    );
    assert_eq!(ads_at.len(), 2);
    for (k, (_, _, covered)) in ads_at.iter().enumerate() {
        assert!(*covered >= 2000 * (k as i64 + 1), "{ads_at:?}");
    }
    // ...and not long before: the first reload after the content got there.
    assert!(ads_at[0].2 < 4000 && ads_at[1].2 < 6000, "{ads_at:?}");

    // viewer2 joined in the middle of the break: substituted too, same numbers.
    assert!(viewer2.items.values().any(|i| i.0 == "/ads/spot/1.ts"));
    for (n, i) in &viewer2.items {
        if let Some(o) = viewer1.items.get(n) {
            assert_eq!(o, i, "viewer2's number {n}");
        }
    }
    // The late viewer joined after the break ended: no ads, markers kept.
    assert!(late.reloads > 0);
    assert!(late.items.values().all(|i| !i.0.starts_with("/ads/")));
    assert!(late_markers, "the late viewer sees the break's markers");

    // ffmpeg decodes viewer1's segments in order, every frame, without an error.
    let dir = TempDir::new("ssai-concat");
    let mut list = String::new();
    let (mut video, mut audio) = (0, 0);
    for (n, (uri, ..)) in &items {
        let path = dir.join(&format!("{n}.ts"));
        fs::write(&path, &bytes[&resolve(name, uri)]).unwrap();
        video += decoded_frames(&path, "v:0", false);
        audio += decoded_frames(&path, "a:0", false);
        list += &format!("file '{}'\n", path.display());
    }
    let list_path = dir.join("list.txt");
    fs::write(&list_path, &list).unwrap();
    let out = command_output(
        Command::new(tool("ffmpeg"))
            .args([
                "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i",
            ])
            .arg(&list_path)
            .args(["-f", "null", "-"]),
    );
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && errors.trim().is_empty(),
        "ffmpeg concat: {errors}"
    );
    let concat_video = decoded_frames(&list_path, "v:0", true);
    let concat_audio = decoded_frames(&list_path, "a:0", true);
    println!(
        "concat of {} segments: {concat_video} video frames (segments alone: {video}), \
         {concat_audio} audio frames ({audio})",
        items.len()
    );
    assert_eq!(concat_video, video);
    assert_eq!(concat_audio, audio);
    // 25 fps: the session's time in video frames (the ad has 100 of its own).
    assert_eq!(video as i64, session_total / 40);

    // HTTP: the multivariant playlist, HEAD, unknown creatives and streams, bad names.
    let r = get(
        &mut origin,
        &format!("/live/{name}/ssai/viewer1/index.m3u8"),
        now,
    );
    assert_eq!(r.status, 200);
    let stream_mv = get(&mut origin, &format!("/live/{name}/index.m3u8"), now);
    assert_eq!(r.body, stream_mv.body);
    assert!(String::from_utf8_lossy(&r.body).contains("media.m3u8"));
    let h = origin.handle_mut(&Request::head("/ads/spot/0.ts"), now);
    assert_eq!((h.status, h.body.len()), (200, 0));
    assert_eq!(
        get(&mut origin, "/ads/spot/0.ts", now).body,
        spot.as_ref().unwrap().segments[0].data
    );
    for (path, status) in [
        ("/ads/spot/2.ts", 404),
        ("/ads/spot/x.ts", 404),
        ("/ads/nope/0.ts", 404),
        ("/ads/sp.ot/0.ts", 400),
        ("/live/nope/ssai/v/media.m3u8", 404),
        ("/live/cam/ssai/v/other.m3u8", 404),
        ("/live/cam/ssai/v.1/media.m3u8", 400),
    ] {
        assert_eq!(get(&mut origin, path, now).status, status, "{path}");
    }
    let post = origin.handle_mut(&Request::new(Method::Post, "/ads/spot/0.ts"), now);
    assert_eq!(post.status, 405);
}

/// The last value of `key` in a play.mjs report line (`"key":123.4`).
fn report_num(raw: &str, key: &str) -> Option<f64> {
    let j = Json::parse(raw.trim()).ok()?;
    j.get(key).and_then(Json::as_f64)
}

/// Cues a break every 8 s (8 in all at most) while `player` plays; the breaks cued,
/// counting the one cued at `cued`.
fn cue_while_playing<T>(
    player: &std::thread::JoinHandle<T>,
    ff: &mut common::live::Proc,
    cue: &dyn Fn(),
    cued: Instant,
) -> usize {
    let mut cues = 1;
    let mut last = cued;
    while !player.is_finished() && cues < 8 {
        if last.elapsed() >= Duration::from_secs(8) {
            cue();
            cues += 1;
            last = Instant::now();
        }
        assert!(ff.exited().is_none(), "ffmpeg stopped publishing");
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("{cues} breaks cued");
    cues
}

/// The player's outcome, its wall time and its `waiting` events; `None` when playback
/// was skipped (STROM_SKIP_BROWSER=1).
fn played(
    player: std::thread::JoinHandle<Option<common::players::PlayOutcome>>,
) -> Option<(common::players::PlayOutcome, f64, f64)> {
    let out = player.join().expect("player thread")?;
    let wall = report_num(&out.raw, "wall_s").unwrap_or(0.0);
    let waiting = Json::parse(out.raw.trim())
        .ok()
        .and_then(|j| {
            j.get("events")
                .and_then(|e| e.get("waiting"))
                .and_then(Json::as_f64)
        })
        .unwrap_or(0.0);
    Some((out, wall, waiting))
}

#[test]
fn hls_js_plays_a_live_session_through_a_substituted_break() {
    use common::live::{publish, wait_first_playlist, Origin as Example, PUBLISH_SECRET};
    let _serial = serial();
    const KEY: &str = "cue-key-1";
    const PLAY_S: u32 = 20;
    let ad = ad_mp4();
    let input = avc_aac_small_25(20, Container::Flv);
    let origin = Example::start_with(&[
        "--publish-secret",
        PUBLISH_SECRET,
        "--cue-key",
        KEY,
        "--ad-creative",
        ad.to_str().unwrap(),
    ]);
    let dir = TempDir::new("ssai-browser");
    let name = "ssai";
    let url = origin.publish_url(name, &Example::token_query(name));
    let mut ff = publish(&input, &url, 120, &dir.join("ffmpeg.log"));
    let (first, took, _) = wait_first_playlist(&origin, name, Duration::from_secs(15));
    println!(
        "first playlist after {took:?} (MEDIA-SEQUENCE {})",
        first.media_sequence
    );
    // A few segments, so the player starts at an ordinary live edge.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        let n = origin
            .playlist(name)
            .map_or(0, |t| t.matches("#EXTINF").count());
        if n >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let session_url = origin.http_url(&format!("/live/{name}/ssai/viewer1/index.m3u8"));
    let opts = PlayOpts::url(Player::HlsJs, &session_url, PLAY_S).live();
    let player = std::thread::spawn(move || play(&opts));
    // hls.js starts within a few seconds (more on a busy machine); then the operator
    // opens a 6 s break, and another every 8 s while the player plays: a break in
    // progress when the player's session joins, or a later one, is substituted for it.
    let cue = || {
        let r = origin
            .post(&format!("/live/{name}/cue?key={KEY}&duration=6"), b"")
            .expect("cue answer");
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    };
    std::thread::sleep(Duration::from_secs(4));
    cue();
    let cued = Instant::now();
    // Another session sees the ad segments listed, then the programme again.
    let mut ads_listed = None;
    let mut back = None;
    while cued.elapsed() < Duration::from_secs(25) && back.is_none() {
        let r = origin
            .get(&format!("/live/{name}/ssai/probe/media.m3u8"))
            .expect("session playlist");
        assert_eq!(r.status, 200);
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let p = common::live::Playlist::parse(&text);
        if ads_listed.is_none() && text.contains("/ads/ad/1.ts") {
            ads_listed = Some(cued.elapsed());
        }
        if let Some(i) = p.segments.iter().position(|s| s.1 == "/ads/ad/1.ts") {
            if let Some(after) = p.segments.get(i + 1) {
                assert!(after.1.starts_with("../../") && after.2, "{text}");
                back = Some(cued.elapsed());
            }
        }
        assert!(ff.exited().is_none(), "ffmpeg stopped publishing");
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("ads listed {ads_listed:?} after the cue, programme back {back:?} after it");
    assert!(ads_listed.is_some() && back.is_some());
    cue_while_playing(&player, &mut ff, &cue, cued);
    let Some((out, wall, waiting)) = played(player) else {
        return; // STROM_SKIP_BROWSER=1: SKIP printed by play()
    };
    println!(
        "hls.js: {}; played {:.2} s in {wall:.2} s of wall time, {waiting} 'waiting' events",
        out.summary(),
        out.advanced_s
    );
    println!("segments requested: {:?}", out.segment_requests);
    assert!(out.ok, "{}", out.raw);
    assert!(out.live, "{}", out.raw);
    assert!(out.fatal_errors.is_empty(), "{}", out.raw);
    assert!(out.http_errors.is_empty(), "{}", out.raw);
    // It played the ad and came back to the programme.
    let reqs = &out.segment_requests;
    let text_of = |path: &str| {
        origin
            .get(path)
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .unwrap_or_default()
    };
    let why = || {
        format!(
            "{}\nviewer1 now:\n{}\ncontent now:\n{}",
            out.raw,
            text_of(&format!("/live/{name}/ssai/viewer1/media.m3u8")),
            text_of(&format!("/live/{name}/media.m3u8"))
        )
    };
    let a0 = reqs
        .iter()
        .position(|r| r == "/ads/ad/0.ts")
        .unwrap_or_else(|| panic!("{}", why()));
    let a1 = reqs
        .iter()
        .position(|r| r == "/ads/ad/1.ts")
        .unwrap_or_else(|| panic!("{}", why()));
    assert!(a0 < a1);
    assert!(
        reqs[a1..]
            .iter()
            .any(|r| r.starts_with(&format!("/live/{name}/"))),
        "{reqs:?}"
    );
    // No stall: no `waiting` but the one before playback starts (the buffer never ran
    // dry at an ad's edges), and the media time played keeps up with the wall clock
    // (within 1 s: a busy machine's renderer drops frames and lags a little).
    assert!(waiting <= 1.0, "{waiting} 'waiting' events: {}", out.raw);
    assert!(
        out.advanced_s >= wall - 1.0,
        "played {} s in {wall} s: {}",
        out.advanced_s,
        out.raw
    );
    assert!(
        out.video_width == 320 && out.video_height == 180,
        "{}",
        out.raw
    );
    ff.kill();
}

/// The `(id, start)` of every Period of an MPD text, with the media template of its
/// first Representation.
fn periods(mpd: &str) -> Vec<(String, f64, String)> {
    let m = dash_mpd_core::parse(mpd).unwrap_or_else(|e| panic!("dash-mpd-core: {e}\n{mpd}"));
    m.periods
        .iter()
        .map(|p| {
            let id = p.id.clone().unwrap_or_default();
            let start = p.start.as_ref().map_or(0.0, |d| d.as_secs_f64());
            let media = p
                .adaptations
                .first()
                .and_then(|a| a.representations.first())
                .and_then(|r| r.SegmentTemplate.as_ref())
                .and_then(|t| t.media.clone())
                .unwrap_or_default();
            (id, start, media)
        })
        .collect()
}

#[test]
fn dash_js_plays_a_live_session_with_the_ads_as_periods() {
    use common::live::{publish, wait_first_playlist, Origin as Example, PUBLISH_SECRET};
    let _serial = serial();
    const KEY: &str = "cue-key-2";
    const PLAY_S: u32 = 24;
    let ad = ad_mp4();
    let input = avc_aac_small_25(20, Container::Flv);
    let origin = Example::start_with(&[
        "--publish-secret",
        PUBLISH_SECRET,
        "--cue-key",
        KEY,
        "--ad-creative",
        ad.to_str().unwrap(),
    ]);
    let dir = TempDir::new("ssai-dash");
    let name = "ssaidash";
    let url = origin.publish_url(name, &Example::token_query(name));
    let mut ff = publish(&input, &url, 120, &dir.join("ffmpeg.log"));
    wait_first_playlist(&origin, name, Duration::from_secs(15));
    // A few segments, so the player starts at an ordinary distance from the live edge.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        let n = origin
            .playlist(name)
            .map_or(0, |t| t.matches("#EXTINF").count());
        if n >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Without a break the session MPD is the content's, one Period.
    let probe = format!("/live/{name}/ssai/probe/manifest.mpd");
    let r = origin.get(&probe).expect("session MPD");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(periods(&String::from_utf8_lossy(&r.body)).len(), 1);

    let session_url = origin.http_url(&format!("/live/{name}/ssai/viewer1/manifest.mpd"));
    let opts = PlayOpts::url(Player::DashJs, &session_url, PLAY_S).live();
    let player = std::thread::spawn(move || play(&opts));
    let cue = || {
        let r = origin
            .post(&format!("/live/{name}/cue?key={KEY}&duration=6"), b"")
            .expect("cue answer");
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    };
    std::thread::sleep(Duration::from_secs(4));
    cue();
    let cued = Instant::now();
    // Another session sees content, the ad as its own Period, then content again, the
    // Periods' starts increasing; every init segment and fragment the ad Period
    // addresses is served.
    let mut seen: Option<Vec<(String, f64, String)>> = None;
    let mut text = String::new();
    while cued.elapsed() < Duration::from_secs(25) && seen.is_none() {
        let r = origin.get(&probe).expect("session MPD");
        assert_eq!(r.status, 200);
        text = String::from_utf8_lossy(&r.body).into_owned();
        let p = periods(&text);
        if let Some(i) = p.iter().position(|x| x.0.starts_with("ad")) {
            if i > 0 && p.get(i + 1).is_some_and(|n| n.0.starts_with('c')) {
                seen = Some(p);
            }
        }
        assert!(ff.exited().is_none(), "ffmpeg stopped publishing");
        std::thread::sleep(Duration::from_millis(500));
    }
    let p = seen.unwrap_or_else(|| panic!("no ad Period between content Periods:\n{text}"));
    println!("session Periods after the cue: {p:?}");
    assert!(p.windows(2).all(|w| w[0].1 < w[1].1), "{p:?}");
    let ad_at = p.iter().position(|x| x.0.starts_with("ad")).unwrap();
    assert!(p[ad_at].2.starts_with("/ads/ad/"), "{p:?}");
    // The ad Period lasts the creative (4 s): the content comes back 4 s after the cut.
    let back = p[ad_at + 1].1 - p[ad_at].1;
    assert!(
        (back - 4.0).abs() < 0.002,
        "content back {back} s after the cut: {p:?}"
    );
    for rendition in ["v1", "a2"] {
        for file in ["init.mp4", "0.m4s", "1.m4s"] {
            let r = origin
                .get(&format!("/ads/ad/{rendition}/{file}"))
                .expect("ad fragment");
            assert_eq!(r.status, 200, "/ads/ad/{rendition}/{file}");
        }
    }
    let cues = cue_while_playing(&player, &mut ff, &cue, cued);
    let Some((out, wall, waiting)) = played(player) else {
        return; // STROM_SKIP_BROWSER=1: SKIP printed by play()
    };
    println!(
        "dash.js: {}; played {:.2} s in {wall:.2} s of wall time, {waiting} 'waiting' events",
        out.summary(),
        out.advanced_s
    );
    println!("segments requested: {:?}", out.segment_requests);
    let why = || {
        format!(
            "{}\nviewer1 now:\n{}",
            out.raw,
            origin
                .get(&format!("/live/{name}/ssai/viewer1/manifest.mpd"))
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .unwrap_or_default()
        )
    };
    assert!(out.ok, "{}", why());
    assert!(out.fatal_errors.is_empty(), "{}", why());
    assert!(out.http_errors.is_empty(), "{}", why());
    // It played an ad's fragments, and content fragments after them.
    let reqs = &out.segment_requests;
    let first_ad = reqs
        .iter()
        .position(|r| r.starts_with("/ads/ad/v1/"))
        .unwrap_or_else(|| panic!("no ad fragment requested: {}", why()));
    assert!(
        reqs[first_ad..]
            .iter()
            .any(|r| r.starts_with(&format!("/live/{name}/v"))),
        "{reqs:?}"
    );
    // No stall: the media time played keeps up with the wall clock (within 1 s), and
    // the only waits are the one before playback and jumps over the gaps where an ad
    // Period starts, each shorter than 100 ms (an audio fragment that straddles the
    // cut is left in the content Period before it; see package::ssai::DashSessions).
    assert!(
        out.advanced_s >= wall - 1.0,
        "played {} s in {wall} s: {}",
        out.advanced_s,
        why()
    );
    let log = Json::parse(out.raw.trim()).expect("report");
    let log = log
        .get("event_log")
        .and_then(Json::as_array)
        .unwrap_or_default();
    let mut gaps: Vec<(f64, f64)> = Vec::new();
    for e in log {
        let ranges: Vec<(f64, f64)> = e
            .get("buffered")
            .and_then(Json::as_array)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| {
                let r = r.as_array()?;
                Some((r.first()?.as_f64()?, r.get(1)?.as_f64()?))
            })
            .collect();
        for w in ranges.windows(2) {
            if !gaps.iter().any(|g| (g.0 - w[0].1).abs() < 1e-3) {
                gaps.push((w[0].1, w[1].0));
            }
        }
    }
    println!("buffer gaps jumped: {gaps:?}");
    assert!(gaps.len() <= cues, "{gaps:?}: {}", why());
    assert!(gaps.iter().all(|g| g.1 - g.0 < 0.1), "{gaps:?}: {}", why());
    // Every wait but the one before playback is at such a gap (the browser may report
    // one before and one after the jump).
    for e in log {
        let ev = e.get("ev").and_then(Json::as_str).unwrap_or_default();
        let at = e.get("time").and_then(Json::as_f64).unwrap_or(0.0);
        let buffered = e
            .get("buffered")
            .and_then(Json::as_array)
            .is_some_and(|b| !b.is_empty());
        if ev != "waiting" || !buffered {
            continue; // before playback: nothing buffered yet
        }
        assert!(
            gaps.iter()
                .any(|g| (at - g.0).abs() < 0.1 || (at - g.1).abs() < 0.1),
            "waiting at {at} s, not at a gap {gaps:?}: {}",
            why()
        );
    }
    ff.kill();
}
