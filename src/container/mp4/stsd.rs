//! Sample descriptions (`stsd`, ISO/IEC 14496-12 §8.5.2) to [`CodecConfig`]s.
//!
//! Sample entries are walked here with fixed depth: the codec record (`avcC`, `hvcC`,
//! `esds`, `dOps`) is found by type among the entry's children (or, for QuickTime-style
//! audio, inside `wave`) and only that leaf is decoded. Generic recursive decoders are not
//! run on entries, so hostile nesting costs no stack.

use mp4_atom::{Decode, Dops};

use super::esds::parse_esds;
use super::header::Child;
use crate::error::{Error, Result};
use crate::media::{AacConfig, CodecConfig, H264Config, H265Config, OpusConfig};

/// Bytes of `SampleEntry` + `VisualSampleEntry` fields before child boxes (§8.5.2, §12.1.3).
const VISUAL_ENTRY_LEN: usize = 78;
/// Bytes of `SampleEntry` + `AudioSampleEntry` fields before child boxes (§12.2.3), for
/// QuickTime sound description versions 0, 1 and 2.
const AUDIO_ENTRY_LEN: [usize; 3] = [28, 44, 64];

/// A supported track's codec: its configuration, the NAL length size for video, and the
/// declared bitrate if any.
#[derive(Debug, Clone)]
pub(crate) struct Codec {
    pub config: CodecConfig,
    pub nal_length_size: Option<u8>,
    pub bitrate: Option<u32>,
}

/// Number of sample entries in `stsd`.
pub(crate) fn entry_count(stsd: &Child) -> u32 {
    stsd.body
        .get(4..8)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The first child of `entry` with type `want`, looking past `fixed` bytes of fields.
fn child(entry: &Child, fixed: usize, want: &[u8; 4]) -> Result<Option<Child>> {
    let kids = entry
        .children_after(fixed)
        .ok_or_else(|| Error::malformed("sample entry shorter than its fields"))?;
    for c in kids {
        let c = c?;
        if &c.header.kind == want {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// The codec of the first sample entry. `Ok(None)`: a codec this reader does not handle.
/// `Err`: a handled codec whose configuration is missing or broken.
pub(crate) fn codec(stsd: &Child) -> Result<Option<Codec>> {
    if entry_count(stsd) == 0 {
        return Err(Error::malformed("stsd without sample entries"));
    }
    let Some(entry) = stsd
        .children_after(8)
        .and_then(|mut c| c.next())
        .transpose()?
    else {
        return Err(Error::malformed("stsd without sample entries"));
    };
    let codec = match &entry.header.kind {
        b"avc1" | b"avc3" => {
            let rec = child(&entry, VISUAL_ENTRY_LEN, b"avcC")?
                .ok_or_else(|| Error::malformed("avc1 sample entry without avcC"))?;
            let c = H264Config::from_avcc(rec.body).map_err(|e| e.context("avcC"))?;
            Codec {
                nal_length_size: Some(c.nal_length_size),
                config: CodecConfig::H264(c),
                bitrate: None,
            }
        }
        b"hvc1" | b"hev1" => {
            let rec = child(&entry, VISUAL_ENTRY_LEN, b"hvcC")?
                .ok_or_else(|| Error::malformed("hvc1 sample entry without hvcC"))?;
            let c = H265Config::from_hvcc(rec.body).map_err(|e| e.context("hvcC"))?;
            Codec {
                nal_length_size: Some(c.nal_length_size),
                config: CodecConfig::H265(c),
                bitrate: None,
            }
        }
        b"mp4a" => {
            let fixed = audio_fields_len(&entry)?;
            let esds = match child(&entry, fixed, b"esds")? {
                Some(e) => e,
                // QuickTime: esds inside the `wave` (siDecompressionParam) box.
                None => {
                    let wave = child(&entry, fixed, b"wave")?
                        .ok_or_else(|| Error::malformed("mp4a sample entry without esds"))?;
                    wave.children()
                        .map_while(Result::ok)
                        .find(|c| &c.header.kind == b"esds")
                        .ok_or_else(|| Error::malformed("mp4a sample entry without esds"))?
                }
            };
            let info = parse_esds(&esds.body)?;
            // 0x40: MPEG-4 audio; 0x66..=0x68: MPEG-2 AAC (ISO/IEC 14496-1 Table 5).
            if !matches!(info.object_type, 0x40 | 0x66..=0x68) {
                tracing::debug!(oti = info.object_type, "mp4a is not AAC");
                return Ok(None);
            }
            let asc = info
                .specific
                .ok_or_else(|| Error::malformed("AAC esds without AudioSpecificConfig"))?;
            let c = AacConfig::from_asc(asc).map_err(|e| e.context("esds"))?;
            Codec {
                config: CodecConfig::Aac(c),
                nal_length_size: None,
                bitrate: (info.avg_bitrate > 0).then_some(info.avg_bitrate),
            }
        }
        b"Opus" => {
            let fixed = audio_fields_len(&entry)?;
            let dops = child(&entry, fixed, b"dOps")?
                .ok_or_else(|| Error::malformed("Opus sample entry without dOps"))?;
            let d = Dops::decode(&mut &dops.full[..])
                .map_err(|e| Error::malformed(format!("dOps: {e}")))?;
            Codec {
                config: CodecConfig::Opus(OpusConfig {
                    channels: d.output_channel_count,
                    pre_skip: d.pre_skip,
                    input_sample_rate: d.input_sample_rate,
                    dops: dops.body,
                }),
                nal_length_size: None,
                bitrate: None,
            }
        }
        _ => {
            tracing::debug!(entry = %entry.header.kind_str(), "unsupported sample entry");
            return Ok(None);
        }
    };
    Ok(Some(codec))
}

/// Length of the audio sample entry fields, by QuickTime sound description version.
fn audio_fields_len(entry: &Child) -> Result<usize> {
    let version = entry
        .body
        .get(8..10)
        .map(|v| u16::from_be_bytes([v[0], v[1]]))
        .ok_or_else(|| Error::malformed("audio sample entry truncated"))?;
    AUDIO_ENTRY_LEN
        .get(usize::from(version))
        .copied()
        .ok_or_else(|| Error::unsupported("audio sample entry version above 2"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::mp4::header::children;
    use bytes::Bytes;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn stsd(entry: Vec<u8>) -> Child {
        let mut body = vec![0, 0, 0, 0, 0, 0, 0, 1];
        body.extend_from_slice(&entry);
        children(Bytes::from(boxed(b"stsd", &body)), 0)
            .next()
            .unwrap()
            .unwrap()
    }

    /// An audio sample entry of QuickTime sound description `version` with `kids`.
    fn audio_entry(kind: &[u8; 4], version: u8, kids: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8; AUDIO_ENTRY_LEN[usize::from(version)]];
        body[7] = 1; // data_reference_index
        body[9] = version;
        body.extend_from_slice(kids);
        boxed(kind, &body)
    }

    fn esds(oti: u8, asc: &[u8]) -> Vec<u8> {
        let mut dsi = vec![0x05, asc.len() as u8];
        dsi.extend_from_slice(asc);
        let mut dc = vec![0x04, (13 + dsi.len()) as u8, oti, 0x15, 0, 0, 0];
        dc.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        dc.extend_from_slice(&dsi);
        let mut es = vec![0x03, (3 + dc.len()) as u8, 0, 1, 0];
        es.extend_from_slice(&dc);
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&es);
        boxed(b"esds", &body)
    }

    #[test]
    fn quicktime_wave_and_versions() {
        let wave = boxed(
            b"wave",
            &[boxed(b"frma", b"mp4a"), esds(0x40, &[0x12, 0x10])].concat(),
        );
        let c = codec(&stsd(audio_entry(b"mp4a", 1, &wave)))
            .unwrap()
            .unwrap();
        let CodecConfig::Aac(a) = c.config else {
            panic!()
        };
        assert_eq!(
            (a.object_type, a.sample_rate, a.channel_config),
            (2, 44100, 2)
        );
        assert_eq!(c.bitrate, None);
        let c = codec(&stsd(audio_entry(b"mp4a", 2, &esds(0x40, &[0x11, 0x90]))));
        assert!(
            matches!(c.unwrap().unwrap().config, CodecConfig::Aac(a) if a.sample_rate == 48000)
        );
        // Version 3 does not exist.
        let mut e = audio_entry(b"mp4a", 0, &esds(0x40, &[0x11, 0x90]));
        e[17] = 3;
        assert_eq!(
            codec(&stsd(e)).unwrap_err().kind(),
            crate::ErrorKind::Unsupported
        );
    }

    #[test]
    fn unsupported_and_broken_entries() {
        // MP3 in mp4a, and unknown entries: not handled, no error.
        let mp3 = audio_entry(b"mp4a", 0, &esds(0x6b, &[]));
        assert!(codec(&stsd(mp3)).unwrap().is_none());
        assert!(codec(&stsd(boxed(b"tx3g", &[0; 40]))).unwrap().is_none());
        // Handled codecs with their record missing or broken: errors.
        assert!(codec(&stsd(boxed(b"avc1", &[0; 78]))).is_err());
        assert!(codec(&stsd(boxed(b"hvc1", &[0; 20]))).is_err());
        assert!(codec(&stsd(audio_entry(b"mp4a", 0, &[]))).is_err());
        assert!(codec(&stsd(audio_entry(b"Opus", 0, &boxed(b"dOps", &[0, 2])))).is_err());
        let bad_avcc = [vec![0; 78], boxed(b"avcC", &[1, 0x64, 0, 0x28, 0xff, 0xe1])].concat();
        assert!(codec(&stsd(boxed(b"avc1", &bad_avcc))).is_err());
        let e = codec(&stsd(audio_entry(b"mp4a", 0, &esds(0x40, &[0x00, 0x00])))).unwrap_err();
        assert!(e.to_string().contains("esds"), "{e}");
    }

    #[test]
    fn opus_and_deep_nesting() {
        let dops = boxed(b"dOps", &[0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]);
        let c = codec(&stsd(audio_entry(b"Opus", 0, &dops)))
            .unwrap()
            .unwrap();
        let CodecConfig::Opus(o) = c.config else {
            panic!()
        };
        assert_eq!(
            (o.channels, o.pre_skip, o.input_sample_rate),
            (2, 312, 48000)
        );
        assert_eq!(o.dops.len(), 11);
        // 100 000 nested boxes inside an entry: walked at one level, no recursion.
        let n = 100_000u32;
        let mut nest = Vec::with_capacity(8 * n as usize);
        for level in 0..n {
            nest.extend_from_slice(&(8 * (n - level)).to_be_bytes());
            nest.extend_from_slice(b"moov");
        }
        let e = audio_entry(b"mp4a", 0, &nest);
        assert!(codec(&stsd(e)).is_err());
    }
}
