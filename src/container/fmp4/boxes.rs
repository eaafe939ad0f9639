//! Box framing shared by the init and media segment writers (ISO/IEC 14496-12 §4.2):
//! a box is reserved with a zero size, its body appended, then its size patched.

use bytes::{BufMut, BytesMut};

use crate::error::{Error, Result};

/// Starts a `Box` of type `kind` (§4.2): writes a placeholder size and the type, returns
/// the offset of the size field for [`end`].
pub(crate) fn begin(out: &mut BytesMut, kind: &[u8; 4]) -> usize {
    let at = out.len();
    out.put_u32(0);
    out.put_slice(kind);
    at
}

/// Starts a `FullBox` (§4.2): a box followed by an 8-bit version and 24-bit flags.
pub(crate) fn begin_full(out: &mut BytesMut, kind: &[u8; 4], version: u8, flags: u32) -> usize {
    let at = begin(out, kind);
    out.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
    at
}

/// Patches the 32-bit size of the box started at `at` to span up to the end of `out`.
pub(crate) fn end(out: &mut BytesMut, at: usize) -> Result<()> {
    let size = out
        .len()
        .checked_sub(at)
        .ok_or_else(|| Error::usage("box end before its start"))?;
    let size = u32::try_from(size).map_err(|_| Error::limit("box larger than 4 GiB"))?;
    let field = out
        .get_mut(at..at + 4)
        .ok_or_else(|| Error::usage("box size field outside the buffer"))?;
    field.copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// `dinf` with a `dref` of one self-contained `url ` entry (§8.7.1, §8.7.2): the media
/// is in the same file.
pub(crate) fn put_dinf(out: &mut BytesMut) -> Result<()> {
    let dinf = begin(out, b"dinf");
    let dref = begin_full(out, b"dref", 0, 0);
    out.put_u32(1);
    let url = begin_full(out, b"url ", 0, 1);
    end(out, url)?;
    end(out, dref)?;
    end(out, dinf)
}

/// The unity transformation matrix of `mvhd` and `tkhd` (§8.2.2, §8.3.2).
pub(crate) fn put_matrix(out: &mut BytesMut) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        out.put_u32(v);
    }
}

/// Packs an ISO 639-2/T code as `mdhd.language` (§8.4.2.3): three 5-bit letters
/// (`c - 0x60`) behind a pad bit. Anything but three lowercase ASCII letters is `und`.
pub(crate) fn pack_language(lang: Option<&str>) -> u16 {
    let code = match lang {
        Some(l) if l.len() == 3 && l.bytes().all(|b| b.is_ascii_lowercase()) => l.as_bytes(),
        _ => b"und",
    };
    code.iter()
        .fold(0u16, |acc, &c| (acc << 5) | u16::from(c - 0x60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_patched_and_nest() {
        let mut out = BytesMut::new();
        let outer = begin(&mut out, b"moov");
        let inner = begin_full(&mut out, b"mfhd", 1, 0x0102_0304);
        out.put_u32(7);
        end(&mut out, inner).unwrap();
        end(&mut out, outer).unwrap();
        assert_eq!(
            &out[..],
            &[
                0, 0, 0, 24, b'm', b'o', b'o', b'v', 0, 0, 0, 16, b'm', b'f', b'h', b'd', 1, 2, 3,
                4, 0, 0, 0, 7
            ]
        );
        assert!(end(&mut out, 100).is_err());
    }

    #[test]
    fn languages() {
        // "und" = 0x55c4, "eng" = 0x15c7 (values FFmpeg writes).
        assert_eq!(pack_language(None), 0x55c4);
        assert_eq!(pack_language(Some("eng")), 0x15c7);
        assert_eq!(pack_language(Some("EN")), 0x55c4);
        assert_eq!(pack_language(Some("é")), 0x55c4);
    }
}
