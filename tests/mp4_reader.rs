//! Progressive MP4 reader against files written by FFmpeg, checked packet by packet
//! against ffprobe; hostile inputs give typed errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use strom::container::mp4::{Mp4Demuxer, Mp4Options};
use strom::media::{CodecConfig, Event, Frame, Item, MediaKind, TrackInfo};
use strom::{Error, ErrorKind};

/// A fresh directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strom-mp4-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ffmpeg(args: &[&str], out: &Path) {
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success(), "ffmpeg {args:?} failed");
}

const VIDEO_25: &[&str] = &["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"];
const VIDEO_2997: &[&str] = &["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30000/1001"];
const TONE: &[&str] = &["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"];
const TONE2: &[&str] = &["-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100"];
const X264: &[&str] = &[
    "-c:v",
    "libx264",
    "-pix_fmt",
    "yuv420p",
    "-profile:v",
    "high",
    "-bf",
    "3",
    "-g",
    "25",
    "-threads",
    "1",
];
const AAC: &[&str] = &["-c:a", "aac", "-b:a", "64k"];

/// Builds `out` from argument groups.
fn make(out: &Path, groups: &[&[&str]]) {
    let args: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    ffmpeg(&args, out);
}

#[derive(Debug, Clone, PartialEq)]
struct Packet {
    pts: i64,
    dts: i64,
    duration: i64,
    size: usize,
    key: bool,
}

#[derive(Debug, Clone)]
struct Stream {
    id: u32,
    kind: String,
    time_base: String,
    width: u32,
    height: u32,
    language: Option<String>,
    packets: usize,
}

fn ffprobe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `key=value` pairs of one `-of compact` line.
fn fields(line: &str) -> BTreeMap<String, String> {
    line.split('|')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn probe_streams(path: &Path) -> Vec<Stream> {
    let text = ffprobe(
        path,
        &[
            "-count_packets",
            "-show_entries",
            "stream=index,id,codec_type,time_base,width,height,nb_read_packets:stream_tags=language",
            "-of",
            "compact",
        ],
    );
    text.lines()
        .filter(|l| l.starts_with("stream"))
        .map(|l| {
            let f = fields(l);
            let id = f["id"].trim_start_matches("0x");
            Stream {
                id: u32::from_str_radix(id, 16).unwrap(),
                kind: f["codec_type"].clone(),
                time_base: f["time_base"].clone(),
                width: f.get("width").and_then(|w| w.parse().ok()).unwrap_or(0),
                height: f.get("height").and_then(|w| w.parse().ok()).unwrap_or(0),
                language: f.get("tag:language").cloned(),
                packets: f["nb_read_packets"].parse().unwrap(),
            }
        })
        .collect()
}

/// Packets per stream index, in stream order.
fn probe_packets(path: &Path) -> BTreeMap<usize, Vec<Packet>> {
    let text = ffprobe(
        path,
        &[
            "-show_entries",
            "packet=stream_index,pts,dts,duration,size,flags",
            "-of",
            "compact",
        ],
    );
    let mut out: BTreeMap<usize, Vec<Packet>> = BTreeMap::new();
    for l in text.lines().filter(|l| l.starts_with("packet")) {
        let f = fields(l);
        out.entry(f["stream_index"].parse().unwrap())
            .or_default()
            .push(Packet {
                pts: f["pts"].parse().unwrap(),
                dts: f["dts"].parse().unwrap(),
                duration: f["duration"].parse().unwrap(),
                size: f["size"].parse().unwrap(),
                key: f["flags"].starts_with('K'),
            });
    }
    out
}

/// Drives a demuxer over `file` with `opts`, counting reads and the largest one.
fn drive(file: &Bytes, opts: Mp4Options) -> Result<(Vec<Item>, usize, usize), Error> {
    let mut d = Mp4Demuxer::with_options(file.len() as u64, opts);
    let mut items = Vec::new();
    let (mut reads, mut largest) = (0, 0);
    for _ in 0..10_000_000 {
        while let Some(item) = d.poll_item() {
            items.push(item?);
        }
        let Some(req) = d.poll_read() else {
            assert!(d.is_finished());
            return Ok((items, reads, largest));
        };
        reads += 1;
        largest = largest.max(req.len);
        let start = req.offset as usize;
        d.supply(req.offset, file.slice(start..start + req.len))?;
    }
    panic!("demuxer did not finish");
}

fn load(path: &Path) -> Bytes {
    Bytes::from(std::fs::read(path).unwrap())
}

fn tracks_of(items: &[Item]) -> Vec<TrackInfo> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Event(Event::TrackAdded(t)) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn frames_of(items: &[Item]) -> Vec<&Frame> {
    items.iter().filter_map(Item::as_frame).collect()
}

/// Everything the reader says about `path` equals what ffprobe says.
fn check_against_ffprobe(path: &Path, items: &[Item]) -> Vec<TrackInfo> {
    let streams = probe_streams(path);
    let packets = probe_packets(path);
    let tracks = tracks_of(items);
    let frames = frames_of(items);
    // Events first, EndOfStream last, nothing after it.
    assert!(matches!(
        items.last(),
        Some(Item::Event(Event::EndOfStream))
    ));
    assert_eq!(
        items
            .iter()
            .filter(|i| matches!(i, Item::Event(Event::EndOfStream)))
            .count(),
        1
    );
    assert!(items[..tracks.len()]
        .iter()
        .all(|i| matches!(i, Item::Event(Event::TrackAdded(_)))));
    assert_eq!(tracks.len(), streams.len(), "one track per ffprobe stream");
    for (index, s) in streams.iter().enumerate() {
        let t = tracks
            .iter()
            .find(|t| t.id == s.id)
            .expect("track with the stream's id");
        assert_eq!(
            s.time_base,
            format!("1/{}", t.timescale.get()),
            "track {}",
            t.id
        );
        let kind = match s.kind.as_str() {
            "video" => MediaKind::Video,
            "audio" => MediaKind::Audio,
            k => panic!("unexpected stream kind {k}"),
        };
        assert_eq!(t.kind, kind);
        if kind == MediaKind::Video {
            assert_eq!(t.config.resolution(), Some((s.width, s.height)));
        }
        let lang = s.language.clone().filter(|l| l != "und");
        assert_eq!(t.language, lang, "track {}", t.id);
        let mine: Vec<&&Frame> = frames.iter().filter(|f| f.track == t.id).collect();
        assert_eq!(mine.len(), s.packets, "sample count of track {}", t.id);
        let theirs = &packets[&index];
        assert_eq!(theirs.len(), mine.len());
        let last = mine.len().saturating_sub(1);
        for (n, (f, p)) in mine.iter().zip(theirs).enumerate() {
            assert_eq!(f.dts.scale(), t.timescale);
            assert_eq!(f.pts.scale(), t.timescale);
            let got = Packet {
                pts: f.pts.ticks(),
                dts: f.dts.ticks(),
                duration: f.duration.unwrap().ticks(),
                size: f.data.len(),
                key: f.is_keyframe(),
            };
            if n == last && got.duration != p.duration {
                // The reader reports the `stts` delta; FFmpeg cuts or stretches the last
                // packet to the end of the edit (`segment_duration`).
                let got = Packet {
                    duration: p.duration,
                    ..got
                };
                assert_eq!(&got, p, "track {} last packet", t.id);
            } else {
                assert_eq!(&got, p, "track {} packet {n}", t.id);
            }
        }
        let total: usize = mine.iter().map(|f| f.data.len()).sum();
        assert_eq!(total, theirs.iter().map(|p| p.size).sum::<usize>());
    }
    // Decode order across tracks; ties broken by file position, so never decreasing.
    for w in frames.windows(2) {
        assert!(w[0].dts <= w[1].dts, "{} then {}", w[0].dts, w[1].dts);
    }
    tracks
}

fn codecs(t: &TrackInfo) -> String {
    t.config.codecs_string()
}

#[test]
fn h264_bframes_aac_moov_at_end() {
    let dir = temp_dir("h264-aac");
    let path = dir.join("a.mp4");
    make(&path, &[VIDEO_25, TONE, &["-t", "3"], X264, AAC]);
    let file = load(&path);
    // moov after mdat.
    let moov = file.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = file.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov > mdat);
    let items = Mp4Demuxer::read_all(file.clone()).unwrap();
    let tracks = check_against_ffprobe(&path, &items);
    assert_eq!(codecs(&tracks[0]), "avc1.64000d");
    assert_eq!(codecs(&tracks[1]), "mp4a.40.2");
    assert!(matches!(&tracks[1].config, CodecConfig::Aac(a) if a.sample_rate == 48000));
    let frames = frames_of(&items);
    // B-frames: some pts differ from dts, first dts negative (edit list), first pts 0.
    let video: Vec<&&Frame> = frames.iter().filter(|f| f.track == tracks[0].id).collect();
    assert!(video[0].dts.ticks() < 0);
    assert_eq!(video.iter().map(|f| f.pts.ticks()).min(), Some(0));
    assert!(video.iter().any(|f| f.pts != f.dts));
    // Canonical 4-byte length-prefixed NAL units.
    for f in &video {
        let mut rest = &f.data[..];
        while !rest.is_empty() {
            let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4 + n..];
        }
    }
    // Same result whatever the read size and buffer budget, reading in few large runs
    // by default and in many small ones when asked.
    let (_, default_reads, _) = drive(&file, Mp4Options::default()).unwrap();
    assert!(default_reads <= 8, "{default_reads} reads for a 3 s file");
    let mut small = Mp4Options::default();
    small.read_size = 4096;
    small.max_buffered = 8192;
    let (items2, reads, largest) = drive(&file, small).unwrap();
    assert_eq!(items2, items);
    assert!(reads > default_reads);
    let biggest_sample = frames.iter().map(|f| f.data.len()).max().unwrap();
    assert!(
        largest <= 4096.max(biggest_sample),
        "read of {largest} bytes"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn faststart_ntsc_rate() {
    let dir = temp_dir("faststart");
    let path = dir.join("b.mp4");
    make(
        &path,
        &[
            VIDEO_2997,
            TONE2,
            &["-t", "2"],
            X264,
            AAC,
            &["-movflags", "+faststart"],
        ],
    );
    let file = load(&path);
    let moov = file.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = file.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov < mdat);
    let items = Mp4Demuxer::read_all(file).unwrap();
    let tracks = check_against_ffprobe(&path, &items);
    assert_eq!(tracks[0].timescale.get(), 30000);
    let f = frames_of(&items)[0];
    assert_eq!(f.duration.unwrap().ticks(), 1001);
    assert!(matches!(&tracks[1].config, CodecConfig::Aac(a) if a.sample_rate == 44100));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn audio_only_and_video_only() {
    let dir = temp_dir("single");
    let a = dir.join("audio.mp4");
    make(&a, &[TONE, &["-t", "2"], AAC]);
    let items = Mp4Demuxer::read_all(load(&a)).unwrap();
    let tracks = check_against_ffprobe(&a, &items);
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0].kind, MediaKind::Audio);
    assert!(frames_of(&items).iter().all(|f| f.is_keyframe()));

    let v = dir.join("video.mp4");
    make(&v, &[VIDEO_25, &["-t", "2"], X264]);
    let items = Mp4Demuxer::read_all(load(&v)).unwrap();
    let tracks = check_against_ffprobe(&v, &items);
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0].kind, MediaKind::Video);
    // -g 25: one keyframe per second.
    assert_eq!(
        frames_of(&items).iter().filter(|f| f.is_keyframe()).count(),
        2
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn two_audio_languages() {
    let dir = temp_dir("langs");
    let path = dir.join("l.mp4");
    make(
        &path,
        &[
            VIDEO_25,
            TONE,
            TONE2,
            &["-t", "2", "-map", "0:v", "-map", "1:a", "-map", "2:a"],
            X264,
            AAC,
            &[
                "-metadata:s:a:0",
                "language=eng",
                "-metadata:s:a:1",
                "language=fra",
            ],
            &["-metadata:s:a:1", "title=Commentary"],
        ],
    );
    let items = Mp4Demuxer::read_all(load(&path)).unwrap();
    let tracks = check_against_ffprobe(&path, &items);
    assert_eq!(tracks.len(), 3);
    assert_eq!(tracks[0].language, None);
    assert_eq!(tracks[1].language.as_deref(), Some("eng"));
    assert_eq!(tracks[2].language.as_deref(), Some("fra"));
    // Names: the udta/name box (FFmpeg writes the stream title there), else the hdlr name.
    assert_eq!(tracks[1].name.as_deref(), Some("SoundHandler"));
    assert_eq!(tracks[2].name.as_deref(), Some("Commentary"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn hevc_and_opus() {
    let dir = temp_dir("hevc");
    let path = dir.join("h.mp4");
    make(
        &path,
        &[
            VIDEO_25,
            TONE,
            &[
                "-t", "2", "-c:v", "libx265", "-pix_fmt", "yuv420p", "-tag:v", "hvc1",
            ],
            &[
                "-x265-params",
                "log-level=error:pools=1:frame-threads=1",
                "-c:a",
                "libopus",
            ],
        ],
    );
    let items = Mp4Demuxer::read_all(load(&path)).unwrap();
    let tracks = check_against_ffprobe(&path, &items);
    assert!(
        codecs(&tracks[0]).starts_with("hvc1.1."),
        "{}",
        codecs(&tracks[0])
    );
    assert!(matches!(&tracks[1].config, CodecConfig::Opus(o) if o.channels == 1));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn empty_edit_offsets_like_ffmpeg() {
    // Audio starting 0.5 s late: FFmpeg writes an empty edit before the media edit.
    let dir = temp_dir("itsoffset");
    let path = dir.join("e.mp4");
    make(
        &path,
        &[
            VIDEO_25,
            &["-itsoffset", "0.5"],
            TONE,
            &["-t", "2"],
            X264,
            AAC,
        ],
    );
    let items = Mp4Demuxer::read_all(load(&path)).unwrap();
    let tracks = check_against_ffprobe(&path, &items);
    let first_audio = frames_of(&items)
        .into_iter()
        .find(|f| f.track == tracks[1].id)
        .unwrap();
    assert!(first_audio.dts.as_millis() >= 400, "{}", first_audio.dts);
    let _ = std::fs::remove_dir_all(dir);
}

/// Ten minutes of 1080p25 H.264 + AAC (built by looping a 10 s encode without
/// re-encoding): every packet as ffprobe sees it, in bounded reads. Slow to generate;
/// run with `cargo test --release --test mp4_reader -- --ignored`.
#[test]
#[ignore]
fn ten_minutes_1080p() {
    let dir = temp_dir("long");
    let short = dir.join("short.mp4");
    make(
        &short,
        &[
            &["-f", "lavfi", "-i", "testsrc=size=1920x1080:rate=25"],
            TONE,
            &[
                "-t",
                "10",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-b:v",
                "400k",
            ],
            &["-pix_fmt", "yuv420p", "-g", "50", "-threads", "1"],
            AAC,
        ],
    );
    let long = dir.join("long.mp4");
    let short_path = short.to_str().unwrap();
    make(
        &long,
        &[&["-stream_loop", "59", "-i", short_path, "-c", "copy"]],
    );
    let file = load(&long);
    let t = std::time::Instant::now();
    let (items, reads, largest) = drive(&file, Mp4Options::default()).unwrap();
    let took = t.elapsed();
    let frames = frames_of(&items);
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    eprintln!(
        "{} frames, {bytes} payload bytes of {} in {reads} reads (largest {largest}) in {took:?}",
        frames.len(),
        file.len()
    );
    assert!(frames.len() > 40_000);
    assert!(largest <= 1 << 20);
    check_against_ffprobe(&long, &items);
    let _ = std::fs::remove_dir_all(dir);
}

/// Index of the first `kind` box's header in `file`.
fn find_box(file: &[u8], kind: &[u8; 4]) -> usize {
    file.windows(4).position(|w| w == kind).unwrap() - 4
}

fn be32_at(file: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(file[at..at + 4].try_into().unwrap())
}

#[test]
fn hostile_inputs_give_typed_errors() {
    let dir = temp_dir("hostile");
    let path = dir.join("h.mp4");
    make(&path, &[VIDEO_25, TONE, &["-t", "1"], X264, AAC]);
    let file = std::fs::read(&path).unwrap();

    // Truncated at many cut points: the moov is at the end, so every cut loses it.
    let step = (file.len() / 97).max(1);
    for cut in (0..file.len())
        .step_by(step)
        .chain([file.len() - 1, file.len() - 9])
    {
        let e = Mp4Demuxer::read_all(Bytes::copy_from_slice(&file[..cut])).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Malformed), "cut {cut}: {e}");
    }
    // Faststart file truncated inside mdat: the sample table points past the end.
    let fs = dir.join("fs.mp4");
    make(
        &fs,
        &[
            VIDEO_25,
            TONE,
            &["-t", "1"],
            X264,
            AAC,
            &["-movflags", "+faststart"],
        ],
    );
    let fs = std::fs::read(&fs).unwrap();
    let mdat = find_box(&fs, b"mdat");
    for cut in [mdat + 8, mdat + 1000, fs.len() - 1] {
        let e = Mp4Demuxer::read_all(Bytes::copy_from_slice(&fs[..cut])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed, "cut {cut}: {e}");
        assert!(e.to_string().contains("past the end of the file"), "{e}");
    }

    // stco offset past EOF.
    let mut bad = file.clone();
    let stco = find_box(&bad, b"stco");
    bad[stco + 16..stco + 20].copy_from_slice(&0xfff0_0000u32.to_be_bytes());
    let e = Mp4Demuxer::read_all(Bytes::from(bad)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Malformed);
    assert!(e.to_string().contains("track 1"), "{e}");
    assert!(e.to_string().contains("sample 1"), "{e}");
    assert_eq!(e.offset(), Some(0xfff0_0000));

    // A sample count far beyond the limit: stts claims 2^32 - 1 samples in one run.
    let mut bad = file.clone();
    let stts = find_box(&bad, b"stts");
    bad[stts + 16..stts + 20].copy_from_slice(&u32::MAX.to_be_bytes());
    let e = Mp4Demuxer::read_all(Bytes::from(bad)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    // stsz claiming 2^32 - 1 sizes in a few bytes.
    let mut bad = file.clone();
    let stsz = find_box(&bad, b"stsz");
    assert_eq!(be32_at(&bad, stsz + 12), 0, "per-sample sizes");
    bad[stsz + 16..stsz + 20].copy_from_slice(&u32::MAX.to_be_bytes());
    let e = Mp4Demuxer::read_all(Bytes::from(bad)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");

    // A top-level box whose size is smaller than its header.
    let mut bad = file.clone();
    bad[0..4].copy_from_slice(&4u32.to_be_bytes());
    let e = Mp4Demuxer::read_all(Bytes::from(bad)).unwrap_err();
    assert_eq!((e.kind(), e.offset()), (ErrorKind::Malformed, Some(0)));
    assert!(e.to_string().contains("smaller than its header"), "{e}");
    // ... and a child box of the moov.
    let mut bad = file.clone();
    let mvhd = find_box(&bad, b"mvhd");
    bad[mvhd..mvhd + 4].copy_from_slice(&3u32.to_be_bytes());
    let e = Mp4Demuxer::read_all(Bytes::from(bad)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Malformed, "{e}");
    // Offsets in errors are absolute file offsets.
    assert_eq!(e.offset(), Some(mvhd as u64), "{e}");

    // Zero timescale.
    let mut bad = file.clone();
    let mdhd = find_box(&bad, b"mdhd");
    let version = bad[mdhd + 8];
    let at = mdhd + 12 + if version == 1 { 16 } else { 8 };
    bad[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
    let e = Mp4Demuxer::read_all(Bytes::from(bad)).unwrap_err();
    assert!(e.to_string().contains("zero timescale"), "{e}");

    // Random byte flips inside the moov never panic.
    let moov = find_box(&file, b"moov");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        let mut bad = file.clone();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = moov + (seed as usize) % (file.len() - moov);
            bad[at] = (seed >> 32) as u8;
        }
        let _ = Mp4Demuxer::read_all(Bytes::from(bad));
    }
    let _ = std::fs::remove_dir_all(dir);
}
