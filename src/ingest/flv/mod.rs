//! FLV (Adobe Flash Video File Format Specification v10.1, Enhanced RTMP/FLV v2): demuxer and muxer.
