//! # strom
//!
//! Embeddable building blocks for video streaming origins: ingest (RTMP, FLV, MP4,
//! MPEG-TS), packaging into MPEG-TS and CMAF segments cut on keyframes, HLS and DASH
//! publishing, just-in-time protection, and SCTE-35 ad breaks (parsed once, at ingest, by
//! [`scte35`]) cut at the splice point and marked in every manifest. The core is sans-IO: parsers and writers are state machines and pure
//! functions over bytes; the host moves bytes, owns sockets, files and clocks.
//!
//! ## Architecture
//!
//! ```text
//! FLV bytes -> FlvDemuxer --\
//! MP4 file  -> Mp4Demuxer ---> Segmenter -> TsMuxer -> HLS playlists
//! ```
//!
//! [`package::VodPackager`] composes the last three for HLS VOD: it muxes each
//! segment in pieces as the host polls, so memory stays at about one segment of
//! input, and the host writes every piece while it is still in cache.
//! `examples/package.rs` is the file-based host; `examples/common/input.rs` is the
//! thin file adapter that drives the sans-IO demuxers.
//!
//! The one place the library itself touches files is [`origin::DiskStore`], the durable
//! [`origin::SegmentStore`] (as the architecture plans "memory and disk stores"): a thin
//! `std::fs` adapter whose format, recovery and searches are the sans-IO
//! [`origin::index`]. It reads no clock (retention is measured against the newest
//! record) and never blocks on anything but the disk.
//!
//! * Every stage follows [`pipeline::Stage`]: push one input, poll until `None`, finish.
//! * [`media::Item`]s carry frames and in-order [`media::Event`]s (track added or
//!   changed, discontinuity, cue, end of stream). Stages forward events they do not use.
//! * Payloads are [`bytes::Bytes`] in one canonical form: 4-byte length-prefixed NAL
//!   units for video, raw frames for audio. Writers convert at the edge, once.
//! * Time is [`time::Timestamp`]: integer ticks with a [`time::Timescale`]. Wire
//!   clocks are unwrapped once at ingest by [`time::Rollover`].
//! * Errors are one type, [`Error`], with a [`ErrorKind`] to branch on; bad input is
//!   an error or a discontinuity, never a panic.
//!
//! ```
//! use strom::time::{Timescale, Timestamp};
//! let a = Timestamp::new(3003, Timescale::MPEG);
//! let b = Timestamp::new(1001, Timescale::new(30000).unwrap());
//! assert_eq!(a, b);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

pub mod auth;
pub mod bitstream;
pub mod container;
pub mod crypto;
pub mod error;
pub mod ingest;
pub mod media;
pub mod origin;
pub mod package;
pub mod pipeline;
pub mod scte35;
pub mod time;

pub use error::{Error, ErrorKind, Result};
