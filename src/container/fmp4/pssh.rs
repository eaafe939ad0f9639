//! `pssh`, the Protection System Specific Header box (ISO/IEC 23001-7 §8.1): one per DRM
//! system, in the `moov` of a protected init segment.

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{begin_full, end};
use crate::crypto::{KeyId, CLEARKEY_SYSTEM_ID, PLAYREADY_SYSTEM_ID, WIDEVINE_SYSTEM_ID};
use crate::error::{Error, Result};

/// Most key ids one `pssh` box may list when read.
const MAX_KIDS: usize = 1024;

/// A `pssh` box (ISO/IEC 23001-7 §8.1.1): a DRM system id, the key ids it applies to
/// (version 1; none for version 0) and the system's opaque data.
///
/// ```
/// use bytes::Bytes;
/// use strom::container::fmp4::PsshBox;
/// use strom::crypto::{KeyId, CLEARKEY_SYSTEM_ID, WIDEVINE_SYSTEM_ID};
///
/// let kid = KeyId([0x11; 16]);
/// let ck = PsshBox::clearkey(vec![kid]);
/// assert_eq!((ck.system_id, ck.key_ids.len(), ck.data.len()), (CLEARKEY_SYSTEM_ID, 1, 0));
/// let wv = PsshBox::widevine(Bytes::from_static(b"\x12\x10opaque"));
/// assert_eq!(wv.system_id, WIDEVINE_SYSTEM_ID);
/// assert!(wv.key_ids.is_empty()); // written as version 0
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PsshBox {
    /// The DRM system's 16-byte UUID ([`CLEARKEY_SYSTEM_ID`], [`WIDEVINE_SYSTEM_ID`],
    /// [`PLAYREADY_SYSTEM_ID`]...).
    pub system_id: [u8; 16],
    /// Key ids the data applies to; non-empty makes a version 1 box.
    pub key_ids: Vec<KeyId>,
    /// System-specific data, opaque here (a Widevine `WidevinePsshData` protobuf, a
    /// PlayReady Object...), written as given.
    pub data: Bytes,
}

impl PsshBox {
    /// A box for `system_id` with `key_ids` (version 1 when non-empty) and `data`.
    pub fn new(system_id: [u8; 16], key_ids: Vec<KeyId>, data: Bytes) -> Self {
        PsshBox {
            system_id,
            key_ids,
            data,
        }
    }

    /// W3C Clear Key's box ("Clear Key" §9.1.1 of W3C EME's initialization data
    /// registry, "cenc" format): version 1 with the key ids, no data.
    pub fn clearkey(key_ids: Vec<KeyId>) -> Self {
        Self::new(CLEARKEY_SYSTEM_ID, key_ids, Bytes::new())
    }

    /// A Widevine box (version 0) with the host's `WidevinePsshData`.
    pub fn widevine(data: Bytes) -> Self {
        Self::new(WIDEVINE_SYSTEM_ID, Vec::new(), data)
    }

    /// A PlayReady box (version 0) with the host's PlayReady Object.
    pub fn playready(data: Bytes) -> Self {
        Self::new(PLAYREADY_SYSTEM_ID, Vec::new(), data)
    }

    /// Appends the box to `out`. Errors: data or key ids beyond 32-bit counts
    /// ([`crate::ErrorKind::Limit`]).
    pub fn write(&self, out: &mut BytesMut) -> Result<()> {
        let version = u8::from(!self.key_ids.is_empty());
        let at = begin_full(out, b"pssh", version, 0);
        out.put_slice(&self.system_id);
        if version == 1 {
            let n = u32::try_from(self.key_ids.len())
                .map_err(|_| Error::limit("too many key ids in pssh"))?;
            out.put_u32(n);
            for k in &self.key_ids {
                out.put_slice(k.as_bytes());
            }
        }
        let n =
            u32::try_from(self.data.len()).map_err(|_| Error::limit("pssh data above 4 GiB"))?;
        out.put_u32(n);
        out.put_slice(&self.data);
        end(out, at)
    }

    /// Reads a `pssh` box body (after the 8-byte header). Errors: a version above 1, a
    /// body shorter than its counts, more than 1024 key ids.
    pub(crate) fn parse(body: &Bytes) -> Result<Self> {
        let short = || Error::malformed("pssh shorter than its fields");
        let version = *body.first().ok_or_else(short)?;
        if version > 1 {
            return Err(Error::unsupported("pssh version above 1"));
        }
        let mut system_id = [0u8; 16];
        system_id.copy_from_slice(body.get(4..20).ok_or_else(short)?);
        let mut pos = 20;
        let mut key_ids = Vec::new();
        if version == 1 {
            let n = be32(body, pos).ok_or_else(short)? as usize;
            pos += 4;
            if n > MAX_KIDS {
                return Err(Error::limit("more than 1024 key ids in pssh"));
            }
            for _ in 0..n {
                let mut k = [0u8; 16];
                k.copy_from_slice(body.get(pos..pos + 16).ok_or_else(short)?);
                key_ids.push(KeyId(k));
                pos += 16;
            }
        }
        let n = be32(body, pos).ok_or_else(short)? as usize;
        pos += 4;
        let data_end = pos
            .checked_add(n)
            .filter(|&e| e <= body.len())
            .ok_or_else(short)?;
        Ok(PsshBox {
            system_id,
            key_ids,
            data: body.slice(pos..data_end),
        })
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearkey_box_is_version_1_with_kids() {
        let b = PsshBox::clearkey(vec![KeyId([0xab; 16]), KeyId([0xcd; 16])]);
        let mut out = BytesMut::new();
        b.write(&mut out).unwrap();
        let mut want = vec![0, 0, 0, 68, b'p', b's', b's', b'h', 1, 0, 0, 0];
        want.extend_from_slice(&CLEARKEY_SYSTEM_ID);
        want.extend_from_slice(&[0, 0, 0, 2]);
        want.extend_from_slice(&[0xab; 16]);
        want.extend_from_slice(&[0xcd; 16]);
        want.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(&out[..], &want[..]);
        let back = PsshBox::parse(&out.split_off(8).freeze()).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn version_0_and_hostile_bodies() {
        let b = PsshBox::playready(Bytes::from_static(b"<WRMHEADER/>"));
        let mut out = BytesMut::new();
        b.write(&mut out).unwrap();
        assert_eq!(out[8], 0);
        let body = out.split_off(8).freeze();
        assert_eq!(PsshBox::parse(&body).unwrap(), b);
        for n in 0..body.len() {
            assert!(PsshBox::parse(&body.slice(..n)).is_err(), "{n}");
        }
        let mut huge = body.to_vec();
        huge[0] = 1;
        huge[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(PsshBox::parse(&Bytes::from(huge)).is_err());
        let mut v2 = body.to_vec();
        v2[0] = 2;
        assert!(PsshBox::parse(&Bytes::from(v2)).is_err());
    }
}
