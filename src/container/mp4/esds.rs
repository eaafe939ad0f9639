//! The `esds` box body: an `ES_Descriptor` (ISO/IEC 14496-1 §7.2.6.5) holding a
//! `DecoderConfigDescriptor` (§7.2.6.6) and its `DecoderSpecificInfo` (§7.2.6.7), for
//! MP4 audio (ISO/IEC 14496-14 §5.6).
//!
//! Parsed here without recursion: descriptors are walked at fixed depths, so a hostile
//! nest of descriptors costs no stack.

use bytes::Bytes;

use crate::error::{Error, Result};

const ES_DESCR_TAG: u8 = 0x03;
const DECODER_CONFIG_TAG: u8 = 0x04;
const DECODER_SPECIFIC_TAG: u8 = 0x05;

/// What the reader needs from an `esds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EsdsInfo {
    /// `objectTypeIndication` (0x40: MPEG-4 audio; 0x66..=0x68: MPEG-2 AAC).
    pub object_type: u8,
    /// `avgBitrate` in bits per second (0: variable/unknown).
    pub avg_bitrate: u32,
    /// The `DecoderSpecificInfo` bytes (the AudioSpecificConfig for AAC).
    pub specific: Option<Bytes>,
}

/// One descriptor: tag and body. `expandable` sizes are 1 to 4 bytes of 7 bits (§8.3.3).
fn descriptor(data: &Bytes, pos: usize) -> Result<(u8, Bytes, usize)> {
    let tag = *data
        .get(pos)
        .ok_or_else(|| Error::malformed("esds descriptor truncated"))?;
    let mut size = 0usize;
    let mut at = pos + 1;
    for i in 0..4 {
        let b = *data
            .get(at)
            .ok_or_else(|| Error::malformed("esds descriptor size truncated"))?;
        at += 1;
        size = (size << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(Error::malformed("esds descriptor size longer than 4 bytes"));
        }
    }
    let end = at
        .checked_add(size)
        .filter(|&e| e <= data.len())
        .ok_or_else(|| Error::malformed("esds descriptor runs past its box"))?;
    Ok((tag, data.slice(at..end), end))
}

/// Finds the first descriptor with `tag` among those laid end to end from `pos`.
fn find(data: &Bytes, mut pos: usize, tag: u8) -> Result<Option<Bytes>> {
    while pos < data.len() {
        let (t, body, next) = descriptor(data, pos)?;
        if t == tag {
            return Ok(Some(body));
        }
        pos = next;
    }
    Ok(None)
}

/// Parses the body of an `esds` box (after its box header).
pub(crate) fn parse_esds(body: &Bytes) -> Result<EsdsInfo> {
    // FullBox version and flags.
    if body.len() < 4 {
        return Err(Error::malformed("esds shorter than its version and flags"));
    }
    let descriptors = body.slice(4..);
    let (tag, es, _) = descriptor(&descriptors, 0)?;
    let config = match tag {
        ES_DESCR_TAG => {
            let flags = *es
                .get(2)
                .ok_or_else(|| Error::malformed("ES_Descriptor truncated"))?;
            let mut pos = 3;
            if flags & 0x80 != 0 {
                pos += 2; // dependsOn_ES_ID
            }
            if flags & 0x40 != 0 {
                let len = *es
                    .get(pos)
                    .ok_or_else(|| Error::malformed("ES_Descriptor URL truncated"))?;
                pos += 1 + usize::from(len);
            }
            if flags & 0x20 != 0 {
                pos += 2; // OCR_ES_Id
            }
            find(&es, pos, DECODER_CONFIG_TAG)?
        }
        // Some writers omit the ES_Descriptor wrapper.
        DECODER_CONFIG_TAG => Some(es),
        _ => None,
    }
    .ok_or_else(|| Error::malformed("esds without DecoderConfigDescriptor"))?;
    if config.len() < 13 {
        return Err(Error::malformed(
            "DecoderConfigDescriptor shorter than 13 bytes",
        ));
    }
    let avg_bitrate = u32::from_be_bytes([config[9], config[10], config[11], config[12]]);
    Ok(EsdsInfo {
        object_type: config[0],
        avg_bitrate,
        specific: find(&config, 13, DECODER_SPECIFIC_TAG)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What FFmpeg writes for AAC-LC 48 kHz stereo.
    const FFMPEG: &[u8] = &[
        0, 0, 0, 0, // version, flags
        0x03, 0x80, 0x80, 0x80, 0x22, 0x00, 0x02, 0x00, // ES_Descriptor, ES_ID 2
        0x04, 0x80, 0x80, 0x80, 0x14, 0x40, 0x15, 0x00, 0x00, 0x00, // DecoderConfig
        0x00, 0x01, 0xf4, 0x00, 0x00, 0x01, 0xf4, 0x00, // max, avg bitrate 128000
        0x05, 0x80, 0x80, 0x80, 0x02, 0x11, 0x90, // DecoderSpecificInfo
        0x06, 0x80, 0x80, 0x80, 0x01, 0x02, // SLConfig
    ];

    #[test]
    fn ffmpeg_esds() {
        let e = parse_esds(&Bytes::from_static(FFMPEG)).unwrap();
        assert_eq!(e.object_type, 0x40);
        assert_eq!(e.avg_bitrate, 128_000);
        assert_eq!(e.specific.as_deref(), Some(&[0x11, 0x90][..]));
    }

    #[test]
    fn flags_and_errors() {
        // Short sizes, dependsOn and URL fields, no DecoderSpecificInfo.
        let d = [
            0, 0, 0, 0, 0x03, 23, 0, 1, 0xc0, 0, 5, 2, b'a', b'b', 0x04, 13, 0x6b, 0x15, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 7,
        ];
        let e = parse_esds(&Bytes::copy_from_slice(&d)).unwrap();
        assert_eq!((e.object_type, e.avg_bitrate, e.specific), (0x6b, 7, None));
        // Every truncation is an error, never a panic.
        for cut in 0..FFMPEG.len() - 6 {
            assert!(
                parse_esds(&Bytes::copy_from_slice(&FFMPEG[..cut])).is_err(),
                "cut {cut}"
            );
        }
        // Five size bytes.
        let d = [0, 0, 0, 0, 0x03, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(parse_esds(&Bytes::copy_from_slice(&d)).is_err());
        // Deep nesting is not followed.
        let mut deep = vec![0u8; 4];
        for _ in 0..10_000 {
            deep.extend_from_slice(&[0x03, 0x80, 0x80, 0x80, 0x7f]);
        }
        assert!(parse_esds(&Bytes::from(deep)).is_err());
    }
}
