//! Box headers (ISO/IEC 14496-12 §4.2) and a bounded walker over child boxes.

use bytes::Bytes;

use crate::error::{Error, Result};

/// Longest box header: 32-bit size, type, 64-bit `largesize`, 16-byte `uuid` usertype.
pub const MAX_HEADER_LEN: usize = 32;

/// The header of one box (ISO/IEC 14496-12 §4.2 `class Box`).
///
/// Sizes are in bytes and include the header itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BoxHeader {
    /// The box type (`moov`, `mdat`, `uuid`...), four bytes as written.
    pub kind: [u8; 4],
    /// Bytes of header before the body: 8, 16 with a 64-bit `largesize`, plus 16 for a
    /// `uuid` box's extended type.
    pub header_len: u8,
    /// Total size of the box including its header; `None` when the size field is 0,
    /// which means the box extends to the end of its container (the file, at top level).
    pub size: Option<u64>,
    /// The 16-byte extended type of a `uuid` box.
    pub usertype: Option<[u8; 16]>,
}

impl BoxHeader {
    /// The box type as text (`"moov"`), with non-ASCII bytes replaced.
    pub fn kind_str(&self) -> String {
        self.kind
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '?'
                }
            })
            .collect()
    }

    /// Total size of the box when it starts `remaining` bytes before the end of its
    /// container: `size`, or `remaining` for a size-0 ("to the end") box.
    pub fn total_size(&self, remaining: u64) -> u64 {
        self.size.unwrap_or(remaining)
    }
}

/// Reads a box header from the start of `buf` (ISO/IEC 14496-12 §4.2).
///
/// Returns `Ok(None)` when `buf` is too short to hold the whole header (8 bytes, 16 with
/// a 64-bit `largesize`, 16 more for `uuid`): read up to [`MAX_HEADER_LEN`] bytes and call
/// again. A size smaller than the header is [`crate::ErrorKind::Malformed`]. A size field
/// of 0 yields `size: None` (the box runs to the end of the file or container); the
/// caller knows where that is.
///
/// ```
/// use strom::container::mp4::scan_box_header;
/// let h = scan_box_header(b"\0\0\0\x10moovxxxxxxxx").unwrap().unwrap();
/// assert_eq!(&h.kind, b"moov");
/// assert_eq!((h.header_len, h.size), (8, Some(16)));
/// assert!(scan_box_header(b"\0\0\0").unwrap().is_none());
/// assert!(scan_box_header(b"\0\0\0\x04free").is_err());
/// ```
pub fn scan_box_header(buf: &[u8]) -> Result<Option<BoxHeader>> {
    let (Some(size32), Some(kind)) = (buf.get(0..4), buf.get(4..8)) else {
        return Ok(None);
    };
    let size32 = u32::from_be_bytes([size32[0], size32[1], size32[2], size32[3]]);
    let kind = [kind[0], kind[1], kind[2], kind[3]];
    let mut header_len = 8usize;
    let size = match size32 {
        0 => None,
        1 => {
            let Some(large) = buf.get(8..16) else {
                return Ok(None);
            };
            header_len = 16;
            let mut b = [0u8; 8];
            b.copy_from_slice(large);
            Some(u64::from_be_bytes(b))
        }
        n => Some(u64::from(n)),
    };
    let mut usertype = None;
    if &kind == b"uuid" {
        let Some(u) = buf.get(header_len..header_len + 16) else {
            return Ok(None);
        };
        let mut t = [0u8; 16];
        t.copy_from_slice(u);
        usertype = Some(t);
        header_len += 16;
    }
    if let Some(s) = size {
        if s < header_len as u64 {
            return Err(Error::malformed("box size smaller than its header"));
        }
    }
    Ok(Some(BoxHeader {
        kind,
        header_len: header_len as u8,
        size,
        usertype,
    }))
}

/// One child box inside an in-memory container: its header, the whole box and its body.
#[derive(Debug, Clone)]
pub(crate) struct Child {
    pub header: BoxHeader,
    /// Absolute file offset of the box.
    pub offset: u64,
    /// The whole box, header included (what mp4-atom's `Decode` expects).
    pub full: Bytes,
    /// The body, after the header.
    pub body: Bytes,
}

impl Child {
    /// The boxes inside this box's body.
    pub fn children(&self) -> Children {
        self.children_after(0)
            .unwrap_or_else(|| children(Bytes::new(), self.offset))
    }

    /// The boxes inside this box's body after `fields` bytes of fields (sample entries);
    /// `None` when the body is shorter than that.
    pub fn children_after(&self, fields: usize) -> Option<Children> {
        let rest = self.body.get(fields..)?;
        let base = self.offset + u64::from(self.header.header_len) + fields as u64;
        Some(children(self.body.slice_ref(rest), base))
    }
}

/// Walks the boxes laid end to end in `data` (a container's body), which starts at
/// absolute file offset `base`. A box that runs past the end yields one error and ends
/// the walk. A tail shorter than a box header (QuickTime writers pad with four zero
/// bytes) ends the walk quietly.
pub(crate) fn children(data: Bytes, base: u64) -> Children {
    Children {
        data,
        base,
        pos: 0,
        done: false,
    }
}

/// Iterator returned by [`children`].
#[derive(Debug, Clone)]
pub(crate) struct Children {
    data: Bytes,
    base: u64,
    pos: usize,
    done: bool,
}

impl Iterator for Children {
    type Item = Result<Child>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let at = self.base + self.pos as u64;
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let header = match scan_box_header(rest) {
            Ok(Some(h)) => h,
            Ok(None) if rest.len() < 8 => {
                self.done = true;
                return None;
            }
            Ok(None) => {
                self.done = true;
                return Some(Err(
                    Error::malformed("box header runs past its container").at_offset(at)
                ));
            }
            Err(e) => {
                self.done = true;
                return Some(Err(e.at_offset(at)));
            }
        };
        let total = header.total_size(rest.len() as u64);
        if total > rest.len() as u64 {
            self.done = true;
            return Some(Err(Error::malformed("box runs past its container")
                .context(format!("box '{}'", header.kind_str()))
                .at_offset(at)));
        }
        let start = self.pos;
        let end = start + total as usize;
        self.pos = end;
        Some(Ok(Child {
            header,
            offset: at,
            full: self.data.slice(start..end),
            body: self.data.slice(start + header.header_len as usize..end),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms() {
        let h = scan_box_header(b"\0\0\0\x08free").unwrap().unwrap();
        assert_eq!(
            (h.header_len, h.size, h.kind_str().as_str()),
            (8, Some(8), "free")
        );
        // 64-bit largesize.
        let mut b = vec![0, 0, 0, 1];
        b.extend_from_slice(b"mdat");
        b.extend_from_slice(&(1u64 << 33).to_be_bytes());
        assert!(scan_box_header(&b[..12]).unwrap().is_none());
        let h = scan_box_header(&b).unwrap().unwrap();
        assert_eq!((h.header_len, h.size), (16, Some(1 << 33)));
        // largesize smaller than the 16-byte header.
        b[8..16].copy_from_slice(&15u64.to_be_bytes());
        assert!(scan_box_header(&b).is_err());
        // size 0: to the end.
        let h = scan_box_header(b"\0\0\0\0mdat").unwrap().unwrap();
        assert_eq!(h.size, None);
        assert_eq!(h.total_size(1234), 1234);
        // uuid carries 16 more bytes.
        let mut u = vec![0, 0, 0, 24];
        u.extend_from_slice(b"uuid");
        u.extend_from_slice(&[7; 16]);
        assert!(scan_box_header(&u[..20]).unwrap().is_none());
        let h = scan_box_header(&u).unwrap().unwrap();
        assert_eq!((h.header_len, h.usertype), (24, Some([7; 16])));
        u[3] = 23;
        assert!(scan_box_header(&u).is_err());
    }

    #[test]
    fn walk_children() {
        let mut d = Vec::new();
        d.extend_from_slice(b"\0\0\0\x0aabcd\x01\x02");
        d.extend_from_slice(b"\0\0\0\x08efgh");
        d.extend_from_slice(&[0, 0, 0, 0]); // padding
        let kids: Vec<Child> = children(Bytes::from(d.clone()), 100)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(&kids[0].body[..], &[1, 2]);
        assert_eq!(kids[1].offset, 110);
        assert_eq!(kids[1].full.len(), 8);
        // A child that runs past the container.
        d[3] = 0x40;
        let r: Vec<Result<Child>> = children(Bytes::from(d), 100).collect();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].as_ref().unwrap_err().offset(), Some(100));
    }
}
