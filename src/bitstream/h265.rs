//! H.265 parameter sets: `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1),
//! picture size from the SPS (ITU-T H.265 §7.3.2.2) and the RFC 6381 codecs string.

use bytes::Bytes;

use super::bits::{unescape_rbsp, BitReader};
use crate::error::{Error, Result};
use crate::media::H265Config;

/// NAL unit type of an HEVC unit (bits 1..6 of the first header byte).
pub fn unit_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 1) & 0x3f)
}

/// NAL unit types used by writers.
pub mod nal_type {
    /// First IRAP type (BLA_W_LP).
    pub const BLA_W_LP: u8 = 16;
    /// Last IRAP type (reserved IRAP 23).
    pub const IRAP_END: u8 = 23;
    /// Video parameter set.
    pub const VPS: u8 = 32;
    /// Sequence parameter set.
    pub const SPS: u8 = 33;
    /// Picture parameter set.
    pub const PPS: u8 = 34;
    /// Access unit delimiter.
    pub const AUD: u8 = 35;
}

const MAX_ARRAYS: usize = 16;
const MAX_NALUS: usize = 32;

/// Parses an `HEVCDecoderConfigurationRecord`.
pub fn parse_hvcc(record: Bytes) -> Result<H265Config> {
    let d = &record[..];
    if d.len() < 23 {
        return Err(Error::malformed("hvcC shorter than 23 bytes"));
    }
    if d[0] != 1 {
        return Err(Error::unsupported("hvcC configurationVersion is not 1"));
    }
    let profile_space = d[1] >> 6;
    let tier_flag = d[1] & 0x20 != 0;
    let profile_idc = d[1] & 0x1f;
    let profile_compatibility = u32::from_be_bytes([d[2], d[3], d[4], d[5]]);
    let mut constraint_flags = 0u64;
    for &b in &d[6..12] {
        constraint_flags = (constraint_flags << 8) | b as u64;
    }
    let level_idc = d[12];
    let avg_frame_rate = u16::from_be_bytes([d[19], d[20]]);
    let nal_length_size = (d[21] & 3) + 1;
    if nal_length_size == 3 {
        return Err(Error::malformed("hvcC lengthSizeMinusOne of 2 is reserved"));
    }
    let num_arrays = d[22] as usize;
    if num_arrays > MAX_ARRAYS {
        return Err(Error::limit("too many NAL arrays in hvcC"));
    }
    let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
    let mut pos = 23;
    for _ in 0..num_arrays {
        let hdr = d
            .get(pos..pos + 3)
            .ok_or(Error::malformed("hvcC truncated array header"))?;
        let ty = hdr[0] & 0x3f;
        let n = u16::from_be_bytes([hdr[1], hdr[2]]) as usize;
        if n > MAX_NALUS {
            return Err(Error::limit("too many NAL units in an hvcC array"));
        }
        pos += 3;
        for _ in 0..n {
            let l = d
                .get(pos..pos + 2)
                .ok_or(Error::malformed("hvcC truncated NAL length"))?;
            let len = u16::from_be_bytes([l[0], l[1]]) as usize;
            pos += 2;
            if d.len() < pos + len {
                return Err(Error::malformed("hvcC NAL unit exceeds record"));
            }
            let unit = record.slice(pos..pos + len);
            pos += len;
            match ty {
                nal_type::VPS => vps.push(unit),
                nal_type::SPS => sps.push(unit),
                nal_type::PPS => pps.push(unit),
                _ => {}
            }
        }
    }
    let (width, height) = match sps.first() {
        Some(s) => parse_sps_size(s)?,
        None => return Err(Error::malformed("hvcC has no SPS")),
    };
    let frame_rate = (avg_frame_rate != 0).then_some((avg_frame_rate as u32, 256));
    Ok(H265Config {
        profile_space,
        tier_flag,
        profile_idc,
        profile_compatibility,
        constraint_flags,
        level_idc,
        nal_length_size,
        vps,
        sps,
        pps,
        width,
        height,
        frame_rate,
        record,
    })
}

/// Cropped picture size from an HEVC SPS NAL unit (2-byte header included).
pub fn parse_sps_size(nal: &[u8]) -> Result<(u32, u32)> {
    if nal.len() < 3 || unit_type(nal) != nal_type::SPS {
        return Err(Error::malformed("not an HEVC SPS NAL unit"));
    }
    let rbsp = unescape_rbsp(&nal[2..]);
    let mut r = BitReader::new(&rbsp);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.u32(3)?;
    r.skip(1)?;
    // profile_tier_level(1, max_sub_layers_minus1)
    r.skip(96)?;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (r.bit()?, r.bit()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
    }
    for &(prof, lvl) in present.iter().take(max_sub_layers_minus1 as usize) {
        if prof {
            r.skip(88)?;
        }
        if lvl {
            r.skip(8)?;
        }
    }
    let _sps_id = r.ue()?;
    let chroma = r.ue()?;
    if chroma > 3 {
        return Err(Error::malformed("HEVC SPS chroma_format_idc > 3"));
    }
    let mut separate = false;
    if chroma == 3 {
        separate = r.bit()?;
    }
    let w = r.ue()? as u64;
    let h = r.ue()? as u64;
    let (mut cw, mut ch) = (0u64, 0u64);
    if r.bit()? {
        let (l, rr, t, b) = (
            r.ue()? as u64,
            r.ue()? as u64,
            r.ue()? as u64,
            r.ue()? as u64,
        );
        let (sw, sh) = match (chroma, separate) {
            (1, false) => (2, 2),
            (2, false) => (2, 1),
            _ => (1, 1),
        };
        cw = sw * (l + rr);
        ch = sh * (t + b);
    }
    if w == 0 || h == 0 || w > 16_384 || h > 16_384 || cw >= w || ch >= h {
        return Err(Error::malformed("HEVC SPS picture size out of range"));
    }
    Ok(((w - cw) as u32, (h - ch) as u32))
}

/// RFC 6381 / ISO/IEC 14496-15 Annex E codecs string, e.g. `hvc1.1.6.L93.B0`.
pub fn codecs_string(c: &H265Config) -> String {
    let space = match c.profile_space {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let compat = c.profile_compatibility.reverse_bits();
    let mut s = format!(
        "hvc1.{space}{}.{:X}.{}{}",
        c.profile_idc,
        compat,
        if c.tier_flag { 'H' } else { 'L' },
        c.level_idc
    );
    let bytes = c.constraint_flags.to_be_bytes();
    let bytes = &bytes[2..]; // 48 bits
    let last = bytes.iter().rposition(|&b| b != 0);
    if let Some(last) = last {
        for b in &bytes[..=last] {
            s.push_str(&format!(".{b:X}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_records_error() {
        let rec = Bytes::from_static(&[
            1, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0,
            0x0f, 1,
        ]);
        for n in 0..rec.len() + 1 {
            assert!(parse_hvcc(rec.slice(..n)).is_err());
        }
    }
}
