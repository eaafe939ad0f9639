//! Reading the program association section (ISO/IEC 13818-1 §2.4.4.3) and the TS
//! program map section (§2.4.4.8): CRC-checked (Annex A), with the descriptors the
//! demuxer uses (ISO 639 language §2.6.18, registration §2.6.8).

use crate::container::ts::psi::{
    crc32_mpeg2, DESCRIPTOR_ISO_639_LANGUAGE, DESCRIPTOR_REGISTRATION, TABLE_ID_PAT, TABLE_ID_PMT,
};

/// `format_identifier` of the SCTE 35 registration descriptor (SCTE 35 §8.1): "CUEI".
pub(super) const CUEI: [u8; 4] = *b"CUEI";

/// The fixed part of a long-form section: header through `last_section_number`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LongHeader {
    /// `transport_stream_id` (PAT) or `program_number` (PMT).
    id: u16,
    version: u8,
    current: bool,
}

/// Why a section was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reject {
    /// Broken: wrong table, bad CRC, lengths that do not add up.
    Bad,
    /// Valid but not for us (`current_next_indicator` 0, another program).
    Skip,
}

/// Checks the CRC and the long header of `s` (a whole section) for `table_id`; returns
/// the header and the body between the header and the CRC.
fn long_section(s: &[u8], table_id: u8) -> Result<(LongHeader, &[u8]), Reject> {
    if s.len() < 12 || s[0] != table_id || s[1] & 0x80 == 0 {
        return Err(Reject::Bad);
    }
    if crc32_mpeg2(s) != 0 {
        return Err(Reject::Bad);
    }
    let h = LongHeader {
        id: u16::from_be_bytes([s[3], s[4]]),
        version: (s[5] >> 1) & 0x1f,
        current: s[5] & 1 == 1,
    };
    Ok((h, &s[8..s.len() - 4]))
}

/// One program of a PAT: `program_number` 0 is the network PID, not a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PatEntry {
    pub program_number: u16,
    pub pid: u16,
}

/// The programs of a PAT section (`current_next_indicator` 1 only).
pub(super) fn parse_pat(s: &[u8]) -> Result<Vec<PatEntry>, Reject> {
    let (h, body) = long_section(s, TABLE_ID_PAT)?;
    if !h.current {
        return Err(Reject::Skip);
    }
    if body.len() % 4 != 0 {
        return Err(Reject::Bad);
    }
    Ok(body
        .chunks_exact(4)
        .map(|e| PatEntry {
            program_number: u16::from_be_bytes([e[0], e[1]]),
            pid: u16::from_be_bytes([e[2] & 0x1f, e[3]]),
        })
        .collect())
}

/// One elementary stream of a PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PmtEntry {
    pub stream_type: u8,
    pub pid: u16,
    /// ISO 639 language code of the first language descriptor, if any.
    pub language: Option<[u8; 3]>,
    /// A registration descriptor with `format_identifier` "CUEI" is in `ES_info`.
    pub cuei: bool,
}

/// A TS program map section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pmt {
    pub program_number: u16,
    pub version: u8,
    pub pcr_pid: u16,
    /// A registration descriptor "CUEI" is in the program loop (SCTE 35 §8.1).
    pub cuei: bool,
    pub streams: Vec<PmtEntry>,
}

/// Descriptor loop: (tag, body) pairs; `None` when a length runs past the loop.
fn descriptors(mut d: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut v = Vec::new();
    while !d.is_empty() {
        let (&tag, rest) = d.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let body = rest.get(..len as usize)?;
        v.push((tag, body));
        d = &rest[len as usize..];
    }
    Some(v)
}

fn has_cuei(ds: &[(u8, &[u8])]) -> bool {
    ds.iter()
        .any(|(tag, body)| *tag == DESCRIPTOR_REGISTRATION && body.get(..4) == Some(&CUEI[..]))
}

/// Parses a PMT section for `program_number`.
pub(super) fn parse_pmt(s: &[u8], program_number: u16) -> Result<Pmt, Reject> {
    let (h, body) = long_section(s, TABLE_ID_PMT)?;
    if !h.current || h.id != program_number {
        return Err(Reject::Skip);
    }
    if body.len() < 4 {
        return Err(Reject::Bad);
    }
    let pcr_pid = u16::from_be_bytes([body[0] & 0x1f, body[1]]);
    let info_len = usize::from(u16::from_be_bytes([body[2] & 0x0f, body[3]]));
    let program_info = body.get(4..4 + info_len).ok_or(Reject::Bad)?;
    let cuei = has_cuei(&descriptors(program_info).ok_or(Reject::Bad)?);
    let mut rest = &body[4 + info_len..];
    let mut streams = Vec::new();
    while !rest.is_empty() {
        let e = rest.get(..5).ok_or(Reject::Bad)?;
        let es_len = usize::from(u16::from_be_bytes([e[3] & 0x0f, e[4]]));
        let info = rest.get(5..5 + es_len).ok_or(Reject::Bad)?;
        let ds = descriptors(info).ok_or(Reject::Bad)?;
        let language = ds.iter().find_map(|(tag, b)| {
            (*tag == DESCRIPTOR_ISO_639_LANGUAGE && b.len() >= 3).then(|| [b[0], b[1], b[2]])
        });
        streams.push(PmtEntry {
            stream_type: e[0],
            pid: u16::from_be_bytes([e[1] & 0x1f, e[2]]),
            language,
            cuei: has_cuei(&ds),
        });
        rest = &rest[5 + es_len..];
    }
    Ok(Pmt {
        program_number: h.id,
        version: h.version,
        pcr_pid,
        cuei,
        streams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::ts::psi::{
        pat_section, pmt_section, PmtStream, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264,
        STREAM_TYPE_SCTE35,
    };

    #[test]
    fn pat_and_pmt_from_our_writer() {
        let pat = pat_section(1, 0, 7, 0x1000);
        assert_eq!(
            parse_pat(&pat).unwrap(),
            vec![PatEntry {
                program_number: 7,
                pid: 0x1000
            }]
        );
        let cuei = [DESCRIPTOR_REGISTRATION, 4, b'C', b'U', b'E', b'I'];
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
                language: Some(*b"fra"),
                descriptors: &[],
            },
            PmtStream {
                stream_type: STREAM_TYPE_SCTE35,
                pid: 0x1f0,
                language: None,
                descriptors: &cuei,
            },
        ];
        let pmt = pmt_section(7, 3, 0x100, &streams).unwrap();
        let p = parse_pmt(&pmt, 7).unwrap();
        assert_eq!((p.version, p.pcr_pid, p.cuei), (3, 0x100, false));
        assert_eq!(p.streams.len(), 3);
        assert_eq!(p.streams[1].language, Some(*b"fra"));
        assert!(p.streams[2].cuei && !p.streams[0].cuei);
        assert_eq!(parse_pmt(&pmt, 8), Err(Reject::Skip));
        // Every corruption is a rejection, never a panic.
        for i in 0..pmt.len() {
            let mut bad = pmt.clone();
            bad[i] ^= 0x10;
            assert!(parse_pmt(&bad, 7).is_err(), "byte {i}");
        }
        for n in 0..pmt.len() {
            assert!(parse_pmt(&pmt[..n], 7).is_err());
        }
    }
}
