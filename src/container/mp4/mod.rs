//! Progressive MP4 (ISO/IEC 14496-12): the reader for VOD input, and the exporter of stored
//! CMAF fragments as one progressive file ([`Mp4Export`]).
//!
//! The reader never performs IO: [`Mp4Demuxer`] says which byte range it needs
//! ([`ReadRequest`]), the host reads it from wherever the file lives and hands the bytes
//! back. The `moov` may come before or after `mdat`; sample data is read in runs of
//! chunks of bounded size, and frames slice those runs without copying.
//! [`scan_box_header`] is the top-level box scanner it uses, public for hosts that
//! walk files themselves.
//!
//! ```
//! use bytes::Bytes;
//! use strom::container::mp4::Mp4Demuxer;
//! use strom::media::{Event, Item};
//! use strom::ErrorKind;
//!
//! /// The drive loop a host runs; here the "file" is in memory.
//! fn demux(file: &Bytes) -> strom::Result<Vec<Item>> {
//!     let mut demuxer = Mp4Demuxer::new(file.len() as u64);
//!     let mut items = Vec::new();
//!     loop {
//!         while let Some(item) = demuxer.poll_item() {
//!             items.push(item?);
//!         }
//!         let Some(req) = demuxer.poll_read() else { break };
//!         // A server would read `req.len` bytes at `req.offset` from disk or storage.
//!         let start = req.offset as usize;
//!         demuxer.supply(req.offset, file.slice(start..start + req.len))?;
//!     }
//!     Ok(items)
//! }
//!
//! // An `ftyp` and a `free` box, but no `moov`: a typed error, not a panic.
//! let mut file = b"\0\0\0\x10ftypisom\0\0\x02\0".to_vec();
//! file.extend_from_slice(b"\0\0\0\x08free");
//! let err = demux(&Bytes::from(file)).unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Malformed);
//! assert!(err.to_string().contains("no moov"));
//! ```

mod demuxer;
mod esds;
mod export;
mod header;
mod sample_table;
mod stsd;
mod track;

#[cfg(test)]
mod tests;

pub use demuxer::{Mp4Demuxer, ReadRequest, ReadSample};
pub use export::{
    ExportPart, ExportedMp4, ExportedTrack, Mp4Export, Mp4ExportOptions, PayloadMode,
    EXPORT_COMPATIBLE_BRANDS, EXPORT_MAJOR_BRAND, MAX_EXPORT_TRACKS,
};
pub use header::{scan_box_header, BoxHeader, MAX_HEADER_LEN};
// For the fragmented MP4 reader (`crate::container::fmp4`), which shares box walking and
// `moov` parsing with this reader.
pub(crate) use header::{children, Child};
pub(crate) use track::{parse_fragmented_moov, MoovLimits};

/// Limits and read sizes of an [`Mp4Demuxer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mp4Options {
    /// Largest `moov` box accepted, in bytes; a bigger one is
    /// [`crate::ErrorKind::Limit`]. Default 256 MiB.
    pub max_moov_size: u64,
    /// Most samples (and chunks) per track. Default 10 000 000.
    pub max_samples: u32,
    /// Largest single sample, in bytes. Default 64 MiB.
    pub max_sample_size: u32,
    /// Target size of one sample-data read, in bytes: a chunk and the chunks adjacent to
    /// it in the file are read together up to this size (a single larger sample is read
    /// whole). Default 1 MiB.
    pub read_size: usize,
    /// Sample data kept buffered, in bytes, before runs that no track is currently
    /// reading from are dropped (and read again when needed). Default 16 MiB.
    pub max_buffered: usize,
}

impl Default for Mp4Options {
    fn default() -> Self {
        Mp4Options {
            max_moov_size: 256 << 20,
            max_samples: 10_000_000,
            max_sample_size: 64 << 20,
            read_size: 1 << 20,
            max_buffered: 16 << 20,
        }
    }
}
