//! Export of stored CMAF fragments as one progressive MP4
//! (`strom::container::mp4::Mp4Export`).
//!
//! (a) The raw input as an init segment, and as a fragment pushed to valid H.264 and AAC
//! tracks: `Ok` or `Err`, never a panic; a failed push leaves the export as it was; what
//! was accepted finishes into a file whose parts add up, which the progressive reader
//! reads or refuses without panicking.
//! (b) A round trip: one or two tracks (H.264, H.265 or AAC; id and timescale from the
//! input), frames (composition offsets, key flags, 4-byte length-prefixed NAL units)
//! written as fragments with `Fmp4Writer`, some moved a few ticks (a gap or overlap the
//! timeline slack may absorb), pushed interleaved, exported in `Keep` and `Refer` mode
//! with a chunk duration from the input. `Refer` parts resolved from the fragments give
//! the `Keep` bytes; the file is `ftyp` + `moov` + `mdat`; `Mp4Demuxer` reads back every
//! accepted sample: payload, key flag, decode times relative to the first as the
//! fragments state them, durations up to the next decode time, presentation times one
//! constant shift from the fragments', each track starting as much after the earliest
//! as in the fragments (within a tick of rounding).
//! (c) Truncated, byte-flipped or extreme-valued copies of the fragments pushed first:
//! `Ok` or `Err`, never a panic; an `Err` changes nothing.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strom::bitstream::aac::build_asc;
use strom::container::fmp4::{Fmp4Reader, Fmp4Writer};
use strom::container::mp4::{
    ExportPart, ExportedMp4, Mp4Demuxer, Mp4Export, Mp4ExportOptions, PayloadMode,
};
use strom::media::{
    AacConfig, CodecConfig, Event, Frame, FrameFlags, H264Config, H265Config, Item, MediaKind,
    TrackInfo,
};
use strom::time::{Timescale, Timestamp};

#[path = "shared/params.rs"]
mod params;
use params::{HVCC, PPS, SPS};

#[path = "shared/input.rs"]
mod input;
use input::Input;

/// Fragments per track, frames per fragment: small so each run is fast.
const MAX_FRAGMENTS: usize = 6;
const MAX_FRAMES: usize = 30;

fn scale(hz: u32) -> Timescale {
    Timescale::new(hz.max(1)).expect("non-zero")
}

fn h264() -> CodecConfig {
    CodecConfig::H264(
        H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
            .expect("constant SPS/PPS parse"),
    )
}

fn aac(sel: u8) -> CodecConfig {
    CodecConfig::Aac(
        AacConfig::from_asc(build_asc(2, (sel >> 2) % 12, 1 + (sel >> 6)))
            .expect("ASC built from fields parses"),
    )
}

/// A valid track: codec, timescale from the input.
fn track(inp: &mut Input, id: u32) -> TrackInfo {
    let sel = inp.u8();
    let hz = match inp.u8() % 4 {
        0 => 90_000,
        1 => 48_000,
        2 => 1000,
        _ => u32::from(inp.u16()) + 1,
    };
    let config = match sel % 3 {
        0 => h264(),
        1 => CodecConfig::H265(H265Config::from_hvcc(Bytes::from_static(HVCC)).expect("hvcC")),
        _ => aac(sel),
    };
    TrackInfo::new(id, scale(hz), config)
}

fn init_of(track: &TrackInfo) -> Bytes {
    let mut out = BytesMut::new();
    Fmp4Writer::new(track.clone())
        .expect("valid track")
        .init_segment(&mut out)
        .expect("init segment");
    out.freeze()
}

/// A payload; for video, 4-byte length-prefixed NAL units.
fn payload(inp: &mut Input, video: bool, seed: u32) -> Bytes {
    let mut out = BytesMut::new();
    if video {
        for _ in 0..1 + inp.u8() % 3 {
            let len = 1 + usize::from(inp.u8());
            out.put_u32(len as u32);
            out.extend((0..len).map(|i| (i as u32 ^ seed) as u8));
        }
    } else {
        let len = usize::from(inp.u8()) * 3;
        out.extend((0..len).map(|i| (i as u32 ^ seed.rotate_left(3)) as u8));
    }
    out.freeze()
}

/// Frames of one track cut into fragments (each a non-empty group), the later ones
/// moved by a few ticks now and then.
fn fragments(inp: &mut Input, track: &TrackInfo) -> Vec<Bytes> {
    let video = track.kind == MediaKind::Video;
    let s = track.timescale;
    let mut w = Fmp4Writer::new(track.clone()).expect("valid track");
    // Above the most negative composition offset (pts must not be negative).
    let mut dts: i64 = 400 + i64::from(inp.u16());
    let mut seed = track.id;
    let mut groups: Vec<Vec<Frame>> = Vec::new();
    for _ in 0..1 + inp.u8() as usize % MAX_FRAGMENTS {
        let mut frames = Vec::new();
        for i in 0..1 + inp.u8() as usize % MAX_FRAMES {
            let op = inp.u8();
            let cto = if video {
                i64::from(inp.u8() as i8) * 3
            } else {
                0
            };
            seed = seed.wrapping_add(0x9e37_79b9);
            let mut flags = FrameFlags::NONE;
            if i == 0 || op & 1 != 0 {
                flags = flags.union(FrameFlags::KEYFRAME);
            }
            frames.push(
                Frame::new(
                    track.id,
                    Timestamp::new(dts, s),
                    Timestamp::new(dts + cto, s),
                    payload(inp, video, seed),
                )
                .with_flags(flags)
                .with_duration(Timestamp::new(1 + i64::from(op >> 4), s)),
            );
            dts += 1 + i64::from(inp.u16() % 2048);
        }
        groups.push(frames);
    }
    // Each fragment ends where the next one was meant to start; some are then moved a
    // few ticks (both times, so offsets stay): a gap or overlap for the export.
    let ends: Vec<Option<Timestamp>> = (0..groups.len())
        .map(|n| groups.get(n + 1).map(|next| next[0].dts))
        .collect();
    for g in groups.iter_mut().skip(1) {
        let j = inp.u8();
        if j & 0xc0 == 0xc0 {
            let by = i64::from(j & 7) - 3;
            for f in g.iter_mut() {
                f.dts = f.dts.add_ticks(by);
                f.pts = f.pts.add_ticks(by);
            }
        }
    }
    let mut out = Vec::new();
    for (n, (g, &end)) in groups.iter().zip(&ends).enumerate() {
        // Only while the jitter keeps decode times increasing and non-negative.
        let mut seg = BytesMut::new();
        match w.media_segment(g, n as u32 + 1, end, &mut seg) {
            Ok(_) => out.push(seg.freeze()),
            Err(_) => break,
        }
    }
    out
}

/// Mutations of a fragment: truncated, flipped, a field set to an extreme value.
fn mutate(inp: &mut Input, seg: &[u8]) -> Option<Bytes> {
    if seg.is_empty() {
        return None;
    }
    let mut m = seg.to_vec();
    match inp.u8() % 4 {
        0 => return None,
        1 => m.truncate(usize::from(inp.u16()) % seg.len()),
        2 => {
            for _ in 0..1 + inp.u8() % 4 {
                let at = usize::from(inp.u16()) % m.len();
                m[at] ^= inp.u8() | 1;
            }
        }
        _ => {
            let at = usize::from(inp.u16()) % m.len();
            let v = [0u8, 0xff, 0x7f, 0x80][usize::from(inp.u8() % 4)];
            for b in m.iter_mut().skip(at).take(4) {
                *b = v;
            }
        }
    }
    Some(Bytes::from(m))
}

/// Checks the parts of an export and returns the file.
fn file_of(mp4: &ExportedMp4, frags: &[Vec<Bytes>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(mp4.len() as usize);
    for (i, p) in mp4.parts().iter().enumerate() {
        assert!(!p.is_empty(), "empty part {i}");
        match p {
            ExportPart::Data(b) => out.extend_from_slice(b),
            &ExportPart::Fragment {
                track,
                fragment,
                offset,
                len,
            } => {
                let f = &frags[track][fragment as usize];
                out.extend_from_slice(&f[offset as usize..(offset + len) as usize]);
            }
            other => panic!("unknown part {other:?}"),
        }
    }
    assert_eq!(out.len() as u64, mp4.len());
    assert!(
        matches!(mp4.parts().first(), Some(ExportPart::Data(h)) if h.len() == mp4.header_len())
    );
    out
}

/// Frames of every track of a progressive file, and the tracks.
fn demux(file: Bytes) -> (Vec<TrackInfo>, Vec<Frame>) {
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    for item in Mp4Demuxer::read_all(file).expect("the export reads back") {
        match item {
            Item::Frame(f) => frames.push(f),
            Item::Event(Event::TrackAdded(t)) => tracks.push(t),
            _ => {}
        }
    }
    (tracks, frames)
}

/// `ticks` of `scale` in nanoseconds, rounded down.
fn ns(ticks: i64, scale: Timescale) -> i128 {
    (i128::from(ticks) * 1_000_000_000).div_euclid(i128::from(scale.get()))
}

fuzz_target!(|data: &[u8]| {
    let raw = Bytes::copy_from_slice(data);
    let mut inp = Input(data);
    let mut opts = Mp4ExportOptions::default();
    opts.max_samples = 100_000;
    opts.chunk_duration = Timestamp::from_millis(1 + i64::from(inp.u16() % 2000));
    opts.timeline_slack = Timestamp::from_millis(i64::from(inp.u8() % 20));

    // (a) Raw bytes as an init segment and as a fragment of valid tracks.
    let mut e = Mp4Export::new(opts.clone()).expect("valid options");
    if let Ok(t) = e.add_track(raw.clone()) {
        let _ = e.push_fragment(t, raw.clone());
    }
    let mut e = Mp4Export::new(opts.clone()).expect("valid options");
    let video = TrackInfo::new(1, Timescale::MPEG, h264());
    let audio = TrackInfo::new(2, scale(48_000), aac(0x12));
    let tv = e.add_track(init_of(&video)).expect("own init");
    let ta = e.add_track(init_of(&audio)).expect("own init");
    for t in [tv, ta] {
        let before = e.samples();
        if e.push_fragment(t, raw.clone()).is_err() {
            assert_eq!(e.samples(), before);
        }
    }
    if let Ok(mp4) = e.finish() {
        let file = Bytes::from(file_of(&mp4, &[Vec::new(), Vec::new()]));
        let _ = Mp4Demuxer::read_all(file);
    }

    // (b) The round trip.
    let n = 1 + usize::from(inp.u8() % 2);
    let tracks: Vec<TrackInfo> = (0..n).map(|i| track(&mut inp, i as u32 + 1)).collect();
    let frags: Vec<Vec<Bytes>> = tracks.iter().map(|t| fragments(&mut inp, t)).collect();
    let mut keep = Mp4Export::new(opts.clone()).expect("valid options");
    let mut refer_opts = opts.clone();
    refer_opts.payloads = PayloadMode::Refer;
    let mut refer = Mp4Export::new(refer_opts).expect("valid options");
    for t in &tracks {
        assert_eq!(
            keep.add_track(init_of(t)).expect("own init"),
            t.id as usize - 1
        );
        refer.add_track(init_of(t)).expect("own init");
    }
    // Accepted fragments per track (in Refer mode, a failed push takes no number).
    let mut accepted: Vec<Vec<Bytes>> = vec![Vec::new(); n];
    let mut stopped = vec![false; n];
    let most = frags.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..most {
        for (t, f) in frags.iter().enumerate() {
            let Some(f) = f.get(i) else { continue };
            if stopped[t] {
                continue;
            }
            // (c) A mutated copy first: an error changes nothing; a success is undone.
            if let Some(m) = mutate(&mut inp, f) {
                let before = keep.clone();
                match keep.push_fragment(t, m) {
                    Err(_) => {
                        assert_eq!(keep.samples(), before.samples());
                        assert_eq!(keep.clone().finish().ok(), before.clone().finish().ok());
                    }
                    Ok(()) => keep = before,
                }
            }
            match (
                keep.push_fragment(t, f.clone()),
                refer.push_fragment(t, f.clone()),
            ) {
                (Ok(()), Ok(())) => accepted[t].push(f.clone()),
                (Err(a), Err(b)) => {
                    assert_eq!(a, b);
                    // A gap or overlap beyond the slack: the track ends here.
                    stopped[t] = true;
                }
                (a, b) => panic!("Keep and Refer disagree: {a:?} {b:?}"),
            }
        }
    }
    let (Ok(kept), Ok(referred)) = (keep.finish(), refer.finish()) else {
        // Only a track without any accepted fragment makes finish fail here.
        assert!(accepted.iter().any(Vec::is_empty));
        return;
    };
    let file = file_of(&kept, &accepted);
    assert_eq!(
        file_of(&referred, &accepted),
        file,
        "Refer parts resolve to the Keep file"
    );
    let mut kinds = Vec::new();
    let mut at = 0usize;
    while at < file.len() {
        let h = strom::container::mp4::scan_box_header(&file[at..])
            .expect("box header")
            .expect("whole header");
        kinds.push(h.kind);
        at += h.size.expect("sized box") as usize;
    }
    assert_eq!(kinds, [*b"ftyp", *b"moov", *b"mdat"]);

    let (read_tracks, frames) = demux(Bytes::from(file));
    assert_eq!(read_tracks.len(), n);
    // Per track: what the fragments state, and the presentation start.
    let mut starts = Vec::new();
    for (t, info) in tracks.iter().enumerate() {
        assert_eq!(read_tracks[t].config, info.config);
        let mut r = Fmp4Reader::new(init_of(info)).expect("own init");
        let want: Vec<Frame> = accepted[t]
            .iter()
            .flat_map(|f| r.read_segment(f.clone()).expect("accepted fragment reads"))
            .collect();
        let got: Vec<&Frame> = frames.iter().filter(|f| f.track == info.id).collect();
        assert_eq!(got.len(), want.len(), "track {}", info.id);
        assert_eq!(got.len() as u32, kept.tracks()[t].samples);
        let shift = got[0].pts.ticks() - want[0].pts.ticks();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.data, w.data, "payload {i}");
            assert_eq!(g.is_keyframe(), w.is_keyframe(), "key flag {i}");
            assert_eq!(
                g.dts.ticks() - got[0].dts.ticks(),
                w.dts.ticks() - want[0].dts.ticks(),
                "decode time {i}"
            );
            assert_eq!(
                g.pts.ticks() - w.pts.ticks(),
                shift,
                "presentation time {i}"
            );
            let until_next = match want.get(i + 1) {
                Some(n) => n.dts.ticks() - w.dts.ticks(),
                None => w.duration.expect("duration").ticks(),
            };
            assert_eq!(
                g.duration.map(|d| d.ticks()),
                Some(until_next),
                "duration {i}"
            );
        }
        let first_shown =
            |v: &mut dyn Iterator<Item = &Frame>| v.map(|f| f.pts.ticks()).min().expect("frames");
        let s = info.timescale;
        starts.push((
            ns(first_shown(&mut got.iter().copied()), s),
            ns(first_shown(&mut want.iter()), s),
            // A tick of the track and of the movie timescale, and rounding to ns.
            ns(1, s) + ns(1, kept.movie_timescale()) + 2,
        ));
    }
    let earliest = starts.iter().map(|s| s.1).min().expect("tracks");
    for (got, want, tolerance) in starts {
        let want = want - earliest;
        assert!(
            (got - want).abs() <= tolerance,
            "start {got} ns, fragments {want} ns"
        );
    }
});
