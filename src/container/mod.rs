//! Containers: MPEG-TS writer, fragmented MP4 (CMAF) writer, progressive MP4 reader.

pub mod fmp4;
pub mod mp4;
pub mod ts;
