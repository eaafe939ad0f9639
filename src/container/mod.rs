//! Containers: MPEG-TS reader and writer, fragmented MP4 (CMAF) writer and reader, progressive MP4
//! reader and exporter.

pub mod fmp4;
pub mod mp4;
pub mod ts;
