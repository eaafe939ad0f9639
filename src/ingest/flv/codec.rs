//! Audio and video tag body headers: legacy FLV (Adobe FLV v10.1 E.4.2.1 `AUDIODATA`,
//! E.4.3.1 `VIDEODATA`, `AACAUDIODATA`, `AVCVIDEOPACKET`) and Enhanced RTMP v2
//! (`ExVideoTagHeader`, `ExAudioTagHeader`, including `ModEx` prefixes).
//!
//! The parsers return where the codec payload starts, so callers slice the body
//! without copying.

use crate::error::{Error, Result};

/// Legacy `CodecID` of AVC (E.4.3.1).
pub const CODEC_ID_AVC: u8 = 7;
/// `CodecID` 12: HEVC in the legacy layout (a widespread non-Adobe extension).
pub const CODEC_ID_HEVC_LEGACY: u8 = 12;
/// Legacy `SoundFormat` of AAC (E.4.2.1).
pub const SOUND_FORMAT_AAC: u8 = 10;
/// `SoundFormat` 9: Enhanced RTMP `ExHeader`.
pub const SOUND_FORMAT_EX_HEADER: u8 = 9;
/// The `IsExHeader` bit of the first video byte (Enhanced RTMP).
pub const VIDEO_EX_HEADER: u8 = 0x80;

/// Legacy `FrameType` values (E.4.3.1); Enhanced RTMP uses the same numbers in 3 bits.
pub mod frame_type {
    /// Keyframe (a random access point).
    pub const KEY: u8 = 1;
    /// Inter frame.
    pub const INTER: u8 = 2;
    /// Disposable inter frame (H.263 only).
    pub const DISPOSABLE: u8 = 3;
    /// Generated keyframe (server use only).
    pub const GENERATED_KEY: u8 = 4;
    /// Video info / command frame.
    pub const COMMAND: u8 = 5;
}

/// Enhanced RTMP packet types shared by audio and video (values of `VideoPacketType`
/// and `AudioPacketType`).
mod packet_type {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const SEQUENCE_END: u8 = 2;
    pub const CODED_FRAMES_X: u8 = 3;
    pub const METADATA: u8 = 4;
    pub const VIDEO_MULTITRACK: u8 = 6;
    pub const AUDIO_MULTITRACK: u8 = 5;
    pub const MOD_EX: u8 = 7;
}

/// A video codec named by a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoCodec {
    /// H.264: legacy `CodecID` 7 or FourCC `avc1`.
    Avc,
    /// H.265: FourCC `hvc1` or legacy `CodecID` 12.
    Hevc,
    /// AV1: FourCC `av01` (recognised, not supported by the demuxer).
    Av1,
    /// VP9: FourCC `vp09` (recognised, not supported by the demuxer).
    Vp9,
    /// Another legacy `CodecID` (2 Sorenson H.263, 4 VP6...).
    Legacy(u8),
    /// Another Enhanced RTMP FourCC.
    FourCc([u8; 4]),
}

/// An audio codec named by a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioCodec {
    /// AAC: legacy `SoundFormat` 10 or FourCC `mp4a`.
    Aac,
    /// Opus: FourCC `Opus`.
    Opus,
    /// MP3: legacy `SoundFormat` 2 or 14, or FourCC `.mp3`.
    Mp3,
    /// Another legacy `SoundFormat` (0 PCM, 11 Speex...).
    Legacy(u8),
    /// Another Enhanced RTMP FourCC (`fLaC`, `ac-3`, `ec-3`...).
    FourCc([u8; 4]),
}

/// What an audio or video tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PacketKind {
    /// Decoder configuration (AVC/AAC sequence header, Enhanced `SequenceStart`).
    SequenceHeader,
    /// Coded frame(s).
    Frame,
    /// End of sequence (AVC `AVCPacketType` 2, Enhanced `SequenceEnd`).
    EndOfSequence,
    /// Enhanced `Metadata` (AMF-encoded, e.g. `colorInfo`).
    Metadata,
    /// A video info / command frame (`FrameType` 5).
    Command,
    /// Another packet type, as read.
    Other(u8),
}

/// The parsed header of a video tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct VideoTagHeader {
    /// `FrameType` (see [`frame_type`]).
    pub frame_type: u8,
    /// The codec; `None` for an Enhanced command frame, which names none.
    pub codec: Option<VideoCodec>,
    /// What the tag carries.
    pub kind: PacketKind,
    /// Whether the Enhanced RTMP `ExVideoTagHeader` was used.
    pub enhanced: bool,
    /// `CompositionTime` in milliseconds (pts - dts), 0 when absent.
    pub composition_time: i32,
    /// Length of this header: the codec payload is `body[header_len..]`.
    pub header_len: usize,
}

impl VideoTagHeader {
    /// Parses the header of a video tag body.
    ///
    /// Errors: a body too short for its header is malformed; Enhanced multitrack
    /// packets are unsupported.
    pub fn parse(body: &[u8]) -> Result<VideoTagHeader> {
        let b0 = *body
            .first()
            .ok_or(Error::malformed("empty FLV video tag"))?;
        if b0 & VIDEO_EX_HEADER == 0 {
            return parse_legacy_video(b0, body);
        }
        let frame_type = (b0 >> 4) & 7;
        let (packet, mut pos) = skip_mod_ex(body, b0 & 0x0f, 1)?;
        let mut h = VideoTagHeader {
            frame_type,
            codec: None,
            kind: PacketKind::Other(packet),
            enhanced: true,
            composition_time: 0,
            header_len: pos,
        };
        if packet != packet_type::METADATA && frame_type == frame_type::COMMAND {
            h.kind = PacketKind::Command;
            h.header_len = (pos + 1).min(body.len());
            return Ok(h);
        }
        if packet == packet_type::VIDEO_MULTITRACK {
            return Err(Error::unsupported("Enhanced FLV multitrack video"));
        }
        let fourcc = take4(body, pos, "FLV video tag shorter than its FourCC")?;
        pos += 4;
        let codec = match &fourcc {
            b"avc1" => VideoCodec::Avc,
            b"hvc1" => VideoCodec::Hevc,
            b"av01" => VideoCodec::Av1,
            b"vp09" => VideoCodec::Vp9,
            _ => VideoCodec::FourCc(fourcc),
        };
        h.codec = Some(codec);
        h.kind = match packet {
            packet_type::SEQUENCE_START => PacketKind::SequenceHeader,
            packet_type::CODED_FRAMES => {
                // Only AVC and HEVC (and VVC) carry a composition time here.
                if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
                    h.composition_time = si24(body, pos)?;
                    pos += 3;
                }
                PacketKind::Frame
            }
            packet_type::CODED_FRAMES_X => PacketKind::Frame,
            packet_type::SEQUENCE_END => PacketKind::EndOfSequence,
            packet_type::METADATA => PacketKind::Metadata,
            other => PacketKind::Other(other),
        };
        h.header_len = pos;
        Ok(h)
    }
    /// Whether `FrameType` says keyframe (1).
    pub fn is_keyframe(&self) -> bool {
        self.frame_type == frame_type::KEY
    }
}

fn parse_legacy_video(b0: u8, body: &[u8]) -> Result<VideoTagHeader> {
    let frame_type = b0 >> 4;
    let codec_id = b0 & 0x0f;
    let codec = match codec_id {
        CODEC_ID_AVC => VideoCodec::Avc,
        CODEC_ID_HEVC_LEGACY => VideoCodec::Hevc,
        other => VideoCodec::Legacy(other),
    };
    let mut h = VideoTagHeader {
        frame_type,
        codec: Some(codec),
        kind: PacketKind::Frame,
        enhanced: false,
        composition_time: 0,
        header_len: 1,
    };
    if frame_type == frame_type::COMMAND {
        h.kind = PacketKind::Command;
        h.header_len = body.len().min(2);
        return Ok(h);
    }
    if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
        // AVCVIDEOPACKET: AVCPacketType, CompositionTime (SI24), data.
        let pt = *body
            .get(1)
            .ok_or(Error::malformed("FLV AVC tag shorter than its header"))?;
        h.composition_time = si24(body, 2)?;
        h.header_len = 5;
        h.kind = match pt {
            0 => PacketKind::SequenceHeader,
            1 => PacketKind::Frame,
            2 => PacketKind::EndOfSequence,
            other => PacketKind::Other(other),
        };
    }
    Ok(h)
}

/// The parsed header of an audio tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AudioTagHeader {
    /// The first byte as read (`SoundFormat`, `SoundRate`, `SoundSize`, `SoundType`, or
    /// `SoundFormat` 9 and the packet type for Enhanced RTMP).
    pub sound_flags: u8,
    /// The codec.
    pub codec: AudioCodec,
    /// What the tag carries.
    pub kind: PacketKind,
    /// Whether the Enhanced RTMP `ExAudioTagHeader` was used.
    pub enhanced: bool,
    /// Length of this header: the codec payload is `body[header_len..]`.
    pub header_len: usize,
}

impl AudioTagHeader {
    /// Parses the header of an audio tag body.
    ///
    /// Errors: a body too short for its header is malformed; Enhanced multitrack
    /// packets are unsupported.
    pub fn parse(body: &[u8]) -> Result<AudioTagHeader> {
        let b0 = *body
            .first()
            .ok_or(Error::malformed("empty FLV audio tag"))?;
        let format = b0 >> 4;
        let mut h = AudioTagHeader {
            sound_flags: b0,
            codec: AudioCodec::Legacy(format),
            kind: PacketKind::Frame,
            enhanced: false,
            header_len: 1,
        };
        match format {
            SOUND_FORMAT_AAC => {
                let pt = *body
                    .get(1)
                    .ok_or(Error::malformed("FLV AAC tag shorter than its header"))?;
                h.codec = AudioCodec::Aac;
                h.header_len = 2;
                h.kind = match pt {
                    0 => PacketKind::SequenceHeader,
                    1 => PacketKind::Frame,
                    other => PacketKind::Other(other),
                };
            }
            2 | 14 => h.codec = AudioCodec::Mp3,
            SOUND_FORMAT_EX_HEADER => {
                h.enhanced = true;
                let (packet, pos) = skip_mod_ex(body, b0 & 0x0f, 1)?;
                if packet == packet_type::AUDIO_MULTITRACK {
                    return Err(Error::unsupported("Enhanced FLV multitrack audio"));
                }
                let fourcc = take4(body, pos, "FLV audio tag shorter than its FourCC")?;
                h.codec = match &fourcc {
                    b"mp4a" => AudioCodec::Aac,
                    b"Opus" => AudioCodec::Opus,
                    b".mp3" => AudioCodec::Mp3,
                    _ => AudioCodec::FourCc(fourcc),
                };
                h.header_len = pos + 4;
                h.kind = match packet {
                    packet_type::SEQUENCE_START => PacketKind::SequenceHeader,
                    packet_type::CODED_FRAMES => PacketKind::Frame,
                    packet_type::SEQUENCE_END => PacketKind::EndOfSequence,
                    other => PacketKind::Other(other),
                };
            }
            _ => {}
        }
        Ok(h)
    }
}

/// Skips Enhanced RTMP v2 `ModEx` prefixes: while the packet type is `ModEx`, a
/// size (`UI8 + 1`, or `UI16 + 1` when that is 256), the data, then a byte with
/// the mod-ex type and the next packet type. Returns the final packet type and the
/// position after the prefixes.
fn skip_mod_ex(body: &[u8], mut packet: u8, mut pos: usize) -> Result<(u8, usize)> {
    const SHORT: &str = "FLV ModEx prefix truncated";
    while packet == packet_type::MOD_EX {
        let mut size = *body.get(pos).ok_or(Error::malformed(SHORT))? as usize + 1;
        pos += 1;
        if size == 256 {
            let b = body.get(pos..pos + 2).ok_or(Error::malformed(SHORT))?;
            size = u16::from_be_bytes([b[0], b[1]]) as usize + 1;
            pos += 2;
        }
        pos += size;
        packet = *body.get(pos).ok_or(Error::malformed(SHORT))? & 0x0f;
        pos += 1;
    }
    Ok((packet, pos))
}

fn take4(body: &[u8], pos: usize, msg: &'static str) -> Result<[u8; 4]> {
    let b = body.get(pos..pos + 4).ok_or(Error::malformed(msg))?;
    Ok([b[0], b[1], b[2], b[3]])
}

/// A signed 24-bit big-endian integer (`SI24`) at `pos`.
fn si24(body: &[u8], pos: usize) -> Result<i32> {
    let b = body.get(pos..pos + 3).ok_or(Error::malformed(
        "FLV video tag shorter than its composition time",
    ))?;
    Ok(i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8)
}

/// Writes `v` as `SI24`; `None` when it does not fit in 24 bits.
pub(crate) fn put_si24(v: i64) -> Option<[u8; 3]> {
    if !(-(1 << 23)..(1 << 23)).contains(&v) {
        return None;
    }
    let b = (v as i32).to_be_bytes();
    Some([b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn legacy_avc() {
        let h = VideoTagHeader::parse(&[0x17, 0, 0, 0, 0, 1, 0x64]).unwrap();
        assert_eq!(
            (h.kind, h.codec, h.header_len),
            (PacketKind::SequenceHeader, Some(VideoCodec::Avc), 5)
        );
        assert!(h.is_keyframe());
        let h = VideoTagHeader::parse(&[0x27, 1, 0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x41]).unwrap();
        assert_eq!(
            (h.kind, h.frame_type, h.composition_time),
            (PacketKind::Frame, 2, -40)
        );
        let h = VideoTagHeader::parse(&[0x27, 1, 0x00, 0x00, 0x50]).unwrap();
        assert_eq!(h.composition_time, 80);
        let h = VideoTagHeader::parse(&[0x17, 2, 0, 0, 0]).unwrap();
        assert_eq!(h.kind, PacketKind::EndOfSequence);
        let h = VideoTagHeader::parse(&[0x57, 0]).unwrap();
        assert_eq!(h.kind, PacketKind::Command);
        let h = VideoTagHeader::parse(&[0x22, 0xaa]).unwrap();
        assert_eq!((h.codec, h.header_len), (Some(VideoCodec::Legacy(2)), 1));
        for short in [&[][..], &[0x17], &[0x17, 1, 0, 0]] {
            assert_eq!(
                VideoTagHeader::parse(short).unwrap_err().kind(),
                ErrorKind::Malformed
            );
        }
    }

    #[test]
    fn enhanced_video() {
        // SequenceStart, keyframe, hvc1.
        let h = VideoTagHeader::parse(b"\x90hvc1\x01").unwrap();
        assert_eq!(
            (h.kind, h.codec, h.header_len),
            (PacketKind::SequenceHeader, Some(VideoCodec::Hevc), 5)
        );
        assert!(h.enhanced && h.is_keyframe());
        // CodedFrames with composition time 0x000102.
        let h = VideoTagHeader::parse(b"\xa1hvc1\x00\x01\x02data").unwrap();
        assert_eq!(
            (h.kind, h.frame_type, h.composition_time, h.header_len),
            (PacketKind::Frame, 2, 258, 8)
        );
        // CodedFramesX: no composition time.
        let h = VideoTagHeader::parse(b"\x93avc1data").unwrap();
        assert_eq!(
            (h.kind, h.codec, h.composition_time, h.header_len),
            (PacketKind::Frame, Some(VideoCodec::Avc), 0, 5)
        );
        // AV1 coded frames carry no composition time.
        let h = VideoTagHeader::parse(b"\x91av01obu").unwrap();
        assert_eq!((h.codec, h.header_len), (Some(VideoCodec::Av1), 5));
        // A ModEx prefix (3 bytes of nanosecond offset) before CodedFramesX.
        let h = VideoTagHeader::parse(b"\x97\x02\x00\x01\x02\x03vp09x").unwrap();
        assert_eq!(
            (h.kind, h.codec, h.header_len),
            (PacketKind::Frame, Some(VideoCodec::Vp9), 10)
        );
        // A 16-bit ModEx size.
        let mut long = vec![0x97, 0xff, 0x01, 0x00];
        long.extend(std::iter::repeat_n(0, 257));
        long.extend_from_slice(b"\x02hvc1");
        let h = VideoTagHeader::parse(&long).unwrap();
        assert_eq!(
            (h.kind, h.header_len),
            (PacketKind::EndOfSequence, long.len())
        );
        assert_eq!(
            VideoTagHeader::parse(b"\x97\x05\x00").unwrap_err().kind(),
            ErrorKind::Malformed
        );
        // Command frame and metadata.
        assert_eq!(
            VideoTagHeader::parse(b"\xd1\x00").unwrap().kind,
            PacketKind::Command
        );
        assert_eq!(
            VideoTagHeader::parse(b"\xd4hvc1").unwrap().kind,
            PacketKind::Metadata
        );
        assert_eq!(
            VideoTagHeader::parse(b"\x96\x00hvc1").unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(
            VideoTagHeader::parse(b"\x90hvc").unwrap_err().kind(),
            ErrorKind::Malformed
        );
        assert_eq!(
            VideoTagHeader::parse(b"\xa1hvc1\x00").unwrap_err().kind(),
            ErrorKind::Malformed
        );
    }

    #[test]
    fn audio() {
        let h = AudioTagHeader::parse(&[0xaf, 0, 0x12, 0x10]).unwrap();
        assert_eq!(
            (h.codec, h.kind, h.header_len),
            (AudioCodec::Aac, PacketKind::SequenceHeader, 2)
        );
        let h = AudioTagHeader::parse(&[0xaf, 1, 0x21]).unwrap();
        assert_eq!(h.kind, PacketKind::Frame);
        let h = AudioTagHeader::parse(&[0x2f, 0xff]).unwrap();
        assert_eq!((h.codec, h.header_len), (AudioCodec::Mp3, 1));
        let h = AudioTagHeader::parse(b"\x90mp4a\x12\x10").unwrap();
        assert_eq!(
            (h.codec, h.kind, h.header_len, h.enhanced),
            (AudioCodec::Aac, PacketKind::SequenceHeader, 5, true)
        );
        let h = AudioTagHeader::parse(b"\x91Opusx").unwrap();
        assert_eq!((h.codec, h.kind), (AudioCodec::Opus, PacketKind::Frame));
        assert_eq!(
            AudioTagHeader::parse(b"\x95\x00mp4a").unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(
            AudioTagHeader::parse(&[0xaf]).unwrap_err().kind(),
            ErrorKind::Malformed
        );
        assert_eq!(
            AudioTagHeader::parse(b"\x90mp4").unwrap_err().kind(),
            ErrorKind::Malformed
        );
    }

    #[test]
    fn si24_round_trip() {
        for v in [0i64, 1, -1, 80, -40, (1 << 23) - 1, -(1 << 23)] {
            let b = put_si24(v).unwrap();
            assert_eq!(si24(&b, 0).unwrap() as i64, v);
        }
        assert_eq!(put_si24(1 << 23), None);
        assert_eq!(put_si24(-(1 << 23) - 1), None);
    }
}
