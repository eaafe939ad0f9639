//! The values every protection scheme shares: [`KeyId`], [`ContentKey`], [`Iv`] and
//! [`Scheme`].

use std::fmt;

use crate::error::{Error, Result};

/// Parses exactly `N` bytes of hex (upper or lower case; dashes allowed, as in a
/// UUID). Errors: [`Error::usage`] for other characters or another length.
fn parse_hex<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N]> {
    let mut out = [0u8; N];
    let mut n = 0usize;
    let mut high: Option<u8> = None;
    for c in s.bytes() {
        if c == b'-' {
            continue;
        }
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(Error::usage("not a hex digit").context(what)),
        };
        match high.take() {
            None => high = Some(v),
            Some(h) => {
                if n == N {
                    return Err(Error::usage("too many hex digits").context(what));
                }
                out[n] = h << 4 | v;
                n += 1;
            }
        }
    }
    if n != N || high.is_some() {
        return Err(Error::usage("wrong number of hex digits").context(what));
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// A 16-byte key identifier (ISO/IEC 23001-7 §8.2 `KID`; the `default_KID` of `tenc`
/// and DASH `cenc:default_KID`).
///
/// `Display` is 32 lower-case hex digits; [`KeyId::uuid`] gives the dashed UUID form
/// DASH manifests use.
///
/// ```
/// use strom::crypto::KeyId;
/// let kid = KeyId::from_hex("abba271e-8bcf-552b-bd2e-86a434a9a5d9").unwrap();
/// assert_eq!(kid.to_string(), "abba271e8bcf552bbd2e86a434a9a5d9");
/// assert_eq!(kid.uuid(), "abba271e-8bcf-552b-bd2e-86a434a9a5d9");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// Parses 32 hex digits (dashes ignored). Errors: [`Error::usage`].
    pub fn from_hex(s: &str) -> Result<Self> {
        parse_hex::<16>(s, "key id").map(KeyId)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The UUID form `8-4-4-4-12`, lower case (DASH `cenc:default_KID`).
    pub fn uuid(&self) -> String {
        let h = self.to_string();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyId(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

/// A 128-bit AES content key. `Debug` never shows it.
///
/// ```
/// use strom::crypto::ContentKey;
/// let k = ContentKey::from_hex("69eaa802a6763af979e8d1940fb88392").unwrap();
/// assert_eq!(k.as_bytes()[0], 0x69);
/// assert_eq!(format!("{k:?}"), "ContentKey(<redacted>)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey(pub [u8; 16]);

impl ContentKey {
    /// Parses 32 hex digits. Errors: [`Error::usage`].
    pub fn from_hex(s: &str) -> Result<Self> {
        parse_hex::<16>(s, "content key").map(ContentKey)
    }

    /// The raw key bytes (for the cipher, a key response or a licence).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentKey(<redacted>)")
    }
}

/// An initialisation vector: 8 bytes (CENC `cenc` per-sample IVs, the high half of the
/// CTR counter block) or 16 bytes (AES-CBC, `cbcs` constant IVs, 16-byte `cenc` IVs).
///
/// ```
/// use strom::crypto::Iv;
/// let iv = Iv::from_sequence(7);
/// assert_eq!(iv.as_bytes(), &[0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
/// assert_eq!(Iv::from_hex("0x0102030405060708").unwrap().as_bytes().len(), 8);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Iv {
    /// 64 bits.
    Iv8([u8; 8]),
    /// 128 bits.
    Iv16([u8; 16]),
}

impl Iv {
    /// The HLS default IV of a segment (RFC 8216bis §5.2): its Media Sequence Number
    /// as a 128-bit big-endian integer.
    pub fn from_sequence(media_sequence: u64) -> Self {
        Iv::Iv16(u128::from(media_sequence).to_be_bytes())
    }

    /// Parses 16 or 32 hex digits, with or without a `0x` prefix (the HLS `IV`
    /// attribute form). Errors: [`Error::usage`].
    pub fn from_hex(s: &str) -> Result<Self> {
        let s = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        match s.len() {
            16 => parse_hex::<8>(s, "iv").map(Iv::Iv8),
            32 => parse_hex::<16>(s, "iv").map(Iv::Iv16),
            _ => Err(Error::usage("an IV has 16 or 32 hex digits")),
        }
    }

    /// The IV bytes (8 or 16).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Iv::Iv8(b) => b,
            Iv::Iv16(b) => b,
        }
    }

    /// The 16-byte form: an 8-byte IV is the high half, the low half zero (the initial
    /// CTR counter block of ISO/IEC 23001-7 §9.5.2.2).
    pub fn to_block(&self) -> [u8; 16] {
        match self {
            Iv::Iv8(b) => {
                let mut out = [0u8; 16];
                out[..8].copy_from_slice(b);
                out
            }
            Iv::Iv16(b) => *b,
        }
    }
}

impl fmt::Display for Iv {
    /// `0x` and the hex digits: the HLS `IV` attribute value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        write_hex(f, self.as_bytes())
    }
}

impl fmt::Debug for Iv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Iv({self})")
    }
}

/// A protection scheme, chosen per request by the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// HLS `METHOD=AES-128`: the whole MPEG-TS (or fMP4) segment in AES-128-CBC with
    /// PKCS#7 padding (RFC 8216bis §4.4.4.4).
    Aes128,
    /// HLS `METHOD=SAMPLE-AES` on MPEG-TS: H.264 NAL units and AAC frames encrypted
    /// as Apple's MPEG-2 Stream Encryption Format for HTTP Live Streaming specifies.
    SampleAes,
    /// ISO/IEC 23001-7 scheme `cenc`: AES-CTR, subsample encryption, per-sample IVs.
    Cenc,
    /// ISO/IEC 23001-7 scheme `cbcs`: AES-CBC, 1:9 pattern, constant IV.
    Cbcs,
}

impl Scheme {
    /// The name used in request paths and on the command line: `aes128`,
    /// `sample-aes`, `cenc`, `cbcs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Aes128 => "aes128",
            Scheme::SampleAes => "sample-aes",
            Scheme::Cenc => "cenc",
            Scheme::Cbcs => "cbcs",
        }
    }

    /// Parses [`Scheme::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "aes128" => Some(Scheme::Aes128),
            "sample-aes" => Some(Scheme::SampleAes),
            "cenc" => Some(Scheme::Cenc),
            "cbcs" => Some(Scheme::Cbcs),
            _ => None,
        }
    }

    /// The four-character code of an ISO BMFF `schm` box (`cenc`, `cbcs`), for the
    /// schemes that have one.
    pub fn fourcc(self) -> Option<[u8; 4]> {
        match self {
            Scheme::Cenc => Some(*b"cenc"),
            Scheme::Cbcs => Some(*b"cbcs"),
            _ => None,
        }
    }
}

/// W3C Clear Key's DRM system id (`urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b`), for
/// `pssh` boxes and DASH `ContentProtection`.
pub const CLEARKEY_SYSTEM_ID: [u8; 16] = [
    0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b,
];
/// Widevine's DRM system id (`edef8ba9-79d6-4ace-a3c8-27dcd51d21ed`).
pub const WIDEVINE_SYSTEM_ID: [u8; 16] = [
    0xed, 0xef, 0x8b, 0xa9, 0x79, 0xd6, 0x4a, 0xce, 0xa3, 0xc8, 0x27, 0xdc, 0xd5, 0x1d, 0x21, 0xed,
];
/// PlayReady's DRM system id (`9a04f079-9840-4286-ab92-e65be0885f95`).
pub const PLAYREADY_SYSTEM_ID: [u8; 16] = [
    0x9a, 0x04, 0xf0, 0x79, 0x98, 0x40, 0x42, 0x86, 0xab, 0x92, 0xe6, 0x5b, 0xe0, 0x88, 0x5f, 0x95,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn hex_forms() {
        let kid = KeyId::from_hex("ABBA271E8BCF552BBD2E86A434A9A5D9").unwrap();
        assert_eq!(kid.uuid(), "abba271e-8bcf-552b-bd2e-86a434a9a5d9");
        assert_eq!(KeyId::from_hex(&kid.uuid()).unwrap(), kid);
        for bad in ["", "abc", "zz", &"0".repeat(34), &"0".repeat(31)] {
            assert_eq!(
                KeyId::from_hex(bad).unwrap_err().kind(),
                ErrorKind::Usage,
                "{bad}"
            );
        }
        let iv = Iv::from_hex("0x000102030405060708090a0b0c0d0e0f").unwrap();
        assert_eq!(iv.to_string(), "0x000102030405060708090a0b0c0d0e0f");
        assert_eq!(
            Iv::from_hex("0102030405060708").unwrap().to_block()[8..],
            [0; 8]
        );
        assert!(Iv::from_hex("0x01").is_err());
        assert_eq!(Iv::from_sequence(u64::MAX).as_bytes()[8..], [0xff; 8]);
        for s in [
            Scheme::Aes128,
            Scheme::SampleAes,
            Scheme::Cenc,
            Scheme::Cbcs,
        ] {
            assert_eq!(Scheme::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            format!("{:?}", ContentKey([7; 16])),
            "ContentKey(<redacted>)"
        );
    }
}
