//! Packaging: the segmenter, HLS playlists, DASH manifests and CMAF presentations.

pub mod ads;
mod civil;
pub mod cmaf;
mod cmaf_vod;
pub use cmaf_vod::VodFormats;
pub mod dash;
pub mod hls;
mod segment;

pub use segment::Segment;
mod segmenter;
pub use segmenter::{Segmenter, SegmenterOptions};
mod splicer;
pub mod ssai;
pub use splicer::{Splicer, SplicerOptions, SplicerStats};
mod vod;
pub use vod::{VodEncryption, VodOutput, VodPackager, VodPackagerOptions, VodSummary, KEY_FILE};
