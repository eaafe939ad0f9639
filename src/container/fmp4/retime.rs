//! [`retime_fragment`]: moves a CMAF fragment on its track's timeline by patching the
//! `tfdt` of every `traf` (ISO/IEC 14496-12 §8.8.12), and drops its `emsg` boxes, whose
//! times would no longer hold. Live-to-VOD uses it to close the gap a removed ad break
//! leaves, without touching a sample.

use bytes::Bytes;

use crate::error::{Error, Result};

/// One box header: (type, header length, total length) of the box starting at `at`.
fn header(data: &[u8], at: usize) -> Result<([u8; 4], usize, usize)> {
    let h = data
        .get(at..at + 8)
        .ok_or_else(|| Error::malformed("fragment: truncated box header").at_offset(at as u64))?;
    let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let kind = [h[4], h[5], h[6], h[7]];
    let (head, size) = match size32 {
        0 => (8, data.len() - at),
        1 => {
            let l = data.get(at + 8..at + 16).ok_or_else(|| {
                Error::malformed("fragment: truncated largesize").at_offset(at as u64)
            })?;
            let size = u64::from_be_bytes([l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]]);
            (16, usize::try_from(size).unwrap_or(usize::MAX))
        }
        n => (8, n as usize),
    };
    if size < head || at.checked_add(size).is_none_or(|end| end > data.len()) {
        return Err(Error::malformed("fragment: box size out of range").at_offset(at as u64));
    }
    Ok((kind, head, size))
}

/// A copy of `fragment` (`styp`/`emsg`/`moof`/`mdat`... top-level boxes) whose every
/// `tfdt.baseMediaDecodeTime` is moved by `shift` ticks of the track's timescale, and
/// without its `emsg` boxes. `moof`-relative data offsets stay valid (the boxes removed
/// come before the `moof`).
///
/// Errors: [`Error::malformed`] for a box that does not fit, a fragment without a
/// `tfdt`, or a time that the shift would make negative (or overflow a version 0 field).
///
/// ```
/// use strom::container::fmp4::retime_fragment;
/// // A moof holding one traf holding one version 1 tfdt at 9000.
/// let mut f = Vec::new();
/// f.extend_from_slice(&[0, 0, 0, 36, b'm', b'o', b'o', b'f']);
/// f.extend_from_slice(&[0, 0, 0, 28, b't', b'r', b'a', b'f']);
/// f.extend_from_slice(&[0, 0, 0, 20, b't', b'f', b'd', b't', 1, 0, 0, 0]);
/// f.extend_from_slice(&9000u64.to_be_bytes());
/// let out = retime_fragment(&f, -3000).unwrap();
/// assert_eq!(u64::from_be_bytes(out[28..36].try_into().unwrap()), 6000);
/// assert!(retime_fragment(&f, -9001).is_err());
/// ```
pub fn retime_fragment(fragment: &[u8], shift: i64) -> Result<Bytes> {
    let mut out = Vec::with_capacity(fragment.len());
    let mut at = 0;
    let mut patched = 0usize;
    while at < fragment.len() {
        let (kind, head, size) = header(fragment, at)?;
        let start = out.len();
        if &kind != b"emsg" {
            out.extend_from_slice(&fragment[at..at + size]);
        }
        if &kind == b"moof" {
            patched +=
                patch_moof(&mut out[start..], head, shift).map_err(|e| e.at_offset(at as u64))?;
        }
        at += size;
    }
    if patched == 0 {
        return Err(Error::malformed("fragment: no tfdt to move"));
    }
    Ok(Bytes::from(out))
}

/// Patches the `tfdt` of every `traf` of one `moof` (`b` is the whole box); returns how many.
fn patch_moof(b: &mut [u8], head: usize, shift: i64) -> Result<usize> {
    let mut n = 0;
    let mut at = head;
    while at < b.len() {
        let (kind, h, size) = header(b, at)?;
        if &kind == b"traf" {
            let mut t = at + h;
            while t < at + size {
                let (k, th, tsize) = header(&b[..at + size], t)?;
                if &k == b"tfdt" {
                    patch_tfdt(&mut b[t + th..t + tsize], shift)?;
                    n += 1;
                }
                t += tsize;
            }
        }
        at += size;
    }
    Ok(n)
}

fn patch_tfdt(body: &mut [u8], shift: i64) -> Result<()> {
    let bad = || Error::malformed("fragment: tfdt out of range after the shift");
    match body.first() {
        Some(1) if body.len() >= 12 => {
            let mut v = [0u8; 8];
            v.copy_from_slice(&body[4..12]);
            let t = i64::try_from(u64::from_be_bytes(v)).map_err(|_| bad())?;
            let t = u64::try_from(t.checked_add(shift).ok_or_else(bad)?).map_err(|_| bad())?;
            body[4..12].copy_from_slice(&t.to_be_bytes());
            Ok(())
        }
        Some(0) if body.len() >= 8 => {
            let t = i64::from(u32::from_be_bytes([body[4], body[5], body[6], body[7]]));
            let t = u32::try_from(t.checked_add(shift).ok_or_else(bad)?).map_err(|_| bad())?;
            body[4..8].copy_from_slice(&t.to_be_bytes());
            Ok(())
        }
        _ => Err(Error::malformed("fragment: bad tfdt")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_0_and_bad_boxes() {
        let mut f = Vec::new();
        f.extend_from_slice(&[0, 0, 0, 12, b'e', b'm', b's', b'g', 0, 0, 0, 0]);
        f.extend_from_slice(&[0, 0, 0, 32, b'm', b'o', b'o', b'f']);
        f.extend_from_slice(&[0, 0, 0, 24, b't', b'r', b'a', b'f']);
        f.extend_from_slice(&[0, 0, 0, 16, b't', b'f', b'd', b't', 0, 0, 0, 0]);
        f.extend_from_slice(&500u32.to_be_bytes());
        let out = retime_fragment(&f, 100).unwrap();
        // The emsg is gone, the tfdt moved.
        assert_eq!(out.len(), f.len() - 12);
        assert_eq!(&out[4..8], b"moof");
        assert_eq!(u32::from_be_bytes(out[28..32].try_into().unwrap()), 600);
        assert!(retime_fragment(&f, -501).is_err());
        assert!(retime_fragment(&f, i64::from(u32::MAX)).is_err());
        assert!(retime_fragment(&f[..20], 0).is_err());
        let mut bad = f.clone();
        bad[15] = 200; // moof longer than the data
        assert!(retime_fragment(&bad, 0).is_err());
        assert!(retime_fragment(&[0, 0, 0, 8, b'm', b'd', b'a', b't'], 0).is_err());
    }
}
