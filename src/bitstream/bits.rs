//! MSB-first bit reader over RBSP bytes, with Exp-Golomb codes (H.264 §9.1).

use crate::error::{Error, Result};

/// Reads bits MSB-first from a byte slice. Reading past the end is an error, not a panic.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize, // in bits
}

const EOD: &str = "bitstream ended early";

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }
    /// Bits left.
    pub fn remaining(&self) -> usize {
        self.data.len() * 8 - self.pos
    }
    /// One bit.
    pub fn bit(&mut self) -> Result<bool> {
        let byte = *self.data.get(self.pos / 8).ok_or(Error::malformed(EOD))?;
        let b = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(b == 1)
    }
    /// `n` bits (n <= 64) as an unsigned integer.
    pub fn bits(&mut self, n: u32) -> Result<u64> {
        if n > 64 {
            return Err(Error::usage("BitReader::bits reads at most 64 bits"));
        }
        if self.remaining() < n as usize {
            return Err(Error::malformed(EOD));
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | self.bit()? as u64;
        }
        Ok(v)
    }
    /// `n` bits (n <= 32) as `u32`.
    pub fn u32(&mut self, n: u32) -> Result<u32> {
        if n > 32 {
            return Err(Error::usage("BitReader::u32 reads at most 32 bits"));
        }
        Ok(self.bits(n)? as u32)
    }
    /// Skips `n` bits.
    pub fn skip(&mut self, n: usize) -> Result<()> {
        if self.remaining() < n {
            return Err(Error::malformed(EOD));
        }
        self.pos += n;
        Ok(())
    }
    /// Unsigned Exp-Golomb `ue(v)`, up to 32 bits of value.
    pub fn ue(&mut self) -> Result<u32> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::malformed("Exp-Golomb code longer than 32 bits"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + rest) as u32)
    }
    /// Signed Exp-Golomb `se(v)`.
    pub fn se(&mut self) -> Result<i32> {
        let k = self.ue()? as i64;
        Ok(if k % 2 == 1 {
            ((k + 1) / 2) as i32
        } else {
            (-(k / 2)) as i32
        })
    }
}

/// Removes emulation prevention bytes (`00 00 03` -> `00 00`) from a NAL unit payload.
pub fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 -> 0,1,2,3,4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        let v: Vec<u32> = (0..5).map(|_| r.ue().unwrap()).collect();
        assert_eq!(v, vec![0, 1, 2, 3, 4]);
        let mut r = BitReader::new(&[0b0100_1100]);
        assert_eq!(r.se().unwrap(), 1);
        assert_eq!(r.se().unwrap(), -1);
        assert!(BitReader::new(&[0, 0, 0, 0, 0]).ue().is_err());
        assert!(BitReader::new(&[]).bit().is_err());
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
