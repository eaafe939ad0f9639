use bytes::Bytes;

use super::MediaKind;
use crate::bitstream::{aac, h264, h265};
use crate::error::Result;

/// Decoder configuration of a track, by codec.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CodecConfig {
    /// H.264 / AVC.
    H264(H264Config),
    /// H.265 / HEVC.
    H265(H265Config),
    /// AAC (any object type carried as raw frames).
    Aac(AacConfig),
    /// Opus.
    Opus(OpusConfig),
}

impl CodecConfig {
    /// Video or audio.
    pub fn kind(&self) -> MediaKind {
        match self {
            CodecConfig::H264(_) | CodecConfig::H265(_) => MediaKind::Video,
            CodecConfig::Aac(_) | CodecConfig::Opus(_) => MediaKind::Audio,
        }
    }
    /// The RFC 6381 `CODECS` string (`avc1.64001f`, `hvc1.1.6.L93.B0`, `mp4a.40.2`, `opus`).
    pub fn codecs_string(&self) -> String {
        match self {
            CodecConfig::H264(c) => c.codecs_string(),
            CodecConfig::H265(c) => c.codecs_string(),
            CodecConfig::Aac(c) => c.codecs_string(),
            CodecConfig::Opus(_) => "opus".to_string(),
        }
    }
    /// Picture size for video.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        match self {
            CodecConfig::H264(c) => Some((c.width, c.height)),
            CodecConfig::H265(c) => Some((c.width, c.height)),
            _ => None,
        }
    }
    /// Frame rate as a fraction (num, den) when the bitstream signals it.
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        match self {
            CodecConfig::H264(c) => c.frame_rate,
            CodecConfig::H265(c) => c.frame_rate,
            _ => None,
        }
    }
}

/// H.264 decoder configuration: the `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15
/// §5.3.3.1) and what its first SPS says.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct H264Config {
    /// `profile_idc` (66 baseline, 77 main, 100 high...).
    pub profile_idc: u8,
    /// The constraint_set flags byte (`profile_compatibility`).
    pub constraint_flags: u8,
    /// `level_idc` (31 = level 3.1).
    pub level_idc: u8,
    /// NAL length field size of the input (1, 2 or 4). Frames in the pipeline always use 4.
    pub nal_length_size: u8,
    /// Sequence parameter sets (NAL units, header included, no length prefix).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
    /// Display width in pixels (cropping applied).
    pub width: u32,
    /// Display height in pixels (cropping applied).
    pub height: u32,
    /// Frame rate (num, den) from the SPS VUI timing info, if present.
    pub frame_rate: Option<(u32, u32)>,
    /// The record as received, for writers that pass it through (FLV, MP4 `avcC`).
    pub record: Bytes,
}

impl H264Config {
    /// Parses an `AVCDecoderConfigurationRecord` (FLV AVC sequence header, MP4 `avcC`).
    pub fn from_avcc(record: Bytes) -> Result<Self> {
        h264::parse_avcc(record)
    }
    /// Builds a configuration from one SPS and one PPS NAL unit (Annex B input).
    pub fn from_parameter_sets(sps: Bytes, pps: Bytes) -> Result<Self> {
        h264::config_from_parameter_sets(sps, pps)
    }
    /// `avc1.PPCCLL`.
    pub fn codecs_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// H.265 decoder configuration: the `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15
/// §8.3.3.1) and what its SPS says.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct H265Config {
    /// `general_profile_space` (0..3).
    pub profile_space: u8,
    /// `general_tier_flag`.
    pub tier_flag: bool,
    /// `general_profile_idc`.
    pub profile_idc: u8,
    /// `general_profile_compatibility_flags`.
    pub profile_compatibility: u32,
    /// `general_constraint_indicator_flags` (48 bits).
    pub constraint_flags: u64,
    /// `general_level_idc` (93 = level 3.1).
    pub level_idc: u8,
    /// NAL length field size of the input.
    pub nal_length_size: u8,
    /// Video parameter sets.
    pub vps: Vec<Bytes>,
    /// Sequence parameter sets.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
    /// Display width in pixels (0 if the SPS could not be read).
    pub width: u32,
    /// Display height in pixels.
    pub height: u32,
    /// Frame rate (num, den) if signalled.
    pub frame_rate: Option<(u32, u32)>,
    /// The record as received.
    pub record: Bytes,
}

impl H265Config {
    /// Parses an `HEVCDecoderConfigurationRecord` (Enhanced FLV `hvc1`, MP4 `hvcC`).
    pub fn from_hvcc(record: Bytes) -> Result<Self> {
        h265::parse_hvcc(record)
    }
    /// `hvc1.<space><profile>.<compat reversed hex>.<tier><level>.<constraint bytes>`
    /// (ISO/IEC 14496-15 Annex E.3).
    pub fn codecs_string(&self) -> String {
        h265::codecs_string(self)
    }
}

/// AAC configuration: the `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AacConfig {
    /// Audio object type (2 = AAC-LC, 5 = SBR/HE-AAC, 29 = PS).
    pub object_type: u8,
    /// Sampling frequency index (0..12), or 15 for an explicit frequency.
    pub sampling_index: u8,
    /// Sampling rate in Hz.
    pub sample_rate: u32,
    /// Channel configuration (1 = mono, 2 = stereo...).
    pub channel_config: u8,
    /// The config bytes as received.
    pub asc: Bytes,
}

impl AacConfig {
    /// Parses an `AudioSpecificConfig`.
    pub fn from_asc(asc: Bytes) -> Result<Self> {
        aac::parse_asc(asc)
    }
    /// `mp4a.40.<object type>`.
    pub fn codecs_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
    /// Samples per frame (1024 for AAC-LC).
    pub fn samples_per_frame(&self) -> u32 {
        1024
    }
}

/// Opus configuration (`dOps`, RFC 7845 §5.1 fields).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OpusConfig {
    /// Output channel count.
    pub channels: u8,
    /// Samples (at 48 kHz) to discard at start.
    pub pre_skip: u16,
    /// Original input sample rate (informational).
    pub input_sample_rate: u32,
    /// Raw `dOps` body, if received.
    pub dops: Bytes,
}
