//! NAL unit framing: 4-byte length prefixes (canonical in the pipeline) and Annex B.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

/// Iterates the NAL units of a length-prefixed buffer (`size` = 1, 2 or 4 bytes).
/// A truncated unit yields one error and ends the iteration.
pub fn iter_length_prefixed(data: &[u8], size: u8) -> LengthPrefixed<'_> {
    LengthPrefixed {
        data,
        size: size as usize,
        failed: false,
    }
}

/// Iterator returned by [`iter_length_prefixed`].
#[derive(Debug, Clone)]
pub struct LengthPrefixed<'a> {
    data: &'a [u8],
    size: usize,
    failed: bool,
}

impl<'a> Iterator for LengthPrefixed<'a> {
    type Item = Result<&'a [u8]>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() || self.failed {
            return None;
        }
        if !(1..=4).contains(&self.size) || self.data.len() < self.size {
            self.failed = true;
            return Some(Err(Error::malformed("truncated NAL length prefix")));
        }
        let mut len = 0usize;
        for &b in &self.data[..self.size] {
            len = (len << 8) | b as usize;
        }
        let rest = &self.data[self.size..];
        if rest.len() < len {
            self.failed = true;
            return Some(Err(Error::malformed("NAL unit length exceeds the frame")));
        }
        let (unit, tail) = rest.split_at(len);
        self.data = tail;
        Some(Ok(unit))
    }
}

/// Converts a length-prefixed buffer with `size`-byte prefixes to 4-byte prefixes.
/// Returns the input unchanged (no copy) when `size` is already 4.
pub fn to_canonical(data: Bytes, size: u8) -> Result<Bytes> {
    if size == 4 {
        // Validate framing once so that writers can trust it.
        for u in iter_length_prefixed(&data, 4) {
            u?;
        }
        return Ok(data);
    }
    let mut out = BytesMut::with_capacity(data.len() + 16);
    for u in iter_length_prefixed(&data, size) {
        let u = u?;
        out.put_u32(u.len() as u32);
        out.extend_from_slice(u);
    }
    Ok(out.freeze())
}

/// Splits an Annex B byte stream (start codes `00 00 01` / `00 00 00 01`) into NAL units.
pub fn iter_annexb(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = if k + 1 < starts.len() {
            starts[k + 1] - 3
        } else {
            data.len()
        };
        // Trailing zero bytes belong to the next (4-byte) start code.
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        units.push(&data[s..end]);
    }
    units.into_iter()
}

/// Converts Annex B to canonical 4-byte length prefixes.
pub fn annexb_to_canonical(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 8);
    for u in iter_annexb(data) {
        out.put_u32(u.len() as u32);
        out.extend_from_slice(u);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let two = Bytes::from_static(&[0, 1, 0xaa, 0, 2, 0xbb, 0xcc]);
        let c = to_canonical(two, 2).unwrap();
        assert_eq!(&c[..], &[0, 0, 0, 1, 0xaa, 0, 0, 0, 2, 0xbb, 0xcc]);
        assert!(to_canonical(Bytes::from_static(&[0, 0, 0, 9, 1]), 4).is_err());
        assert!(iter_length_prefixed(&[0, 0, 0], 4).next().unwrap().is_err());
    }

    #[test]
    fn annexb() {
        let a = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 0, 0, 3, 1,
        ];
        let units: Vec<&[u8]> = iter_annexb(&a).collect();
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 0, 0, 3, 1][..]]
        );
        let c = annexb_to_canonical(&a);
        assert_eq!(c.len(), 4 * 3 + 3 + 2 + 5);
    }
}
