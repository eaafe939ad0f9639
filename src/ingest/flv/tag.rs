//! FLV file structure: the file header, tag headers, a tag walker and the tag writer
//! (Adobe Flash Video File Format Specification v10.1, Annex E.2 "The FLV header",
//! E.3 "The FLV File Body", E.4.1 "FLV Tag").

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

/// Length of the FLV file header (E.2) without the first `PreviousTagSize0`.
pub const HEADER_LEN: usize = 9;
/// Length of a tag header (E.4.1): type, DataSize, Timestamp, TimestampExtended, StreamID.
pub const TAG_HEADER_LEN: usize = 11;
/// Length of a `PreviousTagSize` field (E.3).
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// Largest tag body the 24-bit `DataSize` field can describe.
pub const MAX_DATA_SIZE: u32 = 0x00FF_FFFF;

/// The signature every FLV file starts with.
const SIGNATURE: &[u8; 3] = b"FLV";

/// `TypeFlagsAudio` in the header flags byte.
const FLAG_AUDIO: u8 = 0x04;
/// `TypeFlagsVideo` in the header flags byte.
const FLAG_VIDEO: u8 = 0x01;
/// The `Filter` bit of the tag type byte: the body is encrypted (E.4.1).
const FILTER_BIT: u8 = 0x20;

/// The type of an FLV tag (`TagType`, E.4.1; the same numbers are RTMP message type ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagType {
    /// 8: audio.
    Audio,
    /// 9: video.
    Video,
    /// 18: script data (AMF0).
    Script,
    /// Any other 5-bit value, kept as read; the demuxer skips such tags.
    Other(u8),
}

impl TagType {
    /// The type for a 5-bit `TagType` value (higher bits are ignored).
    pub fn from_code(code: u8) -> TagType {
        match code & 0x1f {
            8 => TagType::Audio,
            9 => TagType::Video,
            18 => TagType::Script,
            other => TagType::Other(other),
        }
    }
    /// The 5-bit wire value.
    pub fn code(self) -> u8 {
        match self {
            TagType::Audio => 8,
            TagType::Video => 9,
            TagType::Script => 18,
            TagType::Other(c) => c & 0x1f,
        }
    }
}

/// The FLV file header (E.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FlvHeader {
    /// File version; 1 for every FLV file in use.
    pub version: u8,
    /// The flags byte as read: `TypeFlagsAudio` (0x04), `TypeFlagsVideo` (0x01) and the
    /// reserved bits, kept so a passthrough writes them back.
    pub flags: u8,
    /// `DataOffset`: the header length, 9 for version 1 (bytes after 9 are skipped).
    pub data_offset: u32,
}

impl FlvHeader {
    /// A version 1 header announcing the given tracks.
    pub fn new(has_audio: bool, has_video: bool) -> FlvHeader {
        let mut flags = 0;
        if has_audio {
            flags |= FLAG_AUDIO;
        }
        if has_video {
            flags |= FLAG_VIDEO;
        }
        FlvHeader {
            version: 1,
            flags,
            data_offset: HEADER_LEN as u32,
        }
    }
    /// `TypeFlagsAudio`: the file says it has audio tags.
    pub fn has_audio(&self) -> bool {
        self.flags & FLAG_AUDIO != 0
    }
    /// `TypeFlagsVideo`: the file says it has video tags.
    pub fn has_video(&self) -> bool {
        self.flags & FLAG_VIDEO != 0
    }
    /// Parses the 9-byte header at the start of `data`; `Ok(None)` if fewer than 9 bytes.
    ///
    /// Errors: a wrong signature or a `DataOffset` below 9 is malformed.
    pub fn parse(data: &[u8]) -> Result<Option<FlvHeader>> {
        let Some(h) = data.get(..HEADER_LEN) else {
            // A wrong signature is reported as soon as it is visible.
            let n = data.len().min(3);
            if data[..n] != SIGNATURE[..n] {
                return Err(Error::malformed("not an FLV file (bad signature)").at_offset(0));
            }
            return Ok(None);
        };
        if &h[..3] != SIGNATURE {
            return Err(Error::malformed("not an FLV file (bad signature)").at_offset(0));
        }
        let data_offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        if data_offset < HEADER_LEN as u32 {
            return Err(Error::malformed("FLV DataOffset shorter than the header").at_offset(5));
        }
        Ok(Some(FlvHeader {
            version: h[3],
            flags: h[4],
            data_offset,
        }))
    }
    /// Appends the header, zero padding up to `data_offset`, and `PreviousTagSize0` (0),
    /// so that tags written next form a valid file.
    pub fn write(&self, out: &mut BytesMut) {
        out.put_slice(SIGNATURE);
        out.put_u8(self.version);
        out.put_u8(self.flags);
        let offset = self.data_offset.max(HEADER_LEN as u32);
        out.put_u32(offset);
        out.put_bytes(0, offset as usize - HEADER_LEN);
        out.put_u32(0);
    }
}

/// The 11-byte header of a tag (E.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TagHeader {
    /// Audio, video, script or other.
    pub tag_type: TagType,
    /// The `Filter` bit: the body is encrypted (not supported by the demuxer).
    pub filter: bool,
    /// `DataSize`: body length in bytes.
    pub data_size: u32,
    /// `Timestamp` with `TimestampExtended` as its upper 8 bits: milliseconds, wrapping
    /// at 2^32.
    pub timestamp: u32,
    /// `StreamID`; always 0 in files.
    pub stream_id: u32,
}

impl TagHeader {
    /// Parses a tag header at the start of `data`; `None` if fewer than 11 bytes.
    /// Every 11-byte value is a syntactically valid header.
    pub fn parse(data: &[u8]) -> Option<TagHeader> {
        let h = data.get(..TAG_HEADER_LEN)?;
        Some(TagHeader {
            tag_type: TagType::from_code(h[0]),
            filter: h[0] & FILTER_BIT != 0,
            data_size: u32::from_be_bytes([0, h[1], h[2], h[3]]),
            timestamp: u32::from_be_bytes([h[7], h[4], h[5], h[6]]),
            stream_id: u32::from_be_bytes([0, h[8], h[9], h[10]]),
        })
    }
    /// Appends the 11 header bytes (the stream id is cut to 24 bits, `data_size` must
    /// not exceed [`MAX_DATA_SIZE`]).
    pub fn write(&self, out: &mut BytesMut) {
        let mut t = self.tag_type.code();
        if self.filter {
            t |= FILTER_BIT;
        }
        let ts = self.timestamp.to_be_bytes();
        let size = self.data_size.min(MAX_DATA_SIZE).to_be_bytes();
        let sid = self.stream_id.to_be_bytes();
        out.put_slice(&[
            t, size[1], size[2], size[3], ts[1], ts[2], ts[3], ts[0], sid[1], sid[2], sid[3],
        ]);
    }
    /// Total bytes of the tag on the wire: header, body and the trailing `PreviousTagSize`.
    pub fn wire_len(&self) -> usize {
        TAG_HEADER_LEN + self.data_size as usize + PREVIOUS_TAG_SIZE_LEN
    }
}

/// One tag of an FLV file, its body a zero-copy slice of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlvTag {
    /// Audio, video, script or other.
    pub tag_type: TagType,
    /// The `Filter` (encryption) bit.
    pub filter: bool,
    /// Milliseconds, 32 bits as on the wire (not unwrapped).
    pub timestamp: u32,
    /// `StreamID` as read.
    pub stream_id: u32,
    /// The tag body (`DataSize` bytes).
    pub body: Bytes,
    /// The `PreviousTagSize` that follows the tag (11 + `DataSize` when correct).
    pub previous_tag_size: u32,
    /// Absolute byte offset of the tag's first byte in the input.
    pub offset: u64,
}

/// Walks the tags of a complete FLV file (or of a headerless run of tags) held in one
/// buffer: the simple, non-incremental reader for tests, tools and recordings.
///
/// Yields each tag as an [`FlvTag`] whose body slices the input (no copy). A truncated
/// tag yields one malformed error and ends the iteration. Every tag must be followed by
/// its `PreviousTagSize`; its value is reported, not checked.
///
/// ```
/// use bytes::BytesMut;
/// use strom::ingest::flv::{write_tag, FlvHeader, TagReader, TagType};
/// let mut file = BytesMut::new();
/// FlvHeader::new(false, true).write(&mut file);
/// write_tag(TagType::Video, 40, b"\x27\x01\0\0\0", &mut file).unwrap();
/// let mut r = TagReader::new(file.freeze()).unwrap();
/// assert!(r.header().unwrap().has_video());
/// let tag = r.next().unwrap().unwrap();
/// assert_eq!((tag.tag_type, tag.timestamp, tag.offset), (TagType::Video, 40, 13));
/// assert_eq!(tag.previous_tag_size, 16);
/// assert!(r.next().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct TagReader {
    data: Bytes,
    pos: usize,
    header: Option<FlvHeader>,
    failed: bool,
}

impl TagReader {
    /// A reader over a whole FLV file: parses the header and skips `PreviousTagSize0`.
    ///
    /// Errors: bad signature or `DataOffset`, or a file shorter than its header.
    pub fn new(data: Bytes) -> Result<TagReader> {
        let header = FlvHeader::parse(&data)?
            .ok_or_else(|| Error::malformed("truncated FLV header").at_offset(0))?;
        let start = header.data_offset as usize + PREVIOUS_TAG_SIZE_LEN;
        if data.len() < start {
            return Err(Error::malformed("truncated FLV header").at_offset(0));
        }
        Ok(TagReader {
            data,
            pos: start,
            header: Some(header),
            failed: false,
        })
    }
    /// A reader over tags without a file header: `tag, PreviousTagSize, tag, ...`.
    pub fn without_header(data: Bytes) -> TagReader {
        TagReader {
            data,
            pos: 0,
            header: None,
            failed: false,
        }
    }
    /// The file header, for readers made by [`TagReader::new`].
    pub fn header(&self) -> Option<&FlvHeader> {
        self.header.as_ref()
    }
    /// Byte offset of the next tag.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for TagReader {
    type Item = Result<FlvTag>;
    fn next(&mut self) -> Option<Result<FlvTag>> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let rest = &self.data[self.pos..];
        let complete = TagHeader::parse(rest).filter(|h| rest.len() >= h.wire_len());
        let Some(h) = complete else {
            self.failed = true;
            return Some(Err(
                Error::malformed("truncated FLV tag").at_offset(self.pos as u64)
            ));
        };
        let body_start = self.pos + TAG_HEADER_LEN;
        let body_end = body_start + h.data_size as usize;
        let p = &self.data[body_end..body_end + PREVIOUS_TAG_SIZE_LEN];
        let tag = FlvTag {
            tag_type: h.tag_type,
            filter: h.filter,
            timestamp: h.timestamp,
            stream_id: h.stream_id,
            body: self.data.slice(body_start..body_end),
            previous_tag_size: u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
            offset: self.pos as u64,
        };
        self.pos = body_end + PREVIOUS_TAG_SIZE_LEN;
        Some(Ok(tag))
    }
}

/// Appends one complete tag: header, `body`, and the `PreviousTagSize` (11 + body length).
///
/// `timestamp_ms` is written as the 24-bit `Timestamp` plus the 8-bit
/// `TimestampExtended`; the stream id is 0. Errors with a limit error if `body` is longer
/// than [`MAX_DATA_SIZE`].
pub fn write_tag(kind: TagType, timestamp_ms: u32, body: &[u8], out: &mut BytesMut) -> Result<()> {
    write_tag_parts(kind, timestamp_ms, &[body], out)
}

/// Like [`write_tag`] with the body given in parts (a codec header, then the payload),
/// so callers need not concatenate them first.
pub fn write_tag_parts(
    kind: TagType,
    timestamp_ms: u32,
    body: &[&[u8]],
    out: &mut BytesMut,
) -> Result<()> {
    let size: usize = body.iter().map(|p| p.len()).sum();
    if size > MAX_DATA_SIZE as usize {
        return Err(Error::limit("FLV tag body longer than 16 MiB"));
    }
    out.reserve(TAG_HEADER_LEN + size + PREVIOUS_TAG_SIZE_LEN);
    TagHeader {
        tag_type: kind,
        filter: false,
        data_size: size as u32,
        timestamp: timestamp_ms,
        stream_id: 0,
    }
    .write(out);
    for p in body {
        out.put_slice(p);
    }
    out.put_u32((TAG_HEADER_LEN + size) as u32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn header_round_trip_and_errors() {
        let mut out = BytesMut::new();
        FlvHeader::new(true, true).write(&mut out);
        assert_eq!(&out[..], b"FLV\x01\x05\0\0\0\x09\0\0\0\0");
        let h = FlvHeader::parse(&out).unwrap().unwrap();
        assert!(h.has_audio() && h.has_video());
        assert_eq!(FlvHeader::parse(b"FL").unwrap(), None);
        assert_eq!(
            FlvHeader::parse(b"FX").unwrap_err().kind(),
            ErrorKind::Malformed
        );
        assert!(FlvHeader::parse(b"FLX\x01\x05\0\0\0\x09").is_err());
        assert!(FlvHeader::parse(b"FLV\x01\x05\0\0\0\x08").is_err());
        // A longer DataOffset is padded on write.
        let h = FlvHeader {
            data_offset: 12,
            ..FlvHeader::new(false, true)
        };
        let mut out = BytesMut::new();
        h.write(&mut out);
        assert_eq!(out.len(), 16);
        let r = TagReader::new(out.freeze()).unwrap();
        assert_eq!(r.position(), 16);
    }

    #[test]
    fn tag_header_fields() {
        // Type video with filter bit, size 0x000102, ts 0x7f010203 (extended 0x7f), sid 5.
        let raw = [0x29, 0, 1, 2, 1, 2, 3, 0x7f, 0, 0, 5];
        let h = TagHeader::parse(&raw).unwrap();
        assert_eq!(h.tag_type, TagType::Video);
        assert!(h.filter);
        assert_eq!(
            (h.data_size, h.timestamp, h.stream_id),
            (0x102, 0x7f01_0203, 5)
        );
        let mut out = BytesMut::new();
        h.write(&mut out);
        assert_eq!(&out[..], &raw);
        assert_eq!(TagHeader::parse(&raw[..10]), None);
        assert_eq!(TagType::from_code(0xc0 | 18), TagType::Script);
        assert_eq!(TagType::Other(15).code(), 15);
    }

    #[test]
    fn reader_walks_and_reports_truncation() {
        let mut file = BytesMut::new();
        FlvHeader::new(true, false).write(&mut file);
        write_tag(TagType::Audio, 0x0100_0000, b"\xaf\x00\x12\x10", &mut file).unwrap();
        write_tag(TagType::Script, 5, b"", &mut file).unwrap();
        let file = file.freeze();
        let tags: Vec<FlvTag> = TagReader::new(file.clone())
            .unwrap()
            .map(|t| t.unwrap())
            .collect();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].timestamp, 0x0100_0000);
        assert_eq!(&tags[0].body[..], b"\xaf\x00\x12\x10");
        assert_eq!(tags[0].previous_tag_size, 15);
        assert_eq!((tags[1].offset, tags[1].body.len()), (13 + 19, 0));
        for n in 13..file.len() {
            let r = TagReader::new(file.slice(..n)).unwrap();
            let results: Vec<_> = r.collect();
            // One result per tag that starts before the cut: complete ones, then an error.
            let started = [13, 13 + 19].iter().filter(|&&start| start < n).count();
            if n == 13 || n == 13 + 19 {
                assert!(results.iter().all(|r| r.is_ok()));
            } else {
                assert_eq!(results.len(), started, "prefix {n}");
                assert!(results.last().unwrap().is_err());
            }
        }
        assert!(TagReader::new(file.slice(..12)).is_err());
    }

    #[test]
    fn oversized_body_is_refused() {
        let big = vec![0u8; MAX_DATA_SIZE as usize + 1];
        let mut out = BytesMut::new();
        let e = write_tag(TagType::Video, 0, &big, &mut out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
        assert!(out.is_empty());
    }
}
