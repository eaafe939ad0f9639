//! 48 hours of DVR in constant memory: an origin on a `DiskStore` fed 86,400 two-second
//! segments (one tiny H.264 IDR frame each) on a simulated clock, far faster than real
//! time. Reports the process RSS at 1 h and 48 h of content and how long the DVR
//! playlist, start-over playlists and the DVR MPD take to write at 48 h; checks what
//! they list.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TempDir;
use strom::media::{CodecConfig, Event, Frame, FrameFlags, H264Config, TrackInfo};
use strom::origin::{
    DiskStore, DiskStoreOptions, FirstSegment, Origin, OriginOptions, Request, SegmentStore,
    Series, SyncPolicy,
};
use strom::time::{Timescale, Timestamp};

/// x264 High@3.1 1280x720 25 fps SPS and its PPS.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x6a, 0x02, 0x02, 0x02, 0x80,
    0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x19, 0x07, 0x8c, 0x18, 0xcb,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

const BASE: i64 = 1_700_000_000_000;
const HOUR_SEGMENTS: i64 = 1800;
const SEGMENTS: i64 = 48 * HOUR_SEGMENTS;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The fastest of `n` runs of `f`, and its last result.
fn fastest<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..n {
        let t0 = Instant::now();
        let v = f();
        best = best.min(t0.elapsed());
        out = Some(v);
    }
    (best, out.expect("n > 0"))
}

fn get(o: &Origin<DiskStore>, path: &str, now: i64) -> String {
    let r = o.handle(&Request::get(path), now);
    assert_eq!(r.status, 200, "GET {path}");
    String::from_utf8(r.body.to_vec()).expect("text")
}

fn media_sequence(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MEDIA-SEQUENCE:\n{}", &text[..text.len().min(400)]))
}

fn segment_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| l.ends_with(".ts") || l.ends_with(".m4s"))
        .count()
}

#[test]
fn forty_eight_hours_of_dvr_in_constant_memory() {
    let dir = TempDir::new("dvr-48h");
    let mut sopts = DiskStoreOptions::default();
    // No fsync: 86,400 segments in a test run; the order of writes is the same.
    sopts.sync = SyncPolicy::Never;
    let store = DiskStore::open(dir.path(), sopts).expect("open the store");
    let mut opts = OriginOptions::default();
    opts.live.first_segment = FirstSegment::Full;
    opts.dvr_window_ms = 48 * 3600 * 1000;
    opts.keep_recordings = true;
    let mut o = Origin::new(store, opts);
    o.publish("cam", BASE).unwrap();
    let h264 = H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
        .expect("parameter sets");
    let track = TrackInfo::new(1, Timescale::MPEG, CodecConfig::H264(h264));
    o.push("cam", Event::TrackAdded(track).into(), BASE)
        .unwrap();
    // A tiny IDR slice (length-prefixed), one every 2 s: each cuts a segment.
    let idr = Bytes::from_static(&[0, 0, 0, 4, 0x65, 0x88, 0x84, 0x00]);
    let t0 = Instant::now();
    let mut rss_1h = 0;
    let mut rss_start = 0;
    for i in 0..=SEGMENTS {
        let t = Timestamp::new(i * 180_000, Timescale::MPEG);
        let now = BASE + i * 2000;
        let f = Frame::new(1, t, t, idr.clone()).with_flags(FrameFlags::KEYFRAME);
        o.push("cam", f.into(), now).unwrap();
        if i == 60 {
            rss_start = rss_kib();
        }
        if i == HOUR_SEGMENTS {
            rss_1h = rss_kib();
            let text = get(&o, "/live/cam/dvr.m3u8", now);
            assert_eq!(segment_lines(&text), HOUR_SEGMENTS as usize);
        }
        if i % 600 == 0 {
            o.tick(now);
        }
    }
    let fed = t0.elapsed();
    let rss_48h = rss_kib();
    let now = BASE + SEGMENTS * 2000;
    println!(
        "fed {SEGMENTS} segments (48 h of content) in {:.1} s; RSS {rss_start} KiB after 2 min, {rss_1h} KiB at 1 h, {rss_48h} KiB at 48 h",
        fed.as_secs_f64()
    );
    assert!(
        rss_48h < rss_1h + 8 * 1024,
        "RSS grew from {rss_1h} KiB at 1 h to {rss_48h} KiB at 48 h"
    );

    // The index alone: every record of the TS series.
    let (walk_t, walked) = fastest(5, || {
        let mut n = 0u64;
        o.store()
            .records("cam", Series::Ts, 0, &mut |_| {
                n += 1;
                true
            })
            .expect("records");
        n
    });
    assert_eq!(walked, SEGMENTS as u64);
    // The DVR playlist: all 48 hours, from the index.
    let (dvr_t, dvr) = fastest(5, || get(&o, "/live/cam/dvr.m3u8", now));
    assert_eq!(segment_lines(&dvr), SEGMENTS as usize);
    assert_eq!(media_sequence(&dvr), 0);
    assert!(dvr.ends_with(&format!("{}.ts\n", SEGMENTS - 1)));
    // Start-over 24 h back (absolute and relative): from segment 43,200 to the edge,
    // EVENT while live.
    let start = (BASE + 24 * 3600 * 1000) / 1000;
    let (so_t, so) = fastest(5, || {
        get(&o, &format!("/live/cam/media.m3u8?start={start}"), now)
    });
    assert_eq!(media_sequence(&so), 24 * HOUR_SEGMENTS as u64);
    assert!(so.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
    assert_eq!(segment_lines(&so), 24 * HOUR_SEGMENTS as usize);
    let back = get(&o, "/live/cam/media.m3u8?offset=-3600", now);
    // One hour before the end of segment 86,399 (at now): segment 84,600 starts then.
    assert_eq!(media_sequence(&back), (SEGMENTS - HOUR_SEGMENTS) as u64);
    let mv = get(&o, "/live/cam/index.m3u8?offset=-3600", now);
    assert!(
        mv.contains(&format!("media.m3u8?start={}", now / 1000 - 3600)),
        "{mv}"
    );
    // CMAF: the rendition's DVR playlist and the DVR MPD.
    let (cmaf_t, cmaf) = fastest(5, || get(&o, "/live/cam/v1/dvr.m3u8", now));
    assert_eq!(segment_lines(&cmaf), SEGMENTS as usize);
    let (mpd_t, mpd) = fastest(5, || get(&o, "/live/cam/manifest.mpd", now));
    assert!(mpd.contains("timeShiftBufferDepth=\"PT48H\""), "{mpd}");
    assert!(mpd.contains("startNumber=\"0\""), "{mpd}");
    println!(
        "at 48 h: index walk of {walked} records in {:.2} ms; DVR playlist {} KiB in {:.2} ms; start-over (24 h) in {:.2} ms; fMP4 DVR playlist in {:.2} ms; DVR MPD {} bytes in {:.2} ms",
        walk_t.as_secs_f64() * 1e3,
        dvr.len() / 1024,
        dvr_t.as_secs_f64() * 1e3,
        so_t.as_secs_f64() * 1e3,
        cmaf_t.as_secs_f64() * 1e3,
        mpd.len(),
        mpd_t.as_secs_f64() * 1e3
    );
    // Generous bounds for a loaded 2-core CI machine; the figures above are the report.
    assert!(
        dvr_t < Duration::from_millis(100),
        "DVR playlist took {dvr_t:?}"
    );
    assert!(mpd_t < Duration::from_millis(100), "DVR MPD took {mpd_t:?}");
}
