//! [`retime`]: moves every timestamp of an MPEG-TS segment by a constant, in place on
//! a copy of its packets (PES `PTS`/`DTS`, ISO/IEC 13818-1 §2.4.3.7, and adaptation
//! field `PCR` bases, §2.4.3.5), without demultiplexing. Live-to-VOD uses it to close
//! the gap an ad break leaves when its segments are cut out.

use bytes::Bytes;

use super::packet::{PACKET_SIZE, SYNC_BYTE};
use crate::error::{Error, Result};

/// 2^33: PTS, DTS and PCR bases count 90 kHz ticks modulo this.
const WRAP: i64 = 1 << 33;

/// A copy of `segment` (whole 188-byte packets) with `shift_90k` added to every PTS,
/// DTS and PCR base, modulo 2^33. PSI (the PAT and the PMTs it lists) and packets that
/// do not start a PES are copied unchanged.
///
/// Errors: [`Error::malformed`] for a length that is not a multiple of 188, a lost sync
/// byte, or a PES header that does not fit its first packet; [`Error::usage`] for a
/// shift of 2^33 ticks or more either way.
///
/// ```
/// use strom::container::ts::retime;
/// # let (pid, pts) = (0x100u16, 900_000u64);
/// // One packet starting a PES with a PTS (and stuffing after it).
/// let mut p = vec![0x47, 0x41, 0x00, 0x10, 0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5];
/// p.extend_from_slice(&strom::container::ts::pes::encode_timestamp(0x2, pts));
/// p.resize(188, 0xFF);
/// let out = retime(&p, -90_000).unwrap();
/// let got = strom::container::ts::pes::decode_timestamp(out[13..18].try_into().unwrap());
/// assert_eq!(got, pts - 90_000);
/// # let _ = pid;
/// ```
pub fn retime(segment: &[u8], shift_90k: i64) -> Result<Bytes> {
    if !(-WRAP < shift_90k && shift_90k < WRAP) {
        return Err(Error::usage("retime: shift of 2^33 ticks or more"));
    }
    if !segment.len().is_multiple_of(PACKET_SIZE) {
        return Err(Error::malformed("retime: not whole 188-byte packets"));
    }
    let mut out = segment.to_vec();
    let mut pmt_pids: Vec<u16> = Vec::new();
    for (i, p) in out.chunks_exact_mut(PACKET_SIZE).enumerate() {
        let at = (i * PACKET_SIZE) as u64;
        if p[0] != SYNC_BYTE {
            return Err(Error::malformed("retime: lost sync byte").at_offset(at));
        }
        let pid = u16::from_be_bytes([p[1] & 0x1F, p[2]]);
        let unit_start = p[1] & 0x40 != 0;
        let afc = (p[3] >> 4) & 3;
        let mut payload = 4;
        if afc & 2 != 0 {
            let len = usize::from(p[4]);
            if 5 + len > PACKET_SIZE {
                return Err(Error::malformed("retime: adaptation field too long").at_offset(at));
            }
            // PCR_flag, with at least flags + 6 bytes of PCR.
            if len >= 7 && p[5] & 0x10 != 0 {
                shift_pcr(&mut p[6..12], shift_90k);
            }
            payload = 5 + len;
        }
        if afc & 1 == 0 || !unit_start || payload >= PACKET_SIZE {
            continue;
        }
        let body = &mut p[payload..];
        if pid == 0 {
            pmt_pids = pat_pmt_pids(body);
            continue;
        }
        if pmt_pids.contains(&pid) || body.len() < 9 || body[..3] != [0, 0, 1] {
            continue;
        }
        // PES header: stream_id at 3; optional header from 6 for the streams that have one.
        let stream_id = body[3];
        if matches!(
            stream_id,
            0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
        ) {
            continue;
        }
        let flags = body[7] >> 6;
        let header_len = usize::from(body[8]);
        let need = match flags {
            2 => 5,
            3 => 10,
            _ => 0,
        };
        if need > header_len || 9 + need > body.len() {
            return Err(Error::malformed("retime: PES header past its packet").at_offset(at));
        }
        if flags & 2 != 0 {
            shift_timestamp(&mut body[9..14], shift_90k);
        }
        if flags == 3 {
            shift_timestamp(&mut body[14..19], shift_90k);
        }
    }
    Ok(Bytes::from(out))
}

/// The PMT PIDs a PAT section (after the pointer field) lists.
fn pat_pmt_pids(body: &[u8]) -> Vec<u16> {
    let Some(&pointer) = body.first() else {
        return Vec::new();
    };
    let Some(sec) = body.get(1 + usize::from(pointer)..) else {
        return Vec::new();
    };
    if sec.len() < 8 || sec[0] != 0 {
        return Vec::new();
    }
    let len = usize::from(u16::from_be_bytes([sec[1] & 0x0F, sec[2]]));
    // Programs from byte 8 to the CRC.
    let end = (3 + len).saturating_sub(4).min(sec.len());
    sec.get(8..end)
        .unwrap_or(&[])
        .chunks_exact(4)
        .filter(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
        .map(|e| u16::from_be_bytes([e[2] & 0x1F, e[3]]))
        .collect()
}

/// Adds `shift` to the 33-bit timestamp of a 5-byte PTS/DTS field, keeping its prefix
/// and marker bits.
fn shift_timestamp(b: &mut [u8], shift: i64) {
    let t = (u64::from(b[0] >> 1 & 0x07) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1);
    let t = (t as i64 + shift).rem_euclid(WRAP) as u64;
    b[0] = (b[0] & 0xF1) | (((t >> 30) as u8 & 0x07) << 1);
    b[1] = (t >> 22) as u8;
    b[2] = (b[2] & 0x01) | (((t >> 15) as u8) << 1);
    b[3] = (t >> 7) as u8;
    b[4] = (b[4] & 0x01) | ((t as u8) << 1);
}

/// Adds `shift` to the 33-bit base of a 6-byte PCR field, keeping its extension.
fn shift_pcr(b: &mut [u8], shift: i64) {
    let base = (u64::from(b[0]) << 25)
        | (u64::from(b[1]) << 17)
        | (u64::from(b[2]) << 9)
        | (u64::from(b[3]) << 1)
        | u64::from(b[4] >> 7);
    let base = (base as i64 + shift).rem_euclid(WRAP) as u64;
    b[0] = (base >> 25) as u8;
    b[1] = (base >> 17) as u8;
    b[2] = (base >> 9) as u8;
    b[3] = (base >> 1) as u8;
    b[4] = (b[4] & 0x7F) | (((base & 1) as u8) << 7);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::ts::packet::encode_pcr;
    use crate::container::ts::pes::{decode_timestamp, encode_timestamp};

    #[test]
    fn timestamps_and_pcr_move_and_wrap() {
        for &(t, shift) in &[
            (900_000u64, -90_000i64),
            (5, -10),
            ((1 << 33) - 3, 7),
            (123_456_789, 0),
        ] {
            let mut b = encode_timestamp(0x3, t);
            shift_timestamp(&mut b, shift);
            let want = (t as i64 + shift).rem_euclid(WRAP) as u64;
            assert_eq!(decode_timestamp(&b), want);
            assert_eq!(b[0] >> 4, 0x3, "prefix kept");
            assert_eq!(b[0] & 1 & b[2] & b[4] & 1, 1, "markers kept");
            let mut p = encode_pcr(t, 299);
            shift_pcr(&mut p, shift);
            assert_eq!(p, encode_pcr(want, 299));
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(retime(&[0x47; 100], 0).is_err());
        assert!(retime(&[0u8; 188], 0).is_err());
        assert!(retime(&[0x47; 188], 1 << 33).is_err());
        let mut p = vec![0x47, 0x41, 0x00, 0x30, 200];
        p.resize(188, 0);
        assert!(retime(&p, 0).is_err());
    }
}
