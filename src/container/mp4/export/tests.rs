//! Unit tests of the export: round trips through `Mp4Demuxer`, hostile fragments,
//! limits, `co64`.

use super::*;
use crate::bitstream::test_vectors::{PPS_720P as PPS, SPS_720P as SPS};
use crate::container::fmp4::{write_protected_init_segment, Fmp4Writer, ProtectionInfo};
use crate::container::mp4::Mp4Demuxer;
use crate::crypto::KeyId;
use crate::media::{AacConfig, CodecConfig, Frame, FrameFlags, H264Config, Item};
use crate::ErrorKind;

const V: u32 = 1;
const A: u32 = 2;

fn video_track() -> TrackInfo {
    let cfg =
        H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap();
    TrackInfo::new(V, Timescale::MPEG, CodecConfig::H264(cfg))
}

fn audio_track() -> TrackInfo {
    let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
    TrackInfo::new(A, Timescale::new(48_000).unwrap(), CodecConfig::Aac(aac)).with_language("fra")
}

fn init_of(track: &TrackInfo) -> Bytes {
    let mut out = BytesMut::new();
    Fmp4Writer::new(track.clone())
        .unwrap()
        .init_segment(&mut out)
        .unwrap();
    out.freeze()
}

/// One NAL unit of `len` bytes (4-byte length prefix), its bytes from `seed`.
fn nal(kind: u8, len: usize, seed: usize) -> Bytes {
    let mut v = (len as u32).to_be_bytes().to_vec();
    v.push(kind);
    v.extend((1..len).map(|i| (i * 7 + seed) as u8));
    Bytes::from(v)
}

/// `gops` closed GOPs of 1 + 3m frames at 25 fps (90 kHz), decode order I P B B P B B
/// ..., composition offsets behind two B-frames, decode times from `dts0`.
fn video_frames(gops: usize, m: usize, dts0: i64) -> Vec<Vec<Frame>> {
    let s = Timescale::MPEG;
    let g = 1 + 3 * m;
    let mut out = Vec::new();
    for gop in 0..gops {
        let mut frames = Vec::new();
        for j in 0..g {
            let i = gop * g + j;
            let disp = match j {
                0 => 0,
                j => {
                    let (k, r) = ((j - 1) / 3, (j - 1) % 3);
                    [3 * k + 3, 3 * k + 1, 3 * k + 2][r]
                }
            };
            let dts = dts0 + i as i64 * 3600;
            let pts = dts0 + ((gop * g + disp) as i64) * 3600 + 7200;
            let key = j == 0;
            let data = nal(if key { 0x65 } else { 0x41 }, 20 + (i * 13) % 200, i);
            frames.push(
                Frame::new(V, Timestamp::new(dts, s), Timestamp::new(pts, s), data).with_flags(
                    if key {
                        FrameFlags::KEYFRAME
                    } else {
                        FrameFlags::NONE
                    },
                ),
            );
        }
        out.push(frames);
    }
    out
}

/// `n` fragments of `per` AAC frames (1024 ticks at 48 kHz) from `dts0`.
fn audio_frames(n: usize, per: usize, dts0: i64) -> Vec<Vec<Frame>> {
    let s = Timescale::new(48_000).unwrap();
    (0..n)
        .map(|f| {
            (0..per)
                .map(|j| {
                    let i = f * per + j;
                    let t = Timestamp::new(dts0 + i as i64 * 1024, s);
                    let data = Bytes::from(vec![(i % 251) as u8; 6 + i % 300]);
                    Frame::new(A, t, t, data).with_flags(FrameFlags::KEYFRAME)
                })
                .collect()
        })
        .collect()
}

/// Each group of frames as one fragment, ending where the next group starts (the
/// last lasts its previous sample's duration).
fn write(track: &TrackInfo, groups: &[Vec<Frame>]) -> Vec<Bytes> {
    let mut w = Fmp4Writer::new(track.clone()).unwrap();
    let mut out = Vec::new();
    for (i, frames) in groups.iter().enumerate() {
        let end = groups.get(i + 1).map(|g| g[0].dts);
        let mut seg = BytesMut::new();
        w.media_segment(frames, i as u32 + 1, end, &mut seg)
            .unwrap();
        out.push(seg.freeze());
    }
    out
}

/// What the fragments' reader returns, track by track.
fn read_fragments(init: &Bytes, fragments: &[Bytes]) -> Vec<Frame> {
    let mut r = Fmp4Reader::new(init.clone()).unwrap();
    fragments
        .iter()
        .flat_map(|f| r.read_segment(f.clone()).unwrap())
        .collect()
}

fn demux(file: Bytes) -> (Vec<TrackInfo>, Vec<Frame>) {
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    for item in Mp4Demuxer::read_all(file).unwrap() {
        match item {
            Item::Frame(f) => frames.push(f),
            Item::Event(crate::media::Event::TrackAdded(t)) => tracks.push(t),
            _ => {}
        }
    }
    (tracks, frames)
}

/// Top-level boxes of `file`: (type, offset, size).
fn top_level(file: &[u8]) -> Vec<([u8; 4], usize, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < file.len() {
        let h = scan_box(&file[at..]);
        out.push((h.0, at, h.1));
        at += h.1 as usize;
    }
    out
}

fn scan_box(b: &[u8]) -> ([u8; 4], u64) {
    let h = crate::container::mp4::scan_box_header(b).unwrap().unwrap();
    (h.kind, h.size.unwrap())
}

struct Sample {
    video: (Bytes, Vec<Bytes>),
    audio: (Bytes, Vec<Bytes>),
}

/// 12 s of video (GOPs of 2 s... 0.52 s) and audio, audio starting 58.67 ms in, video
/// presenting from 80 ms: what the CMAF packager stores for an FFmpeg MP4.
fn sample() -> Sample {
    let v = video_track();
    let a = audio_track();
    let vf = write(&v, &video_frames(23, 4, 0));
    let af = write(&a, &audio_frames(12, 47, 2816));
    Sample {
        video: (init_of(&v), vf),
        audio: (init_of(&a), af),
    }
}

fn export(s: &Sample, opts: Mp4ExportOptions) -> ExportedMp4 {
    let mut e = Mp4Export::new(opts).unwrap();
    let tv = e.add_track(s.video.0.clone()).unwrap();
    let ta = e.add_track(s.audio.0.clone()).unwrap();
    // Interleaved pushes, as a host reading two folders might.
    let n = s.video.1.len().max(s.audio.1.len());
    for i in 0..n {
        if let Some(f) = s.video.1.get(i) {
            e.push_fragment(tv, f.clone()).unwrap();
        }
        if let Some(f) = s.audio.1.get(i) {
            e.push_fragment(ta, f.clone()).unwrap();
        }
    }
    e.finish().unwrap()
}

#[test]
fn round_trip_keeps_samples_times_and_sync() {
    let s = sample();
    let mp4 = export(&s, Mp4ExportOptions::default());
    let file = mp4.to_bytes().unwrap();
    assert_eq!(file.len() as u64, mp4.len());
    // ftyp, moov, mdat: faststart, nothing else.
    let top = top_level(&file);
    let kinds: Vec<[u8; 4]> = top.iter().map(|b| b.0).collect();
    assert_eq!(kinds, [*b"ftyp", *b"moov", *b"mdat"]);
    assert_eq!(top[2].1 + 8, mp4.header_len());
    assert!(!mp4.co64());
    assert_eq!(mp4.movie_timescale().get(), 720_000);

    let (tracks, frames) = demux(file);
    assert_eq!(tracks.len(), 2);
    assert_eq!((tracks[0].id, tracks[1].id), (V, A));
    assert_eq!(tracks[0].config, video_track().config);
    assert_eq!(tracks[1].config, audio_track().config);
    assert_eq!(tracks[1].language.as_deref(), Some("fra"));
    for (id, (init, frags), delay) in [(V, &s.video, 1920i64), (A, &s.audio, 0)] {
        let want = read_fragments(init, frags);
        let got: Vec<&Frame> = frames.iter().filter(|f| f.track == id).collect();
        assert_eq!(got.len(), want.len(), "track {id}");
        // One constant shift: the fragments' timeline minus the movie start (58.67 ms).
        let shift = got[0].dts.ticks() - want[0].dts.ticks();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.data, w.data);
            assert_eq!(g.is_keyframe(), w.is_keyframe());
            assert_eq!(g.duration, w.duration);
            assert_eq!(g.dts.ticks() - w.dts.ticks(), shift);
            assert_eq!(g.pts.ticks() - w.pts.ticks(), shift);
        }
        let first_shown = got.iter().map(|f| f.pts.ticks()).min().unwrap();
        assert_eq!(first_shown, delay, "track {id}: presentation start");
    }
    let v = &mp4.tracks()[0];
    assert_eq!((v.track_id, v.samples), (V, 23 * 13));
    assert_eq!(v.delay, Timestamp::new(15_360, mp4.movie_timescale()));
    assert_eq!(v.media_time, Timestamp::new(7200, Timescale::MPEG));
    // About one chunk per second per track.
    assert!((11..=13).contains(&v.chunks), "{v:?}");
    let a = &mp4.tracks()[1];
    assert_eq!(
        (a.samples, a.delay.ticks(), a.media_time.ticks()),
        (564, 0, 0)
    );
    assert!((11..=13).contains(&a.chunks), "{a:?}");
}

#[test]
fn chunks_interleave_by_decode_time() {
    let s = sample();
    let mp4 = export(&s, Mp4ExportOptions::default());
    // Parts after the header alternate between the tracks' fragments: each part is
    // one chunk (a fragment holds about half a second of video, so a video chunk
    // spans two or three fragments' data, merged per fragment).
    let video_ptrs: Vec<(usize, usize)> = s
        .video
        .1
        .iter()
        .map(|f| (f.as_ptr() as usize, f.as_ptr() as usize + f.len()))
        .collect();
    let is_video = |b: &Bytes| {
        let p = b.as_ptr() as usize;
        video_ptrs.iter().any(|r| r.0 <= p && p < r.1)
    };
    let kinds: Vec<bool> = mp4.parts()[1..]
        .iter()
        .map(|p| match p {
            ExportPart::Data(b) => is_video(b),
            other => panic!("{other:?}"),
        })
        .collect();
    let switches = kinds.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches >= 20, "{switches} switches: {kinds:?}");
    assert!(mp4.parts().iter().all(|p| !p.is_empty()));
}

#[test]
fn refer_mode_names_the_same_bytes() {
    let s = sample();
    let kept = export(&s, Mp4ExportOptions::default()).to_bytes().unwrap();
    let opts = Mp4ExportOptions {
        payloads: PayloadMode::Refer,
        ..Mp4ExportOptions::default()
    };
    let referred = export(&s, opts);
    let e = referred.to_bytes().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    let mut file = Vec::new();
    for p in referred.parts() {
        match p {
            ExportPart::Data(b) => file.extend_from_slice(b),
            &ExportPart::Fragment {
                track,
                fragment,
                offset,
                len,
            } => {
                let frags = if track == 0 { &s.video.1 } else { &s.audio.1 };
                let f = &frags[fragment as usize];
                file.extend_from_slice(&f[offset as usize..(offset + len) as usize]);
            }
        }
    }
    assert_eq!(file, kept);
}

#[test]
fn small_gaps_and_overlaps_go_to_the_previous_sample() {
    let a = audio_track();
    let mut groups = audio_frames(3, 10, 0);
    // The second fragment starts 3 ticks late, the third 2 ticks early.
    for (g, by) in [(1, 3i64), (2, 1)] {
        for f in &mut groups[g] {
            f.dts = f.dts.add_ticks(by);
            f.pts = f.pts.add_ticks(by);
        }
    }
    // Written without `end`: each fragment's last sample lasts 1024.
    let mut w = Fmp4Writer::new(a.clone()).unwrap();
    let frags: Vec<Bytes> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut out = BytesMut::new();
            w.media_segment(g, i as u32 + 1, None, &mut out).unwrap();
            out.freeze()
        })
        .collect();
    let mut e = Mp4Export::new(Mp4ExportOptions::default()).unwrap();
    let t = e.add_track(init_of(&a)).unwrap();
    for f in &frags {
        e.push_fragment(t, f.clone()).unwrap();
    }
    let (_, got) = demux(e.finish().unwrap().to_bytes().unwrap());
    let want = read_fragments(&init_of(&a), &frags);
    let dts = |v: &[Frame]| v.iter().map(|f| f.dts.ticks()).collect::<Vec<_>>();
    assert_eq!(dts(&got), dts(&want));
    assert_eq!(got[9].duration.unwrap().ticks(), 1027);
    assert_eq!(got[19].duration.unwrap().ticks(), 1022);

    // Beyond the slack: typed errors, nothing changes.
    let opts = Mp4ExportOptions {
        timeline_slack: Timestamp::zero(Timescale::MILLIS),
        ..Mp4ExportOptions::default()
    };
    let mut e = Mp4Export::new(opts).unwrap();
    let t = e.add_track(init_of(&a)).unwrap();
    e.push_fragment(t, frags[0].clone()).unwrap();
    let err = e.push_fragment(t, frags[1].clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert!(err.to_string().contains("gap"), "{err}");
    assert_eq!(e.samples(), 10);
}

#[test]
fn hostile_fragments_are_typed_errors_and_change_nothing() {
    let s = sample();
    let mut e = Mp4Export::new(Mp4ExportOptions::default()).unwrap();
    let tv = e.add_track(s.video.0.clone()).unwrap();
    let ta = e.add_track(s.audio.0.clone()).unwrap();
    e.push_fragment(tv, s.video.1[0].clone()).unwrap();
    e.push_fragment(ta, s.audio.1[0].clone()).unwrap();
    let before = e.clone().finish().unwrap();
    let kind = |e: &mut Mp4Export, t: usize, f: Bytes| e.push_fragment(t, f).unwrap_err();

    // A fragment of another track.
    let err = kind(&mut e, tv, s.audio.1[1].clone());
    assert_eq!(err.kind(), ErrorKind::Malformed);
    // A gap (a fragment skipped) and an overlap (one pushed again).
    let err = kind(&mut e, tv, s.video.1[2].clone());
    assert!(err.to_string().contains("gap"), "{err}");
    let err = kind(&mut e, ta, s.audio.1[0].clone());
    assert!(err.to_string().contains("overlap"), "{err}");
    // A box that lies about its size; a truncated fragment.
    let f = s.video.1[1].to_vec();
    let moof = f.windows(4).position(|w| w == b"moof").unwrap() - 4;
    let mut lie = f.clone();
    lie[moof..moof + 4].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
    assert_eq!(
        kind(&mut e, tv, Bytes::from(lie)).kind(),
        ErrorKind::Malformed
    );
    let cut = Bytes::from(f[..f.len() - 5].to_vec());
    assert_eq!(kind(&mut e, tv, cut).kind(), ErrorKind::Malformed);
    // A sample count beyond its trun.
    let trun = f.windows(4).position(|w| w == b"trun").unwrap();
    let mut many = f.clone();
    many[trun + 8..trun + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(kind(&mut e, tv, Bytes::from(many)).kind(), ErrorKind::Limit);
    // An unknown track index.
    assert_eq!(
        kind(&mut e, 7, s.video.1[1].clone()).kind(),
        ErrorKind::Usage
    );
    assert_eq!(e.clone().finish().unwrap(), before);
    // And the next real fragment still fits.
    e.push_fragment(tv, s.video.1[1].clone()).unwrap();
}

#[test]
fn limits_and_refusals() {
    let s = sample();
    // max_samples counts all tracks.
    let opts = Mp4ExportOptions {
        max_samples: 60,
        ..Mp4ExportOptions::default()
    };
    let mut e = Mp4Export::new(opts).unwrap();
    let ta = e.add_track(s.audio.0.clone()).unwrap();
    e.push_fragment(ta, s.audio.1[0].clone()).unwrap();
    let err = e.push_fragment(ta, s.audio.1[1].clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit);
    assert_eq!(e.samples(), 47);

    // Protected init segments, media segments as init segments, bad options.
    let mut prot = BytesMut::new();
    let info = ProtectionInfo::cenc(KeyId([7; 16]));
    write_protected_init_segment(&video_track(), &info, &mut prot).unwrap();
    let mut e = Mp4Export::new(Mp4ExportOptions::default()).unwrap();
    let err = e.add_track(prot.freeze()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(e.add_track(s.audio.1[0].clone()).is_err());
    assert!(e.add_track(Bytes::from_static(b"\0\0\0\x09moov")).is_err());
    assert_eq!(e.track_count(), 0);
    let bad = Mp4ExportOptions {
        chunk_duration: Timestamp::zero(Timescale::MILLIS),
        ..Mp4ExportOptions::default()
    };
    assert_eq!(Mp4Export::new(bad).unwrap_err().kind(), ErrorKind::Usage);

    // finish: no tracks, a track without samples.
    let e = Mp4Export::new(Mp4ExportOptions::default()).unwrap();
    assert_eq!(e.finish().unwrap_err().kind(), ErrorKind::Usage);
    let mut e = Mp4Export::new(Mp4ExportOptions::default()).unwrap();
    e.add_track(s.audio.0.clone()).unwrap();
    assert_eq!(e.finish().unwrap_err().kind(), ErrorKind::Usage);

    // Track ids: a duplicate is renumbered.
    let mut e = Mp4Export::new(Mp4ExportOptions::default()).unwrap();
    let t1 = e.add_track(s.audio.0.clone()).unwrap();
    let t2 = e.add_track(s.audio.0.clone()).unwrap();
    e.push_fragment(t1, s.audio.1[0].clone()).unwrap();
    e.push_fragment(t2, s.audio.1[0].clone()).unwrap();
    let mp4 = e.finish().unwrap();
    let ids: Vec<u32> = mp4.tracks().iter().map(|t| t.track_id).collect();
    assert_eq!(ids, [A, A + 1]);
    let (tracks, frames) = demux(mp4.to_bytes().unwrap());
    assert_eq!(tracks.len(), 2);
    assert_eq!(frames.len(), 94);
}

/// Negative composition offsets (trun version 1): the edit starts at zero and
/// `ctts` is version 1 where an offset stays negative.
#[test]
fn negative_composition_offsets() {
    let v = video_track();
    let mut groups = video_frames(3, 2, 0);
    for f in groups.iter_mut().flatten() {
        f.pts = f.pts.add_ticks(-10_800);
    }
    let frags = write(&v, &groups);
    let mut e = Mp4Export::new(Mp4ExportOptions::default()).unwrap();
    let t = e.add_track(init_of(&v)).unwrap();
    for f in &frags {
        e.push_fragment(t, f.clone()).unwrap();
    }
    let mp4 = e.finish().unwrap();
    assert_eq!(mp4.tracks()[0].media_time.ticks(), 0);
    let file = mp4.to_bytes().unwrap();
    let ctts = file.windows(4).position(|w| w == b"ctts").unwrap();
    assert_eq!(file[ctts + 4], 1, "ctts version 1");
    let (_, got) = demux(file);
    let want = read_fragments(&init_of(&v), &frags);
    // Shown from 0, every frame at its offset from the first shown one.
    let min = |v: &[Frame]| v.iter().map(|f| f.pts.ticks()).min().unwrap();
    assert_eq!(min(&got), 0);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.pts.ticks(), w.pts.ticks() - min(&want));
        assert_eq!(g.data, w.data);
    }
}

/// A file past 4 GiB: `co64` and a 64-bit `mdat` size, without 4 GiB of memory (the
/// same 64 MiB fragment, its `tfdt` renamed `free` so each copy continues the last).
#[test]
fn co64_past_4_gib() {
    let a = audio_track();
    let s = a.timescale;
    let big = Bytes::from(vec![0x21; 64 << 20]);
    let f = Frame::new(A, Timestamp::new(0, s), Timestamp::new(0, s), big)
        .with_flags(FrameFlags::KEYFRAME);
    let mut seg = BytesMut::new();
    Fmp4Writer::new(a.clone())
        .unwrap()
        .media_segment(&[f], 1, Some(Timestamp::new(1024, s)), &mut seg)
        .unwrap();
    let first = seg.clone().freeze();
    let tfdt = seg.windows(4).position(|w| w == b"tfdt").unwrap();
    seg[tfdt..tfdt + 4].copy_from_slice(b"free");
    let next = seg.freeze();
    let mut e = Mp4Export::new(Mp4ExportOptions::default()).unwrap();
    let t = e.add_track(init_of(&a)).unwrap();
    e.push_fragment(t, first).unwrap();
    for _ in 0..99 {
        e.push_fragment(t, next.clone()).unwrap();
    }
    let mp4 = e.finish().unwrap();
    assert!(mp4.co64());
    assert_eq!(mp4.len(), mp4.header_len() as u64 + 100 * (64 << 20));
    let ExportPart::Data(header) = &mp4.parts()[0] else {
        panic!("header first")
    };
    let top = top_level(&header[..mp4.header_len() - 16]);
    assert_eq!(top.len(), 2);
    let mdat = &header[mp4.header_len() - 16..];
    assert_eq!(&mdat[..8], b"\0\0\0\x01mdat");
    assert_eq!(
        u64::from_be_bytes(mdat[8..16].try_into().unwrap()),
        16 + 100 * (64 << 20)
    );
    // 47 samples (1 s) per chunk: the third chunk starts past 4 GiB. Every offset is
    // where a chunk's part starts.
    let co = header.windows(4).position(|w| w == b"co64").unwrap();
    let n = u32::from_be_bytes(header[co + 8..co + 12].try_into().unwrap()) as usize;
    assert_eq!(n, mp4.tracks()[0].chunks as usize);
    let offsets: Vec<u64> = (0..n)
        .map(|i| {
            let at = co + 12 + 8 * i;
            u64::from_be_bytes(header[at..at + 8].try_into().unwrap())
        })
        .collect();
    let mut at = mp4.header_len() as u64;
    let mut expected = Vec::new();
    for p in &mp4.parts()[1..] {
        expected.push(at);
        at += p.len();
    }
    assert_eq!(n, 3);
    assert!(offsets.iter().all(|o| expected.contains(o)), "{offsets:?}");
    assert!(*offsets.last().unwrap() > u64::from(u32::MAX));
    // The stsc and stsz agree.
    let stsz = header.windows(4).position(|w| w == b"stsz").unwrap();
    assert_eq!(
        u32::from_be_bytes(header[stsz + 8..stsz + 12].try_into().unwrap()),
        64 << 20
    );
}

/// Samples of zero bytes (found by fuzzing): `stsz` lists them (a `sample_size` of 0
/// means a table follows), and they take no part of the file.
#[test]
fn empty_samples() {
    let a = audio_track();
    let mut groups = audio_frames(2, 5, 0);
    for f in groups.iter_mut().flatten() {
        f.data = Bytes::new();
    }
    let frags = write(&a, &groups);
    let mut e = Mp4Export::new(Mp4ExportOptions::default()).unwrap();
    let t = e.add_track(init_of(&a)).unwrap();
    for f in &frags {
        e.push_fragment(t, f.clone()).unwrap();
    }
    let mp4 = e.finish().unwrap();
    assert_eq!(mp4.parts().len(), 1);
    let (_, got) = demux(mp4.to_bytes().unwrap());
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|f| f.data.is_empty()));
    assert_eq!(got[9].dts.ticks(), 9 * 1024);
}
