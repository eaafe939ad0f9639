//! Section reassembly on a PSI or private-section PID (ISO/IEC 13818-1 §2.4.4.1,
//! §2.4.4.2): the `pointer_field`, sections spanning transport packets, several sections
//! in one packet and 0xFF stuffing after the last one.

use bytes::Bytes;

/// Largest section: 3 header bytes + a 12-bit `section_length` whose private-section
/// maximum is 4093 (§2.4.4.11); PSI sections stop at 1024. Bounds the buffer of a PID.
pub(super) const MAX_SECTION: usize = 4096;

/// The table id that marks stuffing after the last section of a packet.
const STUFFING: u8 = 0xff;

/// One PID's section in progress.
#[derive(Debug, Default)]
pub(super) struct SectionBuf {
    /// Bytes of the section in progress (empty when none is).
    buf: Vec<u8>,
    /// Total length of the section in progress, once its 3-byte header is in.
    need: Option<usize>,
    /// A section is in progress.
    active: bool,
}

/// What one packet's payload did to a [`SectionBuf`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct SectionOutcome {
    /// Sections given up: a gap or a new start cut them short, a bad pointer field, or a
    /// length above [`MAX_SECTION`].
    pub dropped: u32,
}

impl SectionBuf {
    /// Bytes held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Forgets the section in progress.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.need = None;
        self.active = false;
    }

    /// Takes the payload of one transport packet. `pusi` is the packet's
    /// `payload_unit_start_indicator`; `gap` says packets of this PID were lost before it
    /// (the section in progress is given up). Complete sections are appended to `out`
    /// whole (header to CRC), unchecked.
    pub fn push(
        &mut self,
        payload: &[u8],
        pusi: bool,
        gap: bool,
        out: &mut Vec<Bytes>,
    ) -> SectionOutcome {
        let mut outcome = SectionOutcome::default();
        if gap && self.active {
            self.reset();
            outcome.dropped += 1;
        }
        if !pusi {
            if self.active {
                // Bytes after the end of a section in a packet without PUSI are stuffing.
                self.extend(payload, out, &mut outcome);
            }
            return outcome;
        }
        let Some((&pointer, rest)) = payload.split_first() else {
            return outcome;
        };
        let pointer = pointer as usize;
        if pointer > rest.len() {
            if self.active {
                outcome.dropped += 1;
            }
            self.reset();
            outcome.dropped += 1;
            return outcome;
        }
        let (tail, fresh) = rest.split_at(pointer);
        if self.active {
            self.extend(tail, out, &mut outcome);
            if self.active {
                // The pointer says a new section starts here: the old one is short.
                self.reset();
                outcome.dropped += 1;
            }
        }
        self.start(fresh, out, &mut outcome);
        outcome
    }

    /// Appends to the section in progress; emits it when complete.
    fn extend(&mut self, mut data: &[u8], out: &mut Vec<Bytes>, outcome: &mut SectionOutcome) {
        if self.need.is_none() {
            let take = (3 - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < 3 {
                return;
            }
            match section_len(&self.buf) {
                Some(n) => self.need = Some(n),
                None => {
                    self.reset();
                    outcome.dropped += 1;
                    return;
                }
            }
        }
        let need = self.need.unwrap_or(MAX_SECTION);
        let take = (need - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == need {
            out.push(Bytes::copy_from_slice(&self.buf));
            self.reset();
        }
    }

    /// Sections starting at `data` (after the pointer field), back to back.
    fn start(&mut self, mut data: &[u8], out: &mut Vec<Bytes>, outcome: &mut SectionOutcome) {
        while let Some(&table_id) = data.first() {
            if table_id == STUFFING {
                return;
            }
            if data.len() < 3 {
                self.active = true;
                self.buf.extend_from_slice(data);
                return;
            }
            let Some(n) = section_len(data) else {
                outcome.dropped += 1;
                return;
            };
            if data.len() >= n {
                out.push(Bytes::copy_from_slice(&data[..n]));
                data = &data[n..];
            } else {
                self.active = true;
                self.need = Some(n);
                self.buf.extend_from_slice(data);
                return;
            }
        }
    }
}

/// Whole length of the section whose first 3 bytes are `h`; `None` above [`MAX_SECTION`].
fn section_len(h: &[u8]) -> Option<usize> {
    let n = 3 + ((usize::from(h[1] & 0x0f) << 8) | usize::from(h[2]));
    (n <= MAX_SECTION).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(table_id: u8, body_len: usize, fill: u8) -> Vec<u8> {
        let mut s = vec![table_id, 0xb0 | (body_len >> 8) as u8, body_len as u8];
        s.extend(std::iter::repeat_n(fill, body_len));
        s
    }

    #[test]
    fn pointer_field_and_back_to_back_sections() {
        let a = section(0, 10, 1);
        let b = section(2, 20, 2);
        let mut payload = vec![0u8];
        payload.extend_from_slice(&a);
        payload.extend_from_slice(&b);
        payload.resize(184, 0xff);
        let mut s = SectionBuf::default();
        let mut out = Vec::new();
        let o = s.push(&payload, true, false, &mut out);
        assert_eq!(o.dropped, 0);
        assert_eq!(out, vec![Bytes::from(a), Bytes::from(b)]);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn sections_across_packets() {
        let big = section(0xfc, 400, 7);
        let small = section(0xfc, 5, 8);
        // Packet 1: pointer 0, the first 183 bytes of `big`.
        let mut p1 = vec![0u8];
        p1.extend_from_slice(&big[..183]);
        // Packet 2: 184 more bytes, no PUSI.
        let p2 = big[183..367].to_vec();
        // Packet 3: PUSI, pointer = rest of big, then `small`, then stuffing.
        let rest = &big[367..];
        let mut p3 = vec![rest.len() as u8];
        p3.extend_from_slice(rest);
        p3.extend_from_slice(&small);
        p3.resize(184, 0xff);
        let mut s = SectionBuf::default();
        let mut out = Vec::new();
        s.push(&p1, true, false, &mut out);
        s.push(&p2, false, false, &mut out);
        assert!(out.is_empty());
        let o = s.push(&p3, true, false, &mut out);
        assert_eq!(o.dropped, 0);
        assert_eq!(out, vec![Bytes::from(big.clone()), Bytes::from(small)]);

        // A gap drops the section in progress; the next start is clean.
        let mut out = Vec::new();
        s.push(&p1, true, false, &mut out);
        let o = s.push(&p2, false, true, &mut out);
        assert_eq!(o.dropped, 1);
        assert!(out.is_empty());
        // A header split after its first byte.
        let mut q1 = [0u8; 183];
        q1[0] = 181; // pointer to the last 2 bytes
        q1[182] = 0xfc;
        let mut s = SectionBuf::default();
        s.push(&q1[..183], true, false, &mut out);
        let mut q2 = big[1..].to_vec();
        q2.truncate(184);
        s.push(&q2, false, false, &mut out);
        s.push(&big[185..], false, false, &mut out);
        assert_eq!(out, vec![Bytes::from(big)]);
    }

    #[test]
    fn bad_pointer_and_lengths() {
        let mut s = SectionBuf::default();
        let mut out = Vec::new();
        assert_eq!(s.push(&[200, 1, 2], true, false, &mut out).dropped, 1);
        // section_length 0xfff: above the maximum.
        assert_eq!(
            s.push(&[0, 0xfc, 0xff, 0xff, 0], true, false, &mut out)
                .dropped,
            1
        );
        // A new start while a section is short.
        let mut p = vec![0u8];
        p.extend_from_slice(&section(0, 300, 0)[..100]);
        s.push(&p, true, false, &mut out);
        let o = s.push(&[0, 0xff], true, false, &mut out);
        assert_eq!(o.dropped, 1);
        assert!(out.is_empty());
        assert!(s.push(&[], true, false, &mut out).dropped == 0);
    }
}
