//! Transport packets: the 4-byte header (ISO/IEC 13818-1 §2.4.3.2), the adaptation
//! field with PCR and stuffing (§2.4.3.4, §2.4.3.5) and the packetisation of one PES
//! packet into a run of transport packets.
//!
//! The packetiser writes straight into the caller's buffer: it reserves the exact
//! output once, writes every header as a small fixed-size array and copies the payload
//! in chunks of up to 184 bytes. Stuffing only ever goes into the adaptation field of
//! the last packet of a PES packet, as §2.4.3.5 requires for PES data.

use bytes::BytesMut;

/// Size of a transport packet in bytes.
pub const PACKET_SIZE: usize = 188;
/// Size of the transport packet header.
pub const HEADER_SIZE: usize = 4;
/// Largest payload of one packet (no adaptation field).
pub const MAX_PAYLOAD: usize = PACKET_SIZE - HEADER_SIZE;
/// `sync_byte` (§2.4.3.3).
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the program association table (§2.4.4.4, Table 2-3).
pub const PAT_PID: u16 = 0x0000;
/// PID of null packets (Table 2-3).
pub const NULL_PID: u16 = 0x1fff;
/// Lowest PID free for PMTs and elementary streams (0x0000..=0x000F are reserved).
pub const MIN_USER_PID: u16 = 0x0010;
/// Highest PID free for PMTs and elementary streams (0x1FFF is the null packet).
pub const MAX_USER_PID: u16 = 0x1ffe;
/// Size of an adaptation field carrying only its length, flags and a PCR.
pub const PCR_AF_SIZE: usize = 8;

/// `adaptation_field_control`: payload only (§2.4.3.3, Table 2-5).
pub const AFC_PAYLOAD: u8 = 0b01;
/// `adaptation_field_control`: adaptation field only, no payload.
pub const AFC_ADAPTATION: u8 = 0b10;
/// `adaptation_field_control`: adaptation field followed by payload.
pub const AFC_BOTH: u8 = 0b11;

/// `random_access_indicator` bit of the adaptation field flags byte (§2.4.3.5).
pub const AF_RANDOM_ACCESS: u8 = 0x40;
/// `PCR_flag` bit of the adaptation field flags byte.
pub const AF_PCR: u8 = 0x10;

/// 0xFF stuffing bytes, sliced for adaptation field padding.
const STUFFING: [u8; MAX_PAYLOAD] = [0xff; MAX_PAYLOAD];

/// The 4-byte transport packet header (§2.4.3.2): sync byte, `payload_unit_start_indicator`,
/// 13-bit PID, `adaptation_field_control` (2 bits, see `AFC_*`) and 4-bit `continuity_counter`.
///
/// Transport error indicator, transport priority and scrambling control are written as 0.
#[inline]
pub fn header(pid: u16, unit_start: bool, afc: u8, cc: u8) -> [u8; HEADER_SIZE] {
    [
        SYNC_BYTE,
        ((unit_start as u8) << 6) | ((pid >> 8) as u8 & 0x1f),
        pid as u8,
        ((afc & 3) << 4) | (cc & 0x0f),
    ]
}

/// Encodes a `program_clock_reference` (§2.4.3.5): 33-bit base in 90 kHz units (masked),
/// 6 reserved bits set to 1, 9-bit extension in 27 MHz units (0..=299, masked to 9 bits).
#[inline]
pub fn encode_pcr(base: u64, ext: u16) -> [u8; 6] {
    let base = base & ((1 << 33) - 1);
    let ext = ext & 0x1ff;
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        (((base & 1) as u8) << 7) | 0x7e | (ext >> 8) as u8,
        ext as u8,
    ]
}

/// Per-PID `continuity_counter` state (§2.4.3.3).
///
/// Holds the value of the last packet sent, so a packet with payload takes the next
/// value and an adaptation-field-only packet repeats the last one (the counter "shall
/// not be incremented" when `adaptation_field_control` is `10`). The first packet with
/// payload of a PID gets 0. State persists for the life of the muxer, so counters stay
/// continuous across segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContinuityCounter(u8);

impl Default for ContinuityCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl ContinuityCounter {
    /// A counter whose first packet with payload will carry 0.
    pub const fn new() -> Self {
        ContinuityCounter(0x0f)
    }
    /// The value for the next packet carrying payload (and records it as sent).
    #[inline]
    pub fn next_payload(&mut self) -> u8 {
        self.0 = (self.0 + 1) & 0x0f;
        self.0
    }
    /// The value for an adaptation-field-only packet: the last value, unchanged.
    #[inline]
    pub fn adaptation_only(&self) -> u8 {
        self.0
    }
    /// The value of the last packet sent (15 before the first one).
    pub fn last(&self) -> u8 {
        self.0
    }
}

/// What the adaptation field of the first packet of a PES packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StartFlags {
    /// `PCR_flag` and the `program_clock_reference_base` (90 kHz, 33 bits); extension 0.
    pub pcr: Option<u64>,
    /// `random_access_indicator`: the PES starts a random access point.
    pub random_access: bool,
}

impl StartFlags {
    /// Bytes of adaptation field these flags need (length byte included), 0 if none.
    #[inline]
    fn min_len(&self) -> usize {
        match (self.pcr, self.random_access) {
            (Some(_), _) => PCR_AF_SIZE,
            (None, true) => 2,
            (None, false) => 0,
        }
    }
    #[inline]
    fn flags_byte(&self) -> u8 {
        let mut f = 0;
        if self.random_access {
            f |= AF_RANDOM_ACCESS;
        }
        if self.pcr.is_some() {
            f |= AF_PCR;
        }
        f
    }
}

/// Appends an adaptation field of exactly `total` bytes (length byte included, 1..=184):
/// flags, optional PCR, then 0xFF stuffing. `total == 1` is the single
/// `adaptation_field_length = 0` byte (one byte of stuffing, §2.4.3.5); it cannot carry flags.
#[inline]
fn put_adaptation_field(out: &mut BytesMut, total: usize, flags: StartFlags) {
    debug_assert!((1..=MAX_PAYLOAD).contains(&total));
    if total == 1 {
        debug_assert_eq!(flags.min_len(), 0);
        out.extend_from_slice(&[0]);
        return;
    }
    out.extend_from_slice(&[(total - 1) as u8, flags.flags_byte()]);
    let mut used = 2;
    if let Some(base) = flags.pcr {
        out.extend_from_slice(&encode_pcr(base, 0));
        used += 6;
    }
    out.extend_from_slice(&STUFFING[..total - used]);
}

/// Appends one adaptation-field-only packet carrying a PCR (no payload: the PID's
/// continuity counter is repeated, not incremented).
pub fn put_pcr_packet(out: &mut BytesMut, pid: u16, cc: &mut ContinuityCounter, pcr_base: u64) {
    out.reserve(PACKET_SIZE);
    out.extend_from_slice(&header(pid, false, AFC_ADAPTATION, cc.adaptation_only()));
    put_adaptation_field(
        out,
        MAX_PAYLOAD,
        StartFlags {
            pcr: Some(pcr_base),
            random_access: false,
        },
    );
}

/// Where a packetised PES packet landed in the output: maps byte offsets of the PES
/// packet (header included) to offsets in the output buffer, so that writers can patch
/// bytes in place after a bulk copy (length prefixes into start codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesLayout {
    /// Output offset of the first packet.
    pub base: usize,
    /// Number of transport packets written.
    pub packets: usize,
    /// PES bytes carried by the first packet.
    pub first_payload: usize,
    /// PES bytes carried by the last packet (equal to `first_payload` for one packet).
    pub last_payload: usize,
}

impl PesLayout {
    /// The layout of a PES packet of `total` bytes whose first packet needs an
    /// adaptation field of `first_af` bytes (0, 2 or 8), written at output offset `base`.
    pub fn compute(base: usize, total: usize, first_af: usize) -> Self {
        let first_cap = MAX_PAYLOAD - first_af;
        if total <= first_cap {
            return PesLayout {
                base,
                packets: 1,
                first_payload: total,
                last_payload: total,
            };
        }
        let rest = total - first_cap;
        let more = rest.div_ceil(MAX_PAYLOAD);
        PesLayout {
            base,
            packets: 1 + more,
            first_payload: first_cap,
            last_payload: rest - (more - 1) * MAX_PAYLOAD,
        }
    }
    /// Total output bytes.
    pub fn len(&self) -> usize {
        self.packets * PACKET_SIZE
    }
    /// Whether no packet is written (never: a PES packet takes at least one packet).
    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }
    /// Overwrites PES bytes `e..e + bytes.len()` in `out` (the buffer [`put_pes`] wrote
    /// into), following them across packet boundaries. `e + bytes.len()` must not
    /// exceed the PES length.
    #[inline]
    pub fn patch(&self, out: &mut [u8], e: usize, bytes: &[u8]) {
        let Some(n) = bytes.len().checked_sub(1) else {
            return;
        };
        let first = self.out_offset(e);
        if self.out_offset(e + n) == first + n {
            out[first..=first + n].copy_from_slice(bytes);
        } else {
            for (k, &b) in bytes.iter().enumerate() {
                out[self.out_offset(e + k)] = b;
            }
        }
    }
    /// Output offset of PES byte `e` (`e` < total PES length).
    #[inline]
    pub fn out_offset(&self, e: usize) -> usize {
        if e < self.first_payload {
            return self.base + PACKET_SIZE - self.first_payload + e;
        }
        let r = e - self.first_payload;
        let k = r / MAX_PAYLOAD + 1;
        let off = r % MAX_PAYLOAD;
        let start = if k + 1 == self.packets {
            PACKET_SIZE - self.last_payload
        } else {
            HEADER_SIZE
        };
        self.base + k * PACKET_SIZE + start + off
    }
}

/// Appends bytes `s..e` of the virtual concatenation `head ++ body`.
#[inline]
fn put_range(out: &mut BytesMut, head: &[u8], body: &[u8], s: usize, e: usize) {
    let h = head.len();
    if e <= h {
        out.extend_from_slice(&head[s..e]);
    } else if s >= h {
        out.extend_from_slice(&body[s - h..e - h]);
    } else {
        out.extend_from_slice(&head[s..]);
        out.extend_from_slice(&body[..e - h]);
    }
}

/// Packetises one PES packet, given as `head ++ body` (the PES header plus any
/// prefix the writer built, then the bulk payload), into transport packets on `pid`.
///
/// The first packet has `payload_unit_start_indicator` set and, when `start` asks for
/// it, an adaptation field with PCR and/or `random_access_indicator`. Middle packets
/// carry 184 payload bytes; the last packet pads with adaptation field stuffing,
/// including the 1-byte (`adaptation_field_length` = 0) and 2-byte (flags only) cases.
/// The output is reserved once. Returns the layout for in-place patching.
pub fn put_pes(
    out: &mut BytesMut,
    pid: u16,
    cc: &mut ContinuityCounter,
    start: StartFlags,
    head: &[u8],
    body: &[u8],
) -> PesLayout {
    let total = head.len() + body.len();
    let layout = PesLayout::compute(out.len(), total, start.min_len());
    out.reserve(layout.len());

    // First packet.
    let af = MAX_PAYLOAD - layout.first_payload;
    let afc = if af > 0 { AFC_BOTH } else { AFC_PAYLOAD };
    out.extend_from_slice(&header(pid, true, afc, cc.next_payload()));
    if af > 0 {
        put_adaptation_field(out, af, start);
    }
    put_range(out, head, body, 0, layout.first_payload);
    if layout.packets == 1 {
        return layout;
    }

    // Full middle packets.
    let mut pos = layout.first_payload;
    let full_end = total - layout.last_payload;
    let hdr = header(pid, false, AFC_PAYLOAD, 0);
    if pos < head.len() {
        // The head spills past the first packet (long parameter sets): generic path.
        while pos < full_end {
            let mut h = hdr;
            h[3] |= cc.next_payload();
            out.extend_from_slice(&h);
            put_range(out, head, body, pos, pos + MAX_PAYLOAD);
            pos += MAX_PAYLOAD;
        }
    } else {
        // Common case: only body bytes remain; copy 184-byte chunks.
        let mid = &body[pos - head.len()..full_end - head.len()];
        for chunk in mid.chunks_exact(MAX_PAYLOAD) {
            let mut h = hdr;
            h[3] |= cc.next_payload();
            out.extend_from_slice(&h);
            out.extend_from_slice(chunk);
        }
        pos = full_end;
    }

    // Last packet.
    let af = MAX_PAYLOAD - layout.last_payload;
    let afc = if af > 0 { AFC_BOTH } else { AFC_PAYLOAD };
    out.extend_from_slice(&header(pid, false, afc, cc.next_payload()));
    if af > 0 {
        put_adaptation_field(out, af, StartFlags::default());
    }
    put_range(out, head, body, pos, total);
    layout
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pid, pusi, cc, adaptation field, payload).
    type Parsed = (u16, bool, u8, Vec<u8>, Vec<u8>);

    /// Parses what we wrote, per packet.
    fn split(buf: &[u8]) -> Vec<Parsed> {
        assert_eq!(buf.len() % PACKET_SIZE, 0);
        buf.chunks(PACKET_SIZE)
            .map(|p| {
                assert_eq!(p[0], SYNC_BYTE);
                let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
                let pusi = p[1] & 0x40 != 0;
                let afc = (p[3] >> 4) & 3;
                let cc = p[3] & 0x0f;
                let mut i = 4;
                let mut af = Vec::new();
                if afc & 2 != 0 {
                    let l = p[4] as usize;
                    af = p[4..5 + l].to_vec();
                    i = 5 + l;
                }
                let payload = if afc & 1 != 0 {
                    p[i..].to_vec()
                } else {
                    Vec::new()
                };
                (pid, pusi, cc, af, payload)
            })
            .collect()
    }

    fn pes_bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn pcr_encoding() {
        // base = 2^33 - 1, ext = 299
        let b = encode_pcr((1 << 33) - 1, 299);
        assert_eq!(b, [0xff, 0xff, 0xff, 0xff, 0xff, 0x2b]);
        let b = encode_pcr(1, 0);
        assert_eq!(b, [0, 0, 0, 0, 0xfe, 0]);
        // Masked to 33 bits.
        assert_eq!(encode_pcr((1 << 33) + 5, 0), encode_pcr(5, 0));
    }

    #[test]
    fn header_bits() {
        assert_eq!(
            header(0x1fff, true, AFC_BOTH, 0x1a),
            [0x47, 0x5f, 0xff, 0x3a]
        );
        assert_eq!(
            header(0x100, false, AFC_PAYLOAD, 3),
            [0x47, 0x01, 0x00, 0x13]
        );
    }

    #[test]
    fn stuffing_edge_cases() {
        // 183 payload bytes: adaptation_field_length 0 (one stuffing byte).
        // 182 payload bytes: adaptation_field_length 1 (flags byte only).
        // 181: length 2 (flags + one 0xFF).
        for (n, af_len) in [
            (184, None),
            (183, Some(0u8)),
            (182, Some(1)),
            (181, Some(2)),
            (1, Some(182)),
        ] {
            let data = pes_bytes(n);
            let mut out = BytesMut::new();
            let mut cc = ContinuityCounter::new();
            let l = put_pes(
                &mut out,
                0x100,
                &mut cc,
                StartFlags::default(),
                &data[..10.min(n)],
                &data[10.min(n)..],
            );
            assert_eq!(l.packets, 1);
            assert_eq!(out.len(), 188);
            let p = &out[..];
            match af_len {
                None => {
                    assert_eq!(p[3] >> 4, AFC_PAYLOAD);
                    assert_eq!(&p[4..], &data[..]);
                }
                Some(len) => {
                    assert_eq!(p[3] >> 4, AFC_BOTH, "n={n}");
                    assert_eq!(p[4], len, "n={n}");
                    if len > 0 {
                        assert_eq!(p[5], 0, "flags all clear");
                        assert!(p[6..5 + len as usize].iter().all(|&b| b == 0xff));
                    }
                    assert_eq!(&p[5 + len as usize..], &data[..]);
                }
            }
        }
        // Same edge cases in the last packet of a multi-packet PES with a PCR first packet.
        for last in [183usize, 182, 1, 184] {
            let n = (MAX_PAYLOAD - PCR_AF_SIZE) + MAX_PAYLOAD + last;
            let data = pes_bytes(n);
            let mut out = BytesMut::new();
            let mut cc = ContinuityCounter::new();
            let start = StartFlags {
                pcr: Some(123_456),
                random_access: true,
            };
            let l = put_pes(&mut out, 0x101, &mut cc, start, &data[..20], &data[20..]);
            assert_eq!((l.packets, l.last_payload), (3, last));
            let pk = split(&out);
            assert_eq!(pk.len(), 3);
            assert_eq!(pk[0].3[1], AF_PCR | AF_RANDOM_ACCESS);
            assert_eq!(&pk[0].3[2..8], &encode_pcr(123_456, 0));
            assert!(pk[0].1 && !pk[1].1 && !pk[2].1);
            assert_eq!(pk[2].3.len(), MAX_PAYLOAD - last);
            let joined: Vec<u8> = pk.iter().flat_map(|p| p.4.clone()).collect();
            assert_eq!(joined, data);
        }
    }

    #[test]
    fn layout_maps_every_byte() {
        for n in [1usize, 175, 176, 177, 360, 361, 5000, 30_000] {
            for first_af in [0usize, 2, 8] {
                let data = pes_bytes(n);
                let mut out = BytesMut::new();
                out.extend_from_slice(&[9; 188]); // layouts are relative to the buffer start
                let mut cc = ContinuityCounter::new();
                let start = match first_af {
                    0 => StartFlags::default(),
                    2 => StartFlags {
                        pcr: None,
                        random_access: true,
                    },
                    _ => StartFlags {
                        pcr: Some(1),
                        random_access: false,
                    },
                };
                let split_at = (n / 3).min(400);
                let l = put_pes(
                    &mut out,
                    0x42,
                    &mut cc,
                    start,
                    &data[..split_at],
                    &data[split_at..],
                );
                assert_eq!(out.len(), 188 + l.len());
                for (e, &b) in data.iter().enumerate() {
                    assert_eq!(out[l.out_offset(e)], b, "n={n} af={first_af} e={e}");
                }
            }
        }
    }

    #[test]
    fn continuity_counters() {
        let mut out = BytesMut::new();
        let mut cc = ContinuityCounter::new();
        let data = pes_bytes(184 * 10);
        put_pes(&mut out, 0x100, &mut cc, StartFlags::default(), &[], &data);
        put_pcr_packet(&mut out, 0x100, &mut cc, 99);
        put_pes(
            &mut out,
            0x100,
            &mut cc,
            StartFlags::default(),
            &data[..184 * 7],
            &[],
        );
        let pk = split(&out);
        assert_eq!(pk.len(), 18);
        let ccs: Vec<u8> = pk.iter().map(|p| p.2).collect();
        // 0..=9, AF-only repeats 9, then 10..=15, 0 (wraps).
        assert_eq!(
            ccs,
            vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10, 11, 12, 13, 14, 15, 0]
        );
        // The PCR-only packet has no payload and a 183-byte adaptation field.
        assert_eq!(out[10 * 188 + 3] >> 4, AFC_ADAPTATION);
        assert_eq!(out[10 * 188 + 4], 183);
        assert!(pk[10].4.is_empty());
        assert_eq!(cc.last(), 0);
    }
}
