//! Content protection, applied per request to clear segments (ISO/IEC 23001-7 CENC,
//! RFC 8216bis §4.4.4.4 HLS keys, Apple's SAMPLE-AES).
//!
//! * [`KeyId`], [`ContentKey`], [`Iv`], [`Scheme`]: the values every scheme shares.
//! * [`key`]: the [`KeyProvider`] trait the host implements (a key
//!   per stream and crypto period), a static provider and an HMAC-derived provider,
//!   and key rotation every N segments.
//! * [`aes128`]: HLS `METHOD=AES-128`, whole segments in AES-128-CBC with PKCS#7.
//! * [`sample_aes`]: HLS `METHOD=SAMPLE-AES` for MPEG-TS (H.264 NAL units, AAC frames).
//! * [`base64`]: the text forms `pssh` boxes, key URIs and licences travel in.
//! * [`cenc`]: CENC schemes `cenc` (AES-CTR, subsamples) and `cbcs` (AES-CBC, 1:9
//!   pattern, constant IV) over the sample table a fragment keeps.
//!
//! The ciphers are the RustCrypto `aes`, `ctr` and `cbc` crates; `aes` detects AES-NI
//! at run time.

pub mod aes128;
pub mod base64;
pub mod cenc;
pub mod key;
pub mod sample_aes;
mod types;

pub use key::{HmacIv, HmacKeyProvider, KeyProvider, KeyRotation, StaticKeyProvider, StreamKey};
pub use types::{
    ContentKey, Iv, KeyId, Scheme, CLEARKEY_SYSTEM_ID, PLAYREADY_SYSTEM_ID, WIDEVINE_SYSTEM_ID,
};
