//! The live origin: per-stream live packaging into a bounded segment store, and HTTP
//! answers for HLS players, without a server, a runtime or a file system.
//!
//! * [`SegmentStore`] (host-implementable) and [`MemoryStore`]: segment bytes by
//!   (stream, sequence) and CMAF objects by (stream, [`CmafKey`]), a bounded window
//!   per stream.
//! * [`LiveStream`]: frames of one publisher in, MPEG-TS segments and live HLS
//!   playlists out (sliding window, `EXT-X-PROGRAM-DATE-TIME`, discontinuities
//!   across publisher reconnects, `EXT-X-ENDLIST` after an idle timeout); the same
//!   segments as CMAF fragments ([`LiveFragment`]) with fMP4 HLS playlists and a
//!   dynamic DASH MPD whose availability times follow the wall clock.
//! * [`Origin`]: streams plus a store behind [`Origin::handle`]`(&Request, now)`.
//!
//! ```
//! use bytes::Bytes;
//! use strom::ingest::flv::FlvDemuxer;
//! use strom::origin::{MemoryStore, Origin, Request};
//! use strom::pipeline::Stage;
//!
//! let mut origin = Origin::new(MemoryStore::default(), Default::default());
//! let now = 1_700_000_000_000; // the host's clock, Unix ms
//! origin.publish("cam", now).unwrap();
//! let mut demux = FlvDemuxer::new();
//! demux.push(Bytes::from_static(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")).unwrap();
//! while let Some(item) = demux.poll() {
//!     origin.push("cam", item.unwrap(), now).unwrap();
//! }
//! origin.unpublish("cam", now + 10).unwrap();
//! let r = origin.handle(&Request::get("/live/cam/media.m3u8"), now + 20);
//! assert_eq!(r.status, 404); // no frames, no segment
//! assert_eq!(r.header("access-control-allow-origin"), Some("*"));
//! ```

pub mod clearkey;
mod cue_api;
mod disk_store;
mod dvr;
mod http;
pub mod index;
mod l2v;
mod live;
mod live_cmaf;
#[cfg(feature = "object-store")]
mod object_store;
mod protect;
mod protect_fmp4;
mod recording;
mod router;
mod ssai;
mod store;

#[cfg(feature = "object-store")]
pub use self::object_store::{
    install_tls_provider, ObjectSegmentStore, ObjectSegmentStoreOptions, RequestCounts,
    CHUNK_RECORDS as OBJECT_CHUNK_RECORDS,
};
pub use cue_api::{CUE_NAME, MAX_CUE_BODY};
pub use disk_store::{DiskStore, DiskStoreOptions, SyncPolicy};
pub use dvr::DVR_PLAYLIST;
pub use http::{Method, Request, Response};
pub use l2v::{VOD_MPD, VOD_PLAYLIST};
pub use live::{
    CueRequest, FirstSegment, LiveSegment, LiveState, LiveStream, LiveStreamOptions, StreamStats,
    MEDIA_PLAYLIST, MULTIVARIANT_PLAYLIST, SHORT_FIRST_SEGMENT,
};
pub use live_cmaf::{LiveFragment, TIME_PATH};
pub use protect::{Protection, KEYS_PREFIX, LICENCE_PREFIX};
pub use recording::{Recording, RECORDING_NAME};
pub use router::{
    valid_stream_name, Origin, OriginOptions, CMAF_PLAYLIST, FRAGMENT_TYPE, INIT_CACHE,
    MAX_NAME_LEN, MAX_VIEWERS_PER_STREAM, MPD_NAME, MPD_TYPE, PLAYLIST_CACHE, PLAYLIST_TYPE,
    SEGMENT_CACHE, SEGMENT_TYPE,
};
pub use store::{
    AdMark, CmafKey, MemoryStore, MemoryStoreOptions, SegmentRecord, SegmentStore, Series,
};
