//! MPEG-TS (ISO/IEC 13818-1) muxer.
