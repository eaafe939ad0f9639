//! FLV round trip: FFmpeg-made files are demuxed in random-sized chunks, the items are
//! muxed again, and the result must hold the same tags (type, timestamp, body), in order.

use std::path::PathBuf;
use std::process::Command;

use bytes::{Bytes, BytesMut};
use strom::ingest::flv::{FlvDemuxer, FlvMuxer, TagReader, TagType, AUDIO_TRACK, VIDEO_TRACK};
use strom::media::{CodecConfig, Event, Item};
use strom::pipeline::Stage;

/// Generates an FLV with FFmpeg into a fresh temp dir and returns its bytes.
fn ffmpeg_flv(name: &str, args: &[&str]) -> Bytes {
    // Tests run in parallel and several make the same file: one directory per call.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "strom-flv-roundtrip-{}-{n}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join(format!("{name}.flv"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&path);
    let status = cmd
        .status()
        .expect("ffmpeg must be installed to run the FLV round-trip tests");
    assert!(status.success(), "ffmpeg failed for {name}");
    let data = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    Bytes::from(data)
}

const VIDEO_IN: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "testsrc=size=320x240:rate=25:duration=3",
];
const AUDIO_IN: &[&str] = &["-f", "lavfi", "-i", "sine=duration=3"];
const VIDEO_ENC: &[&str] = &[
    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-threads", "1", "-bf", "3", "-g", "25",
];
const AUDIO_ENC: &[&str] = &["-c:a", "aac"];

fn av_file() -> Bytes {
    let args = [VIDEO_IN, AUDIO_IN, VIDEO_ENC, AUDIO_ENC, &["-f", "flv"]].concat();
    ffmpeg_flv("av", &args)
}

/// Small deterministic PRNG (xorshift64*), so failures are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A chunk length: often tiny (splitting headers), sometimes large.
    fn chunk_len(&mut self) -> usize {
        match self.next() % 4 {
            0 => 1 + (self.next() % 16) as usize,
            1 => 1 + (self.next() % 300) as usize,
            _ => 1 + (self.next() % 20_000) as usize,
        }
    }
}

/// Demuxes `file` in chunks from `sizes`, driving push / poll-until-None / finish.
fn demux_chunked(file: &Bytes, mut sizes: impl FnMut() -> usize) -> (Vec<Item>, FlvDemuxer) {
    let mut demux = FlvDemuxer::new();
    let mut items = Vec::new();
    let mut pos = 0;
    while pos < file.len() {
        let end = (pos + sizes()).min(file.len());
        demux.push(file.slice(pos..end)).unwrap();
        while let Some(item) = demux.poll() {
            items.push(item.unwrap());
        }
        pos = end;
    }
    demux.finish().unwrap();
    while let Some(item) = demux.poll() {
        items.push(item.unwrap());
    }
    (items, demux)
}

fn mux(items: &[Item]) -> Bytes {
    let mut mux = FlvMuxer::new();
    let mut out = BytesMut::new();
    for item in items {
        mux.write(item, &mut out).unwrap();
    }
    out.freeze()
}

type TagSummary = (TagType, u32, Bytes);

fn tags(file: &Bytes) -> Vec<TagSummary> {
    TagReader::new(file.clone())
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            assert_eq!(t.previous_tag_size as usize, 11 + t.body.len());
            (t.tag_type, t.timestamp, t.body)
        })
        .collect()
}

/// Demux in random chunks, mux, compare the tag lists and the whole files.
fn round_trip(file: &Bytes, seed: u64) -> Vec<Item> {
    let mut rng = Rng(seed);
    let (items, _) = demux_chunked(file, || rng.chunk_len());
    let out = mux(&items);
    let (want, got) = (tags(file), tags(&out));
    assert_eq!(want.len(), got.len(), "tag count");
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w, g, "tag {i} differs");
    }
    // Same header flags and tags: the files are identical.
    assert_eq!(
        TagReader::new(out.clone()).unwrap().header(),
        TagReader::new(file.clone()).unwrap().header()
    );
    assert_eq!(out, *file);
    items
}

fn frames(items: &[Item], track: u32) -> Vec<&strom::media::Frame> {
    items
        .iter()
        .filter_map(Item::as_frame)
        .filter(|f| f.track == track)
        .collect()
}

#[test]
fn h264_bframes_and_aac_round_trip() {
    let file = av_file();
    let items = round_trip(&file, 0x5eed_0001);

    // What the demuxer saw, checked against what FFmpeg was asked to write.
    let added: Vec<&CodecConfig> = items
        .iter()
        .filter_map(|i| match i {
            Item::Event(Event::TrackAdded(t)) => Some(&t.config),
            _ => None,
        })
        .collect();
    assert_eq!(added.len(), 2);
    match added[0] {
        CodecConfig::H264(c) => {
            assert_eq!(
                (c.width, c.height, c.profile_idc, c.nal_length_size),
                (320, 240, 100, 4)
            );
        }
        other => panic!("first track should be H.264, got {other:?}"),
    }
    match added[1] {
        CodecConfig::Aac(c) => assert_eq!((c.object_type, c.sample_rate), (2, 44100)),
        other => panic!("second track should be AAC, got {other:?}"),
    }
    let video = frames(&items, VIDEO_TRACK);
    assert_eq!(video.len(), 75);
    assert!(video[0].is_keyframe());
    assert_eq!(video.iter().filter(|f| f.is_keyframe()).count(), 3);
    assert!(
        video.iter().any(|f| f.pts > f.dts),
        "B-frames give composition offsets"
    );
    assert!(video.windows(2).all(|w| w[0].dts <= w[1].dts));
    for f in &video {
        // Canonical form: 4-byte length prefixes that cover the payload exactly.
        let units: Vec<_> = strom::bitstream::nal::iter_length_prefixed(&f.data, 4).collect();
        assert!(!units.is_empty() && units.iter().all(|u| u.is_ok()));
    }
    let audio = frames(&items, AUDIO_TRACK);
    assert!(
        (125..=135).contains(&audio.len()),
        "{} AAC frames",
        audio.len()
    );
    assert!(audio.iter().all(|f| f.is_keyframe() && f.pts == f.dts));
    assert!(audio.windows(2).all(|w| w[0].dts < w[1].dts));
    assert!(!items
        .iter()
        .any(|i| matches!(i, Item::Event(Event::Discontinuity { .. }))));
    assert!(items
        .iter()
        .any(|i| matches!(i, Item::Event(Event::Data { name, .. }) if name == "onMetaData")));
    assert_eq!(items.last(), Some(&Item::Event(Event::EndOfStream)));
}

#[test]
fn video_only_round_trip() {
    let args = [VIDEO_IN, VIDEO_ENC, &["-an", "-f", "flv"]].concat();
    let file = ffmpeg_flv("video", &args);
    let items = round_trip(&file, 0x5eed_0002);
    assert_eq!(frames(&items, VIDEO_TRACK).len(), 75);
    assert!(frames(&items, AUDIO_TRACK).is_empty());
    let h = TagReader::new(file).unwrap().header().copied().unwrap();
    assert!(h.has_video() && !h.has_audio());
}

#[test]
fn audio_only_round_trip() {
    let args = [AUDIO_IN, AUDIO_ENC, &["-vn", "-f", "flv"]].concat();
    let file = ffmpeg_flv("audio", &args);
    let items = round_trip(&file, 0x5eed_0003);
    assert!(frames(&items, VIDEO_TRACK).is_empty());
    assert!(!frames(&items, AUDIO_TRACK).is_empty());
    let h = TagReader::new(file).unwrap().header().copied().unwrap();
    assert!(h.has_audio() && !h.has_video());
}

#[test]
fn chunking_does_not_change_the_output() {
    let file = av_file();
    let (whole, demux) = demux_chunked(&file, || usize::MAX);
    let (bytewise, _) = demux_chunked(&file, || 1);
    assert_eq!(whole, bytewise);
    let mut rng = Rng(42);
    for _ in 0..3 {
        let (random, _) = demux_chunked(&file, || rng.chunk_len());
        assert_eq!(whole, random);
    }
    let meta = demux.metadata().expect("onMetaData");
    assert_eq!(
        (meta.width(), meta.height(), meta.frame_rate()),
        (Some(320), Some(240), Some(25.0))
    );
    assert_eq!(demux.position(), file.len() as u64);
}

#[test]
fn every_truncation_is_a_typed_error_at_finish() {
    let args = [VIDEO_IN, &["-t", "0.4"], VIDEO_ENC, &["-an", "-f", "flv"]].concat();
    let file = ffmpeg_flv("short", &args);
    // Tag boundaries: the clean cut points.
    let mut ends = vec![13usize];
    ends.extend(
        TagReader::new(file.clone())
            .unwrap()
            .map(|t| t.unwrap())
            .map(|t| t.offset as usize + 15 + t.body.len()),
    );
    let (all, _) = demux_chunked(&file, || usize::MAX);
    for n in 0..file.len() {
        let mut demux = FlvDemuxer::new();
        demux.push(file.slice(..n)).unwrap();
        let mut items = Vec::new();
        while let Some(item) = demux.poll() {
            items.push(item.expect("a prefix of a valid file only errors at finish"));
        }
        let res = demux.finish();
        let clean = n == 0 || ends.contains(&n);
        match res {
            Ok(()) => assert!(clean, "prefix {n}: truncation not reported"),
            Err(e) => {
                assert!(!clean, "prefix {n}: spurious error {e}");
                assert_eq!(e.kind(), strom::ErrorKind::Malformed);
                assert!(e.offset().unwrap() <= n as u64);
            }
        }
        while let Some(item) = demux.poll() {
            items.push(item.unwrap());
        }
        // What came out is a prefix of the full output, then the end of stream.
        assert_eq!(items.last(), Some(&Item::Event(Event::EndOfStream)));
        let body = &items[..items.len() - 1];
        assert_eq!(body, &all[..body.len()], "prefix {n}");
    }
}

/// Demux throughput on a synthetic 5 Mbit/s-like stream (20 kB video tags at 30 fps,
/// 370-byte AAC tags at 43 per second). Run with
/// `cargo test --release --test flv_roundtrip -- --ignored --nocapture`.
#[test]
#[ignore]
fn demux_throughput() {
    use strom::media::{Frame, FrameFlags};
    use strom::time::{Timescale, Timestamp};

    // A real avcC and ASC from the FFmpeg file, synthetic payloads.
    let (items, _) = demux_chunked(&av_file(), || usize::MAX);
    let tracks: Vec<Item> = items
        .iter()
        .filter(|i| matches!(i, Item::Event(Event::TrackAdded(_))))
        .cloned()
        .collect();
    let video = Bytes::from([&20_000u32.to_be_bytes()[..], &[0x41; 20_000]].concat());
    let audio = Bytes::from(vec![0x21; 370]);
    let mut mux = FlvMuxer::new();
    let mut file = BytesMut::new();
    for t in &tracks {
        mux.write(t, &mut file).unwrap();
    }
    let (mut v, mut a) = (0i64, 0i64);
    while file.len() < 256 << 20 {
        let item = if v * 1000 / 30 <= a * 1024 * 1000 / 44_100 {
            let t = Timestamp::from_millis(v * 1000 / 30);
            v += 1;
            Frame::new(VIDEO_TRACK, t, t, video.clone()).with_flags(if v % 60 == 1 {
                FrameFlags::KEYFRAME
            } else {
                FrameFlags::NONE
            })
        } else {
            let t = Timestamp::new(a * 1024 * 1000 / 44_100, Timescale::MILLIS);
            a += 1;
            Frame::new(AUDIO_TRACK, t, t, audio.clone()).with_flags(FrameFlags::KEYFRAME)
        };
        mux.write(&Item::Frame(item), &mut file).unwrap();
    }
    let file = file.freeze();
    for (label, chunk) in [
        ("whole buffer", usize::MAX),
        ("64 KiB chunks", 64 << 10),
        ("4 KiB chunks", 4 << 10),
    ] {
        let mut best = f64::MAX;
        let mut frames = 0;
        for _ in 0..3 {
            // Items are dropped as they come, as in a pipeline.
            let start = std::time::Instant::now();
            let mut demux = FlvDemuxer::new();
            let mut n = 0;
            for c in file.chunks(chunk) {
                demux.push(file.slice_ref(c)).unwrap();
                while let Some(item) = demux.poll() {
                    item.unwrap();
                    n += 1;
                }
            }
            demux.finish().unwrap();
            n += std::iter::from_fn(|| demux.poll()).count();
            best = best.min(start.elapsed().as_secs_f64());
            frames = n;
        }
        eprintln!(
            "FlvDemuxer, {label}: {:.2} GB/s ({} MiB, {frames} items, {:.0} ns/item)",
            file.len() as f64 / best / 1e9,
            file.len() >> 20,
            best * 1e9 / frames as f64
        );
    }
}
