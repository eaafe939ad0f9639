//! Round trip of the fMP4/CMAF writer and reader (`strom::container::fmp4`), plus the
//! reader on hostile bytes.
//!
//! (a) A track (H.264, H.265 or AAC; id, timescale and language from the input) and valid
//! fragments (non-decreasing decode times, composition offsets, key and disposable flags,
//! video payloads as 4-byte length-prefixed NAL units) are written with `Fmp4Writer`, then
//! read back with `Fmp4Reader`, which must return exactly the frames written: track id,
//! dts, pts, duration (as `FragmentInfo` states it), flags, payload bytes, payloads
//! slicing the segment (no copy); and the track config (codec, timescale, language).
//! The same frames must come back from all segments in one `read_segment` call, from
//! `read_file` on init + segments, and from each fragment re-encoded by a second,
//! independent encoder in this file with other `tfhd`/`trun` options (tfhd defaults,
//! explicit or implicit base offsets, first_sample_flags, trun version 0, several truns
//! with and without data_offset, tfdt version 0 or absent).
//! (b) The raw input as an init segment, as a media segment and as a whole file, and
//! truncated or byte-flipped copies of a written segment, go to the reader: `Ok` or
//! `Err`, never a panic; a failed `read_segment` leaves the decode times unchanged.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strom::bitstream::aac::build_asc;
use strom::container::fmp4::{Fmp4Reader, Fmp4ReaderOptions, Fmp4Writer, FragmentInfo};
use strom::media::{
    AacConfig, CodecConfig, Frame, FrameFlags, H264Config, H265Config, MediaKind, TrackInfo,
};
use strom::time::{Timescale, Timestamp};

#[path = "shared/params.rs"]
mod params;
use params::{HVCC, PPS, SPS};
const LANGUAGES: [Option<&str>; 6] = [
    None,
    Some("eng"),
    Some("fra"),
    Some("deu"),
    Some("EN"),
    Some("und"),
];

/// Fragments per input, frames per fragment: small so each run is fast.
const MAX_FRAGMENTS: usize = 5;
const MAX_FRAMES: usize = 40;

#[path = "shared/input.rs"]
mod input;
use input::Input;

fn scale(hz: u32) -> Timescale {
    Timescale::new(hz.max(1)).expect("non-zero")
}

/// A valid track: codec, id, timescale and language from the input.
fn track(inp: &mut Input) -> TrackInfo {
    let sel = inp.u8();
    let id = u32::from(inp.u8() % 8) + 1;
    let hz = match inp.u8() % 4 {
        0 => 90_000,
        1 => 48_000,
        2 => 1000,
        _ => u32::from(inp.u16()) + 1,
    };
    let config = match sel % 3 {
        0 => CodecConfig::H264(
            H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
                .expect("constant SPS/PPS parse"),
        ),
        1 => CodecConfig::H265(H265Config::from_hvcc(Bytes::from_static(HVCC)).expect("hvcC")),
        _ => CodecConfig::Aac(
            AacConfig::from_asc(build_asc(2, (sel >> 2) % 12, 1 + (sel >> 6)))
                .expect("ASC built from fields parses"),
        ),
    };
    let mut t = TrackInfo::new(id, scale(hz), config);
    if let Some(l) = LANGUAGES[usize::from(inp.u8()) % LANGUAGES.len()] {
        t = t.with_language(l);
    }
    t
}

/// What the reader must report for the written language (`mdhd` packs only three
/// lowercase letters; `und` is no language).
fn expected_language(l: Option<&str>) -> Option<&str> {
    l.filter(|l| l.len() == 3 && l.bytes().all(|b| b.is_ascii_lowercase()) && *l != "und")
}

/// A payload of `n` bytes of seed `seed`; for video, 4-byte length-prefixed NAL units.
fn payload(inp: &mut Input, video: bool, seed: u32) -> Bytes {
    let mut out = BytesMut::new();
    if video {
        for _ in 0..1 + inp.u8() % 3 {
            let len = usize::from(inp.u8()) * 2;
            out.put_u32(len as u32);
            out.extend((0..len).map(|i| (i as u32 ^ seed) as u8));
        }
    } else {
        let len = usize::from(inp.u8()) * 3;
        out.extend((0..len).map(|i| (i as u32 ^ seed.rotate_left(3)) as u8));
    }
    out.freeze()
}

/// The frame the reader must return for written frame `f` with its `FragmentInfo` sample.
fn expected(track: &TrackInfo, f: &Frame, duration: u32) -> Frame {
    let video = track.kind == MediaKind::Video;
    let s = track.timescale;
    let mut flags = FrameFlags::NONE;
    if !video || f.is_keyframe() {
        flags = flags.union(FrameFlags::KEYFRAME);
    }
    if video && f.flags.contains(FrameFlags::DISPOSABLE) {
        flags = flags.union(FrameFlags::DISPOSABLE);
    }
    // Audio is written without composition offsets.
    let pts = if video { f.pts } else { f.dts };
    Frame::new(
        track.id,
        Timestamp::new(f.dts.ticks_in(s), s),
        Timestamp::new(pts.ticks_in(s), s),
        f.data.clone(),
    )
    .with_duration(Timestamp::new(i64::from(duration), s))
    .with_flags(flags)
}

fn assert_same(got: &[Frame], want: &[Frame], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: frame count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{what}: frame {i}");
    }
}

/// Asserts every payload slices `buf` (zero copy).
fn assert_slices(frames: &[Frame], buf: &Bytes) {
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    for f in frames.iter().filter(|f| !f.data.is_empty()) {
        let p = f.data.as_ptr() as usize;
        assert!(
            range.contains(&p) && p + f.data.len() <= range.end,
            "payload copied"
        );
    }
}

/// One sample to re-encode: dts, duration, cto, sample_flags, payload.
struct Sample {
    dts: u64,
    duration: u32,
    cto: i32,
    flags: u32,
    data: Bytes,
}

fn put_box(out: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
}

fn put_full(out: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) {
    let mut b = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
    b.extend_from_slice(body);
    put_box(out, kind, &b);
}

/// A second fragment encoder with the options the writer never uses; returns `None` when
/// the options cannot express the samples (the caller then skips this check).
/// `running` is the reader's decode time for a `tfdt`-less fragment.
fn encode_alt(
    id: u32,
    samples: &[Sample],
    opts: u16,
    split: &[usize],
    running: Option<u64>,
) -> Option<Vec<u8>> {
    let first = samples.first()?;
    let all_eq = |f: &dyn Fn(&Sample) -> u32| samples.iter().all(|s| f(s) == f(first));
    // tfhd defaults when every sample agrees and the option asks for them.
    let def_dur = (opts & 1 != 0 && all_eq(&|s| s.duration)).then_some(first.duration);
    let def_size =
        (opts & 2 != 0 && all_eq(&|s| s.data.len() as u32)).then_some(first.data.len() as u32);
    let rest_flags = samples.get(1).map(|s| s.flags);
    let rest_eq = samples.iter().skip(1).all(|s| Some(s.flags) == rest_flags);
    // first_sample_flags + a default for the others, or a default for all.
    let (first_flags, def_flags) = if opts & 4 != 0 && rest_eq {
        (Some(first.flags), Some(rest_flags.unwrap_or(first.flags)))
    } else if opts & 8 != 0 && all_eq(&|s| s.flags) {
        (None, Some(first.flags))
    } else {
        (None, None)
    };
    let any_cto = samples.iter().any(|s| s.cto != 0);
    let version: u8 = if opts & 0x10 != 0 { 0 } else { 1 };
    // Base: 0 default-base-is-moof, 1 explicit base_data_offset, 2 implicit (the moof).
    let base_mode = (opts >> 5) % 3;
    let tfdt_mode = (opts >> 7) % 3;
    let tfdt_version: Option<u8> = match tfdt_mode {
        0 => Some(1),
        1 if first.dts <= u64::from(u32::MAX) => Some(0),
        2 if running == Some(first.dts) => None,
        _ => Some(1),
    };

    // The truns: ranges of samples.
    let mut bounds = vec![0];
    for &s in split {
        let s = s % (samples.len() + 1);
        if s > *bounds.last().expect("non-empty") {
            bounds.push(s);
        }
    }
    if *bounds.last().expect("non-empty") != samples.len() {
        bounds.push(samples.len());
    }

    // Builds the moof given the offset of the first payload from the moof start and
    // (explicit base) from the segment start; run i > 0 omits data_offset if bit 9+i.
    let build = |payload_from_moof: i64, payload_from_start: u64| -> Option<Vec<u8>> {
        let mut tfhd_flags = 0u32;
        let mut tfhd = id.to_be_bytes().to_vec();
        match base_mode {
            0 => tfhd_flags |= 0x2_0000,
            1 => {
                tfhd_flags |= 0x1;
                tfhd.extend_from_slice(&payload_from_start.to_be_bytes());
            }
            _ => {}
        }
        if opts & 0x200 != 0 {
            tfhd_flags |= 0x2;
            tfhd.extend_from_slice(&1u32.to_be_bytes());
        }
        for (bit, v) in [(0x8, def_dur), (0x10, def_size), (0x20, def_flags)] {
            if let Some(v) = v {
                tfhd_flags |= bit;
                tfhd.extend_from_slice(&v.to_be_bytes());
            }
        }
        let mut traf = Vec::new();
        put_full(&mut traf, b"tfhd", 0, tfhd_flags, &tfhd);
        match tfdt_version {
            Some(0) => put_full(&mut traf, b"tfdt", 0, 0, &(first.dts as u32).to_be_bytes()),
            Some(_) => put_full(&mut traf, b"tfdt", 1, 0, &first.dts.to_be_bytes()),
            None => {}
        }
        let mut data_at: i64 = 0; // payload bytes before this run
        for (run, w) in bounds.windows(2).enumerate() {
            let part = &samples[w[0]..w[1]];
            let mut flags = 0u32;
            let mut body = (part.len() as u32).to_be_bytes().to_vec();
            // The first run needs data_offset unless the base is the payload itself.
            let omit = if run == 0 {
                base_mode == 1 && opts & 0x400 != 0
            } else {
                opts & (0x800 << (run % 4)) != 0
            };
            if !omit {
                flags |= 0x1;
                let off = match base_mode {
                    1 => data_at,
                    _ => payload_from_moof + data_at,
                };
                body.extend_from_slice(&i32::try_from(off).ok()?.to_be_bytes());
            }
            let ff = if run == 0 { first_flags } else { None };
            if let Some(f) = ff {
                flags |= 0x4;
                body.extend_from_slice(&f.to_be_bytes());
            }
            if def_dur.is_none() {
                flags |= 0x100;
            }
            if def_size.is_none() {
                flags |= 0x200;
            }
            if def_flags.is_none() {
                flags |= 0x400;
            }
            if any_cto || opts & 0x8000 != 0 {
                flags |= 0x800;
            }
            let v = if part.iter().any(|s| s.cto < 0) {
                1
            } else {
                version
            };
            for s in part {
                if flags & 0x100 != 0 {
                    body.extend_from_slice(&s.duration.to_be_bytes());
                }
                if flags & 0x200 != 0 {
                    body.extend_from_slice(&(s.data.len() as u32).to_be_bytes());
                }
                if flags & 0x400 != 0 {
                    body.extend_from_slice(&s.flags.to_be_bytes());
                }
                if flags & 0x800 != 0 {
                    body.extend_from_slice(&s.cto.to_be_bytes());
                }
                data_at += s.data.len() as i64;
            }
            put_full(&mut traf, b"trun", v, flags, &body);
        }
        let mut moof_body = Vec::new();
        put_full(&mut moof_body, b"mfhd", 0, 0, &1u32.to_be_bytes());
        put_box(&mut moof_body, b"traf", &traf);
        let mut moof = Vec::new();
        put_box(&mut moof, b"moof", &moof_body);
        Some(moof)
    };
    // Every field has a fixed size: a first pass gives the moof length.
    let prefix: Vec<u8> = if opts & 0x4000 != 0 {
        let mut p = Vec::new();
        put_box(&mut p, b"styp", b"msdh\0\0\0\0msdhmsix");
        put_box(&mut p, b"free", b"padding");
        p
    } else {
        Vec::new()
    };
    let moof_len = build(0, 0)?.len();
    let payload_from_moof = moof_len as i64 + 8;
    let moof = build(payload_from_moof, (prefix.len() + moof_len + 8) as u64)?;
    debug_assert_eq!(moof.len(), moof_len);
    let mut out = prefix;
    out.extend_from_slice(&moof);
    let mdat: Vec<u8> = samples
        .iter()
        .flat_map(|s| s.data.iter().copied())
        .collect();
    put_box(&mut out, b"mdat", &mdat);
    Some(out)
}

/// Mutations of `seg` the reader must survive: truncations and flipped bytes.
fn mutate(reader: &Fmp4Reader, seg: &[u8], inp: &mut Input) {
    for _ in 0..4 {
        if seg.is_empty() {
            return;
        }
        let mut m = seg.to_vec();
        match inp.u8() % 3 {
            0 => m.truncate(usize::from(inp.u16()) % seg.len()),
            1 => {
                for _ in 0..1 + inp.u8() % 4 {
                    let at = usize::from(inp.u16()) % m.len();
                    m[at] ^= inp.u8() | 1;
                }
            }
            _ => {
                // A field in the moof set to an extreme value.
                let at = usize::from(inp.u16()) % m.len();
                let v = [0u8, 0xff, 0x7f, 0x80][usize::from(inp.u8() % 4)];
                for b in m.iter_mut().skip(at).take(4) {
                    *b = v;
                }
            }
        }
        let mut r = reader.clone();
        let before: Vec<Option<u64>> = r
            .tracks()
            .iter()
            .map(|t| r.next_decode_time(t.id))
            .collect();
        if r.read_segment(Bytes::from(m)).is_err() {
            let after: Vec<Option<u64>> = r
                .tracks()
                .iter()
                .map(|t| r.next_decode_time(t.id))
                .collect();
            assert_eq!(before, after, "failed read changed the reader");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // (b) The raw bytes, three ways, with small limits so executions stay fast.
    let raw = Bytes::copy_from_slice(data);
    let mut opts = Fmp4ReaderOptions::default();
    opts.max_samples = 100_000;
    opts.max_file_samples = 100_000;
    let _ = Fmp4Reader::with_options(raw.clone(), opts.clone());
    let _ = Fmp4Reader::read_file_with(raw.clone(), opts.clone());

    // (a) The round trip.
    let mut inp = Input(data);
    let track = track(&mut inp);
    let video = track.kind == MediaKind::Video;
    let mut w = Fmp4Writer::new(track.clone()).expect("valid track");
    let mut init = BytesMut::new();
    w.init_segment(&mut init).expect("init segment");
    let init = init.freeze();
    let mut reader = Fmp4Reader::with_options(init.clone(), opts).expect("own init segment reads");
    assert_eq!(reader.tracks().len(), 1);
    let t = &reader.tracks()[0];
    assert_eq!(
        (t.id, t.kind, t.timescale, &t.config),
        (track.id, track.kind, track.timescale, &track.config)
    );
    assert_eq!(
        t.language.as_deref(),
        expected_language(track.language.as_deref())
    );
    let _ = reader.clone().read_segment(raw);
    let mut alt_reader = reader.clone();

    let s = track.timescale;
    let mut dts: i64 = i64::from(inp.u16()) * 10;
    if inp.u8() == 0xff {
        // Near the 32-bit tfdt boundary and beyond.
        dts += i64::from(u32::MAX) - 5000;
    }
    let mut seed = 0u32;
    let mut file = init.to_vec();
    let mut all = Vec::new();
    let mut segments = Vec::new();
    for sequence in 1..=MAX_FRAGMENTS as u32 {
        if inp.is_empty() {
            break;
        }
        let count = 1 + usize::from(inp.u8()) % MAX_FRAMES;
        let mut frames = Vec::with_capacity(count);
        for _ in 0..count {
            let op = inp.u8();
            let cto = if video {
                i64::from(inp.u8() as i8) * 40
            } else {
                0
            };
            let mut flags = FrameFlags::NONE;
            if op & 1 != 0 {
                flags = flags.union(FrameFlags::KEYFRAME);
            }
            if op & 2 != 0 {
                flags = flags.union(FrameFlags::DISPOSABLE);
            }
            seed = seed.wrapping_add(0x9e37_79b9);
            let mut f = Frame::new(
                track.id,
                Timestamp::new(dts, s),
                Timestamp::new(dts + cto, s),
                payload(&mut inp, video, seed),
            )
            .with_flags(flags);
            if op & 4 != 0 {
                f = f.with_duration(Timestamp::new(i64::from(inp.u8()), s));
            }
            frames.push(f);
            dts += i64::from(inp.u16() % 4096);
        }
        let end = (inp.u8() & 1 == 1).then(|| Timestamp::new(dts, s));
        let mut seg = BytesMut::new();
        let info: FragmentInfo = match w.media_segment(&frames, sequence, end, &mut seg) {
            Ok(i) => i,
            // Only the first fragment's last duration can be unknown.
            Err(e) => {
                assert!(sequence == 1 && end.is_none(), "{e}");
                break;
            }
        };
        let seg = seg.freeze();
        let want: Vec<Frame> = frames
            .iter()
            .zip(&info.samples)
            .map(|(f, si)| expected(&track, f, si.duration))
            .collect();
        let got = reader.read_segment(seg.clone()).expect("own segment reads");
        assert_same(&got, &want, "read_segment");
        assert_slices(&got, &seg);
        assert_eq!(
            reader.next_decode_time(track.id),
            Some(info.base_decode_time + info.duration)
        );

        // The same fragment through the second encoder.
        let samples: Vec<Sample> = want
            .iter()
            .zip(&info.samples)
            .map(|(f, si)| Sample {
                dts: si.dts,
                duration: si.duration,
                cto: si.composition_offset,
                flags: {
                    let mut fl: u32 = if si.keyframe {
                        0x0200_0000
                    } else {
                        0x0101_0000
                    };
                    if f.flags.contains(FrameFlags::DISPOSABLE) {
                        fl |= 0x0080_0000;
                    }
                    fl
                },
                data: f.data.clone(),
            })
            .collect();
        let alt_opts = inp.u16();
        let split = [usize::from(inp.u8()), usize::from(inp.u8())];
        let running = alt_reader.next_decode_time(track.id);
        if let Some(alt) = encode_alt(track.id, &samples, alt_opts, &split, running) {
            let alt = Bytes::from(alt);
            let got = alt_reader
                .read_segment(alt.clone())
                .unwrap_or_else(|e| panic!("re-encoded fragment (options {alt_opts:#x}): {e}"));
            assert_same(&got, &want, "re-encoded fragment");
            assert_slices(&got, &alt);
            mutate(&alt_reader, &alt, &mut inp);
        } else {
            // Keep the second reader's running time in step.
            alt_reader
                .read_segment(seg.clone())
                .expect("own segment reads");
        }
        mutate(&reader, &seg, &mut inp);

        file.extend_from_slice(&seg);
        all.extend(want);
        segments.push(seg);
    }
    if segments.is_empty() {
        return;
    }
    // All segments in one call, and the whole file.
    let joined = Bytes::from(segments.concat());
    let mut fresh = Fmp4Reader::new(init).expect("init");
    let got = fresh
        .read_segment(joined.clone())
        .expect("joined segments read");
    assert_same(&got, &all, "joined segments");
    assert_slices(&got, &joined);
    let file = Bytes::from(file);
    let (r, got) = Fmp4Reader::read_file(file.clone()).expect("whole file reads");
    assert_eq!(r.tracks().len(), 1);
    assert_same(&got, &all, "read_file");
    assert_slices(&got, &file);
});
