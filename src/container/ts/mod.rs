//! MPEG-TS (ISO/IEC 13818-1) writer: [`TsMuxer`] turns canonical frames into
//! transport packets for HLS segments.
//!
//! The module tree follows the specification's structures:
//!
//! * [`packet`]: the transport packet header, adaptation field, PCR (§2.4.3.2–§2.4.3.5)
//!   and the packetiser that lays one PES packet out over 188-byte packets.
//! * [`pes`]: the PES packet header with PTS/DTS (§2.4.3.6, §2.4.3.7).
//! * [`psi`]: PAT and PMT sections with their CRC-32/MPEG-2 (§2.4.4, Annex A).
//! * [`sample_aes`]: HLS SAMPLE-AES signalling ([`TsEncryption`], stream types
//!   `0xdb`/`0xcf` and their descriptors) and [`write_sample_aes_segment`].
//! * [`TsMuxer`]: tracks, PIDs, continuity counters, PCR, Annex B and ADTS conversion.
//! * [`TsDemuxer`]: the reader, a [`crate::pipeline::Stage`] from transport stream bytes
//!   to frames, track events and SCTE 35 cues.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use strom::container::ts::{TsMuxer, TsMuxerOptions};
//! use strom::media::{CodecConfig, Frame, FrameFlags, H264Config, TrackInfo};
//! use strom::time::{Timescale, Timestamp};
//!
//! // x264 High@3.1 1280x720 SPS and PPS.
//! let sps = Bytes::from_static(&[
//!     0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x6a, 0x02, 0x02,
//!     0x02, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x19, 0x07, 0x8c, 0x18, 0xcb,
//! ]);
//! let pps = Bytes::from_static(&[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
//! let cfg = H264Config::from_parameter_sets(sps, pps).unwrap();
//! let video = TrackInfo::new(1, Timescale::MILLIS, CodecConfig::H264(cfg));
//! let mut mux = TsMuxer::new(&[video], TsMuxerOptions::default()).unwrap();
//!
//! let mut out = BytesMut::new();
//! mux.write_tables(&mut out);
//! // One IDR slice NAL unit, 4-byte length-prefixed.
//! let idr = Bytes::from_static(&[0, 0, 0, 3, 0x65, 0x88, 0x84]);
//! let t = Timestamp::from_millis(0);
//! mux.write_frame(&Frame::new(1, t, t, idr).with_flags(FrameFlags::KEYFRAME), &mut out).unwrap();
//! assert_eq!(out.len(), 3 * 188);
//! assert_eq!(mux.pid(1), Some(0x100));
//! // The PES carries AUD, SPS, PPS, then the slice with a start code.
//! let pes = &out[2 * 188..];
//! assert_eq!(pes[1] & 0x40, 0x40); // payload_unit_start_indicator
//! assert!(pes.windows(6).any(|w| w == [0, 0, 0, 1, 0x09, 0xf0]));
//! assert!(pes.ends_with(&[0, 0, 0, 1, 0x65, 0x88, 0x84]));
//! ```

mod demux;
mod muxer;
pub mod packet;
pub mod pes;
pub mod psi;
mod retime;
pub mod sample_aes;

pub use demux::{TsDemuxer, TsDemuxerOptions, TsDemuxerStats, DEFAULT_MAX_STREAMS};
pub use muxer::{
    TsMuxer, TsMuxerOptions, DEFAULT_AUDIO_PES_MAX_BYTES, MAX_TRACKS, PCR_DELAY, PCR_MAX_INTERVAL,
    PROGRAM_NUMBER, TRANSPORT_STREAM_ID,
};
pub use psi::{
    STREAM_TYPE_AAC_ADTS, STREAM_TYPE_AAC_SAMPLE_AES, STREAM_TYPE_H264,
    STREAM_TYPE_H264_SAMPLE_AES, STREAM_TYPE_HEVC, STREAM_TYPE_SCTE35,
};
pub use retime::retime;
pub use sample_aes::{write_sample_aes_segment, TsEncryption};
