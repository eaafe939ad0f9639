//! The CMAF header / init segment: `ftyp` + `moov` for one track (ISO/IEC 14496-12
//! §8.2–§8.8, ISO/IEC 23000-19 §7.3.2), with empty sample tables and `mvex/trex`.

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{begin, begin_full, end, pack_language, put_dinf, put_matrix};
use super::pssh::PsshBox;
use super::sinf::write_sinf;
use crate::bitstream::h264;
use crate::crypto::cenc::Pattern;
use crate::crypto::KeyId;
use crate::error::{Error, Result};
use crate::media::{AacConfig, CodecConfig, MediaKind, OpusConfig, TrackInfo};

/// `ftyp` major brand of the init segment.
pub const INIT_MAJOR_BRAND: [u8; 4] = *b"iso6";
/// `ftyp` compatible brands: ISO BMFF v6, CMAF (`cmfc`, ISO/IEC 23000-19 §7.2) and MP4 v1.
pub const INIT_COMPATIBLE_BRANDS: [[u8; 4]; 3] = [*b"iso6", *b"cmfc", *b"mp41"];

/// Checks that `track` can be written and returns nothing; used by the writer's constructor.
pub(crate) fn validate(track: &TrackInfo) -> Result<()> {
    if track.id == 0 {
        return Err(Error::usage("fMP4 track_ID must not be 0"));
    }
    match &track.config {
        CodecConfig::H264(c) => {
            if c.record.is_empty() && c.sps.is_empty() {
                return Err(Error::usage("H.264 track without avcC or SPS"));
            }
            video_size(c.width, c.height)?;
        }
        CodecConfig::H265(c) => {
            if c.record.len() < 23 {
                return Err(Error::unsupported("H.265 track without an hvcC record"));
            }
            video_size(c.width, c.height)?;
        }
        CodecConfig::Aac(c) => {
            if c.asc.is_empty() {
                return Err(Error::usage("AAC track without AudioSpecificConfig"));
            }
            if c.asc.len() > 127 {
                return Err(Error::limit("AudioSpecificConfig longer than 127 bytes"));
            }
        }
        CodecConfig::Opus(o) => {
            if o.dops.is_empty() && o.channels > 2 {
                return Err(Error::unsupported(
                    "Opus with more than 2 channels needs its dOps channel mapping",
                ));
            }
        }
    }
    Ok(())
}

fn video_size(width: u32, height: u32) -> Result<(u16, u16)> {
    match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(Error::limit("picture larger than 65535 pixels")),
    }
}

/// Writes `ftyp` + `moov` for `track` into `out` (appending).
///
/// The movie and media timescale are the track's timescale, durations are 0 (fragmented),
/// `trex` defaults are 0 (every fragment states its sample durations, sizes and flags).
pub fn write_init_segment(track: &TrackInfo, out: &mut BytesMut) -> Result<()> {
    write_init(track, None, out)
}

/// How a protected init segment wraps its sample entry (`encv`/`enca` + `sinf`) and
/// which `pssh` boxes its `moov` ends with (ISO/IEC 23001-7 §8.1, §8.2).
pub(crate) struct InitProtection<'a> {
    pub scheme: [u8; 4],
    pub key_id: KeyId,
    pub per_sample_iv_size: u8,
    pub constant_iv: Option<[u8; 16]>,
    pub pattern: Pattern,
    pub pssh: &'a [PsshBox],
}

/// [`write_init_segment`], protected when `prot` is given.
pub(crate) fn write_init(
    track: &TrackInfo,
    prot: Option<&InitProtection<'_>>,
    out: &mut BytesMut,
) -> Result<()> {
    validate(track)?;
    // ftyp (§4.3).
    let ftyp = begin(out, b"ftyp");
    out.put_slice(&INIT_MAJOR_BRAND);
    out.put_u32(0);
    for b in INIT_COMPATIBLE_BRANDS {
        out.put_slice(&b);
    }
    end(out, ftyp)?;

    let moov = begin(out, b"moov");
    write_mvhd(track, out)?;
    write_trak(track, prot, out)?;
    // mvex/trex (§8.8.1, §8.8.3).
    let mvex = begin(out, b"mvex");
    let trex = begin_full(out, b"trex", 0, 0);
    out.put_u32(track.id);
    out.put_u32(1); // default_sample_description_index
    out.put_u32(0); // default_sample_duration
    out.put_u32(0); // default_sample_size
    out.put_u32(0); // default_sample_flags
    end(out, trex)?;
    end(out, mvex)?;
    for p in prot.map_or(&[][..], |p| p.pssh) {
        p.write(out)?;
    }
    end(out, moov)
}

/// `mvhd` version 0 (§8.2.2).
fn write_mvhd(track: &TrackInfo, out: &mut BytesMut) -> Result<()> {
    let at = begin_full(out, b"mvhd", 0, 0);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(track.timescale.get());
    out.put_u32(0); // duration: unknown (fragmented)
    out.put_u32(0x0001_0000); // rate 1.0
    out.put_u16(0x0100); // volume 1.0
    out.put_u16(0);
    out.put_u64(0);
    put_matrix(out);
    for _ in 0..6 {
        out.put_u32(0); // pre_defined
    }
    out.put_u32(track.id.saturating_add(1)); // next_track_ID
    end(out, at)
}

fn write_trak(
    track: &TrackInfo,
    prot: Option<&InitProtection<'_>>,
    out: &mut BytesMut,
) -> Result<()> {
    let video = track.config.kind() == MediaKind::Video;
    let trak = begin(out, b"trak");
    // tkhd version 0, flags track_enabled | track_in_movie (§8.3.2).
    let tkhd = begin_full(out, b"tkhd", 0, 0x3);
    out.put_u32(0);
    out.put_u32(0);
    out.put_u32(track.id);
    out.put_u32(0); // reserved
    out.put_u32(0); // duration
    out.put_u64(0); // reserved
    out.put_u16(0); // layer
    out.put_u16(0); // alternate_group
    out.put_u16(if video { 0 } else { 0x0100 }); // volume
    out.put_u16(0);
    put_matrix(out);
    let (w, h) = track.config.resolution().unwrap_or((0, 0));
    let (w, h) = video_size(w, h)?;
    out.put_u32(u32::from(w) << 16);
    out.put_u32(u32::from(h) << 16);
    end(out, tkhd)?;

    let mdia = begin(out, b"mdia");
    // mdhd version 0 (§8.4.2).
    let mdhd = begin_full(out, b"mdhd", 0, 0);
    out.put_u32(0);
    out.put_u32(0);
    out.put_u32(track.timescale.get());
    out.put_u32(0);
    out.put_u16(pack_language(track.language.as_deref()));
    out.put_u16(0);
    end(out, mdhd)?;
    // hdlr (§8.4.3).
    let hdlr = begin_full(out, b"hdlr", 0, 0);
    out.put_u32(0);
    out.put_slice(if video { b"vide" } else { b"soun" });
    out.put_slice(&[0; 12]);
    out.put_slice(if video {
        b"VideoHandler\0".as_slice()
    } else {
        b"SoundHandler\0".as_slice()
    });
    end(out, hdlr)?;

    let minf = begin(out, b"minf");
    if video {
        // vmhd, flags 1 (§12.1.2).
        let vmhd = begin_full(out, b"vmhd", 0, 1);
        out.put_u16(0);
        out.put_slice(&[0; 6]);
        end(out, vmhd)?;
    } else {
        // smhd (§12.2.2).
        let smhd = begin_full(out, b"smhd", 0, 0);
        out.put_u32(0);
        end(out, smhd)?;
    }
    put_dinf(out)?;

    let stbl = begin(out, b"stbl");
    let stsd = begin_full(out, b"stsd", 0, 0);
    out.put_u32(1);
    write_sample_entry(track, prot, out)?;
    end(out, stsd)?;
    // Empty tables: the samples live in the fragments (§8.8.1).
    for kind in [b"stts", b"stsc", b"stco"] {
        let at = begin_full(out, kind, 0, 0);
        out.put_u32(0);
        end(out, at)?;
    }
    let stsz = begin_full(out, b"stsz", 0, 0);
    out.put_u32(0); // sample_size
    out.put_u32(0); // sample_count
    end(out, stsz)?;
    end(out, stbl)?;
    end(out, minf)?;
    end(out, mdia)?;
    end(out, trak)
}

/// The sample entry; protected, its type becomes `encv`/`enca` and a `sinf` naming the
/// original type follows its boxes (ISO/IEC 14496-12 §8.12, ISO/IEC 23001-7 §4.2).
fn write_sample_entry(
    track: &TrackInfo,
    prot: Option<&InitProtection<'_>>,
    out: &mut BytesMut,
) -> Result<()> {
    let at = out.len();
    write_clear_entry(track, out)?;
    let Some(p) = prot else {
        return Ok(());
    };
    let kind = out
        .get(at + 4..at + 8)
        .map(|k| [k[0], k[1], k[2], k[3]])
        .ok_or_else(|| Error::usage("sample entry not written"))?;
    let protected: &[u8; 4] = if track.config.kind() == MediaKind::Video {
        b"encv"
    } else {
        b"enca"
    };
    out[at + 4..at + 8].copy_from_slice(protected);
    write_sinf(
        out,
        &kind,
        &p.scheme,
        &p.key_id,
        p.per_sample_iv_size,
        p.constant_iv.as_ref(),
        p.pattern,
    )?;
    end(out, at)
}

fn write_clear_entry(track: &TrackInfo, out: &mut BytesMut) -> Result<()> {
    match &track.config {
        CodecConfig::H264(c) => {
            let record = if c.record.is_empty() {
                h264::build_avcc(&c.sps, &c.pps)?
            } else {
                c.record.clone()
            };
            // Samples carry 4-byte NAL lengths: lengthSizeMinusOne = 3 (14496-15 §5.3.3.1).
            let record = with_length_size(record, 4)?;
            visual_entry(out, b"avc1", b"avcC", c.width, c.height, &record)
        }
        CodecConfig::H265(c) => {
            // lengthSizeMinusOne is byte 21 of the HEVCDecoderConfigurationRecord (§8.3.3.1).
            let record = with_length_size(c.record.clone(), 21)?;
            visual_entry(out, b"hvc1", b"hvcC", c.width, c.height, &record)
        }
        CodecConfig::Aac(c) => aac_entry(out, c, track),
        CodecConfig::Opus(o) => opus_entry(out, o),
    }
}

/// Sets the two low bits of byte `at` (lengthSizeMinusOne) to 3.
fn with_length_size(record: Bytes, at: usize) -> Result<Bytes> {
    match record.get(at) {
        Some(b) if b & 3 == 3 => Ok(record),
        Some(_) => {
            let mut r = BytesMut::from(&record[..]);
            r[at] |= 3;
            Ok(r.freeze())
        }
        None => Err(Error::malformed("decoder configuration record truncated")),
    }
}

/// `VisualSampleEntry` (§12.1.3) with its configuration box.
fn visual_entry(
    out: &mut BytesMut,
    kind: &[u8; 4],
    config_kind: &[u8; 4],
    width: u32,
    height: u32,
    record: &[u8],
) -> Result<()> {
    let (w, h) = video_size(width, height)?;
    let at = begin(out, kind);
    out.put_slice(&[0; 6]);
    out.put_u16(1); // data_reference_index
    out.put_u16(0);
    out.put_u16(0);
    out.put_slice(&[0; 12]);
    out.put_u16(w);
    out.put_u16(h);
    out.put_u32(0x0048_0000); // 72 dpi
    out.put_u32(0x0048_0000);
    out.put_u32(0);
    out.put_u16(1); // frame_count
    out.put_slice(&[0; 32]); // compressorname
    out.put_u16(0x0018); // depth
    out.put_i16(-1);
    let cfg = begin(out, config_kind);
    out.put_slice(record);
    end(out, cfg)?;
    end(out, at)
}

/// `AudioSampleEntry` fields (§12.2.3) after the box header. A rate above 65535 Hz does
/// not fit the 16.16 field and is written as 0 (decoders take it from the codec config).
fn audio_fields(out: &mut BytesMut, channels: u16, rate: u32) -> Result<()> {
    let rate = u16::try_from(rate).unwrap_or(0);
    out.put_slice(&[0; 6]);
    out.put_u16(1);
    out.put_u64(0);
    out.put_u16(channels);
    out.put_u16(16);
    out.put_u32(0);
    out.put_u32(u32::from(rate) << 16);
    Ok(())
}

/// One descriptor with a one-byte size (ISO/IEC 14496-1 §8.3.3); bodies here are < 128.
fn descriptor(out: &mut BytesMut, tag: u8, body: &[u8]) -> Result<()> {
    let len = u8::try_from(body.len())
        .ok()
        .filter(|l| *l < 0x80)
        .ok_or_else(|| Error::limit("esds descriptor longer than 127 bytes"))?;
    out.put_u8(tag);
    out.put_u8(len);
    out.put_slice(body);
    Ok(())
}

/// `mp4a` + `esds` (ISO/IEC 14496-14 §5.6, ISO/IEC 14496-1 §7.2.6.5–§7.2.6.7).
fn aac_entry(out: &mut BytesMut, c: &AacConfig, track: &TrackInfo) -> Result<()> {
    let at = begin(out, b"mp4a");
    let channels = if c.channel_config == 0 {
        2
    } else {
        u16::from(c.channel_config)
    };
    audio_fields(out, channels, c.sample_rate)?;
    let esds = begin_full(out, b"esds", 0, 0);
    let bitrate = track.bitrate.unwrap_or(0);
    let mut dcd = BytesMut::with_capacity(64);
    dcd.put_u8(0x40); // objectTypeIndication: MPEG-4 audio
    dcd.put_u8((0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
    dcd.put_slice(&[0, 0, 0]); // bufferSizeDB
    dcd.put_u32(bitrate); // maxBitrate
    dcd.put_u32(bitrate); // avgBitrate
    descriptor(&mut dcd, 0x05, &c.asc)?;
    let mut es = BytesMut::with_capacity(96);
    es.put_u16(0); // ES_ID
    es.put_u8(0); // no dependsOn, URL, OCR
    descriptor(&mut es, 0x04, &dcd)?;
    descriptor(&mut es, 0x06, &[0x02])?; // SLConfigDescriptor predefined = 2 (MP4)
    descriptor(out, 0x03, &es)?;
    end(out, esds)?;
    end(out, at)
}

/// `Opus` + `dOps` ("Encapsulation of Opus in ISO Base Media File Format" §4.3.1, §4.3.2).
fn opus_entry(out: &mut BytesMut, o: &OpusConfig) -> Result<()> {
    let at = begin(out, b"Opus");
    audio_fields(out, u16::from(o.channels.max(1)), 48_000)?;
    let dops = begin(out, b"dOps");
    if o.dops.is_empty() {
        out.put_u8(0); // Version
        out.put_u8(o.channels.max(1));
        out.put_u16(o.pre_skip);
        out.put_u32(o.input_sample_rate);
        out.put_i16(0); // OutputGain
        out.put_u8(0); // ChannelMappingFamily
    } else {
        out.put_slice(&o.dops);
    }
    end(out, dops)?;
    end(out, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitstream::test_vectors::{PPS_720P, SPS_720P};
    use crate::media::{H264Config, OpusConfig};
    use crate::time::Timescale;

    /// Walks the boxes laid end to end in `data`, returning (type, body) pairs.
    fn children(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = rest[4..8].try_into().unwrap();
            out.push((kind, &rest[8..size]));
            rest = &rest[size..];
        }
        out
    }

    fn kinds(data: &[u8]) -> Vec<String> {
        children(data)
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
        children(data)
            .into_iter()
            .find(|(k, _)| k == kind)
            .unwrap()
            .1
    }

    fn h264_track() -> TrackInfo {
        let sps = Bytes::from_static(SPS_720P);
        let pps = Bytes::from_static(PPS_720P);
        let cfg = H264Config::from_parameter_sets(sps, pps).unwrap();
        TrackInfo::new(1, Timescale::new(12800).unwrap(), CodecConfig::H264(cfg))
    }

    #[test]
    fn h264_init_layout() {
        let t = h264_track();
        let mut out = BytesMut::new();
        write_init_segment(&t, &mut out).unwrap();
        assert_eq!(kinds(&out), ["ftyp", "moov"]);
        assert_eq!(child(&out, b"ftyp"), b"iso6\0\0\0\0iso6cmfcmp41");
        let moov = child(&out, b"moov");
        assert_eq!(kinds(moov), ["mvhd", "trak", "mvex"]);
        // mvhd v0 body: 4 + 96 bytes; timescale at body offset 12.
        let mvhd = child(moov, b"mvhd");
        assert_eq!(mvhd.len(), 100);
        assert_eq!(&mvhd[12..16], &12800u32.to_be_bytes());
        assert_eq!(&mvhd[96..100], &2u32.to_be_bytes()); // next_track_ID
        let trak = child(moov, b"trak");
        assert_eq!(kinds(trak), ["tkhd", "mdia"]);
        let tkhd = child(trak, b"tkhd");
        assert_eq!(tkhd.len(), 84);
        assert_eq!(&tkhd[76..84], &[0x05, 0, 0, 0, 0x02, 0xd0, 0, 0]); // 1280x720
        let mdia = child(trak, b"mdia");
        assert_eq!(kinds(mdia), ["mdhd", "hdlr", "minf"]);
        assert_eq!(&child(mdia, b"mdhd")[20..22], &[0x55, 0xc4]); // und
        let minf = child(mdia, b"minf");
        assert_eq!(kinds(minf), ["vmhd", "dinf", "stbl"]);
        let stbl = child(minf, b"stbl");
        assert_eq!(kinds(stbl), ["stsd", "stts", "stsc", "stco", "stsz"]);
        let stsd = child(stbl, b"stsd");
        let entry = &stsd[8..];
        assert_eq!(kinds(entry), ["avc1"]);
        let avc1 = child(entry, b"avc1");
        // VisualSampleEntry fields are 78 bytes, then avcC.
        assert_eq!(&avc1[24..28], &[0x05, 0x00, 0x02, 0xd0]);
        let CodecConfig::H264(c) = &t.config else {
            unreachable!()
        };
        assert_eq!(kinds(&avc1[78..]), ["avcC"]);
        assert_eq!(child(&avc1[78..], b"avcC"), &c.record[..]);
        let trex = child(child(moov, b"mvex"), b"trex");
        assert_eq!(&trex[4..12], &[0, 0, 0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn avcc_length_size_is_forced_to_four() {
        let mut t = h264_track();
        if let CodecConfig::H264(c) = &mut t.config {
            let mut r = BytesMut::from(&c.record[..]);
            r[4] = 0xfd; // 2-byte lengths in the input record
            c.record = r.freeze();
        }
        let mut out = BytesMut::new();
        write_init_segment(&t, &mut out).unwrap();
        let at = out.windows(4).position(|w| w == b"avcC").unwrap();
        assert_eq!(out[at + 4 + 4], 0xff);
    }

    #[test]
    fn aac_esds_hand_checked() {
        let c = AacConfig::from_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        let t = TrackInfo::new(2, Timescale::new(48000).unwrap(), CodecConfig::Aac(c))
            .with_language("eng");
        let mut out = BytesMut::new();
        write_init_segment(&t, &mut out).unwrap();
        let at = out.windows(4).position(|w| w == b"esds").unwrap();
        let esds = &out[at - 4..];
        let size = u32::from_be_bytes(esds[..4].try_into().unwrap()) as usize;
        assert_eq!(
            &esds[..size],
            &[
                0, 0, 0, 39, b'e', b's', b'd', b's', 0, 0, 0, 0, // FullBox
                0x03, 25, 0, 0, 0, // ES_Descriptor
                0x04, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // DecoderConfig
                0x05, 2, 0x11, 0x90, // AudioSpecificConfig
                0x06, 1, 2, // SLConfig
            ][..]
        );
        let mp4a = out.windows(4).position(|w| w == b"mp4a").unwrap();
        // channelcount 2 (from the ASC), samplerate 48000 in 16.16.
        assert_eq!(&out[mp4a + 4 + 16..mp4a + 4 + 18], &[0, 2]);
        assert_eq!(&out[mp4a + 4 + 24..mp4a + 4 + 28], &[0xbb, 0x80, 0, 0]);
        assert!(out.windows(4).any(|w| w == b"smhd"));
        let mdhd = out.windows(4).position(|w| w == b"mdhd").unwrap();
        assert_eq!(&out[mdhd + 24..mdhd + 26], &[0x15, 0xc7]); // eng
    }

    #[test]
    fn opus_dops_built_from_fields() {
        let o = OpusConfig {
            channels: 2,
            pre_skip: 312,
            input_sample_rate: 48000,
            dops: Bytes::new(),
        };
        let t = TrackInfo::new(1, Timescale::new(48000).unwrap(), CodecConfig::Opus(o));
        let mut out = BytesMut::new();
        write_init_segment(&t, &mut out).unwrap();
        let at = out.windows(4).position(|w| w == b"dOps").unwrap();
        assert_eq!(
            &out[at - 4..at + 15],
            &[0, 0, 0, 19, b'd', b'O', b'p', b's', 0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]
        );
    }

    #[test]
    fn bad_tracks_are_typed_errors() {
        let mut t = h264_track();
        t.id = 0;
        let mut out = BytesMut::new();
        assert_eq!(
            write_init_segment(&t, &mut out).unwrap_err().kind(),
            crate::ErrorKind::Usage
        );
        let o = OpusConfig {
            channels: 6,
            pre_skip: 0,
            input_sample_rate: 48000,
            dops: Bytes::new(),
        };
        let t = TrackInfo::new(1, Timescale::new(48000).unwrap(), CodecConfig::Opus(o));
        assert_eq!(
            write_init_segment(&t, &mut out).unwrap_err().kind(),
            crate::ErrorKind::Unsupported
        );
        let mut t = h264_track();
        if let CodecConfig::H264(c) = &mut t.config {
            c.width = 70_000;
        }
        assert_eq!(
            write_init_segment(&t, &mut out).unwrap_err().kind(),
            crate::ErrorKind::Limit
        );
    }
}
