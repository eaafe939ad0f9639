//! End-to-end checks of [`strom::container::ts::TsMuxer`] against an independent
//! demuxer and decoder (ffmpeg / ffprobe), and a throughput measurement.
//!
//! The source is an H.264 High (B-frames, GOP 25, `-threads 1`) + AAC MP4 made by
//! ffmpeg. Frames are taken straight from the MP4 samples (ffprobe gives each
//! packet's file position and size): 4-byte length-prefixed NAL units and raw AAC,
//! exactly the crate's canonical form, with access unit delimiters removed so the
//! muxer has to insert AUD, SPS and PPS as it does for FLV input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strom::bitstream::{aac, nal};
use strom::container::ts::{TsMuxer, TsMuxerOptions};
use strom::media::{AacConfig, CodecConfig, Event, Frame, FrameFlags, H264Config, Item, TrackInfo};
use strom::package::{Segment, Segmenter, SegmenterOptions};
use strom::pipeline::Stage;
use strom::time::{Timescale, Timestamp};

const VIDEO: u32 = 1;
const AUDIO: u32 = 2;
const VIDEO_PID: u16 = 0x100;
const OFFSET_90K: i64 = 126_000;

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!("strom-ts-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a command; returns (stdout, stderr); panics with stderr when it fails.
fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("ffmpeg/ffprobe must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed: {stderr}");
    (stdout, stderr)
}

/// One ffprobe packet line in `compact=p=0` form, as key -> value.
fn fields(line: &str) -> std::collections::HashMap<&str, &str> {
    line.split('|')
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

fn probe_packets(file: &Path, stream: &str, entries: &str) -> Vec<String> {
    let (out, _) = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args([
            "-show_entries",
            &format!("packet={entries}"),
            "-of",
            "compact=p=0",
        ])
        .arg(file));
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn time_base(file: &Path, stream: &str) -> Timescale {
    let (out, _) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "stream=time_base",
            "-of",
            "csv=p=0",
        ])
        .arg(file));
    let (num, den) = out.trim().split_once('/').unwrap();
    assert_eq!(num, "1");
    Timescale::new(den.parse().unwrap()).unwrap()
}

struct Source {
    dir: TempDir,
    mp4: PathBuf,
    tracks: Vec<TrackInfo>,
    /// Both tracks, interleaved in decode order.
    frames: Vec<Frame>,
    video_frames: usize,
    audio_frames: usize,
}

/// 3 s of 320x240 testsrc at 25 fps (H.264 High, B-frames, GOP 25) + 48 kHz stereo AAC.
fn make_source(tag: &str) -> Source {
    let dir = TempDir::new(tag);
    let mp4 = dir.path("src.mp4");
    run(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "3",
        ])
        .args([
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
            "-bf",
            "3",
        ])
        .args([
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-threads",
            "1",
        ])
        .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2"])
        .arg(&mp4));
    // Parameter sets, from the first access unit in Annex B.
    let first = dir.path("first.h264");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&mp4)
        .args([
            "-map",
            "0:v",
            "-c",
            "copy",
            "-bsf:v",
            "h264_mp4toannexb",
            "-frames:v",
            "1",
            "-f",
            "h264",
        ])
        .arg(&first));
    let annexb = std::fs::read(&first).unwrap();
    let find = |ty: u8| {
        nal::iter_annexb(&annexb)
            .find(|u| u.first().map(|b| b & 0x1f) == Some(ty))
            .map(Bytes::copy_from_slice)
            .expect("parameter set in first access unit")
    };
    let h264 = H264Config::from_parameter_sets(find(7), find(8)).unwrap();
    let asc = aac::build_asc(2, 3, 2); // AAC-LC, 48 kHz, stereo
    let vts = time_base(&mp4, "v");
    let ats = time_base(&mp4, "a");
    let tracks = vec![
        TrackInfo::new(VIDEO, vts, CodecConfig::H264(h264)),
        TrackInfo::new(
            AUDIO,
            ats,
            CodecConfig::Aac(AacConfig::from_asc(asc).unwrap()),
        ),
    ];

    let file = Bytes::from(std::fs::read(&mp4).unwrap());
    let mut frames = Vec::new();
    for (stream, track, ts) in [("v", VIDEO, vts), ("a", AUDIO, ats)] {
        for line in probe_packets(&mp4, stream, "pts,dts,pos,size,flags") {
            let f = fields(&line);
            let pos: usize = f["pos"].parse().unwrap();
            let size: usize = f["size"].parse().unwrap();
            let mut data = file.slice(pos..pos + size);
            if track == VIDEO {
                // Drop access unit delimiters: the muxer inserts its own.
                let mut v = Vec::with_capacity(size);
                for u in nal::iter_length_prefixed(&data, 4) {
                    let u = u.unwrap();
                    if u[0] & 0x1f != 9 {
                        v.extend_from_slice(&(u.len() as u32).to_be_bytes());
                        v.extend_from_slice(u);
                    }
                }
                data = Bytes::from(v);
            }
            let dts = Timestamp::new(f["dts"].parse().unwrap(), ts);
            let pts = Timestamp::new(f["pts"].parse().unwrap(), ts);
            let mut frame = Frame::new(track, dts, pts, data);
            if f["flags"].starts_with('K') {
                frame = frame.with_flags(FrameFlags::KEYFRAME);
            }
            frames.push(frame);
        }
    }
    let video_frames = frames.iter().filter(|f| f.track == VIDEO).count();
    let audio_frames = frames.len() - video_frames;
    assert_eq!(video_frames, 75);
    assert!(audio_frames > 130);
    frames.sort_by_key(|f| f.dts); // stable: video first on equal times
    Source {
        dir,
        mp4,
        tracks,
        frames,
        video_frames,
        audio_frames,
    }
}

/// `ffmpeg -v error` decoding every frame prints nothing.
fn assert_decodes_cleanly(file: &Path) {
    let (_, err) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"]));
    assert!(err.trim().is_empty(), "{}: {err}", file.display());
}

/// The md5 column of `-f framemd5` for the video of `file`.
fn video_md5s(file: &Path) -> Vec<String> {
    let (out, _) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args([
            "-map",
            "0:v",
            "-fps_mode",
            "passthrough",
            "-f",
            "framemd5",
            "-",
        ]));
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|s| s.trim().to_owned()))
        .collect()
}

/// (pid, pusi, random_access, afc, cc) per packet.
fn packet_heads(ts: &[u8]) -> Vec<(u16, bool, bool, u8, u8)> {
    assert_eq!(ts.len() % 188, 0);
    ts.chunks(188)
        .map(|p| {
            assert_eq!(p[0], 0x47);
            let afc = (p[3] >> 4) & 3;
            let rai = afc & 2 != 0 && p[4] > 0 && p[5] & 0x40 != 0;
            (
                u16::from_be_bytes([p[1] & 0x1f, p[2]]),
                p[1] & 0x40 != 0,
                rai,
                afc,
                p[3] & 0xf,
            )
        })
        .collect()
}

fn assert_continuity(ts: &[u8]) {
    let mut last = std::collections::HashMap::new();
    for (i, (pid, _, _, afc, cc)) in packet_heads(ts).into_iter().enumerate() {
        if let Some(&prev) = last.get(&pid) {
            let expect = if afc & 1 != 0 { (prev + 1) & 15 } else { prev };
            assert_eq!(cc, expect, "packet {i} pid {pid:#x}");
        }
        last.insert(pid, cc);
    }
}

#[test]
fn h264_aac_stream_matches_source() {
    let src = make_source("stream");
    let mut mux = TsMuxer::new(&src.tracks, TsMuxerOptions::default()).unwrap();
    let mut out = BytesMut::new();
    mux.write_tables(&mut out);
    for f in &src.frames {
        mux.write_frame(f, &mut out).unwrap();
    }
    mux.flush(&mut out).unwrap();
    let ts = src.dir.path("out.ts");
    std::fs::write(&ts, &out).unwrap();
    assert_continuity(&out);

    assert_decodes_cleanly(&ts);
    let (streams, _) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,profile",
            "-of",
            "csv=p=0",
        ])
        .arg(&ts));
    // Listed under the program, then at top level: the same two streams.
    let listed: Vec<&str> = streams.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(listed, ["h264,High", "aac,LC", "h264,High", "aac,LC"]);

    // Every video packet with the PTS and DTS we wrote (90 kHz + 1.4 s), in order.
    let ours: Vec<(i64, i64)> = probe_packets(&ts, "v", "pts,dts")
        .iter()
        .map(|l| {
            let f = fields(l);
            (f["pts"].parse().unwrap(), f["dts"].parse().unwrap())
        })
        .collect();
    let expect: Vec<(i64, i64)> = src
        .frames
        .iter()
        .filter(|f| f.track == VIDEO)
        .map(|f| {
            (
                f.pts.ticks_in(Timescale::MPEG) + OFFSET_90K,
                f.dts.ticks_in(Timescale::MPEG) + OFFSET_90K,
            )
        })
        .collect();
    assert_eq!(ours.len(), src.video_frames);
    assert_eq!(ours, expect);
    let audio = probe_packets(&ts, "a", "pts");
    assert_eq!(audio.len(), src.audio_frames);
    let first_audio = src.frames.iter().find(|f| f.track == AUDIO).unwrap();
    assert_eq!(
        fields(&audio[0])["pts"].parse::<i64>().unwrap(),
        first_audio.pts.ticks_in(Timescale::MPEG) + OFFSET_90K
    );

    // Bit-exact decoded pictures.
    let a = video_md5s(&src.mp4);
    let b = video_md5s(&ts);
    assert_eq!(a.len(), src.video_frames);
    assert_eq!(a, b);
}

#[test]
fn segments_decode_alone() {
    let src = make_source("segments");
    let mut opts = SegmenterOptions::default();
    opts.target_duration = Timestamp::from_secs(1);
    let mut seg = Segmenter::new(opts).unwrap();
    let mut segments: Vec<Segment> = Vec::new();
    let items = src
        .tracks
        .iter()
        .map(|t| Item::Event(Event::TrackAdded(t.clone())))
        .chain(src.frames.iter().cloned().map(Item::Frame));
    for item in items {
        seg.push(item).unwrap();
        while let Some(s) = seg.poll() {
            segments.push(s.unwrap());
        }
    }
    seg.finish().unwrap();
    while let Some(s) = seg.poll() {
        segments.push(s.unwrap());
    }
    assert_eq!(segments.len(), 3);

    let mut mux = TsMuxer::new(&src.tracks, TsMuxerOptions::default()).unwrap();
    let mut all = BytesMut::new();
    let mut video_packets = 0;
    for s in &segments {
        let mut out = BytesMut::new();
        mux.write_segment(s, &mut out).unwrap();
        let heads = packet_heads(&out);
        assert_eq!(heads[0].0, 0, "PAT first");
        assert_eq!(heads[1].0, 0x1000, "then PMT");
        let (pid, pusi, rai, _, _) = heads[2];
        assert!(pid == VIDEO_PID && pusi && rai, "then a keyframe PES");
        // That PES starts with AUD, SPS, PPS.
        let p = &out[2 * 188..3 * 188];
        let pes = &p[5 + p[4] as usize..];
        let es = &pes[9 + pes[8] as usize..];
        assert!(
            es.starts_with(&[0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67]),
            "{:02x?}",
            &es[..12]
        );

        let file = src.dir.path(&format!("seg{}.ts", s.sequence));
        std::fs::write(&file, &out).unwrap();
        assert_decodes_cleanly(&file);
        let n = probe_packets(&file, "v", "pts").len();
        assert_eq!(n, s.frames.iter().filter(|f| f.track == VIDEO).count());
        video_packets += n;
        all.extend_from_slice(&out);
    }
    assert_eq!(video_packets, src.video_frames);
    // One continuous stream across segments: counters continue, pictures identical.
    assert_continuity(&all);
    let joined = src.dir.path("all.ts");
    std::fs::write(&joined, &all).unwrap();
    assert_decodes_cleanly(&joined);
    assert_eq!(video_md5s(&joined), video_md5s(&src.mp4));
}

/// Throughput on a synthetic 6 Mbit/s stream: 25 fps 30 KB H.264 frames (IDR every
/// 2 s, SPS/PPS inserted) and 48 kHz AAC 380-byte frames, 10 s of media per pass.
///
/// `cargo test --release --test ts_muxer -- --ignored --nocapture`
#[test]
#[ignore = "measurement; run in release mode"]
fn throughput() {
    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x6a, 0x02, 0x02, 0x02,
        0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x19, 0x07, 0x8c, 0x18, 0xcb,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
    let h264 =
        H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap();
    let aac = AacConfig::from_asc(aac::build_asc(2, 3, 2)).unwrap();
    let ats = Timescale::new(48_000).unwrap();
    let tracks = [
        TrackInfo::new(VIDEO, Timescale::MILLIS, CodecConfig::H264(h264)),
        TrackInfo::new(AUDIO, ats, CodecConfig::Aac(aac)),
    ];
    let mut frames = Vec::new();
    for i in 0..250i64 {
        let mut v = Vec::with_capacity(30_000);
        let sei = [0x06u8, 0x05, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x80];
        v.extend_from_slice(&(sei.len() as u32).to_be_bytes());
        v.extend_from_slice(&sei);
        let body = 30_000 - v.len() - 4;
        v.extend_from_slice(&(body as u32).to_be_bytes());
        v.push(if i % 50 == 0 { 0x65 } else { 0x41 });
        v.extend((1..body).map(|k| (k * 131 + i as usize) as u8 | 0x10));
        let t = Timestamp::from_millis(i * 40);
        let mut f = Frame::new(VIDEO, t, t.add(Timestamp::from_millis(80)), Bytes::from(v));
        if i % 50 == 0 {
            f = f.with_flags(FrameFlags::KEYFRAME);
        }
        frames.push(f);
    }
    for n in 0..469i64 {
        let t = Timestamp::new(n * 1024, ats);
        frames.push(Frame::new(
            AUDIO,
            t,
            t,
            Bytes::from(vec![(n as u8) | 1; 380]),
        ));
    }
    frames.sort_by_key(|f| f.dts);
    let payload: usize = frames.iter().map(|f| f.data.len()).sum();

    let mut mux = TsMuxer::new(&tracks, TsMuxerOptions::default()).unwrap();
    let mut out = BytesMut::with_capacity(payload * 11 / 10);
    let mut pass = |out: &mut BytesMut| {
        out.clear();
        mux.write_tables(out);
        for f in &frames {
            mux.write_frame(f, out).unwrap();
        }
        mux.flush(out).unwrap();
    };
    pass(&mut out);
    let packets = out.len() / 188;

    // Reference: the same payload copied with extend_from_slice into a reused buffer.
    let mut copy = Vec::with_capacity(payload);
    let copy_pass = |copy: &mut Vec<u8>| {
        copy.clear();
        for f in &frames {
            copy.extend_from_slice(&f.data);
        }
        std::hint::black_box(&copy);
    };
    copy_pass(&mut copy);

    // Alternate the two so both see the same machine load; keep every pass time.
    let (mut mux_t, mut copy_t) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        pass(&mut out);
        mux_t.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        copy_pass(&mut copy);
        copy_t.push(t.elapsed().as_secs_f64());
    }
    let passes = mux_t.len();
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2])
    };
    let (mux_best, mux_median) = stats(&mut mux_t);
    let (copy_best, copy_median) = stats(&mut copy_t);
    let mb = payload as f64 / 1e6;
    println!(
        "ts muxer ({passes} passes of {packets} packets, {mb:.1} MB payload):\n  \
         best:   {:.0} MB/s, {:.1} ns/packet; memcpy {:.0} MB/s ({:.0}%)\n  \
         median: {:.0} MB/s, {:.1} ns/packet; memcpy {:.0} MB/s ({:.0}%)",
        mb / mux_best,
        mux_best * 1e9 / packets as f64,
        mb / copy_best,
        100.0 * copy_best / mux_best,
        mb / mux_median,
        mux_median * 1e9 / packets as f64,
        mb / copy_median,
        100.0 * copy_median / mux_median,
    );
    assert!(packets > 0 && passes > 0);
}
