//! Drives the fMP4/CMAF writer (`strom::container::fmp4::Fmp4Writer`) with a track and
//! sequences of fragments decoded from the input (H.264, H.265 or AAC; track timescale
//! and frame timescales vary; DTS steps, negative and positive composition offsets,
//! sizes, key and disposable flags, frame durations, fragment ends, sometimes a frame
//! of another track, a decreasing or negative DTS, or times near the 64-bit limits), and
//! checks after every call:
//! * nothing panics (including integer overflow with debug assertions);
//! * on `Err` nothing was appended to `out` (same length, same bytes);
//! * `Ok` exactly when a reference model of the input says the fragment is writable
//!   (non-empty, own track, decode times non-negative and non-decreasing, composition
//!   offsets in 32 bits, durations in 32 bits, last duration known);
//! * on `Ok` the appended bytes parse with `mp4-atom` box by box as `styp` + `moof` +
//!   `mdat`, nothing left over; `mfhd` holds the sequence; `tfhd` the track id; `tfdt`
//!   the first decode time in the track timescale; `trun` has one entry per frame with
//!   its size, duration, sync flag and composition offset; `data_offset` (from `moof`)
//!   lands on the first byte of the `mdat` body; `mdat` is the payloads concatenated;
//! * `FragmentInfo` agrees: `len` is the bytes appended, `moof_offset`/`data_offset`
//!   are where the boxes are, each sample's `offset`/`size` point at exactly that frame's
//!   payload in `out`, durations sum to `duration`;
//! * `media_segment_header` + the payloads appended by the caller gives the same checks;
//! * the init segment parses with `mp4-atom` as `ftyp` + `moov` with the track's id
//!   and timescale, and `Fmp4Writer::new` fails only for track id 0 or oversized pictures.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use mp4_atom::{Any, Decode};
use strom::bitstream::aac::build_asc;
use strom::container::fmp4::{Fmp4Writer, FragmentInfo};
use strom::media::{
    AacConfig, CodecConfig, Frame, FrameFlags, H264Config, H265Config, MediaKind, TrackInfo,
};
use strom::time::{Timescale, Timestamp};

#[path = "shared/params.rs"]
mod params;
use params::{HVCC, PPS, SPS};

/// Fragments per input, frames per fragment: small so each run is fast.
const MAX_FRAGMENTS: usize = 6;
const MAX_FRAMES: usize = 48;

#[path = "shared/input.rs"]
mod input;
use input::Input;

fn scale(hz: u32) -> Timescale {
    Timescale::new(hz.max(1)).expect("non-zero")
}

/// The track: codec, id and timescale from the input; sometimes one the writer refuses.
fn track(inp: &mut Input) -> TrackInfo {
    let sel = inp.u8();
    let id = match inp.u8() {
        0 => 0,
        255 => u32::MAX,
        n => u32::from(n % 8) + 1,
    };
    let hz = match inp.u8() % 5 {
        0 => 90_000,
        1 => 48_000,
        2 => 1000,
        3 => 44_100,
        _ => u32::from(inp.u16()) + 1,
    };
    let config = match sel % 3 {
        0 => {
            let mut c =
                H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
                    .expect("constant SPS/PPS parse");
            if sel & 0x80 != 0 && sel & 0x40 != 0 {
                c.width = 70_000;
            }
            CodecConfig::H264(c)
        }
        1 => {
            let mut c = H265Config::from_hvcc(Bytes::from_static(HVCC)).expect("constant hvcC");
            if sel & 0x80 != 0 && sel & 0x40 != 0 {
                c.height = 1 << 20;
            }
            CodecConfig::H265(c)
        }
        _ => {
            let aac = AacConfig::from_asc(build_asc(2, (sel >> 2) % 12, 1 + (sel >> 6)))
                .expect("ASC built from fields parses");
            CodecConfig::Aac(aac)
        }
    };
    TrackInfo::new(id, scale(hz), config)
}

/// What the writer must accept: the reference model of `media_segment`'s contract, in
/// 128-bit arithmetic. Returns per-sample (dts, duration, cto) when the fragment is valid.
fn model(
    track: &TrackInfo,
    frames: &[Frame],
    end: Option<Timestamp>,
    previous: Option<u32>,
) -> Option<Vec<(u64, u32, i32)>> {
    if frames.is_empty() {
        return None;
    }
    let s = track.timescale;
    let mut out = Vec::new();
    let mut last = previous;
    for (i, f) in frames.iter().enumerate() {
        if f.track != track.id {
            return None;
        }
        let dts = i128::from(f.dts.ticks_in(s));
        let dts_u = u64::try_from(dts).ok()?;
        let cto = i32::try_from(i128::from(f.pts.ticks_in(s)) - dts).ok()?;
        let d = match frames.get(i + 1) {
            Some(n) => i128::from(n.dts.ticks_in(s)) - dts,
            None => match (end, f.duration) {
                (Some(e), _) => i128::from(e.ticks_in(s)) - dts,
                (None, Some(d)) => i128::from(d.ticks_in(s)),
                (None, None) => i128::from(last?),
            },
        };
        let d = u32::try_from(d).ok()?;
        last = Some(d);
        out.push((dts_u, d, cto));
    }
    Some(out)
}

/// Decodes `data` as a sequence of boxes with mp4-atom; every byte must belong to one.
fn boxes(data: &[u8]) -> Vec<(usize, Any)> {
    let mut rest = data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let at = data.len() - rest.len();
        let any = Any::decode(&mut rest).unwrap_or_else(|e| panic!("box at {at}: {e}"));
        out.push((at, any));
    }
    out
}

fn check_init(track: &TrackInfo, init: &[u8]) {
    let b = boxes(init);
    assert_eq!(b.len(), 2, "init is ftyp + moov");
    assert!(matches!(b[0].1, Any::Ftyp(_)), "ftyp first");
    let Any::Moov(moov) = &b[1].1 else {
        panic!("moov second")
    };
    assert_eq!(moov.mvhd.timescale, track.timescale.get());
    assert_eq!(moov.trak.len(), 1);
    assert_eq!(moov.trak[0].tkhd.track_id, track.id);
    assert_eq!(moov.trak[0].mdia.mdhd.timescale, track.timescale.get());
    assert_eq!(moov.mvex.as_ref().expect("mvex").trex[0].track_id, track.id);
}

/// Checks one written fragment: `seg` is exactly what the call appended.
fn check_fragment(
    track: &TrackInfo,
    frames: &[Frame],
    sequence: u32,
    expected: &[(u64, u32, i32)],
    info: &FragmentInfo,
    seg: &[u8],
) {
    let video = track.kind == MediaKind::Video;
    assert_eq!(
        info.len,
        seg.len(),
        "FragmentInfo.len is the bytes appended"
    );
    assert_eq!(info.sequence, sequence);
    assert_eq!(info.samples.len(), frames.len());
    assert_eq!(info.base_decode_time, expected[0].0);
    assert_eq!(
        info.duration,
        expected.iter().map(|e| u64::from(e.1)).sum::<u64>()
    );
    for ((s, f), e) in info.samples.iter().zip(frames).zip(expected) {
        assert_eq!(s.size as usize, f.data.len());
        let payload = seg
            .get(s.offset..s.offset + s.size as usize)
            .expect("sample offset inside the fragment");
        assert_eq!(payload, &f.data[..], "sample table points at the payload");
        assert_eq!((s.dts, s.duration, s.composition_offset), *e);
        assert_eq!(s.keyframe, !video || f.is_keyframe());
    }
    // NAL units: video samples whose 4-byte length prefixes add up exactly are split
    // into contiguous ranges covering the sample; anything else has none.
    for (i, (s, f)) in info.samples.iter().zip(frames).enumerate() {
        let nals = info.sample_nal_units(i);
        assert_eq!(nals.len(), s.nal_count as usize);
        if !video {
            assert!(nals.is_empty(), "audio has no NAL units");
            continue;
        }
        let mut at = s.offset;
        for n in nals {
            assert_eq!(n.offset, at, "NAL units are contiguous");
            let prefix = &seg[at..at + 4];
            assert_eq!(u32::from_be_bytes(prefix.try_into().unwrap()), n.len);
            assert!(n.len > 0);
            at += 4 + n.len as usize;
        }
        if nals.is_empty() {
            assert!(
                f.data.is_empty() || !parses_exactly(&f.data),
                "a parseable sample lists its NAL units"
            );
        } else {
            assert_eq!(at, s.offset + s.size as usize, "NAL units cover the sample");
        }
    }

    let b = boxes(seg);
    assert_eq!(b.len(), 3, "styp + moof + mdat");
    assert!(matches!(b[0].1, Any::Styp(_)), "styp first");
    let (moof_at, Any::Moof(moof)) = &b[1] else {
        panic!("moof second")
    };
    let (mdat_at, Any::Mdat(mdat)) = &b[2] else {
        panic!("mdat third")
    };
    assert_eq!(*moof_at, info.moof_offset);
    assert_eq!(moof.mfhd.sequence_number, sequence);
    assert_eq!(moof.traf.len(), 1);
    let traf = &moof.traf[0];
    assert_eq!(traf.tfhd.track_id, track.id);
    assert!(traf.tfhd.default_base_is_moof);
    let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
    assert_eq!(
        i128::from(tfdt),
        i128::from(frames[0].dts.ticks_in(track.timescale)),
        "tfdt is the first decode time in the track timescale"
    );
    assert_eq!(traf.trun.len(), 1);
    let trun = &traf.trun[0];
    assert_eq!(trun.samples.len(), frames.len());
    let data_offset = usize::try_from(trun.data_offset.expect("data_offset")).expect(">= 0");
    let header = if seg.len() - mdat_at - mdat.data.len() == 16 {
        16
    } else {
        8
    };
    assert_eq!(moof_at + data_offset, mdat_at + header);
    assert_eq!(moof_at + data_offset, info.data_offset);
    let all: Vec<u8> = frames.iter().flat_map(|f| f.data.iter().copied()).collect();
    assert_eq!(mdat.data, all, "mdat is the payloads in order");
    for ((t, f), e) in trun.samples.iter().zip(frames).zip(expected) {
        assert_eq!(t.size, Some(f.data.len() as u32));
        assert_eq!(t.duration, Some(e.1));
        let sync = t.flags.expect("sample flags") & 0x0001_0000 == 0;
        assert_eq!(sync, !video || f.is_keyframe());
        if video {
            assert_eq!(t.cts, Some(i64::from(e.2)));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let track = track(&mut inp);
    let too_big = match &track.config {
        CodecConfig::H264(c) => c.width > 65_535,
        CodecConfig::H265(c) => c.height > 65_535,
        _ => false,
    };
    let mut w = match Fmp4Writer::new(track.clone()) {
        Ok(w) => {
            assert!(track.id != 0 && !too_big, "invalid track accepted");
            w
        }
        Err(_) => {
            assert!(track.id == 0 || too_big, "valid track refused");
            return;
        }
    };
    let mut out = BytesMut::new();
    w.init_segment(&mut out)
        .expect("init segment of a valid track");
    check_init(&track, &out);

    // Frame timestamps: usually the track's timescale, sometimes another one.
    let fscale = match inp.u8() % 4 {
        0 | 1 => track.timescale,
        2 => Timescale::MILLIS,
        _ => scale(u32::from(inp.u16()) + 1),
    };
    let mut dts: i64 = i64::from(inp.u16()) * 10;
    let mut previous: Option<u32> = None;
    let mut n = 0u32;
    for fragment in 0..MAX_FRAGMENTS {
        if inp.is_empty() {
            break;
        }
        let count = usize::from(inp.u8()) % (MAX_FRAMES + 1);
        let mut frames = Vec::with_capacity(count);
        for _ in 0..count {
            let op = inp.u8();
            let step = i64::from(inp.u16() % 8192);
            dts = match op & 0x7 {
                // Mostly forward; sometimes backwards, negative, or extreme.
                0 => dts.saturating_sub(step),
                1 if op & 0x08 != 0 => inp.i64(),
                _ => dts.saturating_add(step),
            };
            let cto = i64::from(inp.u8() as i8) * 512;
            let pts = if op & 0x78 == 0x78 {
                inp.i64()
            } else {
                dts.saturating_add(cto)
            };
            let size = usize::from(inp.u8()) * usize::from(1 + (op >> 7)) * 3;
            let mut payload = vec![n as u8 ^ 0x5a; size];
            for (d, s) in payload.iter_mut().zip(n.to_be_bytes()) {
                *d = s;
            }
            n = n.wrapping_add(1);
            let id = if op & 0x30 == 0x30 && op & 0x08 == 0 {
                track.id.wrapping_add(1)
            } else {
                track.id
            };
            let mut flags = FrameFlags::NONE;
            if op & 0x40 != 0 {
                flags = flags.union(FrameFlags::KEYFRAME);
            }
            if op & 0x20 != 0 {
                flags = flags.union(FrameFlags::DISPOSABLE);
            }
            let mut f = Frame::new(
                id,
                Timestamp::new(dts, fscale),
                Timestamp::new(pts, fscale),
                Bytes::from(payload),
            )
            .with_flags(flags);
            if op & 0x10 != 0 {
                f = f.with_duration(Timestamp::new(step, fscale));
            }
            frames.push(f);
        }
        let end = match inp.u8() % 4 {
            0 => None,
            1 => Some(Timestamp::new(dts.saturating_add(1000), fscale)),
            2 => Some(Timestamp::new(dts.saturating_sub(1), fscale)),
            _ => Some(Timestamp::new(inp.i64(), fscale)),
        };
        let sequence = fragment as u32 + 1;
        let expected = model(&track, &frames, end, previous);
        let header_only = inp.u8() & 1 == 1;

        let start = out.len();
        let before = out.clone();
        let r = if header_only {
            w.media_segment_header(&frames, sequence, end, &mut out)
        } else {
            w.media_segment(&frames, sequence, end, &mut out)
        };
        match (r, expected) {
            (Ok(info), Some(expected)) => {
                if header_only {
                    for f in &frames {
                        out.extend_from_slice(&f.data);
                    }
                }
                assert_eq!(&out[..start], &before[..], "earlier bytes untouched");
                check_fragment(&track, &frames, sequence, &expected, &info, &out[start..]);
                previous = expected.last().map(|e| e.1);
            }
            (Err(_), None) => {
                assert_eq!(out, before, "nothing appended on error");
            }
            (Ok(info), None) => {
                panic!("writer accepted an invalid fragment: {frames:?} end {end:?} previous {previous:?} track {track:?}: {info:?}")
            }
            (Err(e), Some(_)) => panic!("writer refused a valid fragment: {e}"),
        }
    }
});

/// Whether `data` is a sequence of non-empty NAL units with 4-byte length prefixes.
fn parses_exactly(data: &[u8]) -> bool {
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(p) = data.get(pos..pos + 4) else {
            return false;
        };
        let len = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        if len == 0 || data.len() - pos - 4 < len {
            return false;
        }
        pos += 4 + len;
    }
    true
}
