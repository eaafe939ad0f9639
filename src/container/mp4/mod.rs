//! Progressive MP4 (ISO/IEC 14496-12) reader for VOD input.
