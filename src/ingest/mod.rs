//! Ingest: demuxers that turn input bytes into frames and events.

pub mod amf0;
pub mod flv;
pub mod rtmp;
