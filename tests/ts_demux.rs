//! [`strom::container::ts::TsDemuxer`] against transport streams made by ffmpeg, checked
//! with independent tools: the frames it reads, written back out by our muxers (MPEG-TS
//! and fMP4), decode to exactly the source's pictures and sound (`ffmpeg -f framemd5`);
//! ffprobe's timestamps match; damaged input is counted, never a panic; a stream whose
//! PTS wraps past 2^33 comes out monotonic; SCTE 35 cues come out at their splice time
//! with their bytes, and threefive finds the cues our muxer writes.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use bytes::{Bytes, BytesMut};
use common::cmaf::cut;
use common::{framemd5, media, packets, tool, TempDir};
use strom::container::fmp4::Fmp4Writer;
use strom::container::ts::{TsDemuxer, TsDemuxerOptions, TsDemuxerStats, TsMuxer, TsMuxerOptions};
use strom::media::{CodecConfig, CueKind, Event, Frame, Item, MediaKind, SpliceCue, TrackInfo};
use strom::pipeline::Stage;
use strom::scte35::{self, SpliceInfo};
use strom::time::{Timescale, Timestamp};
use strom::ErrorKind;

/// ffmpeg's default `-muxdelay` offset in its MPEG-TS output: 1.4 s.
const FFMPEG_OFFSET: i64 = 126_000;

/// x264 single-threaded (bit-exact), B-frames, fixed 1 s GOP.
const X264: &[&str] = &[
    "-c:v",
    "libx264",
    "-threads",
    "1",
    "-preset",
    "veryfast",
    "-profile:v",
    "high",
    "-pix_fmt",
    "yuv420p",
    "-bf",
    "3",
    "-g",
    "25",
    "-keyint_min",
    "25",
    "-sc_threshold",
    "0",
];
/// x265 single-threaded, B-frames, closed 1 s GOP.
const X265: &[&str] = &[
    "-c:v",
    "libx265",
    "-pix_fmt",
    "yuv420p",
    "-x265-params",
    "log-level=error:pools=1:frame-threads=1:keyint=25:min-keyint=25:scenecut=0:open-gop=0",
];
const AAC: &[&str] = &["-c:a", "aac", "-ar", "48000", "-ac", "2", "-b:a", "128k"];

/// 320x240 25 fps testsrc2 + a 48 kHz sine, `seconds` long, encoded with `video`, AAC,
/// as MPEG-TS (`extra` goes before the output: `-output_ts_offset`).
fn source(name: &str, seconds: u32, video: &[&str], extra: &[&str]) -> std::path::PathBuf {
    let v = format!("testsrc2=size=320x240:rate=25:duration={seconds}");
    let a = format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
    let mut args = vec!["-f", "lavfi", "-i", &v, "-f", "lavfi", "-i", &a];
    args.extend_from_slice(video);
    args.extend_from_slice(AAC);
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-f", "mpegts"]);
    media(name, &args)
}

fn avc_aac() -> std::path::PathBuf {
    source("ts_demux_avc_aac_4s.ts", 4, X264, &[])
}

/// What the demuxer made of a file.
#[derive(Default)]
struct Demuxed {
    /// `TrackAdded` in order.
    tracks: Vec<TrackInfo>,
    /// `TrackChanged` count.
    changed: usize,
    /// Frames in arrival order, all tracks.
    frames: Vec<Frame>,
    cues: Vec<SpliceCue>,
    discontinuities: usize,
    errors: Vec<strom::Error>,
    ends: usize,
    stats: TsDemuxerStats,
    /// Every item, events and frames, in order.
    items: Vec<Item>,
}

impl Demuxed {
    fn of(&self, kind: MediaKind) -> Vec<&Frame> {
        let ids: Vec<u32> = self
            .tracks
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.id)
            .collect();
        self.frames
            .iter()
            .filter(|f| ids.contains(&f.track))
            .collect()
    }
}

fn demux_bytes(data: &[u8], chunk: usize, opts: TsDemuxerOptions) -> Demuxed {
    let mut d = TsDemuxer::with_options(opts);
    let mut r = Demuxed::default();
    let take = |res: strom::Result<Item>, r: &mut Demuxed| match res {
        Err(e) => r.errors.push(e),
        Ok(item) => {
            match &item {
                Item::Frame(f) => r.frames.push(f.clone()),
                Item::Event(Event::TrackAdded(t)) => r.tracks.push(t.clone()),
                Item::Event(Event::TrackChanged(_)) => r.changed += 1,
                Item::Event(Event::Cue(c)) => r.cues.push(c.clone()),
                Item::Event(Event::Discontinuity { .. }) => r.discontinuities += 1,
                Item::Event(Event::EndOfStream) => r.ends += 1,
                _ => {}
            }
            r.items.push(item);
        }
    };
    for c in data.chunks(chunk) {
        d.push(Bytes::copy_from_slice(c)).unwrap();
        while let Some(res) = d.poll() {
            take(res, &mut r);
        }
    }
    d.finish().unwrap();
    while let Some(res) = d.poll() {
        take(res, &mut r);
    }
    assert_eq!(r.ends, 1, "one EndOfStream");
    assert_eq!(r.items.last(), Some(&Item::Event(Event::EndOfStream)));
    r.stats = d.stats();
    r
}

fn demux(path: &Path) -> Demuxed {
    demux_bytes(
        &fs::read(path).unwrap(),
        64 << 10,
        TsDemuxerOptions::default(),
    )
}

/// The demuxed items written back out by `TsMuxer` as one continuous stream.
fn remux_ts(d: &Demuxed, opts: TsMuxerOptions) -> Vec<u8> {
    let mut mux = TsMuxer::new(&d.tracks, opts).unwrap();
    let mut out = BytesMut::new();
    mux.write_tables(&mut out);
    for item in &d.items {
        match item {
            Item::Frame(f) => mux.write_frame(f, &mut out).unwrap(),
            Item::Event(Event::TrackChanged(t)) => mux.update_track(t).unwrap(),
            _ => {}
        }
    }
    mux.flush(&mut out).unwrap();
    out.to_vec()
}

/// One track's frames as an fMP4 file (init + fragments of about 1 s).
fn remux_fmp4(track: &TrackInfo, frames: &[Frame]) -> Vec<u8> {
    let mut w = Fmp4Writer::new(track.clone()).unwrap();
    let mut out = BytesMut::new();
    w.init_segment(&mut out).unwrap();
    let runs = cut(frames, 90_000, track.kind == MediaKind::Video);
    assert!(runs.len() >= 3);
    for (n, r) in runs.iter().enumerate() {
        let end = frames.get(r.end).map(|f| f.dts);
        w.media_segment(&frames[r.clone()], n as u32 + 1, end, &mut out)
            .unwrap();
    }
    out.to_vec()
}

/// Decoded pictures and sound of `ours` are the source's, frame for frame.
fn assert_same_decode(source: &Path, ours: &Path) {
    for spec in ["v:0", "a:0"] {
        let a = framemd5(source, spec);
        let b = framemd5(ours, spec);
        assert!(!a.is_empty(), "{spec}: no frames decoded from the source");
        assert_eq!(a.len(), b.len(), "{spec}: decoded frame count");
        assert!(a == b, "{spec}: decoded frames differ from the source");
    }
}

fn check_round_trip(source: &Path, tag: &str, codec: &str) -> Demuxed {
    let d = demux(source);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.tracks.len(), 2);
    let video = d
        .tracks
        .iter()
        .find(|t| t.kind == MediaKind::Video)
        .unwrap();
    let audio = d
        .tracks
        .iter()
        .find(|t| t.kind == MediaKind::Audio)
        .unwrap();
    assert!(
        video.config.codecs_string().starts_with(codec),
        "{}",
        video.config.codecs_string()
    );
    assert_eq!(audio.config.codecs_string(), "mp4a.40.2");
    assert_eq!(
        (video.id, audio.id),
        (0x100, 0x101),
        "track ids are the PIDs"
    );
    let s = d.stats;
    assert_eq!(
        (
            s.cc_errors,
            s.skipped_bytes,
            s.dropped_pes,
            s.bad_sections,
            d.discontinuities
        ),
        (0, 0, 0, 0, 0),
        "{s:?}"
    );

    // ffprobe's packets of the source: the same count, times and key flags.
    let pv = packets(source, "v:0");
    let pa = packets(source, "a:0");
    assert_eq!(pv.time_base, (1, 90_000));
    let ours: Vec<(i64, i64, bool)> = d
        .of(MediaKind::Video)
        .iter()
        .map(|f| (f.pts.ticks(), f.dts.ticks(), f.is_keyframe()))
        .collect();
    let theirs: Vec<(i64, i64, bool)> = pv
        .packets
        .iter()
        .map(|p| (p.pts.unwrap(), p.dts.unwrap(), p.key))
        .collect();
    assert_eq!(ours, theirs, "video pts, dts, key flags");
    let audio_pts: Vec<i64> = d
        .of(MediaKind::Audio)
        .iter()
        .map(|f| f.pts.ticks())
        .collect();
    let theirs: Vec<i64> = pa.packets.iter().map(|p| p.pts.unwrap()).collect();
    assert_eq!(audio_pts, theirs, "audio frame times");
    assert!(d
        .of(MediaKind::Audio)
        .iter()
        .all(|f| f.duration == Some(Timestamp::new(1920, Timescale::MPEG))));

    // Written back out: decodes to the same frames, as TS and (video) as fMP4.
    let dir = TempDir::new(tag);
    let ts = dir.join("ours.ts");
    fs::write(&ts, remux_ts(&d, TsMuxerOptions::default())).unwrap();
    assert_same_decode(source, &ts);
    let back = packets(&ts, "v:0");
    assert_eq!(back.packets.len(), pv.packets.len());
    for (p, q) in pv.packets.iter().zip(&back.packets) {
        // Our muxer adds its own 1.4 s.
        assert_eq!(q.pts.unwrap() - p.pts.unwrap(), FFMPEG_OFFSET);
        assert_eq!(q.dts.unwrap() - p.dts.unwrap(), FFMPEG_OFFSET);
    }
    let frames: Vec<Frame> = d.of(MediaKind::Video).into_iter().cloned().collect();
    let mp4 = dir.join("video.mp4");
    fs::write(&mp4, remux_fmp4(video, &frames)).unwrap();
    assert_eq!(framemd5(&mp4, "v:0"), framemd5(source, "v:0"), "fMP4 video");
    let frames: Vec<Frame> = d.of(MediaKind::Audio).into_iter().cloned().collect();
    let m4a = dir.join("audio.mp4");
    fs::write(&m4a, remux_fmp4(audio, &frames)).unwrap();
    assert_eq!(framemd5(&m4a, "a:0"), framemd5(source, "a:0"), "fMP4 audio");
    d
}

#[test]
fn h264_aac_from_ffmpeg_round_trips() {
    let src = avc_aac();
    let d = check_round_trip(&src, "tsd-avc", "avc1.64");
    assert_eq!(d.of(MediaKind::Video).len(), 100);
    // The configuration is the SPS/PPS ffmpeg put in band; no frame keeps them.
    let CodecConfig::H264(c) = &d.tracks[0].config else {
        panic!()
    };
    assert_eq!((c.width, c.height), (320, 240));
    for f in d.of(MediaKind::Video) {
        for u in strom::bitstream::nal::iter_length_prefixed(&f.data, 4) {
            let t = u.unwrap()[0] & 0x1f;
            assert!(!matches!(t, 7..=9), "NAL type {t} left in a frame");
        }
    }
    // Chunking does not matter.
    let data = fs::read(&src).unwrap();
    for chunk in [1000, 188 * 7 + 5] {
        let again = demux_bytes(&data, chunk, TsDemuxerOptions::default());
        assert!(again.items == d.items, "chunk {chunk}");
    }
}

#[test]
fn hevc_aac_from_ffmpeg_round_trips() {
    let src = source("ts_demux_hevc_aac_4s.ts", 4, X265, &[]);
    let d = check_round_trip(&src, "tsd-hevc", "hvc1.1.6");
    let CodecConfig::H265(c) = &d.tracks[0].config else {
        panic!()
    };
    assert_eq!(
        (c.width, c.height, c.vps.len(), c.sps.len(), c.pps.len()),
        (320, 240, 1, 1, 1)
    );
}

#[test]
fn pts_wrap_past_2_pow_33_is_monotonic() {
    // First PTS 2^33 - ~1.3 s: the clock wraps a little over a second in.
    let src = source(
        "ts_demux_wrap_4s.ts",
        4,
        X264,
        &["-output_ts_offset", "95441"],
    );
    let raw = packets(&src, "v:0");
    assert!(
        raw.packets.iter().any(|p| p.pts.unwrap() < 1 << 32),
        "the source wraps"
    );
    let d = demux(&src);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.discontinuities, 0, "a wrap is not a discontinuity");
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let dts: Vec<i64> = d.of(kind).iter().map(|f| f.dts.ticks()).collect();
        assert!(
            dts.windows(2).all(|w| w[1] > w[0]),
            "{kind:?} dts monotonic"
        );
        assert!(
            dts[0] < 1 << 33 && *dts.last().unwrap() > 1 << 33,
            "{kind:?} crosses 2^33"
        );
        // The wire values are the unwrapped ones modulo 2^33.
        for (f, p) in d.of(kind).iter().zip(
            &packets(
                &src,
                if kind == MediaKind::Video {
                    "v:0"
                } else {
                    "a:0"
                },
            )
            .packets,
        ) {
            assert_eq!(
                f.pts.ticks() % (1 << 33),
                p.pts.unwrap().rem_euclid(1 << 33)
            );
        }
    }
    let dir = TempDir::new("tsd-wrap");
    let ts = dir.join("ours.ts");
    fs::write(&ts, remux_ts(&d, TsMuxerOptions::default())).unwrap();
    assert_same_decode(&src, &ts);
}

/// Transport packets of `data`, each 188 bytes.
fn packets_of(data: &[u8]) -> Vec<&[u8]> {
    assert_eq!(data.len() % 188, 0);
    data.chunks(188).collect()
}

#[test]
fn damaged_input_is_counted_never_a_panic() {
    let src = avc_aac();
    let data = fs::read(&src).unwrap();
    let clean = demux_bytes(&data, 4096, TsDemuxerOptions::default());

    // Garbage between packets (no byte looks like a sync byte): skipped and counted,
    // nothing lost.
    let mut garbage = Vec::new();
    let mut x = 0x1234_5678u32;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                match x as u8 {
                    0x47 => 0x48,
                    b => b,
                }
            })
            .collect()
    };
    let pk = packets_of(&data);
    for (i, p) in pk.iter().enumerate() {
        if i % 150 == 3 {
            garbage.extend(noise(1000));
        }
        garbage.extend_from_slice(p);
    }
    let inserted = garbage.len() - data.len();
    let g = demux_bytes(&garbage, 5000, TsDemuxerOptions::default());
    assert_eq!(g.stats.skipped_bytes, inserted as u64);
    assert!(g.stats.sync_losses >= 3);
    assert!(
        g.items == clean.items,
        "garbage between packets changes nothing"
    );

    // Lost packets: counted, their PES packets dropped; the rest decodes.
    let lossy: Vec<u8> = pk
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 97 != 50)
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    let l = demux_bytes(&lossy, 4096, TsDemuxerOptions::default());
    assert!(
        l.stats.cc_errors > 0 && l.stats.dropped_pes > 0,
        "{:?}",
        l.stats
    );
    assert!(l.frames.len() < clean.frames.len());
    assert!(l.discontinuities == 0);
    let dir = TempDir::new("tsd-damage");
    let out = dir.join("lossy.ts");
    fs::write(&out, remux_ts(&l, TsMuxerOptions::default())).unwrap();
    assert!(!framemd5(&out, "v:0").is_empty());

    // Truncated anywhere, corrupted bytes: typed errors or counts, never a panic, and
    // every frame well formed.
    for cut in [1, 187, 188 * 20 + 77, data.len() / 3, data.len() - 100] {
        let t = demux_bytes(&data[..cut], 4096, TsDemuxerOptions::default());
        assert!(t.frames.len() <= clean.frames.len());
    }
    let mut corrupt = data.clone();
    for (i, b) in noise(corrupt.len() / 50).into_iter().enumerate() {
        let at = (i * 7919 * 13) % corrupt.len();
        corrupt[at] ^= b | 1;
    }
    let c = demux_bytes(&corrupt, 4096, TsDemuxerOptions::default());
    for e in &c.errors {
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Malformed | ErrorKind::Unsupported | ErrorKind::Limit
            ),
            "{e}"
        );
    }
    for f in &c.frames {
        if c.tracks
            .iter()
            .any(|t| t.id == f.track && t.kind == MediaKind::Video)
        {
            assert!(strom::bitstream::nal::iter_length_prefixed(&f.data, 4).all(|u| u.is_ok()));
        }
    }
}

/// The PID, event id, splice time (`pts_time + pts_adjustment`, 90 kHz) and
/// `pts_adjustment` of every SCTE 35 section threefive finds in a TS file.
fn threefive_sections(ts: &Path) -> Vec<(u16, u32, u64, u64)> {
    const SCRIPT: &str = r#"
import sys
import threefive
rows = []
def got(cue):
    d = cue.get()
    c = d["command"]
    pd = d.get("packet_data") or {}
    adj = round(float(d["info_section"].get("pts_adjustment") or 0) * 90000)
    pts = round(float(c.get("pts_time") or 0) * 90000)
    rows.append("%s %s %d %d" % (pd.get("pid"), c.get("splice_event_id"), (pts + adj) % (1 << 33), adj))
threefive.Stream(sys.argv[1]).decode(func=got)
print("\n".join(rows))
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(ts)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "threefive failed (install with `python3 -m pip install --user {}`): {}",
        common::scte35::THREEFIVE,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            (
                v[0].parse().unwrap(),
                v[1].parse().unwrap(),
                v[2].parse().unwrap(),
                v[3].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn scte35_cues_through_our_muxer_and_back() {
    let src = avc_aac();
    let d = demux(&src);
    // A 2 s break at the keyframe 1 s in; each cue goes out 1.6 s ahead.
    const BREAK: i64 = 180_000;
    let keys: Vec<&Frame> = d
        .of(MediaKind::Video)
        .into_iter()
        .filter(|f| f.is_keyframe())
        .collect();
    let splice = keys[1].pts.ticks();
    let section =
        scte35::splice_insert_section(1001, true, Some(splice as u64), Some(BREAK as u64), true);
    let back =
        scte35::splice_insert_section(1001, false, Some((splice + BREAK) as u64), None, false);
    let dir = TempDir::new("tsd-scte35");

    for (offset, name) in [(0i64, "zero.ts"), (FFMPEG_OFFSET, "default.ts")] {
        let mut opts = TsMuxerOptions::default();
        opts.scte35_pid = Some(0x1f0);
        opts.timestamp_offset = Timestamp::new(offset, Timescale::MPEG);
        let mut mux = TsMuxer::new(&d.tracks, opts).unwrap();
        let mut out = BytesMut::new();
        mux.write_tables(&mut out);
        let at = |t: i64| Timestamp::new(t, Timescale::MPEG);
        let cue_out = SpliceCue::new(1001, CueKind::Out, at(splice), Some(at(BREAK)))
            .with_raw(section.clone());
        let cue_in =
            SpliceCue::new(1001, CueKind::In, at(splice + BREAK), None).with_raw(back.clone());
        let (mut sent_out, mut sent_in) = (false, false);
        for f in &d.frames {
            if !sent_out && f.dts.ticks() >= splice - 144_000 {
                mux.write_cue(&cue_out, &mut out).unwrap();
                sent_out = true;
            }
            if !sent_in && f.dts.ticks() >= splice + BREAK - 144_000 {
                mux.write_cue(&cue_in, &mut out).unwrap();
                sent_in = true;
            }
            mux.write_frame(f, &mut out).unwrap();
        }
        mux.flush(&mut out).unwrap();
        assert!(sent_out && sent_in);
        let ts = dir.join(name);
        fs::write(&ts, &out).unwrap();

        // Our demuxer: the cues at exactly their splice times, with their sections.
        let again = demux(&ts);
        assert!(again.errors.is_empty(), "{:?}", again.errors);
        assert_eq!(again.cues.len(), 2);
        let (o, i) = (&again.cues[0], &again.cues[1]);
        assert_eq!(
            (o.id, o.kind, o.at.ticks()),
            (1001, CueKind::Out, splice + offset)
        );
        assert_eq!(o.duration, Some(at(BREAK)));
        assert_eq!(
            (i.kind, i.at.ticks()),
            (CueKind::In, splice + BREAK + offset)
        );
        let info = SpliceInfo::parse(o.raw.clone()).unwrap();
        assert_eq!(info.pts_adjustment, offset as u64);
        if offset == 0 {
            assert_eq!(
                (&o.raw, &i.raw),
                (&section, &back),
                "sections byte for byte"
            );
        } else {
            // Only pts_adjustment and the CRC differ.
            assert_eq!(o.raw.len(), section.len());
            assert_eq!(o.raw[..4], section[..4]);
            assert_eq!(o.raw[9..o.raw.len() - 4], section[9..section.len() - 4]);
        }
        // The splice time lands on the keyframe of our output.
        let key = again
            .of(MediaKind::Video)
            .into_iter()
            .find(|f| f.pts.ticks() == o.at.ticks())
            .expect("a frame at the splice time");
        assert!(key.is_keyframe());
        // The frames themselves are unchanged.
        assert_same_decode(&src, &ts);

        // ffprobe sees a SCTE 35 data stream (it needs the CUEI registration).
        let out = Command::new(tool("ffprobe"))
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
            ])
            .arg(&ts)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == "scte_35"));

        // threefive, an independent decoder, finds both sections on our PID.
        let found = threefive_sections(&ts);
        let want = vec![
            (0x1f0, 1001, (splice + offset) as u64, offset as u64),
            (0x1f0, 1001, (splice + BREAK + offset) as u64, offset as u64),
        ];
        assert_eq!(found, want, "{name}");
    }
}

#[test]
fn program_and_stream_limits() {
    let src = avc_aac();
    let data = fs::read(&src).unwrap();
    // Only the first stream of the PMT followed.
    let mut opts = TsDemuxerOptions::default();
    opts.max_streams = 1;
    let d = demux_bytes(&data, 1 << 16, opts);
    assert_eq!(d.tracks.len(), 1);
    // A program that is not there: nothing but the end.
    let mut opts = TsDemuxerOptions::default();
    opts.program = Some(7);
    let d = demux_bytes(&data, 1 << 16, opts);
    assert!(d.tracks.is_empty() && d.frames.is_empty());
    // Per-track frame counts as ffprobe reports them.
    let all = demux_bytes(&data, 1 << 16, TsDemuxerOptions::default());
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for f in &all.frames {
        *counts.entry(f.track).or_default() += 1;
    }
    assert_eq!(counts[&0x100], packets(&src, "v:0").packets.len());
    assert_eq!(counts[&0x101], packets(&src, "a:0").packets.len());
}
