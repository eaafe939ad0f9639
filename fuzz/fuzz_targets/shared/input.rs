//! The fuzz input read as a stream of small numbers, shared by the targets that build
//! structured values from it (`#[path = "shared/input.rs"] mod input;`).
#![allow(dead_code)]

/// Reads the fuzz input as a stream of small numbers; zeros once exhausted.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn i64(&mut self) -> i64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        i64::from_le_bytes(b)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
