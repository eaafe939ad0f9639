//! Containers: MPEG-TS writer, progressive MP4 reader.

pub mod mp4;
pub mod ts;
