//! An MSB-first bit reader over a NAL unit as stored (escaped): emulation prevention
//! bytes (`00 00 03`, ITU-T H.264 §7.4.1, H.265 §7.4.2) are skipped while reading, and
//! the position is reported both in stored bytes (what subsample encryption counts) and
//! in RBSP bits (what the syntax tables count).

use crate::error::{Error, Result};

const EOD: &str = "slice header runs past the end of the NAL unit";

/// Reads the RBSP of an escaped NAL unit, from a byte offset, without copying it.
#[derive(Debug, Clone)]
pub(crate) struct EscapedBits<'a> {
    data: &'a [u8],
    /// Stored byte holding the next bit.
    pos: usize,
    /// Next bit within it (0 = MSB).
    bit: u8,
    /// Consecutive zero bytes read before `pos` (for emulation prevention).
    zeros: u8,
    /// End (exclusive) of the last stored byte a bit was read from.
    last: usize,
    /// RBSP bits read.
    read: usize,
}

impl<'a> EscapedBits<'a> {
    /// A reader at stored byte `from` of `nal` (past the NAL unit header).
    pub(crate) fn new(nal: &'a [u8], from: usize) -> Self {
        EscapedBits {
            data: nal,
            pos: from,
            bit: 0,
            zeros: 0,
            last: from,
            read: 0,
        }
    }

    /// One bit.
    pub(crate) fn bit(&mut self) -> Result<bool> {
        if self.bit == 0 && self.zeros >= 2 && self.data.get(self.pos) == Some(&3) {
            // emulation_prevention_three_byte: not part of the RBSP.
            self.pos += 1;
            self.zeros = 0;
        }
        let byte = *self.data.get(self.pos).ok_or(Error::malformed(EOD))?;
        let b = (byte >> (7 - self.bit)) & 1;
        self.last = self.pos + 1;
        self.read += 1;
        self.bit += 1;
        if self.bit == 8 {
            self.bit = 0;
            self.pos += 1;
            self.zeros = if byte == 0 {
                self.zeros.saturating_add(1)
            } else {
                0
            };
        }
        Ok(b == 1)
    }

    /// `n` bits (n <= 32) as an unsigned integer.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32> {
        if n > 32 {
            return Err(Error::malformed("syntax element wider than 32 bits"));
        }
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Ok(v)
    }

    /// Skips `n` bits.
    pub(crate) fn skip(&mut self, n: usize) -> Result<()> {
        for _ in 0..n {
            self.bit()?;
        }
        Ok(())
    }

    /// Unsigned Exp-Golomb `ue(v)` (§9.1), values up to 2^32 - 2.
    pub(crate) fn ue(&mut self) -> Result<u32> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::malformed("Exp-Golomb code longer than 32 bits"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// `ue(v)` that must not exceed `max`.
    pub(crate) fn ue_max(&mut self, max: u32, what: &'static str) -> Result<u32> {
        let v = self.ue()?;
        if v > max {
            return Err(Error::malformed(what));
        }
        Ok(v)
    }

    /// Signed Exp-Golomb `se(v)` (§9.1.1).
    pub(crate) fn se(&mut self) -> Result<i32> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 {
            ((k + 1) / 2) as i32
        } else {
            (-(k / 2)) as i32
        })
    }

    /// Whether the next bit is the first of a byte.
    pub(crate) fn byte_aligned(&self) -> bool {
        self.bit == 0
    }

    /// Stored bytes from the start of the NAL unit up to and including the byte holding
    /// the last bit read (a partly read byte counts whole; emulation prevention bytes
    /// inside count, one right after the last bit read does not).
    pub(crate) fn stored_len(&self) -> usize {
        self.last
    }

    /// RBSP bits read since the reader started.
    #[allow(dead_code)] // unit tests
    pub(crate) fn rbsp_bits(&self) -> usize {
        self.read
    }
}

/// `Ceil(Log2(n))` for n >= 1 (0 for n <= 1).
pub(crate) fn ceil_log2(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_emulation_prevention_and_counts_stored_bytes() {
        // header 0x65, then 00 00 03 01 ...: RBSP 00 00 01.
        let nal = [0x65, 0x00, 0x00, 0x03, 0x01, 0xff];
        let mut r = EscapedBits::new(&nal, 1);
        assert_eq!(r.stored_len(), 1);
        assert_eq!(r.bits(16).unwrap(), 0);
        // At a byte boundary before the 03: the 03 is not counted as read.
        assert_eq!(r.stored_len(), 3);
        assert_eq!(r.rbsp_bits(), 16);
        assert_eq!(r.bits(8).unwrap(), 1);
        assert_eq!(r.stored_len(), 5);
        assert_eq!(r.rbsp_bits(), 24);
        assert!(r.bit().unwrap());
        assert_eq!(r.stored_len(), 6);
        assert_eq!(r.rbsp_bits(), 25);
        assert!(r.skip(8).is_err());
    }

    #[test]
    fn exp_golomb_and_limits() {
        // 1 | 010 | 011 | 00100 -> 0, 1, 2, 3; se: 010 -> 1, 011 -> -1
        let nal = [0xff, 0b1010_0110, 0b0100_0100, 0b1100_0000];
        let mut r = EscapedBits::new(&nal, 1);
        let v: Vec<u32> = (0..4).map(|_| r.ue().unwrap()).collect();
        assert_eq!(v, [0, 1, 2, 3]);
        assert_eq!(r.se().unwrap(), 1);
        assert_eq!(r.se().unwrap(), -1);
        assert!(EscapedBits::new(&[0, 0, 0, 0, 0], 0).ue().is_err());
        assert!(EscapedBits::new(&[0x20], 0).ue_max(0, "too big").is_err());
        assert_eq!(ceil_log2(1), 0);
        assert_eq!(ceil_log2(2), 1);
        assert_eq!(ceil_log2(3), 2);
        assert_eq!(ceil_log2(4), 2);
        assert_eq!(ceil_log2(5), 3);
        assert!(EscapedBits::new(&[0xff; 8], 0).bits(33).is_err());
        assert!(EscapedBits::new(&[0xff; 8], 0).byte_aligned());
    }
}
