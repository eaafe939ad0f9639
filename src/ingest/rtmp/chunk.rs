//! RTMP chunk stream (Adobe RTMP specification 1.0, §5.3): reader and writer.
//!
//! The reader keeps per-chunk-stream state (the last message header, the timestamp
//! delta, whether an extended timestamp is in use) and reassembles interleaved
//! messages. A message that arrives in a single chunk is a zero-copy slice of the
//! input buffer; one split over chunks is assembled once.
//!
//! Extended timestamps (§5.3.1.3) are also read on type-3 chunks whenever the chunk
//! stream's last type 0/1/2 header used one, as FFmpeg, librtmp and Flash write them.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Error, Result};

/// Largest chunk stream id a 3-byte basic header can carry (§5.3.1.1).
pub const MAX_CSID: u32 = 65599;
/// Default chunk size before any Set Chunk Size (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size Set Chunk Size may announce (31 bits, §5.4.1).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
const EXTENDED: u32 = 0x00FF_FFFF;

/// Limits on what a peer may make the reader buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChunkLimits {
    /// Largest message length accepted, in bytes. Default 8 MiB (the wire field
    /// allows 16 MiB - 1; a keyframe of a 4K stream stays well below 8 MiB).
    pub max_message_len: u32,
    /// Most chunk streams that may hold a partial message at once. Default 64.
    pub max_partial_streams: usize,
    /// Most bytes held in partial messages over all chunk streams. Default 32 MiB.
    pub max_buffered: usize,
    /// Most chunk streams with state. Default 256.
    pub max_chunk_streams: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_message_len: 8 << 20,
            max_partial_streams: 64,
            max_buffered: 32 << 20,
            max_chunk_streams: 256,
        }
    }
}

/// One reassembled RTMP message (§6.1: header fields plus payload).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// Chunk stream it arrived on.
    pub csid: u32,
    /// Absolute timestamp in milliseconds (32-bit wire clock, wraps).
    pub timestamp: u32,
    /// Message type id (§5.4, §7.1).
    pub type_id: u8,
    /// Message stream id (0 for protocol control and NetConnection commands).
    pub stream_id: u32,
    /// The message payload.
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct StreamState {
    timestamp: u32,
    delta: u32,
    len: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    /// The message being reassembled, if any.
    partial: Option<BytesMut>,
}

/// Reads chunks from a byte buffer and returns complete messages.
#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: u32,
    limits: ChunkLimits,
    streams: HashMap<u32, StreamState>,
    buffered: usize,
    /// Chunk streams holding a partial message.
    partials: usize,
    /// Bytes consumed so far (for error offsets).
    position: u64,
}

impl Default for ChunkReader {
    fn default() -> Self {
        Self::new(ChunkLimits::default())
    }
}

fn be24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl ChunkReader {
    /// A reader with chunk size 128 and the given limits.
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkReader {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            buffered: 0,
            partials: 0,
            position: 0,
        }
    }

    /// The current incoming chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Bytes consumed from the input so far, plus the start set by
    /// [`set_position`](Self::set_position); error offsets use it.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Sets the absolute stream offset of the next byte (e.g. the handshake length),
    /// so error offsets count from the start of the connection.
    pub fn set_position(&mut self, position: u64) {
        self.position = position;
    }

    /// Applies a Set Chunk Size (§5.4.1): `1..=0x7FFFFFFF`; 0 or the top bit set is
    /// [`crate::ErrorKind::Malformed`].
    pub fn set_chunk_size(&mut self, size: u32) -> Result<()> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(Error::malformed(
                "RTMP Set Chunk Size out of range 1..=0x7FFFFFFF",
            ));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Applies an Abort Message (§5.4.2): drops the partial message of `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid) {
            if let Some(p) = s.partial.take() {
                self.buffered -= p.len();
                self.partials -= 1;
            }
        }
    }

    /// Reads the next complete message from the front of `input`, consuming the chunks
    /// it reads (including chunks of other, still partial messages).
    ///
    /// `Ok(None)`: more bytes needed; what is left in `input` is an incomplete chunk.
    /// Errors: `Malformed` for a type 1/2/3 chunk on a chunk stream without a prior
    /// header, `Limit` when a message exceeds [`ChunkLimits::max_message_len`] or too
    /// many partial messages or chunk streams are open. After an error the connection
    /// must be closed.
    pub fn read_message(&mut self, input: &mut BytesMut) -> Result<Option<Message>> {
        loop {
            let at = self.position;
            let Some((hdr_len, csid, fmt)) = basic_header(input) else {
                return Ok(None);
            };
            if !self.streams.contains_key(&csid) {
                if fmt != 0 {
                    return Err(
                        Error::malformed("RTMP chunk type 1-3 on a new chunk stream").at_offset(at),
                    );
                }
                if self.streams.len() >= self.limits.max_chunk_streams {
                    // Forget streams with no partial message before giving up.
                    self.streams.retain(|_, s| s.partial.is_some());
                    if self.streams.len() >= self.limits.max_chunk_streams {
                        return Err(Error::limit("too many RTMP chunk streams").at_offset(at));
                    }
                }
            }
            let prev = self.streams.get(&csid);
            let prev_extended = prev.is_some_and(|s| s.extended);
            let mh_len = [11usize, 7, 3, 0][fmt as usize];
            let Some(mh) = input.get(hdr_len..hdr_len + mh_len) else {
                return Ok(None);
            };
            let ts_field = if fmt < 3 { be24(mh) } else { 0 };
            let extended = if fmt < 3 {
                ts_field == EXTENDED
            } else {
                prev_extended
            };
            let mut header_len = hdr_len + mh_len;
            let mut ext_value = 0;
            if extended {
                let Some(e) = input.get(header_len..header_len + 4) else {
                    return Ok(None);
                };
                ext_value = be32(e);
                header_len += 4;
            }
            // Resolve the message header against the chunk stream's state.
            let st = self.streams.get(&csid);
            let partial_len = st.and_then(|s| s.partial.as_ref()).map(|p| p.len());
            let (len, type_id, stream_id) = match fmt {
                0 => (
                    be24(&mh[3..6]),
                    mh[6],
                    u32::from_le_bytes([mh[7], mh[8], mh[9], mh[10]]),
                ),
                1 => (be24(&mh[3..6]), mh[6], st.map_or(0, |s| s.stream_id)),
                _ => st.map_or((0, 0, 0), |s| (s.len, s.type_id, s.stream_id)),
            };
            if len > self.limits.max_message_len {
                return Err(Error::limit("RTMP message length exceeds limit").at_offset(at));
            }
            if fmt < 3 && partial_len.is_some() {
                return Err(Error::malformed(
                    "RTMP chunk header type 0-2 in the middle of a message",
                )
                .at_offset(at));
            }
            let done = partial_len.unwrap_or(0);
            let want = (len as usize - done.min(len as usize)).min(self.chunk_size as usize);
            if input.len() < header_len + want {
                return Ok(None);
            }
            // Commit: update state and consume the chunk.
            let st = self.streams.entry(csid).or_default();
            if fmt < 3 {
                st.extended = extended;
            }
            if partial_len.is_none() {
                // First chunk of a message: compute its timestamp.
                let field = if extended { ext_value } else { ts_field };
                match fmt {
                    0 => {
                        st.timestamp = field;
                        // A type-3 header after a type-0 repeats its timestamp as the
                        // delta (§5.3.1.2.4).
                        st.delta = field;
                    }
                    1 | 2 => {
                        st.delta = field;
                        st.timestamp = st.timestamp.wrapping_add(field);
                    }
                    _ => st.timestamp = st.timestamp.wrapping_add(st.delta),
                }
                st.len = len;
                st.type_id = type_id;
                st.stream_id = stream_id;
            }
            let _ = input.split_to(header_len);
            let piece = input.split_to(want);
            self.position += (header_len + want) as u64;
            if partial_len.is_none() && want == len as usize {
                // A copy, not a slice: a slice would pin the whole input buffer for as
                // long as the host keeps the message (a live segment's audio frames).
                return Ok(Some(Message {
                    csid,
                    timestamp: st.timestamp,
                    type_id,
                    stream_id,
                    payload: Bytes::copy_from_slice(&piece),
                }));
            }
            let st = self.streams.entry(csid).or_default();
            match st.partial.as_mut() {
                Some(p) => p.extend_from_slice(&piece),
                None => {
                    if self.partials >= self.limits.max_partial_streams {
                        return Err(Error::limit("too many partial RTMP messages").at_offset(at));
                    }
                    self.partials += 1;
                    st.partial = Some(piece);
                }
            }
            self.buffered += want;
            if self.buffered > self.limits.max_buffered {
                return Err(Error::limit("RTMP partial messages exceed buffer limit").at_offset(at));
            }
            let p_len = st.partial.as_ref().map_or(0, |p| p.len());
            if p_len >= len as usize {
                let p = st.partial.take().unwrap_or_default();
                // Reassembly grows the buffer by doubling; keep exactly the message.
                let payload = if p.capacity() - p.len() > p.len() / 16 {
                    Bytes::copy_from_slice(&p)
                } else {
                    p.freeze()
                };
                self.buffered -= payload.len();
                self.partials -= 1;
                return Ok(Some(Message {
                    csid,
                    timestamp: st.timestamp,
                    type_id: st.type_id,
                    stream_id: st.stream_id,
                    payload,
                }));
            }
        }
    }
}

/// Parses a basic header (§5.3.1.1): `(length, csid, fmt)`, or `None` if incomplete.
fn basic_header(input: &[u8]) -> Option<(usize, u32, u8)> {
    let b0 = *input.first()?;
    let fmt = b0 >> 6;
    match b0 & 0x3f {
        0 => Some((2, 64 + u32::from(*input.get(1)?), fmt)),
        1 => {
            let b1 = u32::from(*input.get(1)?);
            let b2 = u32::from(*input.get(2)?);
            Some((3, 64 + b1 + b2 * 256, fmt))
        }
        c => Some((1, u32::from(c), fmt)),
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let f = fmt << 6;
    if csid < 64 {
        out.put_u8(f | csid as u8);
    } else if csid < 64 + 256 {
        out.put_u8(f);
        out.put_u8((csid - 64) as u8);
    } else {
        let v = csid - 64;
        out.put_u8(f | 1);
        out.put_u8((v & 0xff) as u8);
        out.put_u8((v >> 8) as u8);
    }
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_u8((v >> 16) as u8);
    out.put_u8((v >> 8) as u8);
    out.put_u8(v as u8);
}

/// Header of a message to serialise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageHeader {
    /// Chunk stream id, 2..=65599 (2 is reserved for protocol control).
    pub csid: u32,
    /// Message stream id.
    pub stream_id: u32,
    /// Message type id.
    pub type_id: u8,
    /// Timestamp in milliseconds.
    pub timestamp: u32,
}

impl MessageHeader {
    /// A header from its fields.
    pub fn new(csid: u32, stream_id: u32, type_id: u8, timestamp: u32) -> Self {
        MessageHeader {
            csid,
            stream_id,
            type_id,
            timestamp,
        }
    }
}

/// Serialises `payload` as one message with a type-0 header and type-3 continuation
/// chunks of `chunk_size` bytes (§5.3.1). The output depends only on its arguments, so
/// it can be computed once and sent to every player of a stream that uses the same
/// chunk size (see [`SharedMessage`]).
///
/// Errors: `Usage` for a csid outside 2..=65599, a zero chunk size or a payload over
/// 16 MiB - 1 (the 24-bit length field).
pub fn write_message(
    csid: u32,
    msg_stream_id: u32,
    type_id: u8,
    timestamp: u32,
    payload: &[u8],
    chunk_size: u32,
    out: &mut BytesMut,
) -> Result<()> {
    let h = MessageHeader::new(csid, msg_stream_id, type_id, timestamp);
    write_chunks(&h, 0, timestamp, payload, chunk_size, out)
}

fn check(h: &MessageHeader, payload: &[u8], chunk_size: u32) -> Result<()> {
    if !(2..=MAX_CSID).contains(&h.csid) {
        return Err(Error::usage("RTMP chunk stream id outside 2..=65599"));
    }
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
        return Err(Error::usage("RTMP chunk size outside 1..=0x7FFFFFFF"));
    }
    if payload.len() > EXTENDED as usize {
        return Err(Error::usage("RTMP message longer than 2^24-1 bytes"));
    }
    Ok(())
}

/// Writes one message with the first chunk's header in format `fmt` whose timestamp
/// field is `ts_field` (absolute for fmt 0, delta for 1/2, ignored for 3 except for
/// the extended timestamp repeat).
fn write_chunks(
    h: &MessageHeader,
    fmt: u8,
    ts_field: u32,
    payload: &[u8],
    chunk_size: u32,
    out: &mut BytesMut,
) -> Result<()> {
    check(h, payload, chunk_size)?;
    let extended = ts_field >= EXTENDED;
    let n_chunks = payload.len().div_ceil(chunk_size as usize).max(1);
    out.reserve(payload.len() + 18 + (n_chunks - 1) * 7);
    put_basic_header(out, fmt, h.csid);
    if fmt < 3 {
        put_u24(out, ts_field.min(EXTENDED));
    }
    if fmt < 2 {
        put_u24(out, payload.len() as u32);
        out.put_u8(h.type_id);
    }
    if fmt == 0 {
        out.put_u32_le(h.stream_id);
    }
    if extended {
        out.put_u32(ts_field);
    }
    let mut chunks = payload.chunks(chunk_size as usize);
    if let Some(first) = chunks.next() {
        out.put_slice(first);
    }
    for c in chunks {
        put_basic_header(out, 3, h.csid);
        if extended {
            out.put_u32(ts_field);
        }
        out.put_slice(c);
    }
    Ok(())
}

/// A message serialised once (type-0 header, fixed chunk size) and shared, e.g. by
/// every player of a live stream: cloning it clones a [`Bytes`] handle only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedMessage {
    header: MessageHeader,
    len: u32,
    chunk_size: u32,
    bytes: Bytes,
}

impl SharedMessage {
    /// Serialises `payload` with [`write_message`].
    pub fn new(header: MessageHeader, payload: &[u8], chunk_size: u32) -> Result<Self> {
        let mut out = BytesMut::new();
        write_chunks(&header, 0, header.timestamp, payload, chunk_size, &mut out)?;
        Ok(SharedMessage {
            header,
            len: payload.len() as u32,
            chunk_size,
            bytes: out.freeze(),
        })
    }
    /// The chunk size it was serialised with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }
    /// Its header.
    pub fn header(&self) -> &MessageHeader {
        &self.header
    }
    /// The serialised chunks.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

#[derive(Debug, Clone, Copy)]
struct LastHeader {
    h: MessageHeader,
    len: u32,
    /// Timestamp delta of the last header if it was type 1 or 2 (type 3 may repeat it).
    delta: Option<u32>,
}

/// Per-connection chunk writer: compresses headers against the previous message on
/// the same chunk stream (§5.3.1.2: type 1 when only the stream id repeats, type 2
/// when the length and type repeat too, type 3 when the delta repeats as well).
#[derive(Debug)]
pub struct ChunkWriter {
    chunk_size: u32,
    last: HashMap<u32, LastHeader>,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkWriter {
    /// A writer with the default chunk size (128).
    pub fn new() -> Self {
        ChunkWriter {
            chunk_size: DEFAULT_CHUNK_SIZE,
            last: HashMap::new(),
        }
    }

    /// The outgoing chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the outgoing chunk size. Call it right after writing the Set Chunk Size
    /// message that announces it. Errors: `Usage` outside `1..=0x7FFFFFFF`.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<()> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(Error::usage("RTMP chunk size outside 1..=0x7FFFFFFF"));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Appends `payload` as a message with the most compact valid header.
    pub fn write_message(
        &mut self,
        header: MessageHeader,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<()> {
        let len = payload.len() as u32;
        let (fmt, field, delta) = match self.last.get(&header.csid) {
            Some(l) if l.h.stream_id == header.stream_id && header.timestamp >= l.h.timestamp => {
                let d = header.timestamp - l.h.timestamp;
                if l.len == len && l.h.type_id == header.type_id {
                    if l.delta == Some(d) && d < EXTENDED {
                        (3, d, Some(d))
                    } else {
                        (2, d, Some(d))
                    }
                } else {
                    (1, d, Some(d))
                }
            }
            _ => (0, header.timestamp, None),
        };
        write_chunks(&header, fmt, field, payload, self.chunk_size, out)?;
        self.last.insert(
            header.csid,
            LastHeader {
                h: header,
                len,
                delta,
            },
        );
        Ok(())
    }

    /// Appends a shared message. Errors: `Usage` if it was serialised with another
    /// chunk size than this writer's.
    pub fn write_shared(&mut self, msg: &SharedMessage, out: &mut BytesMut) -> Result<()> {
        if msg.chunk_size != self.chunk_size {
            return Err(Error::usage("shared RTMP message has another chunk size"));
        }
        out.extend_from_slice(&msg.bytes);
        self.last.insert(
            msg.header.csid,
            LastHeader {
                h: msg.header,
                len: msg.len,
                delta: None,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn read_all(r: &mut ChunkReader, data: &[u8]) -> Vec<Message> {
        let mut buf = BytesMut::from(data);
        let mut v = Vec::new();
        while let Some(m) = r.read_message(&mut buf).unwrap() {
            v.push(m);
        }
        assert!(buf.is_empty(), "left {} bytes", buf.len());
        v
    }

    #[test]
    fn all_four_header_formats() {
        let mut d = Vec::new();
        // fmt 0, csid 4, ts 1000, len 3, type 8, stream 1 (little endian).
        d.extend_from_slice(&[0x04, 0, 0x03, 0xE8, 0, 0, 3, 8, 1, 0, 0, 0, 1, 2, 3]);
        // fmt 1: delta 20, len 2, type 9.
        d.extend_from_slice(&[0x44, 0, 0, 20, 0, 0, 2, 9, 4, 5]);
        // fmt 2: delta 30.
        d.extend_from_slice(&[0x84, 0, 0, 30, 6, 7]);
        // fmt 3: repeats delta 30.
        d.extend_from_slice(&[0xC4, 8, 9]);
        let mut r = ChunkReader::default();
        let m = read_all(&mut r, &d);
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.timestamp, m.type_id, m.stream_id, m.payload.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1000, 8, 1, vec![1, 2, 3]),
                (1020, 9, 1, vec![4, 5]),
                (1050, 9, 1, vec![6, 7]),
                (1080, 9, 1, vec![8, 9]),
            ]
        );
    }

    #[test]
    fn type3_after_type0_repeats_the_timestamp_as_delta() {
        let d = [
            0x03, 0, 0, 10, 0, 0, 1, 20, 0, 0, 0, 0, 0xAA, // ts 10
            0xC3, 0xBB, // new message, delta 10 -> 20
        ];
        let mut r = ChunkReader::default();
        let m = read_all(&mut r, &d);
        assert_eq!(m[1].timestamp, 20);
        assert_eq!(&m[1].payload[..], &[0xBB]);
    }

    #[test]
    fn csid_encodings_round_trip_through_writer() {
        for csid in [2u32, 63, 64, 319, 320, 65599] {
            let mut out = BytesMut::new();
            write_message(csid, 1, 9, 5, &[1, 2, 3], 128, &mut out).unwrap();
            let mut r = ChunkReader::default();
            let m = read_all(&mut r, &out);
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].csid, csid);
        }
        let mut out = BytesMut::new();
        let e = write_message(65600, 1, 9, 5, &[1], 128, &mut out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
    }

    #[test]
    fn extended_timestamp_on_continuation_chunks() {
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut out = BytesMut::new();
        write_message(6, 1, 9, 0x0123_4567, &payload, 128, &mut out).unwrap();
        // 12-byte header + 4 ext + 128, then (1 + 4 + 128), then (1 + 4 + 44).
        assert_eq!(out.len(), 12 + 4 + 128 + 5 + 128 + 5 + 44);
        assert_eq!(&out[1..4], &[0xFF, 0xFF, 0xFF]);
        assert_eq!(&out[145..149], &[0x01, 0x23, 0x45, 0x67]);
        let mut r = ChunkReader::default();
        let m = read_all(&mut r, &out);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].timestamp, 0x0123_4567);
        assert_eq!(&m[0].payload[..], &payload[..]);
    }

    #[test]
    fn interleaved_messages_reassemble() {
        let a: Vec<u8> = vec![0xA; 200];
        let b: Vec<u8> = vec![0xB; 150];
        let mut wa = BytesMut::new();
        write_message(4, 1, 8, 100, &a, 128, &mut wa).unwrap();
        let mut wb = BytesMut::new();
        write_message(6, 1, 9, 100, &b, 128, &mut wb).unwrap();
        // Interleave: a chunk 1, b chunk 1, a chunk 2, b chunk 2.
        let mut d = Vec::new();
        d.extend_from_slice(&wa[..12 + 128]);
        d.extend_from_slice(&wb[..12 + 128]);
        d.extend_from_slice(&wa[12 + 128..]);
        d.extend_from_slice(&wb[12 + 128..]);
        let mut r = ChunkReader::default();
        // Byte-by-byte feeding must give the same result.
        let mut buf = BytesMut::new();
        let mut msgs = Vec::new();
        for &byte in &d {
            buf.put_u8(byte);
            while let Some(m) = r.read_message(&mut buf).unwrap() {
                msgs.push(m);
            }
        }
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].csid, msgs[0].payload.to_vec()), (4, a));
        assert_eq!((msgs[1].csid, msgs[1].payload.to_vec()), (6, b));
    }

    #[test]
    fn set_chunk_size_and_abort() {
        let mut r = ChunkReader::default();
        assert_eq!(
            r.set_chunk_size(0).unwrap_err().kind(),
            ErrorKind::Malformed
        );
        assert_eq!(
            r.set_chunk_size(0x8000_0000).unwrap_err().kind(),
            ErrorKind::Malformed
        );
        r.set_chunk_size(4096).unwrap();
        let p = vec![7u8; 5000];
        let mut out = BytesMut::new();
        write_message(6, 1, 9, 0, &p, 4096, &mut out).unwrap();
        assert_eq!(read_all(&mut r, &out)[0].payload.len(), 5000);
        // Abort after the first chunk: the partial message is dropped, the next
        // message on the same chunk stream starts fresh.
        let mut buf = BytesMut::from(&out[..12 + 4096]);
        assert!(r.read_message(&mut buf).unwrap().is_none());
        assert_eq!((r.buffered, r.partials), (4096, 1));
        r.abort(6);
        assert_eq!((r.buffered, r.partials), (0, 0));
        let mut out2 = BytesMut::new();
        write_message(6, 1, 9, 40, &[1, 2], 4096, &mut out2).unwrap();
        let m = read_all(&mut r, &out2);
        assert_eq!(&m[0].payload[..], &[1, 2]);
    }

    #[test]
    fn limits() {
        // A 16 MiB message declaration is refused before any byte is buffered.
        let mut r = ChunkReader::default();
        let mut buf = BytesMut::from(&[0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0][..]);
        let e = r.read_message(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
        // Too many partial streams.
        let limits = ChunkLimits {
            max_partial_streams: 2,
            ..ChunkLimits::default()
        };
        let mut r = ChunkReader::new(limits);
        let mut buf = BytesMut::new();
        for csid in 3..6u8 {
            buf.extend_from_slice(&[csid, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0]);
            buf.extend_from_slice(&[0u8; 128]);
        }
        let e = r.read_message(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
        assert!(e.message().contains("partial"));
        // Total bytes held in partial messages.
        let limits = ChunkLimits {
            max_buffered: 200,
            ..ChunkLimits::default()
        };
        let mut r = ChunkReader::new(limits);
        let mut buf = BytesMut::new();
        for csid in 3..5u8 {
            buf.extend_from_slice(&[csid, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0]);
            buf.extend_from_slice(&[0u8; 128]);
        }
        let e = r.read_message(&mut buf).unwrap_err();
        assert!(e.message().contains("buffer limit"));
        // Chunk streams with state: complete ones are forgotten, partial ones count.
        let limits = ChunkLimits {
            max_chunk_streams: 2,
            ..ChunkLimits::default()
        };
        let mut r = ChunkReader::new(limits);
        let mut buf = BytesMut::new();
        for csid in 3..8u8 {
            buf.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 7]);
        }
        assert_eq!(read_all(&mut r, &buf).len(), 5);
        let mut buf = BytesMut::new();
        for csid in 10..13u8 {
            buf.extend_from_slice(&[csid, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0]);
            buf.extend_from_slice(&[0u8; 128]);
        }
        let e = r.read_message(&mut buf).unwrap_err();
        assert!(e.message().contains("chunk streams"), "{e}");
        // Type 1 on an unknown chunk stream.
        let mut r = ChunkReader::default();
        let mut buf = BytesMut::from(&[0x45, 0, 0, 0, 0, 0, 1, 9, 0][..]);
        assert_eq!(
            r.read_message(&mut buf).unwrap_err().kind(),
            ErrorKind::Malformed
        );
    }

    #[test]
    fn a_single_chunk_message_does_not_pin_the_input_buffer() {
        let mut out = BytesMut::new();
        write_message(6, 1, 9, 0, &[9; 64], 128, &mut out).unwrap();
        out.extend_from_slice(&[0u8; 4096]);
        let mut buf = out;
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.capacity();
        let mut r = ChunkReader::default();
        let m = r.read_message(&mut buf).unwrap().unwrap();
        assert_eq!(m.payload, vec![9u8; 64]);
        // Its own allocation, not a slice of the (much larger) input buffer.
        assert!(!range.contains(&(m.payload.as_ptr() as usize)));
    }

    #[test]
    fn writer_compresses_and_reader_agrees() {
        let mut w = ChunkWriter::new();
        let mut out = BytesMut::new();
        let msgs = [
            (6u32, 9u8, 0u32, vec![1u8; 10]),
            (6, 9, 40, vec![2; 20]),           // fmt 1 (length differs)
            (6, 9, 70, vec![3; 20]),           // fmt 2 (same len/type, delta 30)
            (6, 9, 100, vec![4; 20]),          // fmt 3 (same delta)
            (6, 9, 140, vec![5; 20]),          // fmt 2 (delta 40)
            (6, 9, 100, vec![6; 20]),          // fmt 0 (time went back)
            (6, 9, 0x0200_0000, vec![7; 300]), // fmt 1 with extended delta
        ];
        let mut fmts = Vec::new();
        for (csid, t, ts, p) in &msgs {
            let before = out.len();
            w.write_message(MessageHeader::new(*csid, 1, *t, *ts), p, &mut out)
                .unwrap();
            fmts.push(out[before] >> 6);
        }
        assert_eq!(fmts, vec![0, 1, 2, 3, 2, 0, 1]);
        let mut r = ChunkReader::default();
        let got = read_all(&mut r, &out);
        let back: Vec<_> = got
            .iter()
            .map(|m| (m.csid, m.type_id, m.timestamp, m.payload.to_vec()))
            .collect();
        assert_eq!(back, msgs.to_vec());
    }

    #[test]
    fn shared_message_is_identical_for_every_writer() {
        let shared =
            SharedMessage::new(MessageHeader::new(6, 1, 9, 33), &[1u8; 5000], 4096).unwrap();
        let mut bytes = Vec::new();
        for _ in 0..2 {
            let mut w = ChunkWriter::new();
            w.set_chunk_size(4096).unwrap();
            let mut out = BytesMut::new();
            w.write_shared(&shared, &mut out).unwrap();
            // Compression continues from the shared header.
            w.write_message(MessageHeader::new(6, 1, 9, 73), &[2u8; 5000], &mut out)
                .unwrap();
            bytes.push(out);
        }
        assert_eq!(bytes[0], bytes[1]);
        let mut r = ChunkReader::default();
        r.set_chunk_size(4096).unwrap();
        let m = read_all(&mut r, &bytes[0]);
        assert_eq!((m[0].timestamp, m[1].timestamp), (33, 73));
        let mut w = ChunkWriter::new();
        let e = w.write_shared(&shared, &mut BytesMut::new()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
    }

    #[test]
    fn hostile_input_never_panics() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut r = ChunkReader::new(ChunkLimits {
                max_message_len: 1 << 16,
                ..ChunkLimits::default()
            });
            let mut buf = BytesMut::new();
            for _ in 0..64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                buf.put_u8((seed >> 24) as u8);
            }
            while let Ok(Some(_)) = r.read_message(&mut buf) {}
        }
    }
}
