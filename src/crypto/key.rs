//! Content keys: the [`KeyProvider`] trait the host implements, two providers the
//! crate ships ([`StaticKeyProvider`], [`HmacKeyProvider`]) and [`KeyRotation`], which
//! maps a segment's media sequence number to its crypto period.
//!
//! A stream's content is encrypted under one key per *crypto period* (a run of
//! consecutive segments; ISO/IEC 23001-7 §9.2 key rotation, RFC 8216bis §4.4.4.4: a new
//! `EXT-X-KEY` applies to every segment after it). The origin asks the provider for the
//! key of `(stream, period)` when it encrypts a segment, and for the key of a KID when
//! a player's licence request (W3C Clear Key) or key request names one.
//!
//! ```
//! use strom::crypto::key::{HmacKeyProvider, KeyProvider, KeyRotation};
//!
//! let keys = HmacKeyProvider::new(b"0123456789abcdef-origin-secret".to_vec()).unwrap();
//! let rotation = KeyRotation::every(10);
//! // Segment 25 is in period 2, which starts at segment 20.
//! assert_eq!(rotation.period(25), 2);
//! assert_eq!(rotation.period_start(2), 20);
//! let k = keys.key("cam1", rotation.period(25)).unwrap();
//! // A licence request names the KID; the key comes back without a table.
//! assert_eq!(keys.key_by_id("cam1", &k.kid).unwrap(), Some(k.key.clone()));
//! // The KID was not issued for another stream.
//! assert_eq!(keys.key_by_id("cam2", &k.kid).unwrap(), None);
//! ```

use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::types::{ContentKey, Iv, KeyId};
use crate::error::{Error, Result};

/// The key a stream is encrypted with in one crypto period.
///
/// `iv` is an explicit IV for the schemes that take one (the HLS `IV` attribute of
/// RFC 8216bis §4.4.4.4, the `cbcs` constant IV of ISO/IEC 23001-7 §10.4); `None` leaves
/// the choice to the scheme (HLS: the media sequence number, RFC 8216bis §5.2).
/// `Debug` never shows the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamKey {
    /// The key identifier (`tenc` `default_KID`, DASH `cenc:default_KID`, the Clear Key
    /// `kid`).
    pub kid: KeyId,
    /// The AES-128 content key.
    pub key: ContentKey,
    /// An explicit IV, or `None` for the scheme's default.
    pub iv: Option<Iv>,
}

impl StreamKey {
    /// A key without an explicit IV.
    pub fn new(kid: KeyId, key: ContentKey) -> Self {
        StreamKey { kid, key, iv: None }
    }

    /// The same key with an explicit IV.
    #[must_use]
    pub fn with_iv(mut self, iv: Iv) -> Self {
        self.iv = Some(iv);
        self
    }
}

/// Where content keys come from: the host implements it (a key server, a KMS, a
/// database) or uses [`StaticKeyProvider`] or [`HmacKeyProvider`].
///
/// Both methods take `&self`, so one provider can serve every request; implementations
/// shared between threads should be `Send + Sync` (the shipped ones are). The trait is
/// object safe (`Box<dyn KeyProvider>`, `Arc<dyn KeyProvider + Send + Sync>`), and `&T`,
/// `Box<T>` and `Arc<T>` implement it when `T` does.
///
/// Contract: [`key`](Self::key) is deterministic (the same `(stream, period)` gives the
/// same [`StreamKey`] for the life of the stream, since players cache keys and
/// segments are encrypted again on every request), and
/// [`key_by_id`](Self::key_by_id) returns the key of every KID that `key` handed out
/// for that stream.
pub trait KeyProvider {
    /// The key of `stream` in crypto `period` (see [`KeyRotation::period`]).
    ///
    /// Errors: [`Error::usage`] for a stream the provider does not serve,
    /// [`Error::crypto`] when the key cannot be obtained.
    fn key(&self, stream: &str, period: u64) -> Result<StreamKey>;

    /// The content key with identifier `kid`, for a licence or key request about
    /// `stream`: `Ok(None)` when the provider knows no such key for that stream (a
    /// licence endpoint answers 404).
    ///
    /// Errors: [`Error::crypto`] when the key store fails.
    fn key_by_id(&self, stream: &str, kid: &KeyId) -> Result<Option<ContentKey>>;
}

impl<T: KeyProvider + ?Sized> KeyProvider for &T {
    fn key(&self, stream: &str, period: u64) -> Result<StreamKey> {
        (**self).key(stream, period)
    }
    fn key_by_id(&self, stream: &str, kid: &KeyId) -> Result<Option<ContentKey>> {
        (**self).key_by_id(stream, kid)
    }
}

impl<T: KeyProvider + ?Sized> KeyProvider for Box<T> {
    fn key(&self, stream: &str, period: u64) -> Result<StreamKey> {
        (**self).key(stream, period)
    }
    fn key_by_id(&self, stream: &str, kid: &KeyId) -> Result<Option<ContentKey>> {
        (**self).key_by_id(stream, kid)
    }
}

impl<T: KeyProvider + ?Sized> KeyProvider for Arc<T> {
    fn key(&self, stream: &str, period: u64) -> Result<StreamKey> {
        (**self).key(stream, period)
    }
    fn key_by_id(&self, stream: &str, kid: &KeyId) -> Result<Option<ContentKey>> {
        (**self).key_by_id(stream, kid)
    }
}

/// One key for every stream and period (tests, demos, a single-channel origin).
///
/// [`key_by_id`](KeyProvider::key_by_id) answers its one KID for any stream and
/// `None` for every other KID.
///
/// ```
/// use strom::crypto::key::{KeyProvider, StaticKeyProvider, StreamKey};
/// use strom::crypto::{ContentKey, KeyId};
/// let kid = KeyId::from_hex("abba271e8bcf552bbd2e86a434a9a5d9").unwrap();
/// let key = ContentKey::from_hex("69eaa802a6763af979e8d1940fb88392").unwrap();
/// let p = StaticKeyProvider::new(StreamKey::new(kid, key.clone()));
/// assert_eq!(p.key("any", 7).unwrap().kid, kid);
/// assert_eq!(p.key_by_id("any", &kid).unwrap(), Some(key));
/// assert_eq!(p.key_by_id("any", &KeyId([0; 16])).unwrap(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticKeyProvider {
    key: StreamKey,
}

impl StaticKeyProvider {
    /// A provider that always answers `key`.
    pub fn new(key: StreamKey) -> Self {
        StaticKeyProvider { key }
    }

    /// The key it answers.
    pub fn stream_key(&self) -> &StreamKey {
        &self.key
    }
}

impl KeyProvider for StaticKeyProvider {
    fn key(&self, _stream: &str, _period: u64) -> Result<StreamKey> {
        Ok(self.key.clone())
    }

    fn key_by_id(&self, _stream: &str, kid: &KeyId) -> Result<Option<ContentKey>> {
        Ok((*kid == self.key.kid).then(|| self.key.key.clone()))
    }
}

/// Whether [`HmacKeyProvider`] derives an explicit IV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HmacIv {
    /// No explicit IV: [`StreamKey::iv`] is `None` and the scheme uses its default
    /// (HLS: the media sequence number). The default.
    #[default]
    SchemeDefault,
    /// A 16-byte IV derived from the secret, the stream and the KID (one constant IV
    /// per key, as `cbcs` wants).
    Derived,
}

/// Shortest secret [`HmacKeyProvider::new`] accepts, in bytes (128 bits).
pub const MIN_SECRET_LEN: usize = 16;

/// Domain-separation labels: each derived value is a distinct HMAC input family.
const LABEL_KID: &[u8] = b"strom/crypto/kid/v1\0";
const LABEL_KEY: &[u8] = b"strom/crypto/key/v1\0";
const LABEL_IV: &[u8] = b"strom/crypto/iv/v1\0";

/// Keys derived from one secret with HMAC-SHA256 (RFC 2104), so that no key table is
/// stored and every origin that shares the secret derives the same keys.
///
/// * KID of `(stream, period)`: the period as 8 big-endian bytes, then the first 8
///   bytes of `HMAC(secret, "strom/crypto/kid/v1\0" || len(stream) || stream ||
///   period)`. The tag lets [`key_by_id`](KeyProvider::key_by_id) check, without a
///   table, that the KID was issued for that stream (else `Ok(None)`).
/// * Key of `(stream, KID)`: the first 16 bytes of `HMAC(secret,
///   "strom/crypto/key/v1\0" || len(stream) || stream || KID)`.
/// * With [`HmacIv::Derived`], the IV: the first 16 bytes of `HMAC(secret,
///   "strom/crypto/iv/v1\0" || len(stream) || stream || KID)`.
///
/// `len(stream)` is the stream name's byte length as 8 big-endian bytes, so distinct
/// `(stream, period)` pairs never give the same input. `Debug` does not show the
/// secret. The derivation is part of the stored contract: changing it changes every
/// key, so it is versioned by its labels.
///
/// ```
/// use strom::crypto::key::{HmacIv, HmacKeyProvider, KeyProvider};
/// let p = HmacKeyProvider::new(vec![7u8; 32]).unwrap().with_iv(HmacIv::Derived);
/// let a = p.key("cam1", 0).unwrap();
/// assert_ne!(a.kid, p.key("cam1", 1).unwrap().kid);
/// assert_ne!(a.key, p.key("cam2", 0).unwrap().key);
/// assert_eq!(a.iv.unwrap().as_bytes().len(), 16);
/// assert_eq!(format!("{p:?}"), "HmacKeyProvider { secret: <redacted>, iv: Derived }");
/// ```
#[derive(Clone)]
pub struct HmacKeyProvider {
    /// HMAC state keyed with the secret; cloned per derivation (saves hashing the
    /// padded key twice per call).
    mac: Hmac<Sha256>,
    iv: HmacIv,
}

impl fmt::Debug for HmacKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HmacKeyProvider {{ secret: <redacted>, iv: {:?} }}",
            self.iv
        )
    }
}

impl HmacKeyProvider {
    /// A provider deriving keys from `secret` (at least [`MIN_SECRET_LEN`] bytes of
    /// high-entropy material), without explicit IVs.
    ///
    /// Errors: [`Error::usage`] when the secret is shorter than [`MIN_SECRET_LEN`].
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self> {
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_LEN {
            return Err(Error::usage(
                "HMAC key provider secret shorter than 16 bytes",
            ));
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .map_err(|_| Error::usage("HMAC key provider secret rejected"))?;
        Ok(HmacKeyProvider {
            mac,
            iv: HmacIv::SchemeDefault,
        })
    }

    /// The same provider with IV policy `iv`.
    #[must_use]
    pub fn with_iv(mut self, iv: HmacIv) -> Self {
        self.iv = iv;
        self
    }

    /// HMAC(secret, label || len(stream) || stream || tail).
    fn derive(&self, label: &[u8], stream: &str, tail: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(label);
        mac.update(&(stream.len() as u64).to_be_bytes());
        mac.update(stream.as_bytes());
        mac.update(tail);
        mac.finalize().into_bytes().into()
    }

    fn kid_tag(&self, stream: &str, period: u64) -> [u8; 8] {
        let d = self.derive(LABEL_KID, stream, &period.to_be_bytes());
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&d[..8]);
        tag
    }

    fn content_key(&self, stream: &str, kid: &KeyId) -> ContentKey {
        let d = self.derive(LABEL_KEY, stream, kid.as_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        ContentKey(k)
    }

    fn derived_iv(&self, stream: &str, kid: &KeyId) -> Iv {
        let d = self.derive(LABEL_IV, stream, kid.as_bytes());
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&d[..16]);
        Iv::Iv16(iv)
    }

    /// The crypto period a KID of this provider names (its first 8 bytes), whether or
    /// not it was issued for a given stream.
    pub fn period_of(kid: &KeyId) -> u64 {
        let mut p = [0u8; 8];
        p.copy_from_slice(&kid.as_bytes()[..8]);
        u64::from_be_bytes(p)
    }
}

impl KeyProvider for HmacKeyProvider {
    fn key(&self, stream: &str, period: u64) -> Result<StreamKey> {
        let mut kid = [0u8; 16];
        kid[..8].copy_from_slice(&period.to_be_bytes());
        kid[8..].copy_from_slice(&self.kid_tag(stream, period));
        let kid = KeyId(kid);
        let key = self.content_key(stream, &kid);
        let iv = match self.iv {
            HmacIv::SchemeDefault => None,
            HmacIv::Derived => Some(self.derived_iv(stream, &kid)),
        };
        Ok(StreamKey { kid, key, iv })
    }

    fn key_by_id(&self, stream: &str, kid: &KeyId) -> Result<Option<ContentKey>> {
        let period = Self::period_of(kid);
        // Constant-time check of the tag half (the KID is public, but the comparison
        // should not tell an attacker how much of a forged tag was right).
        let mut mac = self.mac.clone();
        mac.update(LABEL_KID);
        mac.update(&(stream.len() as u64).to_be_bytes());
        mac.update(stream.as_bytes());
        mac.update(&period.to_be_bytes());
        if mac.verify_truncated_left(&kid.as_bytes()[8..]).is_err() {
            return Ok(None);
        }
        Ok(Some(self.content_key(stream, kid)))
    }
}

/// How a stream's media sequence numbers map to crypto periods (key rotation).
///
/// Without rotation (the default) every segment is in period 0. With
/// [`every(n)`](Self::every), period `p` is segments `p * n ..= p * n + n - 1`
/// (`period = sequence / n`), and a playlist writes a new `EXT-X-KEY` before the first
/// segment of each period (RFC 8216bis §4.4.4.4), a DASH packager a new
/// `default_KID` (ISO/IEC 23001-7 §9.2). Periods count from media sequence 0, not
/// from a stream's first segment, so every origin and every restart agrees on them.
///
/// ```
/// use strom::crypto::key::KeyRotation;
/// let none = KeyRotation::default();
/// assert_eq!(none.period(1_000_000), 0);
/// assert!(!none.is_period_start(1));
/// let r = KeyRotation::every(5);
/// assert_eq!((r.period(4), r.period(5)), (0, 1));
/// assert!(r.is_period_start(10) && !r.is_period_start(11));
/// assert_eq!(r.first_sequence(12), 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct KeyRotation {
    /// Segments per crypto period; `None` for no rotation (one period, 0, for the whole
    /// stream). Default: `None`.
    pub segments_per_period: Option<NonZeroU64>,
}

impl KeyRotation {
    /// No rotation (the default).
    pub fn none() -> Self {
        KeyRotation::default()
    }

    /// A new key every `segments` segments; `0` means no rotation.
    pub fn every(segments: u64) -> Self {
        KeyRotation {
            segments_per_period: NonZeroU64::new(segments),
        }
    }

    /// The crypto period of the segment with media sequence number `sequence`.
    pub fn period(&self, sequence: u64) -> u64 {
        match self.segments_per_period {
            None => 0,
            Some(n) => sequence / n.get(),
        }
    }

    /// The media sequence number of the first segment of `period` (saturating at
    /// `u64::MAX` for periods past the end of the sequence space). Without rotation,
    /// 0.
    pub fn period_start(&self, period: u64) -> u64 {
        match self.segments_per_period {
            None => 0,
            Some(n) => period.saturating_mul(n.get()),
        }
    }

    /// The media sequence number of the first segment of the period that holds
    /// `sequence`.
    pub fn first_sequence(&self, sequence: u64) -> u64 {
        self.period_start(self.period(sequence))
    }

    /// Whether the key changes at `sequence`: it is the first segment of a period
    /// other than the first. A playlist writes a new `EXT-X-KEY` before such a segment
    /// (and, regardless, before the first segment it lists).
    pub fn is_period_start(&self, sequence: u64) -> bool {
        match self.segments_per_period {
            None => false,
            Some(n) => sequence != 0 && sequence.is_multiple_of(n.get()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn provider() -> HmacKeyProvider {
        HmacKeyProvider::new(b"an origin secret of 32 bytes....").unwrap()
    }

    /// The derivation is a stored contract: recompute it independently from the
    /// documented formula with a fresh HMAC, so a change to the code shows up here.
    #[test]
    fn hmac_derivation_matches_documented_formula() {
        let secret = b"an origin secret of 32 bytes....";
        let hmac = |parts: &[&[u8]]| -> [u8; 32] {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().into()
        };
        let p = provider().with_iv(HmacIv::Derived);
        let k = p.key("cam1", 0x0102).unwrap();
        let tag = hmac(&[
            b"strom/crypto/kid/v1\0",
            &4u64.to_be_bytes(),
            b"cam1",
            &0x0102u64.to_be_bytes(),
        ]);
        assert_eq!(k.kid.as_bytes()[..8], 0x0102u64.to_be_bytes());
        assert_eq!(k.kid.as_bytes()[8..], tag[..8]);
        let key = hmac(&[
            b"strom/crypto/key/v1\0",
            &4u64.to_be_bytes(),
            b"cam1",
            k.kid.as_bytes(),
        ]);
        assert_eq!(k.key.as_bytes()[..], key[..16]);
        let iv = hmac(&[
            b"strom/crypto/iv/v1\0",
            &4u64.to_be_bytes(),
            b"cam1",
            k.kid.as_bytes(),
        ]);
        assert_eq!(k.iv.unwrap().as_bytes(), &iv[..16]);
        assert_eq!(HmacKeyProvider::period_of(&k.kid), 0x0102);
    }

    #[test]
    fn hmac_keys_are_deterministic_and_distinct() {
        let p = provider();
        let mut kids = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for stream in ["a", "b", "ab", "", "cam/1"] {
            for period in [0, 1, 2, u64::MAX] {
                let k = p.key(stream, period).unwrap();
                assert_eq!(k, provider().key(stream, period).unwrap());
                assert_eq!(k.iv, None);
                assert!(kids.insert(k.kid), "{stream} {period}");
                assert!(keys.insert(*k.key.as_bytes()), "{stream} {period}");
                assert_eq!(p.key_by_id(stream, &k.kid).unwrap(), Some(k.key.clone()));
            }
        }
        // Another secret gives other keys.
        let q = HmacKeyProvider::new([9u8; 16]).unwrap();
        assert_ne!(q.key("a", 0).unwrap().kid, p.key("a", 0).unwrap().kid);
    }

    #[test]
    fn hmac_key_by_id_refuses_foreign_kids() {
        let p = provider();
        let k = p.key("cam1", 3).unwrap();
        assert_eq!(p.key_by_id("cam2", &k.kid).unwrap(), None);
        // Same tag, another period.
        let mut other = *k.kid.as_bytes();
        other[7] ^= 1;
        assert_eq!(p.key_by_id("cam1", &KeyId(other)).unwrap(), None);
        // One bit of the tag flipped.
        let mut forged = *k.kid.as_bytes();
        forged[15] ^= 0x80;
        assert_eq!(p.key_by_id("cam1", &KeyId(forged)).unwrap(), None);
        assert_eq!(p.key_by_id("cam1", &KeyId([0; 16])).unwrap(), None);
        // A KID of another secret.
        let q = HmacKeyProvider::new([1u8; 20]).unwrap();
        assert_eq!(q.key_by_id("cam1", &k.kid).unwrap(), None);
    }

    #[test]
    fn hmac_secret_checked_and_redacted() {
        let e = HmacKeyProvider::new([0u8; 15]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        let p = HmacKeyProvider::new(b"super-secret-value-123").unwrap();
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("super"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
        let k = p.key("s", 0).unwrap();
        assert!(!format!("{k:?}").contains(&hex(k.key.as_bytes())));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn providers_are_object_safe_and_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HmacKeyProvider>();
        assert_send_sync::<StaticKeyProvider>();
        let kid = KeyId([1; 16]);
        let key = ContentKey([2; 16]);
        let list: Vec<Arc<dyn KeyProvider + Send + Sync>> = vec![
            Arc::new(StaticKeyProvider::new(
                StreamKey::new(kid, key.clone()).with_iv(Iv::from_sequence(1)),
            )),
            Arc::new(provider()),
        ];
        for p in &list {
            let k = p.key("s", 4).unwrap();
            assert_eq!(p.key_by_id("s", &k.kid).unwrap(), Some(k.key.clone()));
            // Through the blanket impls too.
            let by_ref: &dyn KeyProvider = &p;
            assert_eq!(by_ref.key("s", 4).unwrap(), k);
        }
        let boxed: Box<dyn KeyProvider> =
            Box::new(StaticKeyProvider::new(StreamKey::new(kid, key.clone())));
        assert_eq!(boxed.key_by_id("x", &kid).unwrap(), Some(key));
        assert_eq!(list[0].key("t", 0).unwrap().iv, Some(Iv::from_sequence(1)));
    }

    #[test]
    fn rotation_periods() {
        let none = KeyRotation::none();
        assert_eq!(none, KeyRotation::every(0));
        for s in [0, 1, 99, u64::MAX] {
            assert_eq!(none.period(s), 0);
            assert_eq!(none.first_sequence(s), 0);
            assert!(!none.is_period_start(s));
        }
        let r = KeyRotation::every(3);
        let periods: Vec<u64> = (0..10).map(|s| r.period(s)).collect();
        assert_eq!(periods, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]);
        let starts: Vec<u64> = (0..10).filter(|&s| r.is_period_start(s)).collect();
        assert_eq!(starts, [3, 6, 9]);
        for s in 0..100u64 {
            let p = r.period(s);
            assert!(r.period_start(p) <= s && s < r.period_start(p + 1));
            assert_eq!(r.first_sequence(s), r.period_start(p));
            // The key changes exactly where the period does.
            assert_eq!(r.is_period_start(s), s > 0 && r.period(s - 1) != p);
        }
        assert_eq!(r.period(u64::MAX), u64::MAX / 3);
        assert_eq!(r.period_start(u64::MAX), u64::MAX);
        let one = KeyRotation::every(1);
        assert_eq!(one.period(41), 41);
        assert!(one.is_period_start(1));
    }
}
