//! RTMP ingest (Adobe RTMP specification 1.0, December 2012), sans-IO.
//!
//! - [`handshake`]: C0/C1/C2 <-> S0/S1/S2, plain and digest (§5.2).
//! - [`chunk`]: chunk stream reader and writer (§5.3).

pub mod chunk;
pub mod handshake;
