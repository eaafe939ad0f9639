//! CMAF fragments / media segments: `styp` + `moof` (`mfhd`, `traf` with `tfhd`, `tfdt`,
//! `trun`) + `mdat` for one track (ISO/IEC 14496-12 §8.8.4–§8.8.12, §8.16.2).

use bytes::{BufMut, BytesMut};

use super::boxes::{begin, begin_full, end};
use crate::error::{Error, Result};
use crate::media::{Frame, FrameFlags, MediaKind, TrackInfo};
use crate::time::Timestamp;

/// Most samples in one fragment; more is [`crate::ErrorKind::Limit`].
pub const MAX_SAMPLES_PER_FRAGMENT: usize = 1 << 20;

/// `styp` major brand of media segments (`msdh`, ISO/IEC 23009-1 §6.3.4.2).
pub const SEGMENT_MAJOR_BRAND: [u8; 4] = *b"msdh";
/// `styp` compatible brands.
pub const SEGMENT_COMPATIBLE_BRANDS: [[u8; 4]; 2] = [*b"msdh", *b"msix"];

/// `sample_flags` of a sync sample: `sample_depends_on` = 2 (§8.8.3.1).
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: `sample_depends_on` = 1, `sample_is_non_sync_sample`.
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;
/// Added to a sample's flags when no other sample depends on it
/// (`sample_is_depended_on` = 2).
pub const SAMPLE_FLAGS_DISPOSABLE: u32 = 0x0080_0000;

const TRUN_DATA_OFFSET: u32 = 0x1;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTO: u32 = 0x800;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;

/// One sample of a written fragment: where its payload is and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SampleInfo {
    /// Byte offset of the payload from the first byte this call appended (the `styp`).
    pub offset: usize,
    /// Payload size in bytes.
    pub size: u32,
    /// A sync sample (random access point).
    pub keyframe: bool,
    /// Decode time in the track timescale.
    pub dts: u64,
    /// Duration in the track timescale, as written in `trun`.
    pub duration: u32,
    /// `pts - dts` in the track timescale, as written in `trun`.
    pub composition_offset: i32,
    /// `sample_flags` as written in `trun` (§8.8.3.1): [`SAMPLE_FLAGS_SYNC`] or
    /// [`SAMPLE_FLAGS_NON_SYNC`], with [`SAMPLE_FLAGS_DISPOSABLE`] added for disposable
    /// video samples.
    pub flags: u32,
    /// Index of the sample's first NAL unit in [`FragmentInfo::nal_units`] (video).
    pub first_nal: u32,
    /// NAL units of the sample (video); 0 for audio, and for a video payload whose
    /// 4-byte length prefixes do not add up to its size exactly.
    pub nal_count: u32,
}

/// One NAL unit of a video sample, for subsample encryption (ISO/IEC 23001-7 §9.5):
/// the 4-byte length prefix at `offset`, then `len` bytes of NAL unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NalRange {
    /// Byte offset of the length prefix from the first byte the call appended.
    pub offset: usize,
    /// NAL unit size in bytes, without the prefix (header included).
    pub len: u32,
}

/// What [`super::Fmp4Writer::media_segment`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FragmentInfo {
    /// `mfhd.sequence_number`.
    pub sequence: u32,
    /// `tfdt.baseMediaDecodeTime`: the first sample's decode time, track timescale.
    pub base_decode_time: u64,
    /// Sum of the sample durations, track timescale.
    pub duration: u64,
    /// Offset of `moof` from the first byte appended.
    pub moof_offset: usize,
    /// Offset of the first sample payload (the `mdat` body) from the first byte appended.
    pub data_offset: usize,
    /// Bytes appended in total (header and payloads).
    pub len: usize,
    /// The samples, in decode order: the table later per-request encryption works from.
    pub samples: Vec<SampleInfo>,
    /// The NAL units of every video sample, in order (see [`SampleInfo::first_nal`]).
    pub nal_units: Vec<NalRange>,
}

impl FragmentInfo {
    /// Moves every offset `by` bytes later: `by` bytes (an `emsg` box) were inserted
    /// before the `moof`.
    pub fn shift_offsets(&mut self, by: usize) {
        self.moof_offset += by;
        self.data_offset += by;
        self.len += by;
        for s in &mut self.samples {
            s.offset += by;
        }
        for n in &mut self.nal_units {
            n.offset += by;
        }
    }

    /// The NAL units of sample `index` (empty for audio, an unparseable video payload
    /// or an index out of range).
    pub fn sample_nal_units(&self, index: usize) -> &[NalRange] {
        let Some(s) = self.samples.get(index) else {
            return &[];
        };
        let first = s.first_nal as usize;
        self.nal_units
            .get(first..first + s.nal_count as usize)
            .unwrap_or(&[])
    }
}

/// Appends the NAL units of one length-prefixed (4-byte) sample at `at` to `out`;
/// returns how many, or 0 (and appends nothing) when the prefixes do not cover the
/// payload exactly.
fn nal_units(data: &[u8], at: usize, out: &mut Vec<NalRange>) -> u32 {
    let mark = out.len();
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(prefix) = data.get(pos..pos + 4) else {
            out.truncate(mark);
            return 0;
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let end = (pos + 4).checked_add(len as usize);
        match end {
            Some(end) if end <= data.len() && len > 0 => {
                out.push(NalRange {
                    offset: at + pos,
                    len,
                });
                pos = end;
            }
            _ => {
                out.truncate(mark);
                return 0;
            }
        }
    }
    (out.len() - mark) as u32
}

/// Validates `frames` and computes each sample's (dts, duration, cto, flags).
fn sample_timing(
    track: &TrackInfo,
    frames: &[Frame],
    end: Option<Timestamp>,
    previous: Option<u32>,
) -> Result<Vec<(u64, u32, i32, u32)>> {
    if frames.is_empty() {
        return Err(Error::usage("fMP4 fragment without frames"));
    }
    if frames.len() > MAX_SAMPLES_PER_FRAGMENT {
        return Err(Error::limit("too many samples in one fMP4 fragment"));
    }
    let scale = track.timescale;
    let video = track.config.kind() == MediaKind::Video;
    let mut out = Vec::with_capacity(frames.len());
    let mut last_duration = previous;
    for (i, f) in frames.iter().enumerate() {
        if f.track != track.id {
            return Err(Error::usage("frame of another track in an fMP4 fragment")
                .context(format!("frame {i}")));
        }
        let dts = f.dts.ticks_in(scale);
        let dts = u64::try_from(dts).map_err(|_| {
            Error::usage("negative decode time (shift the track before writing fMP4)")
                .context(format!("frame {i}"))
        })?;
        // i128: both times may be anywhere in the i64 range.
        let cto = i128::from(f.pts.ticks_in(scale)) - i128::from(dts);
        let cto = i32::try_from(cto).map_err(|_| {
            Error::limit("composition offset beyond 32 bits").context(format!("frame {i}"))
        })?;
        let duration = match frames.get(i + 1) {
            Some(next) => {
                let d = i128::from(next.dts.ticks_in(scale)) - i128::from(dts);
                if d < 0 {
                    return Err(
                        Error::malformed("decode times decrease in an fMP4 fragment")
                            .context(format!("frame {}", i + 1)),
                    );
                }
                Some(d)
            }
            None => match (end, f.duration) {
                (Some(e), _) => {
                    let d = i128::from(e.ticks_in(scale)) - i128::from(dts);
                    if d < 0 {
                        return Err(Error::usage("fragment end before its last decode time"));
                    }
                    Some(d)
                }
                (None, Some(d)) => Some(i128::from(d.ticks_in(scale))),
                (None, None) => last_duration.map(i128::from),
            },
        };
        let duration = duration
            .ok_or_else(|| Error::usage("last sample duration unknown: pass the fragment end"))?;
        let duration = u32::try_from(duration).map_err(|_| {
            Error::limit("sample duration beyond 32 bits").context(format!("frame {i}"))
        })?;
        last_duration = Some(duration);
        let mut flags = if !video || f.is_keyframe() {
            SAMPLE_FLAGS_SYNC
        } else {
            SAMPLE_FLAGS_NON_SYNC
        };
        if video && f.flags.contains(FrameFlags::DISPOSABLE) {
            flags |= SAMPLE_FLAGS_DISPOSABLE;
        }
        out.push((dts, duration, cto, flags));
    }
    Ok(out)
}

/// One `trun` entry of a fragment being serialised.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
    pub cto: i32,
}

/// Boxes a protected fragment adds to its `traf` after the `trun` (`saiz`, `saio`,
/// `senc`): written by the callback, which gets the offset of the `moof` in `out`.
pub(crate) type TrafExtra<'a> = &'a dyn Fn(&mut BytesMut, usize) -> Result<()>;

/// Writes `styp` + `moof` (`mfhd`, `traf` with `tfhd`, `tfdt`, `trun` and `extra`) +
/// the `mdat` header for `rows` whose payloads (`payload` bytes in all) follow; returns
/// (offset of the `moof` in `out`, offset of the first payload from the `styp`).
pub(crate) fn write_moof(
    track: &TrackInfo,
    sequence: u32,
    base: u64,
    rows: &[Row],
    payload: u64,
    extra: Option<TrafExtra<'_>>,
    out: &mut BytesMut,
) -> Result<(usize, usize)> {
    let video = track.config.kind() == MediaKind::Video;
    let start = out.len();
    out.reserve(64 + 16 * rows.len());

    let styp = begin(out, b"styp");
    out.put_slice(&SEGMENT_MAJOR_BRAND);
    out.put_u32(0);
    for b in SEGMENT_COMPATIBLE_BRANDS {
        out.put_slice(&b);
    }
    end(out, styp)?;

    let moof = begin(out, b"moof");
    let mfhd = begin_full(out, b"mfhd", 0, 0);
    out.put_u32(sequence);
    end(out, mfhd)?;
    let traf = begin(out, b"traf");
    let tfhd = begin_full(out, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
    out.put_u32(track.id);
    end(out, tfhd)?;
    let tfdt = begin_full(out, b"tfdt", 1, 0);
    out.put_u64(base);
    end(out, tfdt)?;
    let mut flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS;
    if video {
        flags |= TRUN_CTO;
    }
    let trun = begin_full(out, b"trun", 1, flags);
    let count = u32::try_from(rows.len()).map_err(|_| Error::limit("too many samples"))?;
    out.put_u32(count);
    let data_offset_at = out.len();
    out.put_i32(0);
    for r in rows {
        out.put_u32(r.duration);
        out.put_u32(r.size);
        out.put_u32(r.flags);
        if video {
            out.put_i32(r.cto);
        }
    }
    end(out, trun)?;
    if let Some(extra) = extra {
        extra(out, moof)?;
    }
    end(out, traf)?;
    end(out, moof)?;

    // mdat (§8.1.1), 64-bit largesize when the payload needs it.
    if let Ok(size) = u32::try_from(payload + 8) {
        out.put_u32(size);
        out.put_slice(b"mdat");
    } else {
        out.put_u32(1);
        out.put_slice(b"mdat");
        out.put_u64(payload + 16);
    }
    let data_offset =
        i32::try_from(out.len() - moof).map_err(|_| Error::limit("moof larger than 2 GiB"))?;
    out[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    Ok((moof, out.len() - start))
}

/// Writes `styp` + `moof` + the `mdat` header; returns the info with sample offsets,
/// `len` counting the payloads the caller appends after it (in frame order).
pub(crate) fn write_header(
    track: &TrackInfo,
    frames: &[Frame],
    sequence: u32,
    end_time: Option<Timestamp>,
    previous: Option<u32>,
    out: &mut BytesMut,
) -> Result<FragmentInfo> {
    let timing = sample_timing(track, frames, end_time, previous)?;
    let mut payload: u64 = 0;
    let mut rows = Vec::with_capacity(frames.len());
    for (f, &(_, duration, cto, flags)) in frames.iter().zip(&timing) {
        let size =
            u32::try_from(f.data.len()).map_err(|_| Error::limit("sample larger than 4 GiB"))?;
        payload += u64::from(size);
        rows.push(Row {
            duration,
            size,
            flags,
            cto,
        });
    }
    let video = track.config.kind() == MediaKind::Video;
    let start = out.len();
    let base = timing.first().map_or(0, |t| t.0);
    let (moof, data_start) = write_moof(track, sequence, base, &rows, payload, None, out)?;

    let mut samples = Vec::with_capacity(timing.len());
    let mut nals = Vec::with_capacity(if video { 2 * frames.len() } else { 0 });
    let mut at = data_start;
    for ((&(dts, _, _, _), row), f) in timing.iter().zip(&rows).zip(frames) {
        let first_nal = nals.len() as u32;
        let nal_count = if video {
            nal_units(&f.data, at, &mut nals)
        } else {
            0
        };
        samples.push(SampleInfo {
            offset: at,
            size: row.size,
            keyframe: row.flags & 0x0001_0000 == 0,
            dts,
            duration: row.duration,
            composition_offset: row.cto,
            flags: row.flags,
            first_nal,
            nal_count,
        });
        at += row.size as usize;
    }
    Ok(FragmentInfo {
        sequence,
        base_decode_time: base,
        duration: timing.iter().map(|t| u64::from(t.1)).sum(),
        moof_offset: moof - start,
        data_offset: data_start,
        len: at,
        samples,
        nal_units: nals,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::Fmp4Writer;
    use super::*;
    use crate::bitstream::test_vectors::{PPS_720P, SPS_720P};
    use crate::media::{AacConfig, CodecConfig, H264Config};
    use crate::time::Timescale;
    use crate::ErrorKind;

    fn video() -> Fmp4Writer {
        let sps = Bytes::from_static(SPS_720P);
        let pps = Bytes::from_static(PPS_720P);
        let cfg = H264Config::from_parameter_sets(sps, pps).unwrap();
        let t = TrackInfo::new(7, Timescale::new(90_000).unwrap(), CodecConfig::H264(cfg));
        Fmp4Writer::new(t).unwrap()
    }

    fn frame(dts: i64, pts: i64, key: bool, data: &'static [u8]) -> Frame {
        let s = Timescale::new(90_000).unwrap();
        let f = Frame::new(
            7,
            Timestamp::new(dts, s),
            Timestamp::new(pts, s),
            Bytes::from_static(data),
        );
        if key {
            f.with_flags(FrameFlags::KEYFRAME)
        } else {
            f
        }
    }

    #[test]
    fn hand_checked_video_fragment() {
        let mut w = video();
        let frames = [
            frame(3600, 7200, true, &[0, 0, 0, 1, 0x65]),
            frame(7200, 3600, false, &[0, 0, 0, 2, 0x41, 0x9a]),
        ];
        let mut out = BytesMut::from(&b"prefix"[..]);
        let info = w.media_segment(&frames, 5, None, &mut out).unwrap();
        let seg = &out[6..];
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0, 0, 0, 24, b's', b't', b'y', b'p', b'm', b's', b'd', b'h', 0, 0, 0, 0,
            b'm', b's', b'd', b'h', b'm', b's', b'i', b'x',
            0, 0, 0, 120, b'm', b'o', b'o', b'f',
            0, 0, 0, 16, b'm', b'f', b'h', b'd', 0, 0, 0, 0, 0, 0, 0, 5,
            0, 0, 0, 96, b't', b'r', b'a', b'f',
            0, 0, 0, 16, b't', b'f', b'h', b'd', 0, 2, 0, 0, 0, 0, 0, 7,
            0, 0, 0, 20, b't', b'f', b'd', b't', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0e, 0x10,
            0, 0, 0, 52, b't', b'r', b'u', b'n', 1, 0, 0x0f, 0x01, 0, 0, 0, 2,
            0, 0, 0, 128, // data_offset: moof (120) + mdat header (8)
            0, 0, 0x0e, 0x10, 0, 0, 0, 5, 0x02, 0, 0, 0, 0, 0, 0x0e, 0x10,
            0, 0, 0x0e, 0x10, 0, 0, 0, 6, 0x01, 0x01, 0, 0, 0xff, 0xff, 0xf1, 0xf0,
            0, 0, 0, 19, b'm', b'd', b'a', b't',
            0, 0, 0, 1, 0x65, 0, 0, 0, 2, 0x41, 0x9a,
        ];
        assert_eq!(seg, expected);
        assert_eq!(info.len, seg.len());
        assert_eq!(info.moof_offset, 24);
        assert_eq!(info.data_offset, 24 + 128);
        assert_eq!(info.base_decode_time, 3600);
        assert_eq!(info.duration, 7200);
        let s: Vec<(usize, u32, bool, i32)> = info
            .samples
            .iter()
            .map(|s| (s.offset, s.size, s.keyframe, s.composition_offset))
            .collect();
        assert_eq!(s, [(152, 5, true, 3600), (157, 6, false, -3600)]);
        let n: Vec<(usize, u32)> = (0..2)
            .flat_map(|i| info.sample_nal_units(i).iter().map(|r| (r.offset, r.len)))
            .collect();
        assert_eq!(n, [(152, 1), (157, 2)]);
        assert!(info.sample_nal_units(2).is_empty());
        // The last duration carries over to a one-frame fragment without an end.
        let info = w
            .media_segment(
                &[frame(10800, 10800, true, &[0, 0, 0, 0])],
                6,
                None,
                &mut out,
            )
            .unwrap();
        assert_eq!(info.duration, 3600);
        // An explicit end wins.
        let end = Timestamp::new(11000, Timescale::new(90_000).unwrap());
        let info = w
            .media_segment(&[frame(10800, 10800, true, &[])], 7, Some(end), &mut out)
            .unwrap();
        assert_eq!(info.duration, 200);
    }

    #[test]
    fn audio_trun_has_no_composition_offsets() {
        let s = Timescale::new(48_000).unwrap();
        let aac = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        let mut w = Fmp4Writer::new(TrackInfo::new(2, s, CodecConfig::Aac(aac))).unwrap();
        let frames: Vec<Frame> = (0..4)
            .map(|i| {
                let t = Timestamp::new(1024 * i, s);
                Frame::new(2, t, t, Bytes::from_static(&[1, 2, 3]))
            })
            .collect();
        let mut out = BytesMut::new();
        let info = w.media_segment(&frames, 1, None, &mut out).unwrap();
        let trun = out.windows(4).position(|w| w == b"trun").unwrap();
        assert_eq!(&out[trun + 4..trun + 8], &[1, 0, 0x07, 0x01]);
        // 4 samples x 12 bytes + 20 bytes of header.
        assert_eq!(&out[trun - 4..trun], &[0, 0, 0, 68]);
        assert!(info
            .samples
            .iter()
            .all(|s| s.keyframe && s.duration == 1024));
        assert_eq!(info.len, out.len());
    }

    #[test]
    fn bad_input_is_a_typed_error_and_writes_nothing() {
        let mut w = video();
        let mut out = BytesMut::new();
        let cases: Vec<(Vec<Frame>, ErrorKind)> = vec![
            (vec![], ErrorKind::Usage),
            (
                vec![frame(-5, 0, true, &[]), frame(0, 0, false, &[])],
                ErrorKind::Usage,
            ),
            (
                vec![frame(100, 100, true, &[]), frame(50, 50, false, &[])],
                ErrorKind::Malformed,
            ),
            (vec![frame(0, 1 << 40, true, &[])], ErrorKind::Limit),
            (
                vec![frame(0, 0, true, &[]), frame(1 << 40, 1 << 40, true, &[])],
                ErrorKind::Limit,
            ),
            // One frame, no end, no duration, no previous fragment.
            (vec![frame(0, 0, true, &[])], ErrorKind::Usage),
        ];
        for (frames, kind) in cases {
            let e = w.media_segment(&frames, 1, None, &mut out).unwrap_err();
            assert_eq!(e.kind(), kind, "{e}");
            assert!(out.is_empty());
        }
        let mut stray = frame(0, 0, true, &[]);
        stray.track = 8;
        let e = w
            .media_segment(&[stray], 1, Some(Timestamp::from_millis(1)), &mut out)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(e.to_string().contains("another track"), "{e}");
    }

    /// Times at the ends of the i64 range (found by the `fmp4_writer` fuzz target): the
    /// differences are computed without overflow and refused, never wrapped.
    #[test]
    fn extreme_times_are_refused_not_wrapped() {
        let mut w = video();
        let mut out = BytesMut::new();
        let s = Timescale::new(90_000).unwrap();
        let end_max = Some(Timestamp::new(i64::MAX, s));
        let e = w
            .media_segment(
                &[frame(i64::MAX, i64::MIN, true, &[1])],
                1,
                end_max,
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
        let end_min = Some(Timestamp::new(i64::MIN, s));
        let e = w
            .media_segment(
                &[frame(i64::MAX, i64::MAX, true, &[1])],
                2,
                end_min,
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
        let e = w
            .media_segment(
                &[
                    frame(i64::MAX, i64::MAX, true, &[1]),
                    frame(i64::MIN, 0, false, &[1]),
                ],
                3,
                end_max,
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed, "{e}");
        assert!(out.is_empty());
    }
}
