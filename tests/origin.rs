//! Live origin, whole pipeline on a fake clock: an ffmpeg-made FLV -> FlvDemuxer ->
//! Origin (LiveStream + MemoryStore) -> HTTP answers, judged by m3u8-rs (playlists)
//! and ffmpeg (every segment decodes).

mod common;

use std::fs;
use std::path::PathBuf;

use bytes::Bytes;
use common::*;
use m3u8_rs::Playlist;
use strom::ingest::flv::FlvDemuxer;
use strom::media::Item;
use strom::origin::{
    FirstSegment, MemoryStore, MemoryStoreOptions, Method, Origin, OriginOptions, Request, Response,
};
use strom::pipeline::Stage;

/// The host clock at the start of every test (Unix ms).
const T0: i64 = 1_763_900_000_000;

/// 12 s of 320x240 25 fps H.264 (keyframe every second) + AAC-LC, as FLV.
fn flv() -> PathBuf {
    media(
        "live_320x240_12s.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=12",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=12",
            "-c:v",
            "libx264",
            "-threads",
            "1",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-ar",
            "48000",
            "-ac",
            "2",
            "-f",
            "flv",
        ],
    )
}

/// Origin options where every segment lasts at least the target (2 s), first ones
/// included: the window arithmetic of the tests below.
fn full() -> OriginOptions {
    let mut opts = OriginOptions::default();
    opts.live.first_segment = FirstSegment::Full;
    opts
}

/// The demuxed items of the FLV.
fn items() -> Vec<Item> {
    let data = Bytes::from(fs::read(flv()).unwrap());
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

fn get(origin: &Origin<MemoryStore>, path: &str, now: i64) -> Response {
    origin.handle(&Request::get(path), now)
}

fn media_playlist(origin: &Origin<MemoryStore>, name: &str, now: i64) -> m3u8_rs::MediaPlaylist {
    let r = get(origin, &format!("/live/{name}/media.m3u8"), now);
    assert_eq!(r.status, 200);
    match m3u8_rs::parse_playlist_res(&r.body) {
        Ok(Playlist::MediaPlaylist(p)) => p,
        other => panic!(
            "not a media playlist: {other:?}\n{}",
            String::from_utf8_lossy(&r.body)
        ),
    }
}

/// Publishes the FLV in "real time" on the fake clock starting at `start`: each
/// frame is pushed at `start + its decode time`. After each new segment, polls the
/// media playlist and calls `on_playlist`. Returns the clock at the end.
fn publish_flv(
    origin: &mut Origin<MemoryStore>,
    name: &str,
    start: i64,
    mut on_playlist: impl FnMut(&Origin<MemoryStore>, i64),
) -> i64 {
    origin.publish(name, start).unwrap();
    let mut now = start;
    let mut seen = origin.stream(name).unwrap().next_sequence();
    for item in items() {
        if let Item::Frame(f) = &item {
            now = now.max(start + f.dts.as_millis());
        }
        origin.tick(now);
        origin.push(name, item, now).unwrap();
        let next = origin.stream(name).unwrap().next_sequence();
        if next != seen {
            seen = next;
            on_playlist(origin, now);
        }
    }
    now
}

/// Writes `data` to a temp file and returns what ffmpeg complains about decoding it.
fn decode(dir: &TempDir, name: &str, data: &[u8]) -> String {
    let path = dir.join(name);
    fs::write(&path, data).unwrap();
    decode_errors(&path)
}

#[test]
fn live_window_slides_and_every_segment_decodes() {
    let mut origin = Origin::new(MemoryStore::default(), full());
    let mut polls = Vec::new();
    let end = publish_flv(&mut origin, "cam", T0, |o, now| {
        polls.push((now, media_playlist(o, "cam", now)))
    });
    // 12 s in 2 s segments: 5 complete while publishing, the 6th when it leaves.
    assert_eq!(polls.len(), 5);
    for (i, (now, pl)) in polls.iter().enumerate() {
        let n = i + 1; // segments made so far
        assert_eq!(pl.version, Some(3));
        assert_eq!(pl.target_duration, 2);
        assert!(!pl.end_list);
        assert_eq!(pl.media_sequence, 0);
        assert_eq!(pl.segments.len(), n);
        let last = pl.segments.last().unwrap();
        assert_eq!(last.uri, format!("{}.ts", n - 1));
        assert!((last.duration - 2.0).abs() < 0.001, "{}", last.duration);
        // PDT: the host clock when the segment's first frame arrived, 2 s apart.
        let pdt: Vec<i64> = pl
            .segments
            .iter()
            .map(|s| s.program_date_time.unwrap().timestamp_millis())
            .collect();
        for (k, p) in pdt.iter().enumerate() {
            assert!((p - (T0 + 2000 * k as i64)).abs() <= 40, "{pdt:?}");
        }
        assert!(*pdt.last().unwrap() <= *now);
    }
    origin.unpublish("cam", end).unwrap();
    let pl = media_playlist(&origin, "cam", end);
    assert_eq!(pl.segments.len(), 6);
    assert!(!pl.end_list);

    // Every segment, fetched over the origin, decodes alone.
    let dir = TempDir::new("origin-live");
    for s in &pl.segments {
        let r = get(&origin, &format!("/live/cam/{}", s.uri), end);
        assert_eq!(r.status, 200, "{}", s.uri);
        assert_eq!(r.header("content-type"), Some("video/mp2t"));
        assert_eq!(r.body.len() % 188, 0);
        let errors = decode(&dir, &s.uri, &r.body);
        assert!(errors.is_empty(), "{}: {errors}", s.uri);
    }

    // The multivariant playlist describes the variant.
    let r = get(&origin, "/live/cam/index.m3u8", end);
    let mv = match m3u8_rs::parse_playlist_res(&r.body) {
        Ok(Playlist::MasterPlaylist(p)) => p,
        other => panic!("not a multivariant playlist: {other:?}"),
    };
    assert_eq!(mv.variants.len(), 1);
    let v = &mv.variants[0];
    assert_eq!(v.uri, "media.m3u8");
    let res = v.resolution.unwrap();
    assert_eq!((res.width, res.height), (320, 240));
    assert_eq!(v.frame_rate, Some(25.0));
    let codecs = v.codecs.as_deref().unwrap();
    assert!(
        codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"),
        "{codecs}"
    );
    // BANDWIDTH is the measured peak: at least the bits of any one segment per second.
    let biggest = pl
        .segments
        .iter()
        .map(|s| {
            get(&origin, &format!("/live/cam/{}", s.uri), end)
                .body
                .len() as u64
        })
        .max()
        .unwrap();
    assert!(
        v.bandwidth >= biggest * 8 / 2,
        "{} vs {biggest}",
        v.bandwidth
    );
    assert!(v.bandwidth < 5_000_000);
}

#[test]
fn reconnect_marks_discontinuity_and_idle_ends() {
    let mut opts = MemoryStoreOptions::default();
    opts.max_segments_per_stream = 9; // the default: a window of 6 plus 3
    let store = MemoryStore::new(opts);
    let mut origin = Origin::new(store, full());
    let end1 = publish_flv(&mut origin, "cam", T0, |_, _| {});
    origin.unpublish("cam", end1).unwrap();
    // A second publisher on a live stream is refused; after the first left, the
    // same name continues.
    let start2 = end1 + 3000;
    let mut sequences = Vec::new();
    let end2 = publish_flv(&mut origin, "cam", start2, |o, now| {
        sequences.push(media_playlist(o, "cam", now).media_sequence)
    });
    assert!(origin.publish("cam", end2).is_err());
    origin.unpublish("cam", end2).unwrap();

    // 12 segments in all (6 per publisher, window 6): MEDIA-SEQUENCE never went back
    // and rose by one per segment.
    assert_eq!(sequences, [1, 2, 3, 4, 5]);
    let pl = media_playlist(&origin, "cam", end2);
    assert_eq!(pl.media_sequence, 6);
    assert_eq!(pl.discontinuity_sequence, 0);
    let uris: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, ["6.ts", "7.ts", "8.ts", "9.ts", "10.ts", "11.ts"]);
    // The join is at segment 6, the first one of the second publisher.
    assert!(pl.segments[0].discontinuity);
    assert!(pl.segments[1..].iter().all(|s| !s.discontinuity));
    let pdt6 = pl.segments[0].program_date_time.unwrap().timestamp_millis();
    assert!((pdt6 - start2).abs() <= 40, "{pdt6} vs {start2}");

    // Segments on both sides of the join decode, alone and played back to back
    // (timestamps and continuity counters carry on across the join).
    let dir = TempDir::new("origin-join");
    let s5 = get(&origin, "/live/cam/5.ts", end2);
    let s6 = get(&origin, "/live/cam/6.ts", end2);
    assert_eq!((s5.status, s6.status), (200, 200));
    assert_eq!(decode(&dir, "5.ts", &s5.body), "");
    assert_eq!(decode(&dir, "6.ts", &s6.body), "");
    let joined = [s5.body.as_ref(), s6.body.as_ref()].concat();
    assert_eq!(decode(&dir, "5-6.ts", &joined), "");
    // No continuity counter breaks at the join (ffmpeg reports them at debug level).
    let log = std::process::Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "debug", "-i"])
        .arg(dir.join("5-6.ts"))
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stderr);
    assert!(!log.contains("Continuity check failed"), "{log}");
    let times = ffprobe_flat(
        &dir.join("5-6.ts"),
        &["-show_entries", "format=start_time,duration"],
    );
    // About 4 s of media (2 + 2, plus the 1 s gap left at the join), not a jump back.
    let d = times.f64("format.duration");
    assert!((3.5..=5.5).contains(&d), "duration {d}");

    // The store keeps a grace of 3 behind the window of 6.
    assert_eq!(get(&origin, "/live/cam/3.ts", end2).status, 200);
    assert_eq!(get(&origin, "/live/cam/2.ts", end2).status, 404);

    // Idle for 30 s: the playlist ends; the stream leaves /streams.json.
    let streams = |o: &Origin<MemoryStore>, now| {
        let r = get(o, "/streams.json", now);
        Json::parse(std::str::from_utf8(&r.body).unwrap()).unwrap()
    };
    origin.tick(end2 + 29_999);
    assert!(!media_playlist(&origin, "cam", end2 + 29_999).end_list);
    assert_eq!(
        streams(&origin, end2 + 29_999)
            .get("streams")
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    origin.tick(end2 + 30_000);
    let pl = media_playlist(&origin, "cam", end2 + 30_000);
    assert!(pl.end_list);
    assert_eq!(pl.segments.len(), 6);
    let s = streams(&origin, end2 + 30_000);
    assert_eq!(s.get("streams").unwrap().as_array().unwrap().len(), 0);

    // A new publisher after the end starts a new playlist whose numbering continues
    // (segment URLs are cached as immutable and must never name other bytes).
    origin.publish("cam", end2 + 31_000).unwrap();
    assert_eq!(origin.stream("cam").unwrap().next_sequence(), 12);
    assert_eq!(
        get(&origin, "/live/cam/media.m3u8", end2 + 31_000).status,
        404
    );
    assert_eq!(get(&origin, "/live/cam/11.ts", end2 + 31_000).status, 404);
}

/// With the defaults, the first playlist is served one GOP (1 s here) after the
/// publisher's first keyframe, and its short first segment decodes.
#[test]
fn first_playlist_one_gop_after_publish() {
    let mut origin = Origin::new(MemoryStore::default(), OriginOptions::default());
    let mut first = None;
    let end = publish_flv(&mut origin, "cam", T0, |o, now| {
        if first.is_none() {
            first = Some((now, media_playlist(o, "cam", now)));
        }
    });
    let (at, pl) = first.unwrap();
    assert!(
        at - T0 <= 1000 + 50,
        "first playlist {} ms after publish",
        at - T0
    );
    assert_eq!(pl.segments.len(), 1);
    assert!((pl.segments[0].duration - 1.0).abs() < 0.001);
    assert_eq!(pl.target_duration, 2);
    let r = get(&origin, "/live/cam/0.ts", end);
    let dir = TempDir::new("origin-first");
    assert_eq!(decode(&dir, "0.ts", &r.body), "");
    // Then 2 s segments: 1 + 5 x 2 s while publishing.
    let pl = media_playlist(&origin, "cam", end);
    let durations: Vec<f32> = pl.segments.iter().map(|s| s.duration).collect();
    assert_eq!(durations, [1.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
}

#[test]
fn http_semantics() {
    let mut origin = Origin::new(MemoryStore::default(), OriginOptions::default());
    let end = publish_flv(&mut origin, "cam-1", T0, |_, _| {});
    let now = end + 10;

    // Playlists.
    for (path, ctype) in [
        ("/live/cam-1/index.m3u8", "application/vnd.apple.mpegurl"),
        (
            "/live/cam-1/media.m3u8?token=abc",
            "application/vnd.apple.mpegurl",
        ),
    ] {
        let r = get(&origin, path, now);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ctype));
        assert_eq!(r.header("cache-control"), Some("max-age=1"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        assert!(r.body.starts_with(b"#EXTM3U\n"));
        // HEAD: same status and headers, no body.
        let h = origin.handle(&Request::head(path), now);
        assert_eq!(h.status, 200);
        assert_eq!(h.headers, r.headers);
        assert!(h.body.is_empty());
    }

    // Segments.
    let r = get(&origin, "/live/cam-1/0.ts", now);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/mp2t"));
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=31536000, immutable")
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.body[0], 0x47);
    let h = origin.handle(&Request::head("/live/cam-1/0.ts"), now);
    assert_eq!((h.status, h.headers.clone()), (200, r.headers.clone()));
    assert!(h.body.is_empty());

    // Not found.
    for path in [
        "/live/nope/index.m3u8",
        "/live/nope/0.ts",
        "/live/cam-1/99.ts",
        "/live/cam-1/x.ts",
        "/live/cam-1/other.m3u8",
        "/live/cam-1",
        "/",
        "/index.html",
    ] {
        let r = get(&origin, path, now);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
    let h = origin.handle(&Request::head("/live/nope/0.ts"), now);
    assert_eq!(h.status, 404);
    assert!(h.body.is_empty());

    // Traversal and bad names: 400, whatever the spelling.
    for path in [
        "/live/../../etc/passwd",
        "/live/cam-1/../../../etc/passwd",
        "/live/%2e%2e/%2e%2e/etc/passwd",
        "/live/cam-1/%2E%2E%2Fsecret",
        "/live/cam-1/..\\..\\boot.ini",
        "/live\\cam-1\\0.ts",
        "//etc/passwd",
        "/live/./cam-1/0.ts",
        "/live/cam.1/0.ts",
        "/live/cam%201/0.ts",
    ] {
        assert_eq!(get(&origin, path, now).status, 400, "{path}");
    }
    assert_eq!(
        origin
            .handle(&Request::new(Method::Get, "C:\\windows"), now)
            .status,
        400
    );

    // Methods.
    for m in ["POST", "PUT", "DELETE", "PATCH", "get"] {
        let r = origin.handle(
            &Request::new(Method::parse(m), "/live/cam-1/index.m3u8"),
            now,
        );
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    }
    let r = origin.handle(
        &Request::new(Method::Options, "/live/cam-1/index.m3u8"),
        now,
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    assert!(r.body.is_empty());

    // /streams.json: the live stream with its measured numbers.
    let r = get(&origin, "/streams.json", now);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = Json::parse(std::str::from_utf8(&r.body).unwrap()).unwrap();
    let streams = j.get("streams").unwrap().as_array().unwrap();
    assert_eq!(streams.len(), 1);
    let s = &streams[0];
    assert_eq!(s.get("name").unwrap().as_str(), Some("cam-1"));
    let codecs = s.get("codecs").unwrap().as_str().unwrap();
    assert!(codecs.starts_with("avc1.") && codecs.ends_with("mp4a.40.2"));
    assert_eq!(s.get("width").unwrap().as_f64(), Some(320.0));
    assert_eq!(s.get("height").unwrap().as_f64(), Some(240.0));
    assert_eq!(s.get("frame_rate").unwrap().as_f64(), Some(25.0));
    let bitrate = s.get("bitrate").unwrap().as_f64().unwrap();
    assert!(bitrate > 20_000.0 && bitrate < 5_000_000.0, "{bitrate}");
    let uptime = s.get("uptime_s").unwrap().as_f64().unwrap();
    assert!((11.0..=12.0).contains(&uptime), "{uptime}");
    assert_eq!(s.get("publishing").unwrap().as_bool(), Some(true));

    // Invalid names cannot be published.
    assert!(origin.publish("../x", now).is_err());
    assert!(origin.publish(&"a".repeat(65), now).is_err());
}

/// Writes `data` to `path` atomically (a temporary name renamed into place), so the
/// static server of `play.mjs` never serves a partial file.
fn put_file(path: &std::path::Path, data: &[u8]) {
    let tmp = path.with_extension("part");
    fs::write(&tmp, data).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// hls.js in headless Chromium plays the live stream while it is being published in
/// real time, across a publisher reconnect (EXT-X-DISCONTINUITY). `play.mjs` serves
/// a directory, so the publisher thread mirrors what `Origin::handle` answers for
/// each new segment, then for both playlists, into that directory as they change.
#[test]
fn hls_js_plays_live_across_a_reconnect() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    let dir = TempDir::new("origin-hlsjs");
    let out = dir.join("live/cam");
    fs::create_dir_all(&out).unwrap();
    let items = items();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (out, stop) = (out.clone(), stop.clone());
        std::thread::spawn(move || {
            let clock = || {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64
            };
            let mut origin = Origin::new(MemoryStore::default(), OriginOptions::default());
            let mut mirrored = 0u64;
            for _publisher in 0..2 {
                origin.publish("cam", clock()).unwrap();
                let start = Instant::now();
                for item in items.iter().cloned() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Item::Frame(f) = &item {
                        // Real time: a frame is pushed when its decode time comes.
                        let due = Duration::from_millis(f.dts.as_millis().max(0) as u64);
                        if let Some(wait) = due.checked_sub(start.elapsed()) {
                            std::thread::sleep(wait.min(Duration::from_millis(500)));
                        }
                    }
                    origin.push("cam", item, clock()).unwrap();
                    let next = origin.stream("cam").unwrap().next_sequence();
                    if next != mirrored {
                        for seq in mirrored..next {
                            let r = origin
                                .handle(&Request::get(format!("/live/cam/{seq}.ts")), clock());
                            assert_eq!(r.status, 200);
                            put_file(&out.join(format!("{seq}.ts")), &r.body);
                        }
                        mirrored = next;
                        for name in ["media.m3u8", "index.m3u8"] {
                            let r =
                                origin.handle(&Request::get(format!("/live/cam/{name}")), clock());
                            assert_eq!(r.status, 200);
                            put_file(&out.join(name), &r.body);
                        }
                    }
                }
                origin.unpublish("cam", clock()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    // Start the player once two segments are listed (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = fs::read_to_string(out.join("media.m3u8"))
            .map(|t| t.matches("#EXTINF").count())
            .unwrap_or(0);
        if listed >= 2 && out.join("index.m3u8").is_file() {
            break;
        }
        assert!(Instant::now() < deadline, "no live playlist after 30 s");
        assert!(
            !producer.is_finished(),
            "the publisher thread stopped early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let result = play_in_browser(dir.path(), "live/cam/index.m3u8", 14);
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("publisher thread panicked");
    let Some(r) = result else {
        return;
    };
    println!("hls.js: {}", r.raw);
    let playlist = fs::read_to_string(out.join("media.m3u8")).unwrap();
    assert!(r.ok, "hls.js did not play: {}\n{playlist}", r.raw);
    assert!(r.fatal_errors.is_empty(), "{}", r.raw);
    // More than the 12 s the first publisher made: the playhead crossed the join.
    assert!(r.advanced_s >= 12.2, "{}", r.raw);
    assert_eq!((r.video_width, r.video_height), (320, 240), "{}", r.raw);
    assert!(
        playlist.contains("#EXT-X-DISCONTINUITY") || playlist.contains("DISCONTINUITY-SEQUENCE"),
        "{playlist}"
    );
}

/// A minimal, bounded HTTP/1.1 server for tests: serves `origin` on 127.0.0.1 (one
/// connection at a time, `Connection: close`) until `stop` is set or 60 s pass.
fn serve(
    origin: std::sync::Arc<std::sync::Mutex<Origin<MemoryStore>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (u16, std::thread::JoinHandle<u32>) {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut served = 0u32;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && served < 1000 {
            let (mut conn, _) = match listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(e) => panic!("accept: {e}"),
            };
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head);
            let mut words = text.split_whitespace();
            let (Some(method), Some(target)) = (words.next(), words.next()) else {
                continue;
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let req = Request::new(Method::parse(method), target);
            let r = origin.lock().unwrap().handle(&req, now);
            let mut out = format!("HTTP/1.1 {} X\r\n", r.status);
            for (k, v) in &r.headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("connection: close\r\n\r\n");
            let _ = conn.write_all(out.as_bytes());
            let _ = conn.write_all(&r.body);
            served += 1;
        }
        served
    });
    (port, handle)
}

/// ffmpeg, an independent HLS client, plays the ended live stream over real HTTP
/// from `Origin::handle` behind a std::net server: multivariant playlist, media
/// playlist with EXT-X-ENDLIST, every segment, no decode error.
#[test]
fn ffmpeg_plays_the_stream_over_http() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let mut origin = Origin::new(MemoryStore::default(), full());
    let end = publish_flv(&mut origin, "cam", T0, |_, _| {});
    origin.unpublish("cam", end).unwrap();
    origin.tick(end + 30_000);
    assert!(origin.stream("cam").unwrap().is_ended());
    let origin = Arc::new(Mutex::new(origin));
    let stop = Arc::new(AtomicBool::new(false));
    let (port, server) = serve(origin.clone(), stop.clone());
    let out = std::process::Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-rw_timeout", "10000000", "-i"])
        .arg(format!("http://127.0.0.1:{port}/live/cam/index.m3u8"))
        .args(["-map", "0", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let served = server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Every video frame of the 12 s at 25 fps came through (stream 0 is video).
    let video_frames = stdout.lines().filter(|l| l.starts_with("0,")).count();
    assert_eq!(video_frames, 300, "{stdout}");
    // Two playlists and six segments at least.
    assert!(served >= 8, "{served} requests");
}
