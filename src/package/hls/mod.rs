//! HLS playlists (RFC 8216bis): media playlists and the multivariant playlist.
//!
//! In-house text writers: each model is plain data and `write()` returns the playlist
//! text or an [`Error::usage`](crate::Error::usage) when the data would break a rule of
//! the specification (a quote in a quoted string, a negative duration...). Durations
//! come from exact [`Timestamp`](crate::time::Timestamp)s and are formatted from
//! integer milliseconds; no floating point is involved.
//!
//! * [`MediaPlaylist`] (§4.4.3, §4.4.4): VOD, EVENT and live sliding windows.
//! * [`Key`] (§4.4.4.4, §4.4.6.5): `EXT-X-KEY` per segment (rotation, several key
//!   systems) and `EXT-X-SESSION-KEY` in the multivariant playlist.
//! * [`MultivariantPlaylist`] (§4.4.6): [`Variant`] streams and [`Rendition`]s.
//! * [`DateRange`] and [`CueTag`] (§4.4.5.1): ad breaks as `EXT-X-DATERANGE` with
//!   SCTE-35 attributes and as `EXT-X-CUE-OUT` / `-CONT` / `-IN`.
//! * [`BandwidthMeter`]: `BANDWIDTH` / `AVERAGE-BANDWIDTH` from segment sizes.
//!
//! ```
//! use strom::package::hls::{BandwidthMeter, MediaPlaylist, MediaSegment, MultivariantPlaylist,
//!     PlaylistType, Variant};
//! use strom::time::Timestamp;
//!
//! let mut media = MediaPlaylist::new(PlaylistType::Vod);
//! let mut meter = BandwidthMeter::new();
//! for (i, (bytes, ms)) in [(1_500_000u64, 6_000i64), (1_000_000, 4_000)].into_iter().enumerate() {
//!     media.push_segment(MediaSegment::new(format!("{i}.ts"), Timestamp::from_millis(ms)));
//!     meter.record(bytes, Timestamp::from_millis(ms));
//! }
//! let text = media.write().unwrap();
//! assert!(text.contains("#EXT-X-TARGETDURATION:6\n"));
//! assert!(text.ends_with("#EXTINF:4.000,\n1.ts\n#EXT-X-ENDLIST\n"));
//!
//! let mut main = MultivariantPlaylist::new();
//! let mut v = Variant::new("media.m3u8", meter.peak(), "avc1.64001f,mp4a.40.2");
//! v.average_bandwidth = Some(meter.average());
//! main.variants.push(v);
//! assert!(main.write().unwrap().contains("BANDWIDTH=2000000,AVERAGE-BANDWIDTH=2000000,"));
//! ```

mod ads;
mod bandwidth;
mod indexed;
mod key;
mod media;
mod multivariant;
mod tags;

pub(crate) use tags::iso8601_millis;

pub use ads::{CueTag, DateRange, HlsAdMarkers};
pub use bandwidth::BandwidthMeter;
pub use indexed::{IndexedPlaylist, IndexedPlaylistWriter, IndexedSegment};
pub use key::{
    Key, KeyMethod, KEYFORMAT_CLEARKEY, KEYFORMAT_FAIRPLAY, KEYFORMAT_IDENTITY,
    KEYFORMAT_PLAYREADY, KEYFORMAT_WIDEVINE,
};
pub use media::{MediaPlaylist, MediaSegment, PlaylistType};
pub use multivariant::{MultivariantPlaylist, Rendition, RenditionType, Variant};
