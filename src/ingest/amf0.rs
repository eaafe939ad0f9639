//! AMF0 values (Action Message Format 0) for FLV script data and RTMP commands.
