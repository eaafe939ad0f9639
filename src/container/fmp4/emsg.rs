//! `emsg`, the DASH Event Message box (ISO/IEC 23009-1 §5.10.3.3): an in-band event
//! (an SCTE-35 cue, ID3 metadata, an MPD expiry) carried at the top level of a media
//! segment, before its first `moof`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::container::mp4::scan_box_header;
use crate::error::{Error, Result};

/// [`Emsg::event_duration`] of an event whose duration is not known
/// (ISO/IEC 23009-1 §5.10.3.3: `0xFFFFFFFF`).
pub const EMSG_DURATION_UNKNOWN: u32 = 0xFFFF_FFFF;

/// When an [`Emsg`] event starts; the variant chooses the box version.
///
/// Version 0 and version 1 also order their fields differently: version 0 opens with
/// the two strings, version 1 with the integers (ISO/IEC 23009-1 §5.10.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmsgTime {
    /// Version 0 `presentation_time_delta`: ticks (of [`Emsg::timescale`]) after the
    /// earliest presentation time of the segment that carries the box.
    Delta(u32),
    /// Version 1 `presentation_time`: the event's time on the media timeline of the
    /// track (the timeline of `tfdt`), in ticks of [`Emsg::timescale`].
    Absolute(u64),
}

/// An `emsg` box (ISO/IEC 23009-1 §5.10.3.3; SCTE 214-3 for its use with SCTE-35).
///
/// [`Emsg::write`] appends the box; [`Emsg::parse`] reads one back from the start of a
/// slice. Both versions are read and written: [`EmsgTime::Delta`] is version 0,
/// [`EmsgTime::Absolute`] version 1. The box goes at the top level of a media segment,
/// before its first `moof` ([`emsg_insert_offset`] says where).
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use strom::container::fmp4::{Emsg, EmsgTime};
///
/// let section = Bytes::from_static(&[0xfc, 0x30, 0x11]); // an SCTE-35 section, cut short
/// let emsg = Emsg::new("urn:scte:scte35:2013:bin", "", 90_000, EmsgTime::Absolute(900_000), section)
///     .with_id(7)
///     .with_duration(2_700_000);
/// let mut out = BytesMut::new();
/// emsg.write(&mut out).unwrap();
/// assert_eq!(&out[4..9], b"emsg\x01"); // version 1
/// let (back, used) = Emsg::parse(&out).unwrap();
/// assert_eq!((back, used), (emsg, out.len()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Emsg {
    /// `scheme_id_uri`: the scheme of the message, e.g. `urn:scte:scte35:2013:bin`.
    /// Not empty; no NUL character.
    pub scheme_id_uri: String,
    /// `value`: a sub-scheme, often empty. No NUL character.
    pub value: String,
    /// `timescale`: ticks per second of the time and the duration. Not zero.
    pub timescale: u32,
    /// The start of the event, and with it the box version.
    pub time: EmsgTime,
    /// `event_duration` in ticks; [`EMSG_DURATION_UNKNOWN`] when not known.
    pub event_duration: u32,
    /// `id`: the same id for the same event repeated in later segments.
    pub id: u32,
    /// `message_data`: the message itself (for SCTE-35, one whole `splice_info_section`).
    pub message_data: Bytes,
}

impl Emsg {
    /// A box of `scheme_id_uri` / `value` with id 0 and an unknown duration.
    pub fn new(
        scheme_id_uri: impl Into<String>,
        value: impl Into<String>,
        timescale: u32,
        time: EmsgTime,
        message_data: Bytes,
    ) -> Self {
        Emsg {
            scheme_id_uri: scheme_id_uri.into(),
            value: value.into(),
            timescale,
            time,
            event_duration: EMSG_DURATION_UNKNOWN,
            id: 0,
            message_data,
        }
    }

    /// Sets [`Emsg::id`] (builder style).
    #[must_use]
    pub fn with_id(mut self, id: u32) -> Self {
        self.id = id;
        self
    }

    /// Sets [`Emsg::event_duration`] in ticks (builder style).
    #[must_use]
    pub fn with_duration(mut self, ticks: u32) -> Self {
        self.event_duration = ticks;
        self
    }

    /// The box version: 0 for [`EmsgTime::Delta`], 1 for [`EmsgTime::Absolute`].
    pub fn version(&self) -> u8 {
        match self.time {
            EmsgTime::Delta(_) => 0,
            EmsgTime::Absolute(_) => 1,
        }
    }

    /// Size of the whole box in bytes (32-bit size field, no `largesize`).
    fn size(&self) -> usize {
        let time = match self.time {
            EmsgTime::Delta(_) => 4,
            EmsgTime::Absolute(_) => 8,
        };
        // header 8, version and flags 4, two NUL-terminated strings, timescale,
        // time, duration, id, the message.
        12 + self.scheme_id_uri.len()
            + 1
            + self.value.len()
            + 1
            + 4
            + time
            + 4
            + 4
            + self.message_data.len()
    }

    /// Appends the box to `out`: version 0 or 1 from [`Emsg::time`], flags 0.
    ///
    /// Errors, with nothing appended: an empty `scheme_id_uri`, a NUL character in
    /// `scheme_id_uri` or `value`, a zero `timescale` ([`crate::ErrorKind::Usage`]); a
    /// box of 4 GiB or more ([`crate::ErrorKind::Limit`]).
    pub fn write(&self, out: &mut BytesMut) -> Result<()> {
        if self.scheme_id_uri.is_empty() {
            return Err(Error::usage("emsg scheme_id_uri is empty"));
        }
        if self.scheme_id_uri.contains('\0') || self.value.contains('\0') {
            return Err(Error::usage("emsg string holds a NUL character"));
        }
        if self.timescale == 0 {
            return Err(Error::usage("emsg timescale is zero"));
        }
        let size =
            u32::try_from(self.size()).map_err(|_| Error::limit("emsg box of 4 GiB or more"))?;
        out.reserve(size as usize);
        out.put_u32(size);
        out.put_slice(b"emsg");
        out.put_u32(u32::from(self.version()) << 24);
        match self.time {
            EmsgTime::Delta(delta) => {
                put_cstr(out, &self.scheme_id_uri);
                put_cstr(out, &self.value);
                out.put_u32(self.timescale);
                out.put_u32(delta);
                out.put_u32(self.event_duration);
                out.put_u32(self.id);
            }
            EmsgTime::Absolute(time) => {
                out.put_u32(self.timescale);
                out.put_u64(time);
                out.put_u32(self.event_duration);
                out.put_u32(self.id);
                put_cstr(out, &self.scheme_id_uri);
                put_cstr(out, &self.value);
            }
        }
        out.put_slice(&self.message_data);
        Ok(())
    }

    /// Reads the `emsg` box at the start of `data`; returns it and the bytes it spans.
    ///
    /// `data` must hold the whole box; bytes after it are left alone. A size field of 0
    /// (ISO/IEC 14496-12 §4.2: to the end) spans the rest of `data`; a 64-bit
    /// `largesize` is read. The flags are not kept (they are 0 in every version so far).
    /// `message_data` is a copy.
    ///
    /// Errors ([`crate::ErrorKind::Malformed`], the offset from the start of `data`): a
    /// box that is not `emsg`, a size smaller than the fields or larger than `data`, a
    /// string without its NUL terminator or not UTF-8, an empty `scheme_id_uri`, a zero
    /// `timescale`. A version above 1 is [`crate::ErrorKind::Unsupported`].
    pub fn parse(data: &[u8]) -> Result<(Emsg, usize)> {
        let header = scan_box_header(data)?
            .ok_or_else(|| Error::malformed("emsg box header cut short").at_offset(0))?;
        if &header.kind != b"emsg" {
            return Err(Error::malformed(format!(
                "'{}' box where an emsg was expected",
                header.kind_str()
            ))
            .at_offset(4));
        }
        let end = header.total_size(data.len() as u64);
        let end = usize::try_from(end)
            .ok()
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                Error::malformed("emsg box runs past the end of the data").at_offset(0)
            })?;
        let start = usize::from(header.header_len);
        let mut r = Reader {
            body: data.get(start..end).unwrap_or_default(),
            pos: 0,
            base: start,
        };
        let version = r.u32()? >> 24;
        let emsg = match version {
            0 => {
                let scheme_id_uri = r.cstr()?;
                let value = r.cstr()?;
                let timescale = r.u32()?;
                let delta = r.u32()?;
                let event_duration = r.u32()?;
                let id = r.u32()?;
                Emsg {
                    scheme_id_uri,
                    value,
                    timescale,
                    time: EmsgTime::Delta(delta),
                    event_duration,
                    id,
                    message_data: r.rest(),
                }
            }
            1 => {
                let timescale = r.u32()?;
                let time = r.u64()?;
                let event_duration = r.u32()?;
                let id = r.u32()?;
                let scheme_id_uri = r.cstr()?;
                let value = r.cstr()?;
                Emsg {
                    scheme_id_uri,
                    value,
                    timescale,
                    time: EmsgTime::Absolute(time),
                    event_duration,
                    id,
                    message_data: r.rest(),
                }
            }
            _ => {
                return Err(Error::unsupported("emsg version above 1").at_offset(start as u64));
            }
        };
        if emsg.scheme_id_uri.is_empty() {
            return Err(Error::malformed("emsg scheme_id_uri is empty").at_offset(start as u64));
        }
        if emsg.timescale == 0 {
            return Err(Error::malformed("emsg timescale is zero").at_offset(start as u64));
        }
        Ok((emsg, end))
    }
}

fn put_cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

/// A cursor over an `emsg` body; errors carry offsets from the start of the box.
struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
    base: usize,
}

impl Reader<'_> {
    fn short(&self) -> Error {
        Error::malformed("emsg box shorter than its fields")
            .at_offset((self.base + self.pos) as u64)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        let end = self.pos.checked_add(N).ok_or_else(|| self.short())?;
        a.copy_from_slice(self.body.get(self.pos..end).ok_or_else(|| self.short())?);
        self.pos = end;
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32> {
        self.take::<4>().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64> {
        self.take::<8>().map(u64::from_be_bytes)
    }

    /// A NUL-terminated UTF-8 string (ISO/IEC 14496-12 §4.2 `string`).
    fn cstr(&mut self) -> Result<String> {
        let rest = self.body.get(self.pos..).unwrap_or_default();
        let at = self.base + self.pos;
        let len = rest.iter().position(|&b| b == 0).ok_or_else(|| {
            Error::malformed("emsg string without its NUL terminator").at_offset(at as u64)
        })?;
        let s = std::str::from_utf8(rest.get(..len).unwrap_or_default())
            .map_err(|_| Error::malformed("emsg string is not UTF-8").at_offset(at as u64))?;
        self.pos += len + 1;
        Ok(s.to_string())
    }

    fn rest(&mut self) -> Bytes {
        let rest = self.body.get(self.pos..).unwrap_or_default();
        self.pos = self.body.len();
        Bytes::copy_from_slice(rest)
    }
}

/// Where `emsg` boxes go in a media segment: the offset just after a leading `styp`
/// box, or 0 when the segment starts with another box (`moof`, `emsg`, `sidx`...).
///
/// `emsg` boxes must come before the first `moof` of a segment (ISO/IEC 23009-1
/// §5.10.3.3), and `styp`, when present, must stay first (ISO/IEC 14496-12 §8.16.2).
/// Boxes inserted there leave the fragment valid: the
/// [`Fmp4Writer`](super::Fmp4Writer)'s `trun` data offsets count from the start of the
/// `moof` (`default-base-is-moof`), which does not move relative to its `mdat`.
///
/// Errors ([`crate::ErrorKind::Malformed`], offset from the start of `fragment`): a box
/// that runs past the end or is too short for its header, no `moof` at the top level
/// before the end.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use strom::container::fmp4::{emsg_insert_offset, Emsg, EmsgTime};
///
/// // styp (16 bytes) + an empty moof + an empty mdat
/// let seg = b"\0\0\0\x10stypmsdh\0\0\0\0\0\0\0\x08moof\0\0\0\x08mdat";
/// let at = emsg_insert_offset(seg).unwrap();
/// assert_eq!(at, 16);
/// let mut out = BytesMut::from(&seg[..at]);
/// Emsg::new("urn:example", "", 1000, EmsgTime::Delta(0), Bytes::from_static(b"hi"))
///     .write(&mut out)
///     .unwrap();
/// out.extend_from_slice(&seg[at..]);
/// assert_eq!(emsg_insert_offset(&out).unwrap(), 16);
/// assert_eq!(&out[20..24], b"emsg");
/// ```
pub fn emsg_insert_offset(fragment: &[u8]) -> Result<usize> {
    let mut pos = 0usize;
    let mut insert = 0usize;
    loop {
        let rest = fragment.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            return Err(Error::malformed("media segment without moof").at_offset(pos as u64));
        }
        let header = scan_box_header(rest)
            .map_err(|e| e.at_offset(pos as u64))?
            .ok_or_else(|| Error::malformed("box header cut short").at_offset(pos as u64))?;
        if &header.kind == b"moof" {
            return Ok(insert);
        }
        let size = header.total_size(rest.len() as u64);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= rest.len())
            .ok_or_else(|| {
                Error::malformed("box runs past the end of the data")
                    .context(format!("box '{}'", header.kind_str()))
                    .at_offset(pos as u64)
            })?;
        if pos == 0 && &header.kind == b"styp" {
            insert = size;
        }
        pos += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn written(e: &Emsg) -> BytesMut {
        let mut out = BytesMut::new();
        e.write(&mut out).unwrap();
        out
    }

    #[test]
    fn version_0_layout() {
        let e = Emsg::new(
            "urn:a",
            "v",
            1000,
            EmsgTime::Delta(0x0102),
            Bytes::from_static(b"MSG"),
        )
        .with_id(9)
        .with_duration(500);
        let out = written(&e);
        let mut want = vec![0, 0, 0, 39, b'e', b'm', b's', b'g', 0, 0, 0, 0];
        want.extend_from_slice(b"urn:a\0v\0");
        want.extend_from_slice(&[0, 0, 0x03, 0xe8, 0, 0, 1, 2, 0, 0, 1, 0xf4, 0, 0, 0, 9]);
        want.extend_from_slice(b"MSG");
        assert_eq!(&out[..], &want[..]);
        assert_eq!(Emsg::parse(&out).unwrap(), (e, 39));
    }

    #[test]
    fn version_1_layout() {
        let e = Emsg::new(
            "urn:a",
            "",
            90_000,
            EmsgTime::Absolute(0x1_0000_0002),
            Bytes::new(),
        );
        let out = written(&e);
        let mut want = vec![0, 0, 0, 39, b'e', b'm', b's', b'g', 1, 0, 0, 0];
        want.extend_from_slice(&[0, 1, 0x5f, 0x90, 0, 0, 0, 1, 0, 0, 0, 2]);
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        want.extend_from_slice(b"urn:a\0\0");
        assert_eq!(&out[..], &want[..]);
        assert_eq!(Emsg::parse(&out).unwrap(), (e, 39));
    }

    #[test]
    fn parse_leaves_what_follows_and_reads_size_0_and_largesize() {
        let e = Emsg::new(
            "urn:a",
            "b",
            10,
            EmsgTime::Delta(1),
            Bytes::from_static(b"xyz"),
        );
        let mut out = written(&e);
        let n = out.len();
        out.extend_from_slice(b"\0\0\0\x08free");
        assert_eq!(Emsg::parse(&out).unwrap(), (e.clone(), n));

        let mut to_end = written(&e);
        to_end[..4].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(Emsg::parse(&to_end).unwrap(), (e.clone(), n));

        let body = &written(&e)[8..];
        let mut large = vec![0, 0, 0, 1, b'e', b'm', b's', b'g'];
        large.extend_from_slice(&((body.len() + 16) as u64).to_be_bytes());
        large.extend_from_slice(body);
        assert_eq!(Emsg::parse(&large).unwrap(), (e, large.len()));
    }

    #[test]
    fn hostile_input_is_a_typed_error() {
        let e = Emsg::new(
            "urn:a",
            "v",
            1000,
            EmsgTime::Delta(3),
            Bytes::from_static(b"M"),
        );
        let v1 = Emsg::new("urn:a", "v", 1000, EmsgTime::Absolute(3), Bytes::new());
        for good in [written(&e), written(&v1)] {
            // Every truncation: either the size field lies or a field is cut.
            for n in 0..good.len() {
                let err = Emsg::parse(&good[..n]).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Malformed, "{n}: {err}");
            }
            // A size field that ends inside the fields.
            for size in 8..good.len() - 1 {
                let mut b = good.to_vec();
                b[..4].copy_from_slice(&(size as u32).to_be_bytes());
                if let Ok((_, used)) = Emsg::parse(&b) {
                    assert_eq!(used, size);
                }
            }
        }
        let mut b = written(&e).to_vec();
        b[8] = 2;
        assert_eq!(Emsg::parse(&b).unwrap_err().kind(), ErrorKind::Unsupported);
        let fields = |s: &[u8]| [s, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]].concat();
        for (version, body, needle) in [
            (0u8, b"urn:a".to_vec(), "NUL terminator"),
            (0, b"urn:a\0v".to_vec(), "NUL terminator"),
            (
                1,
                [&[0, 0, 0, 1][..], &[0; 16], b"urn:a\0v"].concat(),
                "NUL terminator",
            ),
            (0, fields(b"\xffrn:a\0\0"), "UTF-8"),
            (0, fields(b"\0v\0"), "scheme_id_uri is empty"),
            (
                0,
                [&b"urn:a\0\0"[..], &[0; 16]].concat(),
                "timescale is zero",
            ),
            (
                0,
                b"urn:a\0\0\0\0\0\x01".to_vec(),
                "shorter than its fields",
            ),
        ] {
            let mut b = Vec::new();
            b.extend_from_slice(&(12 + body.len() as u32).to_be_bytes());
            b.extend_from_slice(b"emsg");
            b.extend_from_slice(&[version, 0, 0, 0]);
            b.extend_from_slice(&body);
            let err = Emsg::parse(&b).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Malformed, "{err}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
            assert!(err.offset().is_some_and(|o| o <= b.len() as u64), "{err}");
        }
        let mut b = written(&e).to_vec();
        b[4..8].copy_from_slice(b"free");
        assert!(Emsg::parse(&b).unwrap_err().to_string().contains("'free'"));
        let mut b = written(&e).to_vec();
        b[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Emsg::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("past the end"));
    }

    #[test]
    fn write_refuses_what_cannot_be_written() {
        let mut out = BytesMut::from(&b"keep"[..]);
        for bad in [
            Emsg::new("", "", 1, EmsgTime::Delta(0), Bytes::new()),
            Emsg::new("urn:a\0b", "", 1, EmsgTime::Delta(0), Bytes::new()),
            Emsg::new("urn:a", "\0", 1, EmsgTime::Delta(0), Bytes::new()),
            Emsg::new("urn:a", "", 0, EmsgTime::Absolute(0), Bytes::new()),
        ] {
            assert_eq!(bad.write(&mut out).unwrap_err().kind(), ErrorKind::Usage);
        }
        assert_eq!(&out[..], b"keep");
    }

    #[test]
    fn insert_offset() {
        let styp = b"\0\0\0\x14stypmsdh\0\0\0\0msdh";
        let moof = b"\0\0\0\x08moof";
        let mdat = b"\0\0\0\x09mdatX";
        let emsg = written(&Emsg::new("urn:a", "", 1, EmsgTime::Delta(0), Bytes::new()));
        let cat = |parts: &[&[u8]]| parts.concat();
        assert_eq!(emsg_insert_offset(&cat(&[styp, moof, mdat])).unwrap(), 20);
        assert_eq!(
            emsg_insert_offset(&cat(&[styp, &emsg, moof, mdat])).unwrap(),
            20
        );
        assert_eq!(emsg_insert_offset(&cat(&[moof, mdat])).unwrap(), 0);
        assert_eq!(emsg_insert_offset(&cat(&[&emsg, moof, mdat])).unwrap(), 0);
        // The moof need not be whole (a header-only prefix is enough to decide).
        assert_eq!(emsg_insert_offset(&cat(&[styp, moof])).unwrap(), 20);
        for bad in [
            cat(&[styp]),
            cat(&[styp, mdat]),
            cat(&[&styp[..19], moof]),
            cat(&[styp, b"\0\0\0\x04free", moof]),
            cat(&[styp, b"\0\0\0\xffskip", moof]),
            Vec::new(),
        ] {
            let err = emsg_insert_offset(&bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Malformed, "{err}");
        }
    }
}
