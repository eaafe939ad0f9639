//! PES packet reassembly from transport packet payloads and the PES header
//! (ISO/IEC 13818-1 §2.4.3.6, §2.4.3.7): `PES_packet_length` (0 = unbounded, video
//! only), scrambling control, 33-bit PTS and DTS.

use bytes::BytesMut;

use crate::container::ts::pes::decode_timestamp;
use crate::error::{Error, Result};

/// `stream_id`s whose PES packets have no optional header (Table 2-22 and §2.4.3.7:
/// program stream map, padding, private stream 2, ECM, EMM, DSMCC, H.222.1 type E,
/// program stream directory).
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    )
}

/// A parsed PES header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PesHeader {
    /// 33-bit PTS, if present.
    pub pts: Option<u64>,
    /// 33-bit DTS, if present (only with a PTS).
    pub dts: Option<u64>,
    /// Offset of the elementary stream data in the PES packet.
    pub payload_start: usize,
}

/// Parses the header of a whole PES packet.
///
/// Errors: [`Error::malformed`] for a missing start code, a short header, the forbidden
/// `PTS_DTS_flags` value `01`; [`Error::unsupported`] for scrambled payloads.
pub(super) fn parse_header(pes: &[u8]) -> Result<PesHeader> {
    if pes.len() < 6 || pes[..3] != [0, 0, 1] {
        return Err(Error::malformed("PES packet without a start code"));
    }
    if !has_optional_header(pes[3]) {
        return Ok(PesHeader {
            pts: None,
            dts: None,
            payload_start: 6,
        });
    }
    let h = pes
        .get(6..9)
        .ok_or(Error::malformed("PES header truncated"))?;
    if h[0] & 0xc0 != 0x80 {
        return Err(Error::malformed("PES header without its '10' marker"));
    }
    if h[0] & 0x30 != 0 {
        return Err(Error::unsupported("scrambled PES payload"));
    }
    let payload_start = 9 + usize::from(h[2]);
    if pes.len() < payload_start {
        return Err(Error::malformed(
            "PES_header_data_length exceeds the packet",
        ));
    }
    let ts = |at: usize| -> Result<u64> {
        let b: &[u8; 5] = pes
            .get(at..at + 5)
            .and_then(|s| s.try_into().ok())
            .filter(|_| at + 5 <= payload_start)
            .ok_or(Error::malformed("PES timestamp outside the header"))?;
        Ok(decode_timestamp(b))
    };
    let (pts, dts) = match h[1] >> 6 {
        0b10 => (Some(ts(9)?), None),
        0b11 => (Some(ts(9)?), Some(ts(14)?)),
        0b01 => return Err(Error::malformed("PTS_DTS_flags '01' is forbidden")),
        _ => (None, None),
    };
    Ok(PesHeader {
        pts,
        dts,
        payload_start,
    })
}

/// A PES packet being gathered from transport packets.
#[derive(Debug, Default)]
pub(super) struct PesBuf {
    pub data: BytesMut,
    /// Whole length of the PES packet when `PES_packet_length` is not 0.
    expected: Option<usize>,
    /// A packet is being gathered.
    pub active: bool,
    /// `random_access_indicator` of its first transport packet.
    pub random_access: bool,
    /// Byte offset of its first transport packet in the input.
    pub offset: u64,
    /// Size of the previous PES packet of the stream: reserved when a packet starts
    /// in a buffer that a frame took.
    pub size_hint: usize,
}

impl PesBuf {
    /// Starts a new PES packet with the payload of the packet carrying its first byte.
    pub fn start(&mut self, payload: &[u8], random_access: bool, offset: u64) {
        self.data.clear();
        if self.data.capacity() < self.size_hint {
            // With a quarter more room: sizes vary from frame to frame.
            self.data.reserve(self.size_hint + self.size_hint / 4);
        }
        self.expected = None;
        self.active = true;
        self.random_access = random_access;
        self.offset = offset;
        self.append(payload);
    }

    /// Appends a continuation payload, cut at the declared length.
    pub fn append(&mut self, payload: &[u8]) {
        let room = match self.expected {
            Some(n) => n.saturating_sub(self.data.len()),
            None => payload.len(),
        };
        self.data
            .extend_from_slice(&payload[..room.min(payload.len())]);
        if self.expected.is_none() && self.data.len() >= 6 {
            let len = usize::from(u16::from_be_bytes([self.data[4], self.data[5]]));
            if len != 0 {
                self.expected = Some(6 + len);
                self.data.truncate(6 + len);
            }
        }
    }

    /// A bounded packet has all its bytes.
    pub fn complete(&self) -> bool {
        self.expected.is_some_and(|n| self.data.len() >= n)
    }

    /// A bounded packet is missing bytes (an unbounded one never is).
    pub fn short(&self) -> bool {
        self.expected.is_some_and(|n| self.data.len() < n)
    }

    /// Forgets the packet in progress, keeping the buffer's memory.
    pub fn reset(&mut self) {
        self.data.clear();
        self.expected = None;
        self.active = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::ts::pes::PesHeader as Writer;

    #[test]
    fn headers_we_write_parse_back() {
        let (h, n) = Writer {
            stream_id: 0xe0,
            pts: 133_200,
            dts: Some(126_000),
            payload_len: 10,
        }
        .encode();
        let mut pes = h[..n].to_vec();
        pes.extend_from_slice(&[7; 10]);
        let p = parse_header(&pes).unwrap();
        assert_eq!(
            (p.pts, p.dts, p.payload_start),
            (Some(133_200), Some(126_000), 19)
        );
        for k in 0..n {
            // Every truncation of the header is an error, never a panic.
            assert!(parse_header(&pes[..k]).is_err(), "{k}");
        }
        let mut scrambled = pes.clone();
        scrambled[6] |= 0x10;
        assert_eq!(
            parse_header(&scrambled).unwrap_err().kind(),
            crate::ErrorKind::Unsupported
        );
        let mut forbidden = pes.clone();
        forbidden[7] = 0x40;
        assert!(parse_header(&forbidden).is_err());
        // Padding stream: no optional header.
        assert_eq!(
            parse_header(&[0, 0, 1, 0xbe, 0, 0]).unwrap().payload_start,
            6
        );
    }

    #[test]
    fn bounded_and_unbounded() {
        let mut b = PesBuf::default();
        b.start(&[0, 0, 1, 0xc0, 0, 5, 1, 2], false, 0);
        assert!(b.short() && !b.complete());
        b.append(&[3, 4, 5, 6, 7]);
        assert!(b.complete());
        assert_eq!(&b.data[..], &[0, 0, 1, 0xc0, 0, 5, 1, 2, 3, 4, 5]);
        b.start(&[0, 0, 1, 0xe0, 0, 0, 1], true, 188);
        b.append(&[2; 100]);
        assert!(!b.short() && !b.complete() && b.random_access);
        // A header split before its length field.
        b.start(&[0, 0, 1], false, 0);
        b.append(&[0xc0, 0, 1, 9, 9]);
        assert!(b.complete());
        assert_eq!(b.data.len(), 7);
    }
}
