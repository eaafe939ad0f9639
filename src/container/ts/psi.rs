//! Program specific information: the program association section (PAT, ISO/IEC
//! 13818-1 §2.4.4.3), the TS program map section (PMT, §2.4.4.8), the ISO 639 language
//! descriptor (§2.6.18) and the section CRC (CRC-32/MPEG-2, Annex A). Other
//! descriptors of an elementary stream (the SAMPLE-AES signalling of
//! [`super::sample_aes`]) are passed in as bytes.

use super::packet::{self, AFC_PAYLOAD, PACKET_SIZE};
use crate::error::{Error, Result};

/// `table_id` of a program association section (Table 2-31).
pub const TABLE_ID_PAT: u8 = 0x00;
/// `table_id` of a TS program map section.
pub const TABLE_ID_PMT: u8 = 0x02;

/// `stream_type` of ITU-T H.264 | ISO/IEC 14496-10 video (Table 2-34).
pub const STREAM_TYPE_H264: u8 = 0x1b;
/// `stream_type` of ITU-T H.265 | ISO/IEC 23008-2 video.
pub const STREAM_TYPE_HEVC: u8 = 0x24;
/// `stream_type` of ISO/IEC 13818-7 audio with ADTS transport syntax (AAC).
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// `stream_type` of SAMPLE-AES encrypted H.264 (Apple, MPEG-2 Stream Encryption
/// Format for HTTP Live Streaming §3).
pub const STREAM_TYPE_H264_SAMPLE_AES: u8 = 0xdb;
/// `stream_type` of SAMPLE-AES encrypted AAC in ADTS (same specification, §3).
pub const STREAM_TYPE_AAC_SAMPLE_AES: u8 = 0xcf;
/// `stream_type` of SCTE-35 splice information (SCTE 35 §8.1, user private 0x86).
/// SCTE 35 cue sections (`TsMuxerOptions::scte35_pid`, read by `TsDemuxer`).
pub const STREAM_TYPE_SCTE35: u8 = 0x86;

/// `descriptor_tag` of the ISO 639 language descriptor (§2.6.18).
pub const DESCRIPTOR_ISO_639_LANGUAGE: u8 = 0x0a;
/// `descriptor_tag` of the registration descriptor (§2.6.8).
pub const DESCRIPTOR_REGISTRATION: u8 = 0x05;
/// `descriptor_tag` of the private data indicator descriptor (§2.6.28).
pub const DESCRIPTOR_PRIVATE_DATA_INDICATOR: u8 = 0x0f;

/// Longest section that fits in one transport packet after the pointer field.
pub const MAX_SINGLE_PACKET_SECTION: usize = packet::MAX_PAYLOAD - 1;

/// CRC-32/MPEG-2 lookup table: polynomial 0x04C11DB7, MSB first (Annex A).
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32/MPEG-2 (Annex A): initial value 0xFFFFFFFF, no reflection, no final XOR.
/// A section including its `CRC_32` field yields 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xffff_ffff, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize]
    })
}

/// Appends the CRC of `section` (which starts at its `table_id`) to it.
fn finish_section(mut section: Vec<u8>) -> Vec<u8> {
    let crc = crc32_mpeg2(&section);
    section.extend_from_slice(&crc.to_be_bytes());
    section
}

/// Writes the 3 header bytes (table_id, section_syntax_indicator '1', '0', '11',
/// 12-bit section_length) and the 5 bytes of the long section header
/// (id, '11', version, current_next = 1, section_number 0, last_section_number 0).
fn long_header(table_id: u8, body_len: usize, id: u16, version: u8) -> Vec<u8> {
    // section_length counts from after itself to the end of the CRC.
    let section_length = 5 + body_len + 4;
    let mut s = Vec::with_capacity(3 + section_length);
    s.push(table_id);
    s.extend_from_slice(&(0xb000 | section_length as u16).to_be_bytes());
    s.extend_from_slice(&id.to_be_bytes());
    s.push(0xc0 | ((version & 0x1f) << 1) | 1);
    s.extend_from_slice(&[0, 0]);
    s
}

/// A program association section (§2.4.4.3) with one program: `program_number` mapped
/// to `pmt_pid`. `version` is 5 bits (masked).
pub fn pat_section(
    transport_stream_id: u16,
    version: u8,
    program_number: u16,
    pmt_pid: u16,
) -> Vec<u8> {
    let mut s = long_header(TABLE_ID_PAT, 4, transport_stream_id, version);
    s.extend_from_slice(&program_number.to_be_bytes());
    s.extend_from_slice(&(0xe000 | (pmt_pid & 0x1fff)).to_be_bytes());
    finish_section(s)
}

/// One elementary stream entry of a PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmtStream<'a> {
    /// `stream_type` (`STREAM_TYPE_*`).
    pub stream_type: u8,
    /// `elementary_PID`.
    pub pid: u16,
    /// ISO 639-2 language code, written as an ISO 639 language descriptor.
    pub language: Option<[u8; 3]>,
    /// Further descriptors, whole (tag, length, body), written after the language
    /// descriptor in the stream's `ES_info` loop.
    pub descriptors: &'a [u8],
}

/// A TS program map section (§2.4.4.8) for `program_number`, no program descriptors.
///
/// Errors with [`Error::limit`] when the section would not fit in one transport packet
/// (we write each table in a single packet).
pub fn pmt_section(
    program_number: u16,
    version: u8,
    pcr_pid: u16,
    streams: &[PmtStream<'_>],
) -> Result<Vec<u8>> {
    let info_len =
        |s: &PmtStream<'_>| (if s.language.is_some() { 6 } else { 0 }) + s.descriptors.len();
    let es_len: usize = streams.iter().map(|s| 5 + info_len(s)).sum();
    let body_len = 4 + es_len;
    if 3 + 5 + body_len + 4 > MAX_SINGLE_PACKET_SECTION {
        return Err(Error::limit(
            "PMT does not fit in one transport packet (too many tracks)",
        ));
    }
    let mut s = long_header(TABLE_ID_PMT, body_len, program_number, version);
    s.extend_from_slice(&(0xe000 | (pcr_pid & 0x1fff)).to_be_bytes());
    s.extend_from_slice(&0xf000u16.to_be_bytes()); // program_info_length = 0
    for st in streams {
        s.push(st.stream_type);
        s.extend_from_slice(&(0xe000 | (st.pid & 0x1fff)).to_be_bytes());
        // ES_info_length: the whole section fits in one packet, so in 12 bits.
        s.extend_from_slice(&(0xf000 | info_len(st) as u16).to_be_bytes());
        if let Some(lang) = st.language {
            s.extend_from_slice(&[DESCRIPTOR_ISO_639_LANGUAGE, 4, lang[0], lang[1], lang[2], 0]);
        }
        s.extend_from_slice(st.descriptors);
    }
    Ok(finish_section(s))
}

/// A transport packet carrying one whole section on `pid`: `payload_unit_start_indicator`
/// set, `pointer_field` 0, the section, then 0xFF stuffing (§2.4.4.1). The continuity
/// counter is 0: set it with [`set_continuity_counter`] when the packet is sent.
pub fn section_packet(pid: u16, section: &[u8]) -> Result<[u8; PACKET_SIZE]> {
    if section.len() > MAX_SINGLE_PACKET_SECTION {
        return Err(Error::limit("section longer than one transport packet"));
    }
    let mut p = [0xffu8; PACKET_SIZE];
    p[..4].copy_from_slice(&packet::header(pid, true, AFC_PAYLOAD, 0));
    p[4] = 0; // pointer_field
    p[5..5 + section.len()].copy_from_slice(section);
    Ok(p)
}

/// Sets the `continuity_counter` of a transport packet (outside the CRC-protected section).
#[inline]
pub fn set_continuity_counter(p: &mut [u8; PACKET_SIZE], cc: u8) {
    p[3] = (p[3] & 0xf0) | (cc & 0x0f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known_pat() {
        // The PAT ffmpeg's mpegts muxer writes (transport_stream_id 1, program 1 on PID 0x1000).
        let pat = [
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00, 0x2a, 0xb1,
            0x04, 0xb2,
        ];
        assert_eq!(crc32_mpeg2(&pat[..12]), 0x2ab1_04b2);
        assert_eq!(crc32_mpeg2(&pat), 0, "a section with its CRC checks to 0");
        assert_eq!(pat_section(1, 0, 1, 0x1000), pat);
        // Check value of CRC-32/MPEG-2 ("123456789").
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn pmt_layout() {
        let streams = [
            PmtStream {
                stream_type: STREAM_TYPE_H264,
                pid: 0x100,
                language: None,
                descriptors: &[],
            },
            PmtStream {
                stream_type: STREAM_TYPE_AAC_ADTS,
                pid: 0x101,
                language: Some(*b"eng"),
                descriptors: &[],
            },
        ];
        let s = pmt_section(1, 3, 0x100, &streams).unwrap();
        assert_eq!(s[0], TABLE_ID_PMT);
        let section_length = (u16::from_be_bytes([s[1], s[2]]) & 0x0fff) as usize;
        assert_eq!(section_length + 3, s.len());
        assert_eq!(s[5], 0xc0 | (3 << 1) | 1);
        assert_eq!(&s[8..12], &[0xe1, 0x00, 0xf0, 0x00]);
        assert_eq!(&s[12..17], &[0x1b, 0xe1, 0x00, 0xf0, 0x00]);
        assert_eq!(
            &s[17..28],
            &[0x0f, 0xe1, 0x01, 0xf0, 0x06, 0x0a, 4, b'e', b'n', b'g', 0]
        );
        assert_eq!(crc32_mpeg2(&s), 0);
        // Too many streams for one packet.
        let many = vec![streams[1]; 20];
        assert_eq!(
            pmt_section(1, 0, 0x100, &many).unwrap_err().kind(),
            crate::ErrorKind::Limit
        );
        let p = section_packet(0x1000, &s).unwrap();
        assert_eq!(&p[..5], &[0x47, 0x50, 0x00, 0x10, 0x00]);
        assert_eq!(&p[5..5 + s.len()], &s[..]);
        assert!(p[5 + s.len()..].iter().all(|&b| b == 0xff));
        // Extra descriptors follow the language descriptor and count in ES_info_length.
        let extra = [DESCRIPTOR_PRIVATE_DATA_INDICATOR, 4, b'a', b'a', b'c', b'd'];
        let mut with = streams;
        with[1].descriptors = &extra;
        let s = pmt_section(1, 0, 0x100, &with).unwrap();
        assert_eq!(&s[17..22], &[0x0f, 0xe1, 0x01, 0xf0, 12]);
        assert_eq!(&s[28..34], &extra);
        assert_eq!(crc32_mpeg2(&s), 0);
    }
}
