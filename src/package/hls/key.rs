//! [`Key`]: the `EXT-X-KEY` tag of media playlists (RFC 8216bis §4.4.4.4) and the
//! `EXT-X-SESSION-KEY` tag of multivariant playlists (§4.4.6.5), which share their
//! attributes.
//!
//! A [`MediaSegment`](super::MediaSegment) carries the keys in force for it (one per
//! key system, that is per `KEYFORMAT`); the [`MediaPlaylist`](super::MediaPlaylist)
//! writer emits them before the first listed segment and again wherever the set
//! changes (key rotation, a new IV), and writes `METHOD=NONE` where encrypted
//! segments are followed by clear ones. A sliding window therefore always states the
//! key of its first segment. Within a set, keys of other key systems come first and
//! the identity key last: clients that ignore `KEYFORMAT` (ffmpeg) use the last
//! `EXT-X-KEY` before a segment.
//!
//! ```
//! use strom::crypto::Iv;
//! use strom::package::hls::{Key, KeyMethod, KEYFORMAT_WIDEVINE};
//!
//! let k = Key::new(KeyMethod::SampleAes, "keys/7.key").with_iv(Iv::from_sequence(7));
//! assert_eq!(
//!     k.to_tag("EXT-X-KEY").unwrap(),
//!     "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"keys/7.key\",IV=0x00000000000000000000000000000007"
//! );
//! let wv = Key::new(KeyMethod::SampleAesCtr, "data:text/plain;base64,AAAA")
//!     .with_keyformat(KEYFORMAT_WIDEVINE, &[1]);
//! assert_eq!(wv.version(), 5);
//! ```

use std::fmt::Write as _;

use super::tags;
use crate::crypto::Iv;
use crate::error::{Error, Result};

/// `KEYFORMAT` of a key served as 16 raw bytes at its `URI`; the default when the
/// attribute is absent (§4.4.4.4).
pub const KEYFORMAT_IDENTITY: &str = "identity";
/// `KEYFORMAT` of Widevine (its DRM system id as a URN).
pub const KEYFORMAT_WIDEVINE: &str = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed";
/// `KEYFORMAT` of W3C Clear Key (its DRM system id as a URN).
pub const KEYFORMAT_CLEARKEY: &str = "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b";
/// `KEYFORMAT` of PlayReady.
pub const KEYFORMAT_PLAYREADY: &str = "com.microsoft.playready";
/// `KEYFORMAT` of FairPlay Streaming.
pub const KEYFORMAT_FAIRPLAY: &str = "com.apple.streamingkeydelivery";

/// `METHOD` of an `EXT-X-KEY` (RFC 8216bis §4.4.4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyMethod {
    /// `NONE`: the segments are not encrypted; the tag has no other attribute.
    None,
    /// `AES-128`: whole segments in AES-128-CBC with PKCS#7 padding
    /// ([`crate::crypto::aes128`]).
    Aes128,
    /// `SAMPLE-AES`: samples encrypted inside the segment; MPEG-TS as
    /// [`crate::crypto::sample_aes`], fMP4 as CENC `cbcs`.
    SampleAes,
    /// `SAMPLE-AES-CTR`: fMP4 encrypted with CENC `cenc` (RFC 8216bis §4.4.4.4).
    SampleAesCtr,
}

impl KeyMethod {
    /// The attribute value: `NONE`, `AES-128`, `SAMPLE-AES`, `SAMPLE-AES-CTR`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyMethod::None => "NONE",
            KeyMethod::Aes128 => "AES-128",
            KeyMethod::SampleAes => "SAMPLE-AES",
            KeyMethod::SampleAesCtr => "SAMPLE-AES-CTR",
        }
    }
}

/// One `EXT-X-KEY` / `EXT-X-SESSION-KEY` tag: how to decrypt, where the key is, and
/// for which key system (RFC 8216bis §4.4.4.4, §4.4.6.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Key {
    /// `METHOD`.
    pub method: KeyMethod,
    /// `URI` of the key (a key file, a licence server, a `skd://` or `data:` URI).
    /// Required unless the method is `NONE`.
    pub uri: Option<String>,
    /// `IV`, written as `0x` and 32 hex digits (requires `EXT-X-VERSION` 2). Without
    /// it a client uses the segment's media sequence number (§5.2). Must be 16 bytes.
    pub iv: Option<Iv>,
    /// `KEYFORMAT` (requires `EXT-X-VERSION` 5); `None` means
    /// [`KEYFORMAT_IDENTITY`].
    pub keyformat: Option<String>,
    /// `KEYFORMATVERSIONS`: positive integers written `1/2/5` (requires
    /// `EXT-X-VERSION` 5); empty means absent (version 1).
    pub keyformat_versions: Vec<u32>,
}

impl Key {
    /// `METHOD=NONE`.
    pub fn none() -> Self {
        Key {
            method: KeyMethod::None,
            uri: None,
            iv: None,
            keyformat: None,
            keyformat_versions: Vec::new(),
        }
    }

    /// A key of `method` at `uri`, identity key format, no IV.
    pub fn new(method: KeyMethod, uri: impl Into<String>) -> Self {
        Key {
            uri: Some(uri.into()),
            method,
            ..Key::none()
        }
    }

    /// Sets the IV (builder style).
    #[must_use]
    pub fn with_iv(mut self, iv: Iv) -> Self {
        self.iv = Some(iv);
        self
    }

    /// Sets `KEYFORMAT` and `KEYFORMATVERSIONS` (builder style; `versions` may be
    /// empty).
    #[must_use]
    pub fn with_keyformat(mut self, keyformat: impl Into<String>, versions: &[u32]) -> Self {
        self.keyformat = Some(keyformat.into());
        self.keyformat_versions = versions.to_vec();
        self
    }

    /// The key system: `KEYFORMAT`, or [`KEYFORMAT_IDENTITY`] when absent.
    pub fn keyformat_or_identity(&self) -> &str {
        self.keyformat.as_deref().unwrap_or(KEYFORMAT_IDENTITY)
    }

    /// The lowest `EXT-X-VERSION` this tag needs (RFC 8216bis §7): 5 with
    /// `KEYFORMAT` or `KEYFORMATVERSIONS`, 2 with `IV`, else 1.
    pub fn version(&self) -> u8 {
        if self.keyformat.is_some() || !self.keyformat_versions.is_empty() {
            5
        } else if self.iv.is_some() {
            2
        } else {
            1
        }
    }

    /// The tag line without its line feed: `#` `tag` `:` attributes, for
    /// `EXT-X-KEY` or `EXT-X-SESSION-KEY`.
    ///
    /// Errors: [`Error::usage`] for `NONE` with any other attribute, another method
    /// without a `URI`, an empty or multi-line `URI`, a quoted value holding `"`, CR
    /// or LF, an 8-byte IV, or a `KEYFORMATVERSIONS` of 0.
    pub fn to_tag(&self, tag: &str) -> Result<String> {
        let mut s = String::with_capacity(96);
        self.write(&mut s, tag)?;
        s.pop();
        Ok(s)
    }

    /// Appends the tag line (with its line feed) to `out`; nothing on error.
    pub(crate) fn write(&self, out: &mut String, tag: &str) -> Result<()> {
        let mut s = String::with_capacity(96);
        let _ = write!(s, "#{tag}:METHOD={}", self.method.as_str());
        if self.method == KeyMethod::None {
            if self.uri.is_some()
                || self.iv.is_some()
                || self.keyformat.is_some()
                || !self.keyformat_versions.is_empty()
            {
                return Err(Error::usage(
                    "METHOD=NONE must not have other attributes (RFC 8216bis §4.4.4.4)",
                ));
            }
        } else {
            let uri = self
                .uri
                .as_deref()
                .ok_or_else(|| Error::usage("EXT-X-KEY other than METHOD=NONE needs a URI"))?;
            if uri.is_empty() {
                return Err(Error::usage("EXT-X-KEY URI is empty"));
            }
            s.push_str(",URI=");
            tags::quoted(&mut s, uri)?;
        }
        match self.iv {
            None => {}
            Some(iv @ Iv::Iv16(_)) => {
                let _ = write!(s, ",IV={iv}");
            }
            Some(Iv::Iv8(_)) => return Err(Error::usage("an HLS IV is 128 bits")),
        }
        if let Some(f) = &self.keyformat {
            s.push_str(",KEYFORMAT=");
            tags::quoted(&mut s, f)?;
        }
        if !self.keyformat_versions.is_empty() {
            if self.keyformat_versions.contains(&0) {
                return Err(Error::usage("KEYFORMATVERSIONS are positive integers"));
            }
            s.push_str(",KEYFORMATVERSIONS=\"");
            for (i, v) in self.keyformat_versions.iter().enumerate() {
                if i > 0 {
                    s.push('/');
                }
                let _ = write!(s, "{v}");
            }
            s.push('"');
        }
        s.push('\n');
        out.push_str(&s);
        Ok(())
    }
}

/// The keys in force for a segment, `METHOD=NONE` alone counting as none.
pub(crate) fn effective(keys: &[Key]) -> &[Key] {
    match keys {
        [k] if k.method == KeyMethod::None => &[],
        _ => keys,
    }
}

/// Checks a non-empty set of keys that apply to one segment: no `NONE` among
/// several, one `METHOD` (the segment is encrypted one way), one key per
/// `KEYFORMAT` (§4.4.4.4: tags with the same KEYFORMAT replace each other).
pub(crate) fn check_set(keys: &[Key]) -> Result<()> {
    let Some(first) = keys.first() else {
        return Ok(());
    };
    for (i, k) in keys.iter().enumerate() {
        if k.method == KeyMethod::None && keys.len() > 1 {
            return Err(Error::usage("METHOD=NONE together with other keys"));
        }
        if k.method != first.method {
            return Err(Error::usage("keys of one segment with different METHODs"));
        }
        let f = k.keyformat_or_identity();
        if keys[..i].iter().any(|o| o.keyformat_or_identity() == f) {
            return Err(Error::usage(
                "two keys of one segment with the same KEYFORMAT",
            ));
        }
    }
    Ok(())
}

/// Writes the `EXT-X-KEY` lines that take a playlist from the key set `prev` to
/// `next` (both [`effective`]): nothing when equal, `METHOD=NONE` when `next` is
/// empty, else every key of `next`, identity keys last. A key system in `prev` missing from a non-empty
/// `next` would stay in force (a tag applies until the next one with the same
/// KEYFORMAT): [`Error::usage`].
pub(crate) fn write_transition(out: &mut String, prev: &[Key], next: &[Key]) -> Result<()> {
    if prev == next {
        return Ok(());
    }
    check_set(next)?;
    if next.is_empty() {
        return Key::none().write(out, "EXT-X-KEY");
    }
    for p in prev {
        let f = p.keyformat_or_identity();
        if !next.iter().any(|k| k.keyformat_or_identity() == f) {
            return Err(Error::usage(
                "a key system cannot be dropped while segments stay encrypted",
            ));
        }
    }
    // Other key systems first, identity last: clients that ignore KEYFORMAT (ffmpeg)
    // take the last EXT-X-KEY before a segment, and identity is the one they can use.
    let identity = |k: &&Key| k.keyformat_or_identity() == KEYFORMAT_IDENTITY;
    for k in next
        .iter()
        .filter(|k| !identity(k))
        .chain(next.iter().filter(identity))
    {
        k.write(out, "EXT-X-KEY")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn attributes_and_versions() {
        let k = Key::new(KeyMethod::Aes128, "https://k.example/1?t=a,b");
        assert_eq!(
            k.to_tag("EXT-X-KEY").unwrap(),
            "#EXT-X-KEY:METHOD=AES-128,URI=\"https://k.example/1?t=a,b\""
        );
        assert_eq!(k.version(), 1);
        let iv = Iv::from_hex("0x000102030405060708090a0b0c0d0e0f").unwrap();
        let k = k.with_iv(iv);
        assert_eq!(k.version(), 2);
        assert!(k
            .to_tag("EXT-X-SESSION-KEY")
            .unwrap()
            .ends_with(",IV=0x000102030405060708090a0b0c0d0e0f"));
        let k = Key::new(KeyMethod::SampleAes, "skd://asset")
            .with_keyformat(KEYFORMAT_FAIRPLAY, &[1, 2, 5]);
        assert_eq!(
            k.to_tag("EXT-X-KEY").unwrap(),
            "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://asset\",\
             KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1/2/5\""
        );
        assert_eq!(k.version(), 5);
        assert_eq!(
            Key::none().to_tag("EXT-X-KEY").unwrap(),
            "#EXT-X-KEY:METHOD=NONE"
        );
        assert_eq!(KeyMethod::SampleAesCtr.as_str(), "SAMPLE-AES-CTR");
    }

    #[test]
    fn invalid_tags_are_usage_errors() {
        let bad = [
            Key::none().with_iv(Iv::from_sequence(1)),
            Key {
                uri: Some("k".into()),
                ..Key::none()
            },
            Key {
                uri: None,
                ..Key::new(KeyMethod::Aes128, "k")
            },
            Key::new(KeyMethod::Aes128, ""),
            Key::new(KeyMethod::Aes128, "a\"b"),
            Key::new(KeyMethod::Aes128, "k").with_iv(Iv::Iv8([1; 8])),
            Key::new(KeyMethod::Aes128, "k").with_keyformat("x\ny", &[]),
            Key::new(KeyMethod::Aes128, "k").with_keyformat("x", &[1, 0]),
        ];
        for (i, k) in bad.iter().enumerate() {
            let mut out = String::from("keep");
            assert_eq!(
                k.write(&mut out, "EXT-X-KEY").unwrap_err().kind(),
                ErrorKind::Usage,
                "case {i}"
            );
            assert_eq!(out, "keep", "nothing written on error");
        }
    }

    #[test]
    fn sets_and_transitions() {
        let id = Key::new(KeyMethod::SampleAes, "k1");
        let wv = Key::new(KeyMethod::SampleAes, "data:wv").with_keyformat(KEYFORMAT_WIDEVINE, &[1]);
        assert!(check_set(&[id.clone(), wv.clone()]).is_ok());
        assert!(check_set(&[id.clone(), id.clone()]).is_err());
        assert!(check_set(&[id.clone(), Key::none()]).is_err());
        let other_method = Key::new(KeyMethod::Aes128, "x").with_keyformat(KEYFORMAT_CLEARKEY, &[]);
        assert!(check_set(&[id.clone(), other_method]).is_err());
        assert_eq!(effective(&[Key::none()]), &[] as &[Key]);

        let mut out = String::new();
        write_transition(&mut out, &[], &[]).unwrap();
        let one = std::slice::from_ref(&id);
        write_transition(&mut out, one, one).unwrap();
        assert!(out.is_empty());
        write_transition(&mut out, one, &[]).unwrap();
        assert_eq!(out, "#EXT-X-KEY:METHOD=NONE\n");
        out.clear();
        write_transition(&mut out, &[], &[id.clone(), wv.clone()]).unwrap();
        assert_eq!(out.lines().count(), 2);
        // Dropping Widevine while still encrypted would leave its old key in force.
        assert!(write_transition(&mut out, &[id.clone(), wv], &[id]).is_err());
    }
}
