//! H.264 parameter sets: `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1)
//! and sequence parameter set fields (ITU-T H.264 §7.3.2.1.1, Annex E VUI).

use bytes::{BufMut, Bytes, BytesMut};

use super::bits::{unescape_rbsp, BitReader};
use crate::error::{Error, Result};
use crate::media::H264Config;

/// NAL unit types used by writers.
pub mod nal_type {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// The NAL unit type of a unit (`nal_unit_type`, low 5 bits of the header byte).
pub fn unit_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Fields of a sequence parameter set that packagers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpsInfo {
    /// `profile_idc`.
    pub profile_idc: u8,
    /// constraint_set flags byte.
    pub constraint_flags: u8,
    /// `level_idc`.
    pub level_idc: u8,
    /// Cropped width in pixels.
    pub width: u32,
    /// Cropped height in pixels.
    pub height: u32,
    /// Frame rate (num, den) from VUI timing info, reduced.
    pub frame_rate: Option<(u32, u32)>,
}

const MAX_DIMENSION: u32 = 16_384;

/// Parses an SPS NAL unit (header byte included).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo> {
    if nal.len() < 4 || unit_type(nal) != nal_type::SPS {
        return Err(Error::malformed("not an H.264 SPS NAL unit"));
    }
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.u32(8)? as u8;
    let constraint_flags = r.u32(8)? as u8;
    let level_idc = r.u32(8)? as u8;
    let _sps_id = r.ue()?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(Error::malformed("H.264 SPS chroma_format_idc > 3"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        let _bit_depth_luma = r.ue()?;
        let _bit_depth_chroma = r.ue()?;
        let _qpprime = r.bit()?;
        if r.bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            let delta = r.se()?;
                            next = (last + delta + 256).rem_euclid(256);
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    let _log2_max_frame_num = r.ue()?;
    let poc_type = r.ue()?;
    match poc_type {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return Err(Error::malformed(
                    "H.264 SPS num_ref_frames_in_pic_order_cnt_cycle > 255",
                ));
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        2 => {}
        _ => return Err(Error::malformed("H.264 SPS pic_order_cnt_type > 2")),
    }
    let _max_refs = r.ue()?;
    let _gaps = r.bit()?;
    let w_mbs = r.ue()? as u64 + 1;
    let h_map = r.ue()? as u64 + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        r.bit()?;
    }
    let _direct_8x8 = r.bit()?;
    let (mut cl, mut cr, mut ct, mut cb) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? {
        cl = r.ue()? as u64;
        cr = r.ue()? as u64;
        ct = r.ue()? as u64;
        cb = r.ue()? as u64;
    }
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let fm = if frame_mbs_only { 1 } else { 2 };
    let crop_x = sub_w * (cl + cr);
    let crop_y = sub_h * fm * (ct + cb);
    let full_w = w_mbs * 16;
    let full_h = fm * h_map * 16;
    if crop_x >= full_w
        || crop_y >= full_h
        || full_w > MAX_DIMENSION as u64
        || full_h > MAX_DIMENSION as u64
    {
        return Err(Error::malformed("H.264 SPS picture size out of range"));
    }
    let width = (full_w - crop_x) as u32;
    let height = (full_h - crop_y) as u32;
    let mut frame_rate = None;
    if r.bit()? {
        // vui_parameters(); a truncated VUI only loses the frame rate.
        frame_rate = parse_vui_frame_rate(&mut r).ok().flatten();
    }
    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        width,
        height,
        frame_rate,
    })
}

fn parse_vui_frame_rate(r: &mut BitReader<'_>) -> Result<Option<(u32, u32)>> {
    if r.bit()? {
        let idc = r.u32(8)?;
        if idc == 255 {
            r.skip(32)?;
        }
    }
    if r.bit()? {
        r.bit()?;
    }
    if r.bit()? {
        r.skip(4)?;
        if r.bit()? {
            r.skip(24)?;
        }
    }
    if r.bit()? {
        r.ue()?;
        r.ue()?;
    }
    if r.bit()? {
        let units = r.u32(32)?;
        let scale = r.u32(32)?;
        if units == 0 || scale == 0 {
            return Ok(None);
        }
        // frame rate = time_scale / (2 * num_units_in_tick)
        let num = scale as u64;
        let den = 2 * units as u64;
        let g = gcd(num, den);
        let (num, den) = (num / g, den / g);
        if num > u32::MAX as u64 || den > u32::MAX as u64 {
            return Ok(None);
        }
        return Ok(Some((num as u32, den as u32)));
    }
    Ok(None)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// Cap on parameter sets per record; real streams carry one or two.
const MAX_PARAMETER_SETS: usize = 32;

/// Parses an `AVCDecoderConfigurationRecord`.
pub fn parse_avcc(record: Bytes) -> Result<H264Config> {
    let d = &record[..];
    if d.len() < 7 {
        return Err(Error::malformed("avcC shorter than 7 bytes"));
    }
    if d[0] != 1 {
        return Err(Error::unsupported("avcC configurationVersion is not 1"));
    }
    let nal_length_size = (d[4] & 3) + 1;
    if nal_length_size == 3 {
        return Err(Error::malformed("avcC lengthSizeMinusOne of 2 is reserved"));
    }
    let mut pos = 5;
    let read_sets = |count: usize, pos: &mut usize| -> Result<Vec<Bytes>> {
        if count > MAX_PARAMETER_SETS {
            return Err(Error::limit("too many parameter sets in avcC"));
        }
        let mut v = Vec::with_capacity(count);
        for _ in 0..count {
            let len_bytes = d
                .get(*pos..*pos + 2)
                .ok_or(Error::malformed("avcC truncated"))?;
            let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
            *pos += 2;
            if d.len() < *pos + len {
                return Err(Error::malformed("avcC parameter set exceeds record"));
            }
            v.push(record.slice(*pos..*pos + len));
            *pos += len;
        }
        Ok(v)
    };
    let nsps = (d[5] & 0x1f) as usize;
    pos += 1;
    let sps = read_sets(nsps, &mut pos)?;
    let npps = *d
        .get(pos)
        .ok_or(Error::malformed("avcC truncated before PPS count"))? as usize;
    pos += 1;
    let pps = read_sets(npps, &mut pos)?;
    let first = sps.first().ok_or(Error::malformed("avcC has no SPS"))?;
    let info = parse_sps(first)?;
    Ok(H264Config {
        profile_idc: d[1],
        constraint_flags: d[2],
        level_idc: d[3],
        nal_length_size,
        sps,
        pps,
        width: info.width,
        height: info.height,
        frame_rate: info.frame_rate,
        record,
    })
}

/// Serialises an `AVCDecoderConfigurationRecord` with 4-byte NAL lengths.
pub fn build_avcc(sps: &[Bytes], pps: &[Bytes]) -> Result<Bytes> {
    let first = sps.first().ok_or(Error::usage("build_avcc needs an SPS"))?;
    if first.len() < 4 || sps.len() > 31 || pps.len() > 255 {
        return Err(Error::usage("build_avcc: bad parameter sets"));
    }
    let mut out = BytesMut::new();
    out.put_u8(1);
    out.put_slice(&first[1..4]);
    out.put_u8(0xfc | 3);
    out.put_u8(0xe0 | sps.len() as u8);
    for s in sps {
        out.put_u16(u16::try_from(s.len()).map_err(|_| Error::usage("SPS too long"))?);
        out.put_slice(s);
    }
    out.put_u8(pps.len() as u8);
    for p in pps {
        out.put_u16(u16::try_from(p.len()).map_err(|_| Error::usage("PPS too long"))?);
        out.put_slice(p);
    }
    Ok(out.freeze())
}

/// Builds a configuration from one SPS and one PPS (for Annex B inputs).
pub fn config_from_parameter_sets(sps: Bytes, pps: Bytes) -> Result<H264Config> {
    let record = build_avcc(std::slice::from_ref(&sps), std::slice::from_ref(&pps))?;
    parse_avcc(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::bitstream::test_vectors::{PPS_720P, SPS_720P};

    #[test]
    fn sps_720p() {
        let s = parse_sps(SPS_720P).unwrap();
        assert_eq!((s.profile_idc, s.level_idc), (100, 31));
        assert_eq!((s.width, s.height), (1280, 720));
        assert_eq!(s.frame_rate, Some((25, 1)));
    }

    #[test]
    fn avcc_round_trip() {
        let sps = Bytes::from_static(SPS_720P);
        let pps = Bytes::from_static(PPS_720P);
        let cfg = config_from_parameter_sets(sps.clone(), pps.clone()).unwrap();
        assert_eq!(cfg.codecs_string(), "avc1.64001f");
        assert_eq!(cfg.sps, vec![sps]);
        assert_eq!(cfg.pps, vec![pps]);
        assert_eq!(cfg.nal_length_size, 4);
        for n in 0..cfg.record.len() {
            // Every truncation is an error, never a panic.
            assert!(parse_avcc(cfg.record.slice(..n)).is_err());
        }
    }
}
