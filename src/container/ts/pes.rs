//! PES packet header (ISO/IEC 13818-1 §2.4.3.6, §2.4.3.7): start code, `stream_id`,
//! `PES_packet_length`, flags and 33-bit PTS/DTS.

/// `stream_id` of the first MPEG video stream (`1110 xxxx`, Table 2-22).
pub const STREAM_ID_VIDEO: u8 = 0xe0;
/// `stream_id` of the first MPEG audio stream (`110x xxxx`, Table 2-22).
pub const STREAM_ID_AUDIO: u8 = 0xc0;
/// Largest PES header this writer produces: 9 fixed bytes + PTS + DTS.
pub const MAX_HEADER_LEN: usize = 19;
/// Largest `PES_packet_length` value; longer video PES packets are written with 0.
pub const MAX_PES_PACKET_LENGTH: usize = 0xffff;
/// Mask of a 33-bit PTS/DTS/PCR base.
pub const TIMESTAMP_MASK: u64 = (1 << 33) - 1;

/// Encodes a 33-bit timestamp (masked) in the 5-byte PTS/DTS layout (§2.4.3.7):
/// 4-bit `prefix` (`0010` PTS only, `0011` PTS with DTS, `0001` DTS), then
/// ts[32..30], marker, ts[29..15], marker, ts[14..0], marker.
#[inline]
pub fn encode_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & TIMESTAMP_MASK;
    [
        (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8) << 1) | 1,
    ]
}

/// Decodes a 5-byte PTS/DTS field (markers not checked): the inverse of [`encode_timestamp`].
pub fn decode_timestamp(b: &[u8; 5]) -> u64 {
    (((b[0] >> 1) & 7) as u64) << 30
        | (b[1] as u64) << 22
        | ((b[2] >> 1) as u64) << 15
        | (b[3] as u64) << 7
        | (b[4] >> 1) as u64
}

/// A PES header to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    /// `stream_id` (`STREAM_ID_VIDEO`, `STREAM_ID_AUDIO`).
    pub stream_id: u8,
    /// Presentation time stamp, 90 kHz (masked to 33 bits on write).
    pub pts: u64,
    /// Decode time stamp, 90 kHz; written only when `Some` and different from `pts`.
    pub dts: Option<u64>,
    /// Bytes of elementary stream data that follow the header.
    pub payload_len: usize,
}

impl PesHeader {
    /// Encodes the header. Returns the bytes and how many of them are used (14 or 19).
    ///
    /// `PES_packet_length` counts the bytes after itself; when that exceeds 65535 it is
    /// written as 0 (unbounded), which §2.4.3.7 allows only for video elementary streams
    /// carried in transport streams: callers keep audio PES packets shorter.
    /// `data_alignment_indicator` is set: every PES starts with an access unit.
    pub fn encode(&self) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut h = [0u8; MAX_HEADER_LEN];
        let dts = self
            .dts
            .filter(|&d| d & TIMESTAMP_MASK != self.pts & TIMESTAMP_MASK);
        let data_len = if dts.is_some() { 10 } else { 5 };
        let packet_len = 3 + data_len + self.payload_len;
        let packet_len = if packet_len > MAX_PES_PACKET_LENGTH {
            0
        } else {
            packet_len as u16
        };
        h[..3].copy_from_slice(&[0, 0, 1]);
        h[3] = self.stream_id;
        h[4..6].copy_from_slice(&packet_len.to_be_bytes());
        h[6] = 0x84; // '10', not scrambled, no priority, data_alignment_indicator, no copyright, copy
        match dts {
            Some(d) => {
                h[7] = 0xc0; // PTS_DTS_flags = '11'
                h[8] = 10;
                h[9..14].copy_from_slice(&encode_timestamp(0b0011, self.pts));
                h[14..19].copy_from_slice(&encode_timestamp(0b0001, d));
                (h, 19)
            }
            None => {
                h[7] = 0x80; // PTS_DTS_flags = '10'
                h[8] = 5;
                h[9..14].copy_from_slice(&encode_timestamp(0b0010, self.pts));
                (h, 14)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_bits() {
        // PTS of 1.4 s (126000 = 0x1EC30), PTS-only prefix: the bytes ffmpeg writes.
        assert_eq!(
            encode_timestamp(0b0010, 126_000),
            [0x21, 0x00, 0x07, 0xd8, 0x61]
        );
        let max = TIMESTAMP_MASK;
        assert_eq!(
            encode_timestamp(0b0011, max),
            [0x3f, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(encode_timestamp(0b0001, 0), [0x11, 0x00, 0x01, 0x00, 0x01]);
        for ts in [0u64, 1, 90_000, 0x1_2345_6789, max] {
            assert_eq!(decode_timestamp(&encode_timestamp(2, ts)), ts);
        }
        // Masked to 33 bits.
        assert_eq!(encode_timestamp(2, (1 << 33) + 7), encode_timestamp(2, 7));
    }

    #[test]
    fn header_pts_only() {
        let (h, n) = PesHeader {
            stream_id: STREAM_ID_AUDIO,
            pts: 126_000,
            dts: Some(126_000),
            payload_len: 400,
        }
        .encode();
        assert_eq!(n, 14);
        assert_eq!(
            &h[..n],
            &[0, 0, 1, 0xc0, 0x01, 0x98, 0x84, 0x80, 5, 0x21, 0x00, 0x07, 0xd8, 0x61]
        );
        assert_eq!(u16::from_be_bytes([h[4], h[5]]) as usize, 400 + 8);
    }

    #[test]
    fn header_pts_dts() {
        let (h, n) = PesHeader {
            stream_id: STREAM_ID_VIDEO,
            pts: 133_200,
            dts: Some(126_000),
            payload_len: 70_000,
        }
        .encode();
        assert_eq!(n, 19);
        assert_eq!(&h[..9], &[0, 0, 1, 0xe0, 0, 0, 0x84, 0xc0, 10]);
        assert_eq!(h[9] >> 4, 0b0011);
        assert_eq!(h[14] >> 4, 0b0001);
        assert_eq!(decode_timestamp(&h[9..14].try_into().unwrap()), 133_200);
        assert_eq!(decode_timestamp(&h[14..19].try_into().unwrap()), 126_000);
        // Bounded length when it fits.
        let (h, _) = PesHeader {
            stream_id: STREAM_ID_VIDEO,
            pts: 1,
            dts: Some(0),
            payload_len: 65_535 - 13,
        }
        .encode();
        assert_eq!(u16::from_be_bytes([h[4], h[5]]), 65_535);
        let (h, _) = PesHeader {
            stream_id: STREAM_ID_VIDEO,
            pts: 1,
            dts: Some(0),
            payload_len: 65_535 - 12,
        }
        .encode();
        assert_eq!(u16::from_be_bytes([h[4], h[5]]), 0);
    }
}
