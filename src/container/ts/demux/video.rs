//! H.264 and H.265 access units in Annex B byte-stream format (ITU-T H.264 Annex B,
//! H.265 Annex B, carried per ISO/IEC 13818-1 §2.14 and §2.17) to the canonical
//! 4-byte length-prefixed form, with the in-band parameter sets taken out into the
//! decoder configuration.

use bytes::{BufMut, Bytes, BytesMut};

use super::hevc;
use crate::bitstream::bits::{unescape_rbsp, BitReader};
use crate::bitstream::{h264, h265};
use crate::error::{Error, Result};
use crate::media::{CodecConfig, H264Config, H265Config};

/// Most parameter sets of one type kept from one access unit; more are ignored.
const MAX_SETS: usize = 16;

/// The video codec of an elementary stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VideoCodec {
    H264,
    H265,
}

/// What the NAL unit types of an access unit mean to the converter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Access unit delimiter: dropped (writers add their own).
    Aud,
    /// Parameter set of slot 0 (VPS), 1 (SPS) or 2 (PPS): moved to the configuration.
    Param(usize),
    /// An IDR / IRAP picture's slice.
    RandomAccess,
    /// A slice of another picture (H.264 types 1..=4; H.265 VCL types below 16).
    Slice,
    /// An SEI message (H.264 type 6); kept.
    Sei,
    /// Anything else: kept.
    Other,
}

fn classify(codec: VideoCodec, header: u8) -> Unit {
    match codec {
        VideoCodec::H264 => match header & 0x1f {
            h264::nal_type::AUD => Unit::Aud,
            h264::nal_type::SPS => Unit::Param(1),
            h264::nal_type::PPS => Unit::Param(2),
            h264::nal_type::IDR => Unit::RandomAccess,
            1..=4 => Unit::Slice,
            h264::nal_type::SEI => Unit::Sei,
            _ => Unit::Other,
        },
        VideoCodec::H265 => match (header >> 1) & 0x3f {
            h265::nal_type::AUD => Unit::Aud,
            h265::nal_type::VPS => Unit::Param(0),
            h265::nal_type::SPS => Unit::Param(1),
            h265::nal_type::PPS => Unit::Param(2),
            h265::nal_type::BLA_W_LP..=h265::nal_type::IRAP_END => Unit::RandomAccess,
            0..=15 => Unit::Slice,
            _ => Unit::Other,
        },
    }
}

/// Per-stream video state: the parameter sets in force and the configuration built
/// from them.
#[derive(Debug)]
pub(super) struct VideoState {
    pub codec: VideoCodec,
    /// Latest VPS (H.265 only), SPS and PPS lists seen in band.
    sets: [Vec<Bytes>; 3],
    /// The configuration announced, if any.
    pub config: Option<CodecConfig>,
    /// Scratch: byte ranges of the units kept in the current access unit.
    kept: Vec<(usize, usize)>,
    /// Scratch: parameter sets of the current access unit, by slot.
    fresh: [Vec<(usize, usize)>; 3],
}

/// One converted access unit.
#[derive(Debug)]
pub(super) struct AccessUnit {
    /// Canonical payload (4-byte length prefixes), without AUD and parameter sets: a
    /// slice of the PES buffer rewritten in place when every unit kept has a 4-byte
    /// start code and they follow each other, else a copy.
    pub data: Bytes,
    /// An IDR (H.264), an IRAP picture (H.265), or an H.264 intra picture flagged as a
    /// random access point (see [`VideoState::access_unit`]).
    pub keyframe: bool,
}

/// `0x7F` in every byte of a word.
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// Start of the next `00 00 01` at or after `from` (the index of its first zero).
///
/// Eight bytes at a time: the high bit of each byte of `z` says that byte is zero
/// (exactly: `!(((w & 0x7f..) + 0x7f..) | w | 0x7f..)`), `z & (z >> 8)` marks the zero
/// pairs inside the block; only those, and a zero last byte (a pair across blocks), are
/// looked at further. Slice data rarely has two zeros in a row (emulation prevention),
/// so most blocks are skipped whole.
#[inline]
fn find_start_code(d: &[u8], from: usize) -> Option<usize> {
    let at = |k: usize| d.get(k..k + 3) == Some(&[0, 0, 1][..]);
    let mut i = from;
    while let Some(block) = d.get(i..i + 8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(block);
        let w = u64::from_le_bytes(b);
        let z = !(((w & LOW7).wrapping_add(LOW7)) | w | LOW7);
        if z != 0 {
            let mut pairs = z & (z >> 8);
            while pairs != 0 {
                let k = i + (pairs.trailing_zeros() / 8) as usize;
                if d.get(k + 2) == Some(&1) {
                    return Some(k);
                }
                pairs &= pairs - 1;
            }
            if z >> 63 != 0 && at(i + 7) {
                return Some(i + 7);
            }
        }
        i += 8;
    }
    (i..d.len()).find(|&k| at(k))
}

/// `slice_type` of an H.264 slice NAL unit (ITU-T H.264 §7.3.3), if readable.
fn h264_slice_type(nal: &[u8]) -> Option<u32> {
    let head = nal.get(1..nal.len().min(17))?;
    let rbsp = unescape_rbsp(head);
    let mut r = BitReader::new(&rbsp);
    r.ue().ok()?; // first_mb_in_slice
    r.ue().ok()
}

impl VideoState {
    pub fn new(codec: VideoCodec) -> Self {
        VideoState {
            codec,
            sets: Default::default(),
            config: None,
            kept: Vec::new(),
            fresh: Default::default(),
        }
    }

    /// Converts the elementary stream bytes of one PES packet (one access unit):
    /// `pes[start..]`.
    ///
    /// When the units kept can be rewritten in place (4-byte start codes become 4-byte
    /// lengths) and `pes` has at most half its length spare, the frame is a slice of
    /// `pes`, which is taken (left empty); otherwise the frame is a copy and `pes` is
    /// left as it was. Returns the access unit (`None` when it holds no unit besides AUD and parameter
    /// sets) and, when the in-band parameter sets make a configuration different from
    /// the one in force, that new configuration (already adopted). Bytes before the
    /// first start code are ignored. `random_access` is the adaptation field's
    /// `random_access_indicator`: with it (or a recovery point SEI) an H.264 access unit
    /// whose first slice is I or SI counts as a keyframe too (open-GOP streams).
    ///
    /// Errors: [`Error::malformed`] for parameter sets that do not parse; the state is
    /// unchanged and the access unit is lost.
    pub fn access_unit(
        &mut self,
        pes: &mut BytesMut,
        start: usize,
        random_access: bool,
    ) -> Result<(Option<AccessUnit>, Option<CodecConfig>)> {
        let es = pes.get(start..).unwrap_or(&[]);
        self.kept.clear();
        for f in &mut self.fresh {
            f.clear();
        }
        let mut keyframe = false;
        let mut first_slice = None;
        let mut recovery_point = false;
        let mut out_len = 0usize;
        let mut next = find_start_code(es, 0);
        while let Some(sc) = next {
            let start = sc + 3;
            next = find_start_code(es, start);
            let mut end = next.unwrap_or(es.len());
            // Trailing zeros belong to a 4-byte start code or are trailing_zero_8bits.
            while end > start && es[end - 1] == 0 {
                end -= 1;
            }
            if end == start {
                continue;
            }
            match classify(self.codec, es[start]) {
                Unit::Aud => continue,
                Unit::Param(slot) => {
                    let f = &mut self.fresh[slot];
                    let nal = &es[start..end];
                    if f.len() < MAX_SETS && !f.iter().any(|&(s, e)| &es[s..e] == nal) {
                        f.push((start, end));
                    }
                    continue;
                }
                Unit::RandomAccess => keyframe = true,
                Unit::Slice => {
                    first_slice.get_or_insert((start, end));
                }
                Unit::Sei => recovery_point |= es.get(start + 1) == Some(&6),
                Unit::Other => {}
            }
            self.kept.push((start, end));
            out_len += 4 + end - start;
        }
        let config = self.update_sets(es)?;
        if !keyframe && self.codec == VideoCodec::H264 && (random_access || recovery_point) {
            keyframe = first_slice
                .and_then(|(s, e)| h264_slice_type(&es[s..e]))
                .is_some_and(|t| matches!(t % 5, 2 | 4));
        }
        let (Some(&(first, _)), Some(&(_, last))) = (self.kept.first(), self.kept.last()) else {
            return Ok((None, config));
        };
        // In place: every unit right after a 4-byte start code, each start code right
        // after the previous unit, and a buffer not much larger than the frame (which
        // keeps it alive).
        let mut prev = first.saturating_sub(4);
        let in_place = pes.capacity() <= pes.len() + pes.len() / 2
            && self.kept.iter().all(|&(s, e)| {
                let ok = s >= 4 && s - 4 == prev && es[s - 4..s] == [0, 0, 0, 1];
                prev = e;
                ok
            });
        let data = if in_place {
            let mut whole = std::mem::take(pes);
            for &(s, e) in &self.kept {
                whole[start + s - 4..start + s].copy_from_slice(&((e - s) as u32).to_be_bytes());
            }
            whole.freeze().slice(start + first - 4..start + last)
        } else {
            let mut out = BytesMut::with_capacity(out_len);
            for &(s, e) in &self.kept {
                out.put_u32((e - s) as u32);
                out.put_slice(&es[s..e]);
            }
            out.freeze()
        };
        Ok((Some(AccessUnit { data, keyframe }), config))
    }

    /// Adopts the parameter sets of the current access unit; returns the new
    /// configuration when it differs from the one in force.
    fn update_sets(&mut self, es: &[u8]) -> Result<Option<CodecConfig>> {
        if self.fresh.iter().all(Vec::is_empty) {
            return Ok(None);
        }
        let mut sets = self.sets.clone();
        for (slot, fresh) in self.fresh.iter().enumerate() {
            let same = fresh.len() == sets[slot].len()
                && fresh
                    .iter()
                    .zip(&sets[slot])
                    .all(|(&(s, e), old)| es[s..e] == old[..]);
            if !fresh.is_empty() && !same {
                sets[slot] = fresh
                    .iter()
                    .map(|&(s, e)| Bytes::copy_from_slice(&es[s..e]))
                    .collect();
            }
        }
        let complete = match self.codec {
            VideoCodec::H264 => !sets[1].is_empty() && !sets[2].is_empty(),
            VideoCodec::H265 => sets.iter().all(|s| !s.is_empty()),
        };
        if sets == self.sets && (self.config.is_some() || !complete) {
            return Ok(None);
        }
        if !complete {
            self.sets = sets;
            return Ok(None);
        }
        let config = match self.codec {
            VideoCodec::H264 => {
                let record = h264::build_avcc(&sets[1], &sets[2])
                    .map_err(|_| Error::malformed("H.264 parameter sets cannot form an avcC"))?;
                CodecConfig::H264(H264Config::from_avcc(record)?)
            }
            VideoCodec::H265 => {
                let record = hevc::build_hvcc(&sets[0], &sets[1], &sets[2])
                    .map_err(|e| Error::malformed(e.message().to_owned()))?;
                CodecConfig::H265(H265Config::from_hvcc(record)?)
            }
        };
        self.sets = sets;
        if self.config.as_ref() == Some(&config) {
            return Ok(None);
        }
        self.config = Some(config.clone());
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitstream::test_vectors::{PPS_720P, SPS_720P};

    fn annexb(units: &[(&[u8], bool)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (u, long) in units {
            if *long {
                v.push(0);
            }
            v.extend_from_slice(&[0, 0, 1]);
            v.extend_from_slice(u);
        }
        v
    }

    /// [`VideoState::access_unit`] on a PES buffer holding `es` after a 9-byte header.
    fn convert(
        v: &mut VideoState,
        es: &[u8],
        random_access: bool,
    ) -> Result<(Option<AccessUnit>, Option<CodecConfig>)> {
        let mut pes = BytesMut::from(&[9u8; 9][..]);
        pes.extend_from_slice(es);
        v.access_unit(&mut pes, 9, random_access)
    }

    fn units(data: &[u8]) -> Vec<&[u8]> {
        crate::bitstream::nal::iter_length_prefixed(data, 4)
            .map(|u| u.unwrap())
            .collect()
    }

    #[test]
    fn start_codes() {
        let d = [9, 0, 0, 1, 5, 0, 0, 0, 1, 0, 0, 2, 0, 0, 1];
        assert_eq!(find_start_code(&d, 0), Some(1));
        assert_eq!(find_start_code(&d, 4), Some(6));
        assert_eq!(find_start_code(&d, 9), Some(12));
        assert_eq!(find_start_code(&d, 13), None);
        assert_eq!(find_start_code(&[0, 0], 0), None);
        assert_eq!(find_start_code(&[], 0), None);
        // Every position, against a naive search.
        let noisy: Vec<u8> = (0..500u32)
            .map(|i| [0, 0, 1, 0, 3, 0, 0, 0, 1, 7][(i * 7 % 10) as usize])
            .collect();
        for from in 0..noisy.len() {
            let naive =
                (from..noisy.len().saturating_sub(2)).find(|&i| noisy[i..i + 3] == [0, 0, 1]);
            assert_eq!(find_start_code(&noisy, from), naive, "from {from}");
        }
    }

    #[test]
    fn h264_access_units() {
        let idr: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01];
        let sei: &[u8] = &[0x06, 0x05, 0x01, 0xaa, 0x80];
        let mut v = VideoState::new(VideoCodec::H264);
        let es = annexb(&[
            (&[0x09, 0xf0], true),
            (SPS_720P, true),
            (PPS_720P, true),
            (sei, false),
            (idr, true),
        ]);
        let mut es = es;
        es.extend_from_slice(&[0, 0]); // trailing_zero_8bits
        let (au, cfg) = convert(&mut v, &es, false).unwrap();
        let au = au.unwrap();
        assert!(au.keyframe);
        assert_eq!(units(&au.data), vec![sei, idr]);
        let Some(CodecConfig::H264(c)) = cfg else {
            panic!("{cfg:?}")
        };
        assert_eq!((c.width, c.height), (1280, 720));
        // The same sets again: no new configuration.
        let (_, cfg) = convert(&mut v, &es, false).unwrap();
        assert!(cfg.is_none());
        // A P slice: no keyframe, no config.
        let p: &[u8] = &[0x41, 0x9a, 0x02];
        let (au, cfg) = convert(&mut v, &annexb(&[(&[9, 0x30], true), (p, false)]), true).unwrap();
        assert!(!au.unwrap().keyframe && cfg.is_none());
        // A non-IDR I slice (slice_type 7: ue 0b0001000) with the random access hint.
        let i_slice: &[u8] = &[0x21, 0b1000_1000, 0x80];
        let (au, _) = convert(&mut v, &annexb(&[(i_slice, true)]), true).unwrap();
        assert!(au.unwrap().keyframe);
        let (au, _) = convert(&mut v, &annexb(&[(i_slice, true)]), false).unwrap();
        assert!(!au.unwrap().keyframe);
        // A changed SPS: a new configuration.
        let sps2: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8];
        let (_, cfg) = convert(
            &mut v,
            &annexb(&[(sps2, true), (PPS_720P, true), (idr, true)]),
            false,
        )
        .unwrap();
        assert!(matches!(cfg, Some(CodecConfig::H264(c)) if c.sps[0][..] == *sps2));
        // Parameter sets only: no access unit; the PPS in force goes with a new SPS.
        let (au, cfg) = convert(&mut v, &annexb(&[(SPS_720P, true)]), false).unwrap();
        assert!(au.is_none());
        assert!(matches!(cfg, Some(CodecConfig::H264(c)) if c.sps[0][..] == *SPS_720P));
        let mut fresh = VideoState::new(VideoCodec::H264);
        let (_, cfg) = convert(&mut fresh, &annexb(&[(SPS_720P, true)]), false).unwrap();
        assert!(cfg.is_none(), "an SPS without a PPS waits");
        let (_, cfg) = convert(&mut fresh, &annexb(&[(PPS_720P, true)]), false).unwrap();
        assert!(cfg.is_some());
        // A broken SPS is an error and changes nothing.
        let before = v.config.clone();
        assert!(convert(
            &mut v,
            &annexb(&[(&[0x67, 0x64], true), (PPS_720P, true)]),
            false
        )
        .is_err());
        assert_eq!(v.config, before);
        // Garbage without start codes.
        let (au, cfg) = convert(&mut v, &[1, 2, 3, 4], false).unwrap();
        assert!(au.is_none() && cfg.is_none());
    }

    #[test]
    fn rewritten_in_place_when_the_layout_allows() {
        let slice: &[u8] = &[0x41, 0x9a, 0, 0, 3, 1, 0x80];
        let sei: &[u8] = &[0x06, 0x05, 0x01, 0xaa, 0x80];
        let mut v = VideoState::new(VideoCodec::H264);
        let pes_of = |es: &[u8]| {
            let mut pes = BytesMut::with_capacity(9 + es.len());
            pes.extend_from_slice(&[9; 9]);
            pes.extend_from_slice(es);
            pes
        };
        // AUD, SEI, slice with 4-byte start codes: the PES buffer becomes the frame.
        let es = annexb(&[(&[9, 0x30], true), (sei, true), (slice, true)]);
        let mut pes = pes_of(&es);
        let (au, _) = v.access_unit(&mut pes, 9, false).unwrap();
        let au = au.unwrap();
        assert!(pes.is_empty() && pes.capacity() == 0, "taken");
        assert_eq!(units(&au.data), vec![sei, slice]);
        // A 3-byte start code, or units apart (a PPS between them): a copy, the
        // buffer stays.
        for es in [
            annexb(&[(sei, true), (slice, false)]),
            annexb(&[(sei, true), (PPS_720P, true), (slice, true)]),
        ] {
            let mut pes = pes_of(&es);
            let (au, _) = v.access_unit(&mut pes, 9, false).unwrap();
            assert_eq!(units(&au.unwrap().data), vec![sei, slice]);
            assert_eq!(&pes[9..], &es[..], "left as it was");
        }
        // Too much spare room: a copy.
        let mut pes = BytesMut::with_capacity(4 * es.len());
        pes.extend_from_slice(&[9; 9]);
        pes.extend_from_slice(&es);
        let (au, _) = v.access_unit(&mut pes, 9, false).unwrap();
        assert_eq!(units(&au.unwrap().data), vec![sei, slice]);
        assert!(!pes.is_empty());
    }

    #[test]
    fn h265_access_units() {
        use super::super::hevc::tests::{PPS, SPS, VPS};
        let idr: &[u8] = &[0x26, 0x01, 0xaf, 0x09];
        let trail: &[u8] = &[0x02, 0x01, 0xd0];
        let mut v = VideoState::new(VideoCodec::H265);
        // Without a VPS the configuration waits.
        let (au, cfg) = convert(
            &mut v,
            &annexb(&[(SPS, true), (PPS, true), (idr, true)]),
            false,
        )
        .unwrap();
        assert!(au.unwrap().keyframe && cfg.is_none());
        let es = annexb(&[
            (&[0x46, 0x01, 0x50], true),
            (VPS, true),
            (SPS, true),
            (PPS, true),
            (idr, true),
        ]);
        let (au, cfg) = convert(&mut v, &es, false).unwrap();
        assert_eq!(units(&au.unwrap().data), vec![idr]);
        assert!(matches!(cfg, Some(CodecConfig::H265(c)) if c.width == 320));
        let (au, cfg) = convert(&mut v, &annexb(&[(trail, false)]), true).unwrap();
        assert!(!au.unwrap().keyframe && cfg.is_none());
    }
}
