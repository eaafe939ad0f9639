//! Sample auxiliary information of protected fragments: `senc` (ISO/IEC 23001-7 §7.2:
//! per-sample IVs and subsample tables), `saiz` and `saio` (ISO/IEC 14496-12 §8.7.8,
//! §8.7.9: their sizes and where they are). PIFF's `uuid` form of `senc` is read too.

use bytes::{BufMut, BytesMut};

use super::boxes::{begin_full, end};
use crate::crypto::cenc::Subsample;
use crate::crypto::Iv;
use crate::error::{Error, Result};

/// `senc` flag: the entries carry subsample tables.
pub(crate) const SENC_USE_SUBSAMPLES: u32 = 0x2;
/// PIFF 1.1 `senc` flag: the box overrides the track's algorithm, IV size and key id.
const PIFF_OVERRIDE: u32 = 0x1;
/// The `uuid` extended type of PIFF's SampleEncryptionBox.
pub(crate) const PIFF_SENC_UUID: [u8; 16] = [
    0xa2, 0x39, 0x4f, 0x52, 0x5a, 0x9b, 0x4f, 0x14, 0xa2, 0x44, 0x6c, 0x42, 0x7c, 0x64, 0x8d, 0xf4,
];

/// The auxiliary information of one sample: its IV (none with a constant IV) and its
/// subsample table (empty: the whole sample is protected).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SampleAux {
    pub iv: Option<Iv>,
    pub subsamples: Vec<Subsample>,
}

impl SampleAux {
    /// Bytes of the entry in `senc` (and the `saiz` size).
    pub(crate) fn size(&self, use_subsamples: bool) -> usize {
        let iv = self.iv.map_or(0, |iv| iv.as_bytes().len());
        iv + if use_subsamples {
            2 + 6 * self.subsamples.len()
        } else {
            0
        }
    }

    fn write(&self, out: &mut BytesMut, use_subsamples: bool) -> Result<()> {
        if let Some(iv) = &self.iv {
            out.put_slice(iv.as_bytes());
        }
        if use_subsamples {
            let n = u16::try_from(self.subsamples.len())
                .map_err(|_| Error::limit("more than 65535 subsamples in one sample"))?;
            out.put_u16(n);
            for s in &self.subsamples {
                out.put_u16(s.clear);
                out.put_u32(s.protected);
            }
        }
        Ok(())
    }
}

/// Writes `senc` (version 0) with `entries`; returns the offset in `out` of the first
/// entry (what `saio` points at).
pub(crate) fn write_senc(
    out: &mut BytesMut,
    entries: &[SampleAux],
    use_subsamples: bool,
) -> Result<usize> {
    let flags = if use_subsamples {
        SENC_USE_SUBSAMPLES
    } else {
        0
    };
    let at = begin_full(out, b"senc", 0, flags);
    let n = u32::try_from(entries.len()).map_err(|_| Error::limit("too many samples"))?;
    out.put_u32(n);
    let first = out.len();
    for e in entries {
        e.write(out, use_subsamples)?;
    }
    end(out, at)?;
    Ok(first)
}

/// Writes `saiz` (version 0, no `aux_info_type`: the scheme's default) for entries of
/// `sizes` bytes: one default size when they are all equal, else the table.
pub(crate) fn write_saiz(out: &mut BytesMut, sizes: &[usize]) -> Result<()> {
    let at = begin_full(out, b"saiz", 0, 0);
    let n = u32::try_from(sizes.len()).map_err(|_| Error::limit("too many samples"))?;
    let first = sizes.first().copied().unwrap_or(0);
    let small = |s: usize| {
        u8::try_from(s).map_err(|_| {
            Error::limit("sample auxiliary information above 255 bytes (too many subsamples)")
        })
    };
    if sizes.iter().all(|&s| s == first) && first != 0 {
        out.put_u8(small(first)?);
        out.put_u32(n);
    } else {
        out.put_u8(0);
        out.put_u32(n);
        for &s in sizes {
            out.put_u8(small(s)?);
        }
    }
    end(out, at)
}

/// Writes `saio` (version 0, one offset) and returns the offset in `out` of its 32-bit
/// offset field, to patch once the `senc` is written.
pub(crate) fn write_saio(out: &mut BytesMut) -> Result<usize> {
    let at = begin_full(out, b"saio", 0, 0);
    out.put_u32(1);
    let field = out.len();
    out.put_u32(0);
    end(out, at)?;
    Ok(field)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

/// Reads one entry at `*pos` of `b`: `iv_size` bytes of IV, then (with subsamples) the
/// count and the table. The entry must end by `end`.
fn read_entry(
    b: &[u8],
    pos: &mut usize,
    end: usize,
    iv_size: u8,
    use_subsamples: bool,
) -> Result<SampleAux> {
    let short = || Error::malformed("sample auxiliary information shorter than its entries");
    let iv_end = *pos + usize::from(iv_size);
    if iv_end > end {
        return Err(short());
    }
    let iv = match iv_size {
        0 => None,
        8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b.get(*pos..iv_end).ok_or_else(short)?);
            Some(Iv::Iv8(a))
        }
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b.get(*pos..iv_end).ok_or_else(short)?);
            Some(Iv::Iv16(a))
        }
        _ => return Err(Error::malformed("IV size other than 0, 8 or 16")),
    };
    *pos = iv_end;
    let mut subsamples = Vec::new();
    if use_subsamples {
        let n = usize::from(
            be16(b, *pos)
                .filter(|_| *pos + 2 <= end)
                .ok_or_else(short)?,
        );
        *pos += 2;
        let table_end = *pos + 6 * n;
        if table_end > end {
            return Err(Error::malformed("subsample table runs past its entry"));
        }
        subsamples.reserve(n);
        for _ in 0..n {
            let clear = be16(b, *pos).ok_or_else(short)?;
            let protected = be32(b, *pos + 2).ok_or_else(short)?;
            subsamples.push(crate::crypto::cenc::Subsample::new(clear, protected));
            *pos += 6;
        }
    }
    Ok(SampleAux { iv, subsamples })
}

/// Reads a `senc` body (after the box header; for PIFF's `uuid` form, after the
/// extended type) holding `count` samples with `iv_size`-byte IVs. Errors: a sample count
/// other than `count`, entries running past the box, a version above 0 (PIFF: an
/// override of the algorithm).
pub(crate) fn parse_senc(body: &[u8], iv_size: u8, count: u32) -> Result<Vec<SampleAux>> {
    let short = || Error::malformed("senc shorter than its fields");
    let vf = be32(body, 0).ok_or_else(short)?;
    if vf >> 24 > 0 {
        return Err(Error::unsupported("senc version above 0"));
    }
    let flags = vf & 0x00ff_ffff;
    let mut pos = 4;
    let mut iv_size = iv_size;
    if flags & PIFF_OVERRIDE != 0 {
        // AlgorithmID (24 bits), IV_size (8), KID (16 bytes).
        let algorithm = be32(body, pos).ok_or_else(short)? >> 8;
        if algorithm != 1 {
            return Err(Error::unsupported(
                "PIFF senc with an algorithm other than AES-CTR",
            ));
        }
        iv_size = *body.get(pos + 3).ok_or_else(short)?;
        pos += 20;
    }
    let n = be32(body, pos).ok_or_else(short)?;
    pos += 4;
    if n != count {
        return Err(Error::malformed(format!(
            "senc describes {n} samples, the track fragment has {count}"
        )));
    }
    let use_subsamples = flags & SENC_USE_SUBSAMPLES != 0;
    let min_entry = usize::from(iv_size) + if use_subsamples { 2 } else { 0 };
    if (n as usize).saturating_mul(min_entry) > body.len() - pos.min(body.len()) {
        return Err(Error::malformed("senc sample count exceeds its box"));
    }
    let mut out = Vec::with_capacity(if min_entry == 0 {
        (n as usize).min(body.len())
    } else {
        n as usize
    });
    for _ in 0..n {
        out.push(read_entry(
            body,
            &mut pos,
            body.len(),
            iv_size,
            use_subsamples,
        )?);
    }
    Ok(out)
}

/// `saiz` (§8.7.8): the entry sizes of `count` samples. Errors: an `aux_info_type` other
/// than the CENC schemes', a sample count other than `count`, a table past the box.
pub(crate) fn parse_saiz(body: &[u8], count: u32) -> Result<Vec<u8>> {
    let short = || Error::malformed("saiz shorter than its fields");
    let vf = be32(body, 0).ok_or_else(short)?;
    let mut pos = 4;
    if vf & 1 != 0 {
        let t = body.get(pos..pos + 4).ok_or_else(short)?;
        if !matches!(t, b"cenc" | b"cbcs" | b"cens" | b"cbc1") {
            return Err(Error::unsupported(
                "saiz of an auxiliary information type other than CENC",
            ));
        }
        pos += 8;
    }
    let default = *body.get(pos).ok_or_else(short)?;
    let n = be32(body, pos + 1).ok_or_else(short)?;
    pos += 5;
    if n != count {
        return Err(Error::malformed(
            "saiz sample count differs from the track fragment's",
        ));
    }
    if default != 0 {
        return Ok(vec![default; n as usize]);
    }
    body.get(pos..pos + n as usize)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Error::malformed("saiz table runs past its box"))
}

/// `saio` (§8.7.9): the offset of the first entry (one offset: the entries are
/// contiguous, as ISO/IEC 23001-7 §7.1 requires for fragments).
pub(crate) fn parse_saio(body: &[u8]) -> Result<u64> {
    let short = || Error::malformed("saio shorter than its fields");
    let vf = be32(body, 0).ok_or_else(short)?;
    let mut pos = 4;
    if vf & 1 != 0 {
        pos += 8;
    }
    let n = be32(body, pos).ok_or_else(short)?;
    pos += 4;
    if n != 1 {
        return Err(Error::unsupported(
            "saio with other than one offset in a track fragment",
        ));
    }
    if vf >> 24 == 0 {
        be32(body, pos).map(u64::from).ok_or_else(short)
    } else {
        be64(body, pos).ok_or_else(short)
    }
}

/// Reads `sizes.len()` entries laid end to end in `data` (located by `saio`).
pub(crate) fn parse_aux_entries(data: &[u8], sizes: &[u8], iv_size: u8) -> Result<Vec<SampleAux>> {
    let total: usize = sizes.iter().map(|&s| usize::from(s)).sum();
    if total > data.len() {
        return Err(Error::malformed(
            "sample auxiliary information outside the data",
        ));
    }
    let mut out = Vec::with_capacity(sizes.len());
    let mut pos = 0;
    for &s in sizes {
        let end = pos + usize::from(s);
        let use_subsamples = usize::from(s) > usize::from(iv_size);
        let e = read_entry(data, &mut pos, end, iv_size, use_subsamples)?;
        if pos != end {
            return Err(Error::malformed(
                "sample auxiliary information size differs from its entry",
            ));
        }
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(out: &BytesMut) -> &[u8] {
        &out[8..]
    }

    #[test]
    fn senc_saiz_saio_round_trip() {
        let entries = vec![
            SampleAux {
                iv: Some(Iv::Iv8([1; 8])),
                subsamples: vec![Subsample::new(5, 32), Subsample::new(9, 0)],
            },
            SampleAux {
                iv: Some(Iv::Iv8([2; 8])),
                subsamples: vec![Subsample::new(100, 16)],
            },
        ];
        let mut out = BytesMut::new();
        let first = write_senc(&mut out, &entries, true).unwrap();
        assert_eq!(first, 16);
        assert_eq!(&out[4..12], b"senc\0\0\0\x02");
        assert_eq!(parse_senc(body(&out), 8, 2).unwrap(), entries);
        assert!(parse_senc(body(&out), 8, 3).is_err());
        for n in 0..out.len() - 8 {
            assert!(parse_senc(&body(&out)[..n], 8, 2).is_err(), "{n}");
        }
        let sizes: Vec<usize> = entries.iter().map(|e| e.size(true)).collect();
        assert_eq!(sizes, [8 + 2 + 12, 8 + 2 + 6]);
        let aux = &out[first..];
        let s8: Vec<u8> = sizes.iter().map(|&s| s as u8).collect();
        assert_eq!(parse_aux_entries(aux, &s8, 8).unwrap(), entries);
        assert!(parse_aux_entries(&aux[..aux.len() - 1], &s8, 8).is_err());

        let mut z = BytesMut::new();
        write_saiz(&mut z, &sizes).unwrap();
        assert_eq!(&z[8..], &[0, 0, 0, 0, 0, 0, 0, 0, 2, 22, 16]);
        assert_eq!(parse_saiz(body(&z), 2).unwrap(), s8);
        let mut z = BytesMut::new();
        write_saiz(&mut z, &[8, 8, 8]).unwrap();
        assert_eq!(&z[8..], &[0, 0, 0, 0, 8, 0, 0, 0, 3]);
        assert_eq!(parse_saiz(body(&z), 3).unwrap(), [8, 8, 8]);
        assert!(write_saiz(&mut z, &[256]).is_err());

        let mut o = BytesMut::new();
        let field = write_saio(&mut o).unwrap();
        o[field..field + 4].copy_from_slice(&1234u32.to_be_bytes());
        assert_eq!(parse_saio(body(&o)).unwrap(), 1234);
    }

    #[test]
    fn constant_iv_entries_and_hostile_counts() {
        // cbcs audio: no IV, no subsamples: entries of 0 bytes.
        let entries = vec![SampleAux::default(); 3];
        let mut out = BytesMut::new();
        write_senc(&mut out, &entries, false).unwrap();
        assert_eq!(out.len(), 16);
        assert_eq!(parse_senc(body(&out), 0, 3).unwrap(), entries);
        // A huge count with 8-byte IVs cannot fit: refused before allocating.
        let mut huge = body(&out).to_vec();
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_senc(&huge, 8, u32::MAX).is_err());
        // A subsample count past the entry.
        let e = read_entry(&[0, 9, 0, 0, 0, 0, 0, 0], &mut 0, 8, 0, true);
        assert!(e.is_err());
        // IV size 4 is not a CENC size.
        assert!(read_entry(&[0; 8], &mut 0, 8, 4, false).is_err());
    }
}
