//! An `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1) built from in-band
//! parameter sets, for H.265 carried in Annex B (ISO/IEC 13818-1 §2.17): the
//! `profile_tier_level` (ITU-T H.265 §7.3.3), chroma format and bit depths come from
//! the SPS (§7.3.2.2).

use bytes::{BufMut, Bytes, BytesMut};

use crate::bitstream::bits::{unescape_rbsp, BitReader};
use crate::bitstream::h265::nal_type;
use crate::error::{Error, Result};

/// SPS fields the record repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpsFields {
    /// `general_profile_space` .. `general_level_idc`: the 12 bytes of the general
    /// profile, tier and level, as coded.
    ptl: [u8; 12],
    max_sub_layers: u8,
    temporal_id_nesting: bool,
    chroma_format_idc: u8,
    bit_depth_luma_minus8: u8,
    bit_depth_chroma_minus8: u8,
}

fn sps_fields(nal: &[u8]) -> Result<SpsFields> {
    let Some(body) = nal.get(2..) else {
        return Err(Error::malformed("HEVC SPS shorter than its header"));
    };
    let rbsp = unescape_rbsp(body);
    let mut r = BitReader::new(&rbsp);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.u32(3)? as usize;
    let temporal_id_nesting = r.bit()?;
    let mut ptl = [0u8; 12];
    for b in &mut ptl {
        *b = r.u32(8)? as u8;
    }
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1) {
        *p = (r.bit()?, r.bit()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1))?;
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1) {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    let _sps_id = r.ue()?;
    let chroma = r.ue()?;
    if chroma > 3 {
        return Err(Error::malformed("HEVC SPS chroma_format_idc > 3"));
    }
    if chroma == 3 {
        r.skip(1)?; // separate_colour_plane_flag
    }
    r.ue()?; // pic_width_in_luma_samples
    r.ue()?; // pic_height_in_luma_samples
    if r.bit()? {
        for _ in 0..4 {
            r.ue()?; // conformance window offsets
        }
    }
    let luma = r.ue()?;
    let chroma_depth = r.ue()?;
    if luma > 8 || chroma_depth > 8 {
        return Err(Error::malformed("HEVC SPS bit depth out of range"));
    }
    Ok(SpsFields {
        ptl,
        max_sub_layers: max_sub_layers_minus1 as u8 + 1,
        temporal_id_nesting,
        chroma_format_idc: chroma as u8,
        bit_depth_luma_minus8: luma as u8,
        bit_depth_chroma_minus8: chroma_depth as u8,
    })
}

/// Serialises an `HEVCDecoderConfigurationRecord` with 4-byte NAL lengths and complete
/// VPS, SPS and PPS arrays. The general profile, tier and level, chroma format, bit
/// depths and temporal layering come from the first SPS; `avgFrameRate` and
/// `min_spatial_segmentation_idc` are 0 (unknown), `parallelismType` 0.
///
/// Errors: [`Error::malformed`] for an SPS that cannot be read, [`Error::usage`] when a
/// set is missing, more than 255 units of a type or a unit longer than 65535 bytes.
pub(super) fn build_hvcc(vps: &[Bytes], sps: &[Bytes], pps: &[Bytes]) -> Result<Bytes> {
    let first = sps.first().ok_or(Error::usage("build_hvcc needs an SPS"))?;
    if vps.is_empty() || pps.is_empty() {
        return Err(Error::usage("build_hvcc needs a VPS and a PPS"));
    }
    let f = sps_fields(first)?;
    let mut out = BytesMut::with_capacity(23 + 64);
    out.put_u8(1); // configurationVersion
    out.put_slice(&f.ptl);
    out.put_u16(0xf000); // reserved '1111', min_spatial_segmentation_idc 0
    out.put_u8(0xfc); // reserved '111111', parallelismType 0
    out.put_u8(0xfc | f.chroma_format_idc);
    out.put_u8(0xf8 | f.bit_depth_luma_minus8);
    out.put_u8(0xf8 | f.bit_depth_chroma_minus8);
    out.put_u16(0); // avgFrameRate
                    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
    out.put_u8(((f.max_sub_layers & 7) << 3) | (u8::from(f.temporal_id_nesting) << 2) | 3);
    out.put_u8(3); // numOfArrays
    for (ty, units) in [
        (nal_type::VPS, vps),
        (nal_type::SPS, sps),
        (nal_type::PPS, pps),
    ] {
        let n = u16::try_from(units.len())
            .ok()
            .filter(|&n| n <= 255)
            .ok_or(Error::usage("build_hvcc: too many parameter sets"))?;
        out.put_u8(0x80 | ty); // array_completeness 1
        out.put_u16(n);
        for u in units {
            let len = u16::try_from(u.len())
                .map_err(|_| Error::usage("build_hvcc: parameter set too long"))?;
            out.put_u16(len);
            out.put_slice(u);
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::media::H265Config;

    /// x265 Main 320x240 parameter sets (ffmpeg `-pix_fmt yuv420p -c:v libx265`); the record
    /// header ffmpeg writes for them is `01 01 60000000 900000000000 3c f000 fc fd f8 f8 0000 0f 03`.
    pub(crate) const VPS: &[u8] = &[
        0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x95, 0x98, 0x09,
    ];
    pub(crate) const SPS: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x08, 0x0f, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0, 0x5a,
        0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x32, 0x10,
    ];
    pub(crate) const PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];

    #[test]
    fn record_parses_back() {
        let (v, s, p) = (
            Bytes::from_static(VPS),
            Bytes::from_static(SPS),
            Bytes::from_static(PPS),
        );
        let rec = build_hvcc(
            std::slice::from_ref(&v),
            std::slice::from_ref(&s),
            std::slice::from_ref(&p),
        )
        .unwrap();
        let cfg = H265Config::from_hvcc(rec.clone()).unwrap();
        assert_eq!((cfg.width, cfg.height), (320, 240));
        assert_eq!(
            (cfg.profile_idc, cfg.level_idc, cfg.tier_flag),
            (1, 60, false)
        );
        assert_eq!(cfg.nal_length_size, 4);
        assert_eq!(
            (&cfg.vps, &cfg.sps, &cfg.pps),
            (&vec![v], &vec![s], &vec![p])
        );
        assert_eq!(
            rec[..23],
            [
                1, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x3c, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0,
                0, 0x0f, 3
            ],
            "the header ffmpeg writes"
        );
        assert_eq!(cfg.codecs_string(), "hvc1.1.6.L60.90");
        // Broken SPS: errors, never panics.
        for n in 0..SPS.len() {
            let _ = build_hvcc(
                &[Bytes::from_static(VPS)],
                &[Bytes::copy_from_slice(&SPS[..n])],
                &[Bytes::from_static(PPS)],
            );
        }
        assert!(build_hvcc(&[], &[Bytes::from_static(SPS)], &[Bytes::from_static(PPS)]).is_err());
    }
}
