//! AAC `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1) and ADTS headers (§1.A.2).

use bytes::Bytes;

use super::bits::BitReader;
use crate::error::{Error, Result};
use crate::media::AacConfig;

/// Sampling frequencies by index (ISO/IEC 14496-3 Table 1.18).
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Parses an `AudioSpecificConfig`.
pub fn parse_asc(asc: Bytes) -> Result<AacConfig> {
    let mut r = BitReader::new(&asc);
    let mut object_type = r.u32(5)? as u8;
    if object_type == 31 {
        object_type = 32 + r.u32(6)? as u8;
    }
    let sampling_index = r.u32(4)? as u8;
    let sample_rate = if sampling_index == 15 {
        r.u32(24)?
    } else {
        *SAMPLE_RATES
            .get(sampling_index as usize)
            .ok_or(Error::malformed("AAC sampling frequency index reserved"))?
    };
    if sample_rate == 0 {
        return Err(Error::malformed("AAC sample rate is zero"));
    }
    let channel_config = r.u32(4)? as u8;
    if object_type == 0 {
        return Err(Error::malformed("AAC audio object type 0"));
    }
    Ok(AacConfig {
        object_type,
        sampling_index,
        sample_rate,
        channel_config,
        asc,
    })
}

/// Builds a 2-byte `AudioSpecificConfig` for AAC-LC style configs.
pub fn build_asc(object_type: u8, sampling_index: u8, channel_config: u8) -> Bytes {
    let v: u16 = ((object_type as u16 & 0x1f) << 11)
        | ((sampling_index as u16 & 0xf) << 7)
        | ((channel_config as u16 & 0xf) << 3);
    Bytes::copy_from_slice(&v.to_be_bytes())
}

/// Length of an ADTS header without CRC.
pub const ADTS_HEADER_LEN: usize = 7;
/// Largest frame an ADTS header can describe (13-bit length, header included).
pub const ADTS_MAX_FRAME: usize = 8191;

/// Writes the 7-byte ADTS header (no CRC) for a raw frame of `payload_len` bytes.
///
/// HE-AAC (object types 5, 29) is signalled as AAC-LC at the core rate, as decoders
/// expect in ADTS. Errors when the frame is too long for ADTS or the config cannot be
/// expressed (explicit frequency, object type > 4 that is not SBR/PS).
pub fn adts_header(cfg: &AacConfig, payload_len: usize) -> Result<[u8; ADTS_HEADER_LEN]> {
    let frame_len = payload_len + ADTS_HEADER_LEN;
    if frame_len > ADTS_MAX_FRAME {
        return Err(Error::limit("AAC frame too long for ADTS"));
    }
    let profile = match cfg.object_type {
        1..=4 => cfg.object_type - 1,
        5 | 29 => 1,
        _ => {
            return Err(Error::unsupported(
                "AAC object type cannot be carried in ADTS",
            ))
        }
    };
    if cfg.sampling_index > 12 {
        return Err(Error::unsupported(
            "explicit AAC sample rate cannot be carried in ADTS",
        ));
    }
    let sf = cfg.sampling_index;
    let ch = cfg.channel_config & 7;
    let fl = frame_len as u32;
    Ok([
        0xff,
        0xf1, // MPEG-4, layer 0, protection absent
        (profile << 6) | (sf << 2) | (ch >> 2),
        ((ch & 3) << 6) | ((fl >> 11) as u8 & 3),
        (fl >> 3) as u8,
        (((fl & 7) as u8) << 5) | 0x1f, // buffer fullness 0x7ff (VBR)
        0xfc,
    ])
}

/// A parsed ADTS header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdtsHeader {
    /// Audio object type (profile + 1).
    pub object_type: u8,
    /// Sampling frequency index.
    pub sampling_index: u8,
    /// Channel configuration.
    pub channel_config: u8,
    /// Header length: 7, or 9 with CRC.
    pub header_len: usize,
    /// Whole frame length, header included.
    pub frame_len: usize,
}

/// Parses an ADTS header at the start of `data`. `Ok(None)` if fewer than 7 bytes.
pub fn parse_adts(data: &[u8]) -> Result<Option<AdtsHeader>> {
    if data.len() < ADTS_HEADER_LEN {
        return Ok(None);
    }
    if data[0] != 0xff || data[1] & 0xf6 != 0xf0 {
        return Err(Error::malformed("ADTS syncword not found"));
    }
    let header_len = if data[1] & 1 == 1 { 7 } else { 9 };
    let frame_len =
        (((data[3] & 3) as usize) << 11) | ((data[4] as usize) << 3) | (data[5] as usize >> 5);
    if frame_len < header_len {
        return Err(Error::malformed(
            "ADTS frame length shorter than its header",
        ));
    }
    Ok(Some(AdtsHeader {
        object_type: (data[2] >> 6) + 1,
        sampling_index: (data[2] >> 2) & 0xf,
        channel_config: ((data[2] & 1) << 2) | (data[3] >> 6),
        header_len,
        frame_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_and_adts() {
        let cfg = parse_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        assert_eq!(
            (cfg.object_type, cfg.sample_rate, cfg.channel_config),
            (2, 48000, 2)
        );
        assert_eq!(build_asc(2, 3, 2), Bytes::from_static(&[0x11, 0x90]));
        let h = adts_header(&cfg, 300).unwrap();
        let p = parse_adts(&h).unwrap().unwrap();
        assert_eq!(
            (
                p.object_type,
                p.sampling_index,
                p.channel_config,
                p.frame_len
            ),
            (2, 3, 2, 307)
        );
        assert!(adts_header(&cfg, 9000).is_err());
        assert!(parse_asc(Bytes::from_static(&[0x11])).is_err());
        assert!(parse_asc(Bytes::from_static(&[0x17, 0x90])).is_err()); // index 14 reserved
    }
}
