//! Export of stored CMAF renditions as one progressive MP4 (`Mp4Export`), judged by
//! FFmpeg and mp4-atom: a real clip (x264 with B-frames + AAC) is stored the way the live
//! origin stores it (`Segmenter` + `CmafPresentation`: per rendition an init segment and
//! numbered fragments), exported without re-encoding, and compared with the fragments
//! themselves (init + fragments concatenated per rendition, as a player reads them):
//! ffprobe streams, codecs, durations and packet counts; `-c copy` and decoded framemd5
//! per stream; presentation start of each stream (A/V sync); the top-level box order;
//! a five-minute export's compact tables; a file past 4 GiB (`co64`) read by ffprobe.
//!
//! Run: `cargo test --release --test mp4_export -- --nocapture`.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use bytes::{Bytes, BytesMut};
use common::*;
use mp4_atom::{Any, Decode, Moov};
use strom::container::fmp4::{Fmp4Reader, Fmp4Writer};
use strom::container::mp4::PayloadMode;
use strom::container::mp4::{ExportPart, ExportedMp4, Mp4Demuxer, Mp4Export, Mp4ExportOptions};
use strom::media::{AacConfig, CodecConfig, Frame, FrameFlags, TrackInfo};
use strom::package::cmaf::{CmafOptions, CmafPresentation};
use strom::package::{Segmenter, SegmenterOptions};
use strom::pipeline::{drain, Stage};
use strom::time::{Timescale, Timestamp};

/// One stored rendition: its name (`v1`, `a2`), init segment and fragments in order.
struct Rendition {
    name: String,
    init: Bytes,
    fragments: Vec<Bytes>,
}

impl Rendition {
    fn video(&self) -> bool {
        self.name.starts_with('v')
    }

    /// Samples in the fragments, as an independent count (the fMP4 reader).
    fn samples(&self) -> usize {
        let mut r = Fmp4Reader::new(self.init.clone()).unwrap();
        self.fragments
            .iter()
            .map(|f| r.read_segment(f.clone()).unwrap().len())
            .sum()
    }

    /// Duration of the last sample, as its fragment's trun states it.
    fn last_duration(&self) -> i64 {
        let mut r = Fmp4Reader::new(self.init.clone()).unwrap();
        let mut last = None;
        for f in &self.fragments {
            last = r.read_segment(f.clone()).unwrap().pop().or(last);
        }
        last.unwrap().duration.unwrap().ticks()
    }

    /// Init + fragments as one fragmented file.
    fn file(&self) -> Vec<u8> {
        let mut out = self.init.to_vec();
        for f in &self.fragments {
            out.extend_from_slice(f);
        }
        out
    }
}

/// Stores `source` as the live origin does: demux, cut at keyframes (2 s), one CMAF
/// fragment per track and segment. Video rendition first.
fn store(source: &Path) -> Vec<Rendition> {
    let items = Mp4Demuxer::read_all(Bytes::from(fs::read(source).unwrap())).unwrap();
    let mut seg = Segmenter::new(SegmenterOptions::default()).unwrap();
    let mut cmaf = CmafPresentation::new(CmafOptions::default());
    let mut out: Vec<Rendition> = Vec::new();
    let mut take = |cmaf: &mut CmafPresentation, segments: Vec<strom::package::Segment>| {
        for s in segments {
            for f in cmaf.write_segment(&s, None).unwrap() {
                let init = cmaf.rendition(&f.rendition).unwrap().init_segment();
                match out.iter_mut().find(|r| r.name == f.rendition) {
                    Some(r) => {
                        assert!(!f.new_init, "one configuration per rendition");
                        r.fragments.push(f.data);
                    }
                    None => out.push(Rendition {
                        name: f.rendition.clone(),
                        init,
                        fragments: vec![f.data],
                    }),
                }
            }
        }
    };
    for item in items {
        seg.push(item).unwrap();
        let ready = drain(&mut seg).unwrap();
        take(&mut cmaf, ready);
    }
    seg.finish().unwrap();
    let ready = drain(&mut seg).unwrap();
    take(&mut cmaf, ready);
    out.sort_by_key(|r| !r.video());
    out
}

/// Exports `renditions` (fragments pushed interleaved, as a host reading the store in
/// time order would).
fn export(renditions: &[Rendition], opts: Mp4ExportOptions) -> ExportedMp4 {
    let mut e = Mp4Export::new(opts).unwrap();
    let ids: Vec<usize> = renditions
        .iter()
        .map(|r| e.add_track(r.init.clone()).unwrap())
        .collect();
    let most = renditions.iter().map(|r| r.fragments.len()).max().unwrap();
    for i in 0..most {
        for (r, &t) in renditions.iter().zip(&ids) {
            if let Some(f) = r.fragments.get(i) {
                e.push_fragment(t, f.clone()).unwrap();
            }
        }
    }
    e.finish().unwrap()
}

/// Writes the parts of `mp4` to `path` with vectored IO (fragments named by a
/// [`ExportPart::Fragment`] are read from `renditions`); returns the file length.
fn write_file(path: &Path, mp4: &ExportedMp4, renditions: &[Rendition]) -> u64 {
    let mut file = fs::File::create(path).unwrap();
    let slices: Vec<&[u8]> = mp4
        .parts()
        .iter()
        .map(|p| match p {
            ExportPart::Data(b) => &b[..],
            &ExportPart::Fragment {
                track,
                fragment,
                offset,
                len,
            } => {
                let f = &renditions[track].fragments[fragment as usize];
                &f[offset as usize..(offset + len) as usize]
            }
            other => panic!("unknown part {other:?}"),
        })
        .collect();
    // write_vectored in batches, as a host would (IOV_MAX is 1024 on Linux).
    for batch in slices.chunks(1024) {
        let mut bufs: Vec<std::io::IoSlice<'_>> =
            batch.iter().map(|s| std::io::IoSlice::new(s)).collect();
        let mut bufs = &mut bufs[..];
        while !bufs.is_empty() {
            let n = file.write_vectored(bufs).unwrap();
            assert!(n > 0, "write_vectored wrote nothing");
            std::io::IoSlice::advance_slices(&mut bufs, n);
        }
    }
    file.flush().unwrap();
    fs::metadata(path).unwrap().len()
}

/// One line of `ffmpeg -f framemd5`: dts, pts, duration, size, md5.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Md5Line {
    dts: i64,
    pts: i64,
    duration: i64,
    size: usize,
    md5: String,
}

/// `ffmpeg -i path -map 0:spec [-c copy] -f framemd5 -`, parsed.
fn framemd5_lines(path: &Path, spec: &str, copy: bool) -> Vec<Md5Line> {
    let mut cmd = Command::new(tool("ffmpeg"));
    cmd.args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", &format!("0:{spec}")]);
    if copy {
        cmd.args(["-c", "copy"]);
    }
    let out = cmd
        .args(["-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg framemd5 {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            assert_eq!(f.len(), 6, "framemd5 line {l:?}");
            Md5Line {
                dts: f[1].parse().unwrap(),
                pts: f[2].parse().unwrap(),
                duration: f[3].parse().unwrap(),
                size: f[4].parse().unwrap(),
                md5: f[5].to_string(),
            }
        })
        .collect()
}

/// Top-level boxes of a file: (type, offset, size).
fn top_level(path: &Path) -> Vec<(String, u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let mut out = Vec::new();
    let mut at = 0u64;
    while at < len {
        let mut h = [0u8; 16];
        f.seek(SeekFrom::Start(at)).unwrap();
        f.read_exact(&mut h[..8]).unwrap();
        let mut size = u64::from(u32::from_be_bytes(h[..4].try_into().unwrap()));
        if size == 1 {
            f.read_exact(&mut h[8..16]).unwrap();
            size = u64::from_be_bytes(h[8..16].try_into().unwrap());
        }
        assert!(
            size >= 8 && at + size <= len,
            "box size {size} at {at} of {len}"
        );
        out.push((String::from_utf8_lossy(&h[4..8]).into_owned(), at, size));
        at += size;
    }
    out
}

/// The `moov` of a file, decoded strictly by mp4-atom (every box known, nothing left
/// over), and its size.
fn moov_of(path: &Path) -> (Moov, u64) {
    use std::io::{Read, Seek, SeekFrom};
    let (_, at, size) = top_level(path)
        .into_iter()
        .find(|b| b.0 == "moov")
        .expect("a moov");
    let mut f = fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut buf = vec![0u8; size as usize];
    f.read_exact(&mut buf).unwrap();
    let mut view = &buf[..];
    let any = Any::decode(&mut view).unwrap();
    assert!(view.is_empty(), "bytes left after the moov");
    let Any::Moov(moov) = any else {
        panic!("not a moov")
    };
    (moov, size)
}

/// ffprobe `start_time` and `duration` (seconds) of stream `i`.
fn start_and_duration(f: &Flat, i: usize) -> (f64, f64) {
    (
        f.f64(&format!("streams.stream.{i}.start_time")),
        f.f64(&format!("streams.stream.{i}.duration")),
    )
}

/// The clip, stored as CMAF renditions, exported; checked against the fragments.
#[test]
fn export_matches_the_fragments() {
    let source = avc_aac_25(10, Container::Mp4);
    let renditions = store(&source);
    let names: Vec<&str> = renditions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["v1", "a2"]);
    let dir = TempDir::new("mp4-export");
    let mp4 = export(&renditions, Mp4ExportOptions::default());
    let path = dir.join("export.mp4");
    let len = write_file(&path, &mp4, &renditions);
    assert_eq!(len, mp4.len());
    println!(
        "export: {} bytes, header {} bytes, {} parts, movie timescale {}",
        mp4.len(),
        mp4.header_len(),
        mp4.parts().len(),
        mp4.movie_timescale().get()
    );

    // Faststart: ftyp, moov, mdat, nothing else.
    let top = top_level(&path);
    let kinds: Vec<&str> = top.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(kinds, ["ftyp", "moov", "mdat"], "{top:?}");
    assert_eq!(top[2].1 + 8, mp4.header_len() as u64);

    // The same bytes when the payloads are read again from the store (second pass).
    let mut refer = Mp4ExportOptions::default();
    refer.payloads = PayloadMode::Refer;
    let referred = export(&renditions, refer);
    assert!(referred
        .parts()
        .iter()
        .skip(1)
        .all(|p| matches!(p, ExportPart::Fragment { .. })));
    let second = dir.join("second-pass.mp4");
    write_file(&second, &referred, &renditions);
    assert!(
        fs::read(&second).unwrap() == fs::read(&path).unwrap(),
        "second pass differs"
    );

    // The tables, strictly decoded by mp4-atom.
    let (moov, moov_len) = moov_of(&path);
    assert_eq!(moov.trak.len(), 2);
    let video = &moov.trak[0];
    let stbl = &video.mdia.minf.stbl;
    assert!(stbl.ctts.is_some(), "B-frames: ctts");
    assert!(stbl.stss.is_some(), "video: stss");
    assert!(stbl.stco.is_some() && stbl.co64.is_none());
    let elst = &video
        .edts
        .as_ref()
        .expect("video edit list")
        .elst
        .as_ref()
        .unwrap();
    println!("video elst {:?}, moov {moov_len} bytes", elst.entries);

    // ffprobe: two streams, the codecs, durations within one frame of the source.
    let ours = streams(&path);
    let src = streams(&source);
    assert_eq!(ours.len(), 2);
    for (o, s) in ours.iter().zip(&src) {
        assert_eq!(
            (&o.codec_type, &o.codec_name, &o.profile),
            (&s.codec_type, &s.codec_name, &s.profile)
        );
        assert_eq!(
            (o.width, o.height, o.sample_rate, o.channels),
            (s.width, s.height, s.sample_rate, s.channels)
        );
        let frame = if o.codec_type == "video" {
            1.0 / 25.0
        } else {
            1024.0 / 48_000.0
        };
        let (a, b) = (o.duration_s.unwrap(), s.duration_s.unwrap());
        println!(
            "{} duration: export {a:.6} s, source {b:.6} s",
            o.codec_type
        );
        assert!(
            (a - b).abs() <= frame + 1e-6,
            "{}: {a} vs {b}",
            o.codec_type
        );
    }

    let probe_export = ffprobe_flat(&path, &["-show_streams"]);
    let mut starts = Vec::new();
    for (i, r) in renditions.iter().enumerate() {
        let spec = if r.video() { "v:0" } else { "a:0" };
        let frag_path = dir.join(&format!("{}.mp4", r.name));
        fs::write(&frag_path, r.file()).unwrap();

        // -show_packets: one packet per stored sample.
        let count = r.samples();
        let exported = packets(&path, spec);
        assert_eq!(exported.packets.len(), count, "{}: packets", r.name);
        assert_eq!(mp4.tracks()[i].samples as usize, count);
        let keys = exported.key_indices();
        assert_eq!(
            keys,
            packets(&frag_path, "0").key_indices(),
            "{}: keyframes",
            r.name
        );

        // -c copy framemd5: the same packets, at the same relative times.
        let want = framemd5_lines(&frag_path, "0", true);
        let got = framemd5_lines(&path, spec, true);
        assert_eq!(got.len(), want.len(), "{}", r.name);
        let rel = |v: &[Md5Line]| -> Vec<(i64, i64, i64, usize, String)> {
            let p0 = v[0].pts;
            v.iter()
                .map(|l| (l.dts - p0, l.pts - p0, l.duration, l.size, l.md5.clone()))
                .collect()
        };
        let (mut g, mut w) = (rel(&got), rel(&want));
        // FFmpeg gives the last packet of a fragmented AAC stream a whole frame's
        // duration whatever its trun says; in the export it reads the stored duration.
        let stored_last = r.last_duration();
        assert_eq!(
            g.last().unwrap().2,
            stored_last,
            "{}: last duration",
            r.name
        );
        g.last_mut().unwrap().2 = 0;
        w.last_mut().unwrap().2 = 0;
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            assert_eq!(a, b, "{}: -c copy framemd5 line {i}", r.name);
        }

        // Decoded: the same frames.
        let want = framemd5(&frag_path, "0");
        let got = framemd5(&path, spec);
        assert!(!want.is_empty());
        assert!(
            got == want,
            "{}: decoded frames differ ({} vs {})",
            r.name,
            got.len(),
            want.len()
        );
        println!(
            "{}: {count} samples, -c copy and decoded framemd5 identical",
            r.name
        );

        // Presentation start, for A/V sync below.
        let frag_start =
            ffprobe_flat(&frag_path, &["-show_streams"]).f64("streams.stream.0.start_time");
        let (export_start, _) = start_and_duration(&probe_export, i);
        starts.push((frag_start, export_start));
    }
    assert_eq!(decode_errors(&path), "");
    // A/V sync: video starts as far after audio as in the fragments (within a tick of
    // the video's 1/12800 time base).
    let frag_offset = starts[0].0 - starts[1].0;
    let export_offset = starts[0].1 - starts[1].1;
    println!(
        "video after audio: fragments {:.6} s, export {:.6} s",
        frag_offset, export_offset
    );
    assert!(
        frag_offset > 0.02,
        "the clip's video starts after its audio"
    );
    assert!((frag_offset - export_offset).abs() <= 1.0 / 12_800.0 + 1e-9);
    assert_eq!(starts[1].1, 0.0, "the movie starts with the earliest track");
}

/// Five minutes from the same fragments repeated (each copy's `tfdt` renamed `free`, so
/// it continues where the previous copy ended): `stco`, run-length `stts`, a small
/// `moov`, chunks interleaved, and a seek near the end decodes what the clip starts with.
#[test]
fn five_minute_export_is_compact_and_seekable() {
    const COPIES: usize = 30;
    let source = avc_aac_25(10, Container::Mp4);
    let clip = store(&source);
    let long: Vec<Rendition> = clip
        .iter()
        .map(|r| {
            let mut fragments = r.fragments.clone();
            for _ in 1..COPIES {
                for f in &r.fragments {
                    let mut b = f.to_vec();
                    let at = b.windows(4).position(|w| w == b"tfdt").unwrap();
                    b[at..at + 4].copy_from_slice(b"free");
                    fragments.push(Bytes::from(b));
                }
            }
            Rendition {
                name: r.name.clone(),
                init: r.init.clone(),
                fragments,
            }
        })
        .collect();
    let dir = TempDir::new("mp4-export-long");
    let t0 = std::time::Instant::now();
    let mp4 = export(&long, Mp4ExportOptions::default());
    let took = t0.elapsed();
    let path = dir.join("long.mp4");
    write_file(&path, &mp4, &long);
    assert!(!mp4.co64());
    let samples: Vec<usize> = long.iter().map(Rendition::samples).collect();
    let total: usize = samples.iter().sum();

    let (moov, moov_len) = moov_of(&path);
    let mut chunk_starts: Vec<(u32, usize)> = Vec::new();
    for (i, trak) in moov.trak.iter().enumerate() {
        let stbl = &trak.mdia.minf.stbl;
        let stco = stbl.stco.as_ref().expect("stco below 4 GiB");
        assert!(stbl.co64.is_none());
        println!(
            "{}: {} samples, stts {} entries, ctts {} entries, stsc {} entries, {} chunks",
            long[i].name,
            samples[i],
            stbl.stts.entries.len(),
            stbl.ctts.as_ref().map_or(0, |c| c.entries.len()),
            stbl.stsc.entries.len(),
            stco.entries.len()
        );
        // Constant durations: one run, plus at most two per copy (the clip's last sample
        // may be shorter).
        assert!(
            stbl.stts.entries.len() <= 1 + 2 * COPIES,
            "stts not run-length"
        );
        let n: u32 = stbl.stts.entries.iter().map(|e| e.sample_count).sum();
        assert_eq!(n as usize, samples[i]);
        // About one chunk per second.
        assert!(
            (295..=310).contains(&stco.entries.len()),
            "{} chunks",
            stco.entries.len()
        );
        chunk_starts.extend(stco.entries.iter().map(|&o| (o, i)));
    }
    // 4 bytes per sample (stsz), 8 per B-frame run (ctts), little else.
    let ctts = moov.trak[0]
        .mdia
        .minf
        .stbl
        .ctts
        .as_ref()
        .map_or(0, |c| c.entries.len());
    let budget = 4 * total + 8 * ctts + 16 * 1024;
    println!(
        "moov {moov_len} bytes for {total} samples ({:.2} bytes/sample, budget {budget}); \
         file {} bytes; export laid out in {took:?}",
        moov_len as f64 / total as f64,
        mp4.len()
    );
    assert!((moov_len as usize) < budget, "moov {moov_len} bytes");
    // Interleaved: in file order, no track has more than two chunks in a row.
    chunk_starts.sort();
    let longest = chunk_starts
        .chunk_by(|a, b| a.1 == b.1)
        .map(<[_]>::len)
        .max()
        .unwrap();
    assert!(longest <= 2, "{longest} chunks of one track in a row");

    // ffprobe: 5 minutes, every packet.
    let ours = streams(&path);
    assert_eq!(ours.len(), 2);
    let video_s = ours[0].duration_s.unwrap();
    println!(
        "video {video_s:.3} s, audio {:.3} s",
        ours[1].duration_s.unwrap()
    );
    assert!((video_s - 300.0).abs() < 0.05, "{video_s}");
    assert_eq!(packets(&path, "v:0").packets.len(), samples[0]);
    assert_eq!(packets(&path, "a:0").packets.len(), samples[1]);

    // Seek to the last copy: decodes the clip's first frames.
    let out = Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-ss", "290", "-i"])
        .arg(&path)
        .args(["-map", "0:v:0", "-frames:v", "5", "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seeked = md5_column(&out.stdout);
    let clip_file = dir.join("v1.mp4");
    fs::write(&clip_file, clip[0].file()).unwrap();
    let first = framemd5(&clip_file, "0");
    assert_eq!(seeked, first[..5].to_vec(), "frames after a seek to 290 s");
}

/// Past 4 GiB: 100 AAC samples of 64 MiB (one fragment repeated, `tfdt` renamed `free`),
/// written as a sparse file; ffprobe reads the 64-bit `mdat` size and the `co64` offsets.
#[test]
fn co64_past_4_gib_in_ffprobe() {
    const SAMPLE: usize = 64 << 20;
    let scale = Timescale::new(48_000).unwrap();
    let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
    let track = TrackInfo::new(1, scale, CodecConfig::Aac(aac));
    let mut w = Fmp4Writer::new(track.clone()).unwrap();
    let mut init = BytesMut::new();
    w.init_segment(&mut init).unwrap();
    let f = Frame::new(
        1,
        Timestamp::new(0, scale),
        Timestamp::new(0, scale),
        Bytes::from(vec![0u8; SAMPLE]),
    )
    .with_flags(FrameFlags::KEYFRAME);
    let mut seg = BytesMut::new();
    w.media_segment(&[f], 1, Some(Timestamp::new(1024, scale)), &mut seg)
        .unwrap();
    let first = seg.clone().freeze();
    let at = seg.windows(4).position(|w| w == b"tfdt").unwrap();
    seg[at..at + 4].copy_from_slice(b"free");
    let next = seg.freeze();

    let mut opts = Mp4ExportOptions::default();
    opts.payloads = PayloadMode::Refer;
    let mut e = Mp4Export::new(opts).unwrap();
    let t = e.add_track(init.freeze()).unwrap();
    e.push_fragment(t, first).unwrap();
    for _ in 1..100 {
        e.push_fragment(t, next.clone()).unwrap();
    }
    let mp4 = e.finish().unwrap();
    assert!(mp4.co64());
    assert_eq!(mp4.len(), mp4.header_len() as u64 + 100 * SAMPLE as u64);

    // The header, then a hole: the samples are zeros on disk without taking space.
    let dir = TempDir::new("mp4-export-co64");
    let path = dir.join("big.mp4");
    let ExportPart::Data(header) = &mp4.parts()[0] else {
        panic!("header first")
    };
    fs::write(&path, header).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(mp4.len())
        .unwrap();
    let top = top_level(&path);
    let kinds: Vec<&str> = top.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(kinds, ["ftyp", "moov", "mdat"]);
    assert!(top[2].2 > u64::from(u32::MAX), "64-bit mdat size");
    let (moov, _) = moov_of(&path);
    let co64 = moov.trak[0]
        .mdia
        .minf
        .stbl
        .co64
        .as_ref()
        .expect("co64")
        .entries
        .clone();
    assert!(*co64.last().unwrap() > u64::from(u32::MAX));

    let f = ffprobe_flat(&path, &["-show_streams"]);
    assert_eq!(f.str("streams.stream.0.codec_name"), "aac");
    assert_eq!(f.i64("streams.stream.0.nb_frames"), 100);
    // Packets past 4 GiB where co64 says: seek to the last chunk.
    let out = Command::new(tool("ffprobe"))
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-read_intervals",
            "2.0%+#2",
        ])
        .args(["-show_entries", "packet=pos", "-of", "csv=p=0"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let pos: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split(',').next()?.trim().parse().ok())
        .collect();
    println!("co64 {:?}; packets after a seek to 2 s at {pos:?}", co64);
    assert!(!pos.is_empty(), "{text}");
    // Samples 93 and 94 (1.984 s and 2.005 s): the second starts the third chunk.
    let sample = |k: u64| mp4.header_len() as u64 + k * SAMPLE as u64;
    assert_eq!(pos, [sample(93), sample(94)]);
    assert_eq!(co64.last(), Some(&sample(94)));
}
