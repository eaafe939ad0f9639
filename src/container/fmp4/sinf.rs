//! `sinf`, the protection scheme information of an `encv`/`enca` sample entry
//! (ISO/IEC 14496-12 §8.12, ISO/IEC 23001-7 §4.2, §8.2): `frma` (the original sample
//! entry type), `schm` (the scheme and its version) and `schi` holding `tenc` (the
//! track's default key id, IV size, pattern and constant IV).

use bytes::{BufMut, BytesMut};

use super::boxes::{begin, begin_full, end};
use crate::container::mp4::Child;
use crate::crypto::cenc::Pattern;
use crate::crypto::{Iv, KeyId};
use crate::error::{Error, Result};

/// `schm.scheme_version` of the CENC schemes (ISO/IEC 23001-7 §4.2): 1.0.
pub const CENC_SCHEME_VERSION: u32 = 0x0001_0000;

/// What a protected track's `sinf` says (ISO/IEC 23001-7 §8.2 `tenc`), as
/// [`super::Fmp4Reader::encryption`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackEncryption {
    /// `schm.scheme_type`: `cenc`, `cbcs` (decrypted here), `cens`, `cbc1`...
    pub scheme: [u8; 4],
    /// `frma.data_format`: the sample entry type before protection (`avc1`, `mp4a`...).
    pub original_format: [u8; 4],
    /// `tenc.default_isProtected`: false for a track whose samples are clear by default.
    pub protected: bool,
    /// `tenc.default_Per_Sample_IV_Size`: 0 (constant IV), 8 or 16 bytes.
    pub per_sample_iv_size: u8,
    /// `tenc.default_KID`.
    pub key_id: KeyId,
    /// `tenc.default_constant_IV` when the per-sample IV size is 0.
    pub constant_iv: Option<Iv>,
    /// `tenc` version 1's `default_crypt_byte_block` / `default_skip_byte_block`
    /// ([`Pattern::NONE`] for version 0).
    pub pattern: Pattern,
}

/// Writes `sinf` for a sample entry of type `original`: `frma`, `schm` (`scheme`,
/// version 1.0), `schi`/`tenc` (version 0 without a pattern or constant IV, version 1
/// with them).
pub(crate) fn write_sinf(
    out: &mut BytesMut,
    original: &[u8; 4],
    scheme: &[u8; 4],
    key_id: &KeyId,
    per_sample_iv_size: u8,
    constant_iv: Option<&[u8; 16]>,
    pattern: Pattern,
) -> Result<()> {
    let sinf = begin(out, b"sinf");
    let frma = begin(out, b"frma");
    out.put_slice(original);
    end(out, frma)?;
    let schm = begin_full(out, b"schm", 0, 0);
    out.put_slice(scheme);
    out.put_u32(CENC_SCHEME_VERSION);
    end(out, schm)?;
    let schi = begin(out, b"schi");
    let v1 = constant_iv.is_some() || pattern != Pattern::NONE;
    let tenc = begin_full(out, b"tenc", u8::from(v1), 0);
    out.put_u8(0); // reserved
    if v1 {
        out.put_u8((pattern.crypt & 0xf) << 4 | (pattern.skip & 0xf));
    } else {
        out.put_u8(0);
    }
    out.put_u8(1); // default_isProtected
    out.put_u8(per_sample_iv_size);
    out.put_slice(key_id.as_bytes());
    if let Some(iv) = constant_iv.filter(|_| per_sample_iv_size == 0) {
        out.put_u8(16);
        out.put_slice(iv);
    }
    end(out, tenc)?;
    end(out, schi)?;
    end(out, sinf)
}

/// Reads a `sinf` box. Errors: no `frma`, `schm` or `tenc`; a `tenc` shorter than its
/// fields; an IV size other than 0, 8 or 16; a protected track with IV size 0 and no
/// 16- or 8-byte constant IV.
pub(crate) fn parse_sinf(sinf: &Child) -> Result<TrackEncryption> {
    let mut original = None;
    let mut scheme = None;
    let mut tenc = None;
    for c in sinf.children() {
        let c = c?;
        match &c.header.kind {
            b"frma" => {
                let b = c
                    .body
                    .get(..4)
                    .ok_or_else(|| Error::malformed("frma too short"))?;
                original = Some([b[0], b[1], b[2], b[3]]);
            }
            b"schm" => {
                let b = c
                    .body
                    .get(4..8)
                    .ok_or_else(|| Error::malformed("schm too short"))?;
                scheme = Some([b[0], b[1], b[2], b[3]]);
            }
            b"schi" => {
                for t in c.children() {
                    let t = t?;
                    if &t.header.kind == b"tenc" {
                        tenc = Some(t);
                    }
                }
            }
            _ => {}
        }
    }
    let original_format = original.ok_or_else(|| Error::malformed("sinf without frma"))?;
    let scheme = scheme.ok_or_else(|| Error::malformed("sinf without schm"))?;
    let tenc = tenc.ok_or_else(|| Error::malformed("sinf without schi/tenc"))?;
    let b = &tenc.body[..];
    let short = || Error::malformed("tenc too short").at_offset(tenc.offset);
    let version = *b.first().ok_or_else(short)?;
    let fields = b.get(4..24).ok_or_else(short)?;
    let pattern = if version >= 1 {
        Pattern::new(fields[1] >> 4, fields[1] & 0xf)
    } else {
        Pattern::NONE
    };
    let protected = fields[2] != 0;
    let per_sample_iv_size = fields[3];
    if !matches!(per_sample_iv_size, 0 | 8 | 16) {
        return Err(
            Error::malformed("tenc Per_Sample_IV_Size other than 0, 8 or 16")
                .at_offset(tenc.offset),
        );
    }
    let mut kid = [0u8; 16];
    kid.copy_from_slice(&fields[4..20]);
    let mut constant_iv = None;
    if protected && per_sample_iv_size == 0 {
        let n = *b.get(24).ok_or_else(short)?;
        let iv = b.get(25..25 + usize::from(n)).ok_or_else(short)?;
        constant_iv = Some(match n {
            8 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(iv);
                Iv::Iv8(a)
            }
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(iv);
                Iv::Iv16(a)
            }
            _ => {
                return Err(Error::malformed("tenc constant IV size other than 8 or 16")
                    .at_offset(tenc.offset))
            }
        });
    }
    Ok(TrackEncryption {
        scheme,
        original_format,
        protected,
        per_sample_iv_size,
        key_id: KeyId(kid),
        constant_iv,
        pattern,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::container::mp4::children;

    fn sinf_of(out: &BytesMut) -> Child {
        children(Bytes::from(out.to_vec()), 0)
            .next()
            .unwrap()
            .unwrap()
    }

    #[test]
    fn cenc_and_cbcs_round_trip() {
        let kid = KeyId([0x5a; 16]);
        let mut out = BytesMut::new();
        write_sinf(&mut out, b"avc1", b"cenc", &kid, 8, None, Pattern::NONE).unwrap();
        // sinf 8 + frma 12 + schm 20 + schi 8 + tenc 32.
        assert_eq!(out.len(), 80);
        let tenc = out.windows(4).position(|w| w == b"tenc").unwrap();
        assert_eq!(&out[tenc + 4..tenc + 12], &[0, 0, 0, 0, 0, 0, 1, 8]);
        let e = parse_sinf(&sinf_of(&out)).unwrap();
        assert_eq!(
            e,
            TrackEncryption {
                scheme: *b"cenc",
                original_format: *b"avc1",
                protected: true,
                per_sample_iv_size: 8,
                key_id: kid,
                constant_iv: None,
                pattern: Pattern::NONE,
            }
        );
        let mut out = BytesMut::new();
        let iv = [7u8; 16];
        write_sinf(
            &mut out,
            b"mp4a",
            b"cbcs",
            &kid,
            0,
            Some(&iv),
            Pattern::CBCS_VIDEO,
        )
        .unwrap();
        let tenc = out.windows(4).position(|w| w == b"tenc").unwrap();
        assert_eq!(&out[tenc + 4..tenc + 12], &[1, 0, 0, 0, 0, 0x19, 1, 0]);
        let e = parse_sinf(&sinf_of(&out)).unwrap();
        assert_eq!(e.constant_iv, Some(Iv::Iv16(iv)));
        assert_eq!(e.pattern, Pattern::CBCS_VIDEO);
        assert_eq!(e.scheme, *b"cbcs");
        // Truncated tenc bodies are errors.
        let bytes = out.to_vec();
        for cut in 1..49 {
            let mut b = bytes.clone();
            b.truncate(bytes.len() - cut);
            // Fix the sizes of sinf, schi and tenc to the truncated length.
            let n = b.len();
            b[0..4].copy_from_slice(&(n as u32).to_be_bytes());
            let schi = b.windows(4).position(|w| w == b"schi").unwrap() - 4;
            b[schi..schi + 4].copy_from_slice(&((n - schi) as u32).to_be_bytes());
            let t = tenc - 4;
            if t + 8 <= n {
                b[t..t + 4].copy_from_slice(&((n - t) as u32).to_be_bytes());
            }
            let c = children(Bytes::from(b), 0).next().unwrap().unwrap();
            assert!(parse_sinf(&c).is_err(), "cut {cut}");
        }
    }
}
