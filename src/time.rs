//! Integer media time: [`Timescale`], [`Timestamp`] and [`Rollover`].
//!
//! Time is never `f64` inside the crate. A [`Timestamp`] is a tick count with the
//! [`Timescale`] it counts in; rescaling is exact integer maths with an explicit
//! [`Rounding`]. Wire clocks that wrap (RTMP/FLV 32-bit milliseconds, MPEG-TS 33-bit
//! 90 kHz) are unwrapped to 64 bits once, at the ingest edge, by a [`Rollover`].
//!
//! ```
//! use strom::time::{Rollover, Rounding, Timescale, Timestamp};
//! let t = Timestamp::new(1001, Timescale::new(30000).unwrap());
//! assert_eq!(t.rescale(Timescale::MPEG, Rounding::Nearest).ticks(), 3003);
//!
//! let mut clock = Rollover::new(33);
//! assert_eq!(clock.unwrap((1 << 33) - 10), (1 << 33) - 10);
//! assert_eq!(clock.unwrap(5), (1 << 33) + 5); // wrapped forward
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::num::NonZeroU32;

/// Ticks per second of a clock. Never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timescale(NonZeroU32);

impl Timescale {
    /// 1 000 ticks per second: RTMP and FLV timestamps.
    pub const MILLIS: Timescale = Timescale(NonZeroU32::new(1000).unwrap());
    /// 90 000 ticks per second: MPEG-TS PTS/DTS.
    pub const MPEG: Timescale = Timescale(NonZeroU32::new(90_000).unwrap());
    /// 1 000 000 ticks per second.
    pub const MICROS: Timescale = Timescale(NonZeroU32::new(1_000_000).unwrap());

    /// A timescale of `hz` ticks per second; `None` for zero.
    pub const fn new(hz: u32) -> Option<Self> {
        match NonZeroU32::new(hz) {
            Some(n) => Some(Timescale(n)),
            None => None,
        }
    }
    /// Ticks per second.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for Timescale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1/{}", self.0)
    }
}

/// How [`Timestamp::rescale`] rounds when the result is not a whole tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Towards negative infinity.
    Down,
    /// To the nearest tick, halves away from zero.
    Nearest,
    /// Towards positive infinity.
    Up,
}

/// A point in time (or a duration) as `ticks` of a [`Timescale`].
///
/// Comparison between timestamps of different timescales is exact (cross-multiplied
/// in 128-bit integers). Arithmetic requires equal timescales or rescales the right
/// operand to the left one's scale, rounding to nearest.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp {
    ticks: i64,
    scale: Timescale,
}

/// Rescales `ticks` from `from` to `to` ticks per second: the one place time is rescaled.
pub fn rescale(ticks: i64, from: Timescale, to: Timescale, rounding: Rounding) -> i64 {
    if from == to {
        return ticks;
    }
    let num = ticks as i128 * to.get() as i128;
    let den = from.get() as i128;
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    let out = match rounding {
        Rounding::Down => q,
        Rounding::Up => {
            if r == 0 {
                q
            } else {
                q + 1
            }
        }
        Rounding::Nearest => {
            // Halves away from zero.
            let twice = 2 * r;
            match twice.cmp(&den) {
                Ordering::Greater => q + 1,
                Ordering::Less => q,
                Ordering::Equal => {
                    if num >= 0 {
                        q + 1
                    } else {
                        q
                    }
                }
            }
        }
    };
    out.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

impl Timestamp {
    /// `ticks` of `scale`.
    pub const fn new(ticks: i64, scale: Timescale) -> Self {
        Timestamp { ticks, scale }
    }
    /// Zero in `scale`.
    pub const fn zero(scale: Timescale) -> Self {
        Timestamp { ticks: 0, scale }
    }
    /// Milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp::new(ms, Timescale::MILLIS)
    }
    /// Whole seconds, counted in milliseconds so that sums with ms timestamps stay exact.
    pub const fn from_secs(s: i64) -> Self {
        Timestamp::new(s * 1000, Timescale::MILLIS)
    }
    /// The tick count.
    pub const fn ticks(self) -> i64 {
        self.ticks
    }
    /// The timescale.
    pub const fn scale(self) -> Timescale {
        self.scale
    }
    /// The same instant in another timescale.
    pub fn rescale(self, to: Timescale, rounding: Rounding) -> Timestamp {
        Timestamp::new(rescale(self.ticks, self.scale, to, rounding), to)
    }
    /// Ticks of this instant in `to`, rounded to nearest.
    pub fn ticks_in(self, to: Timescale) -> i64 {
        rescale(self.ticks, self.scale, to, Rounding::Nearest)
    }
    /// Milliseconds, rounded to nearest.
    pub fn as_millis(self) -> i64 {
        self.ticks_in(Timescale::MILLIS)
    }
    /// Seconds as `f64`: only for output text (`#EXTINF`) and logs.
    pub fn as_secs_f64(self) -> f64 {
        self.ticks as f64 / self.scale.get() as f64
    }
    /// `self + other` in `self`'s timescale (`other` rescaled to nearest); also `+`.
    #[allow(clippy::should_implement_trait)] // inherent too, so callers need no `use std::ops`
    pub fn add(self, other: Timestamp) -> Timestamp {
        Timestamp::new(
            self.ticks.saturating_add(other.ticks_in(self.scale)),
            self.scale,
        )
    }
    /// `self - other` in `self`'s timescale (`other` rescaled to nearest); also `-`.
    #[allow(clippy::should_implement_trait)] // inherent too, so callers need no `use std::ops`
    pub fn sub(self, other: Timestamp) -> Timestamp {
        Timestamp::new(
            self.ticks.saturating_sub(other.ticks_in(self.scale)),
            self.scale,
        )
    }
    /// `self + ticks` in `self`'s timescale.
    pub fn add_ticks(self, ticks: i64) -> Timestamp {
        Timestamp::new(self.ticks.saturating_add(ticks), self.scale)
    }
}

impl std::ops::Add for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Timestamp) -> Timestamp {
        Timestamp::add(self, rhs)
    }
}

impl std::ops::Sub for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Timestamp) -> Timestamp {
        Timestamp::sub(self, rhs)
    }
}

/// Hashes the reduced fraction ticks/scale, so that equal instants in different
/// timescales (which compare equal) hash equally.
impl std::hash::Hash for Timestamp {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (mut a, mut b) = (self.ticks.unsigned_abs(), self.scale.get() as u64);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        let g = a.max(1);
        ((self.ticks / g as i64), (self.scale.get() as u64 / g)).hash(state);
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Timestamp {}
impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.scale == other.scale {
            return self.ticks.cmp(&other.ticks);
        }
        let a = self.ticks as i128 * other.scale.get() as i128;
        let b = other.ticks as i128 * self.scale.get() as i128;
        a.cmp(&b)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.ticks, self.scale)
    }
}

/// Unwraps a wrapping wire clock of `bits` bits into a monotonic-ish 64-bit count.
///
/// Each raw value is placed at the candidate (raw + k * 2^bits) nearest to the
/// previous unwrapped value, so both forward wraps and small backward steps (B-frame
/// reordering, out-of-order audio) are handled. Use one `Rollover` per clock, at the
/// ingest edge, exactly once.
#[derive(Debug, Clone)]
pub struct Rollover {
    bits: u32,
    last: Option<i64>,
}

impl Rollover {
    /// A new unwrapper for a `bits`-bit clock (32 for RTMP/FLV ms, 33 for TS 90 kHz).
    ///
    /// # Panics
    /// If `bits` is 0 or greater than 62 (a programming error, not an input error).
    pub fn new(bits: u32) -> Self {
        assert!((1..=62).contains(&bits), "Rollover bits must be 1..=62");
        Rollover { bits, last: None }
    }
    /// The clock width in bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// Forgets history: the next value is taken as-is (after a discontinuity).
    pub fn reset(&mut self) {
        self.last = None;
    }
    /// The unwrapped value of `raw` (only its low `bits` bits are used).
    pub fn unwrap(&mut self, raw: u64) -> i64 {
        let modulus = 1i64 << self.bits;
        let raw = (raw & (modulus as u64 - 1)) as i64;
        let out = match self.last {
            None => raw,
            Some(last) => {
                let base = last - last.rem_euclid(modulus);
                let half = modulus / 2;
                let mut cand = base + raw;
                if cand - last > half {
                    cand -= modulus;
                } else if last - cand > half {
                    cand += modulus;
                }
                cand
            }
        };
        self.last = Some(out);
        out
    }
    /// The last unwrapped value, if any.
    pub fn last(&self) -> Option<i64> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounding() {
        let s3 = Timescale::new(3).unwrap();
        let t = Timestamp::new(1, s3);
        assert_eq!(t.rescale(Timescale::MILLIS, Rounding::Down).ticks(), 333);
        assert_eq!(t.rescale(Timescale::MILLIS, Rounding::Up).ticks(), 334);
        assert_eq!(t.rescale(Timescale::MILLIS, Rounding::Nearest).ticks(), 333);
        let neg = Timestamp::new(-1, s3);
        assert_eq!(neg.rescale(Timescale::MILLIS, Rounding::Down).ticks(), -334);
        assert_eq!(neg.rescale(Timescale::MILLIS, Rounding::Up).ticks(), -333);
        // 29.97 fps frame in 90 kHz is exact.
        let f = Timestamp::new(1001, Timescale::new(30000).unwrap());
        assert_eq!(f.ticks_in(Timescale::MPEG), 3003);
        // Huge values do not overflow.
        let big = Timestamp::new(i64::MAX / 2, Timescale::MILLIS);
        assert_eq!(big.ticks_in(Timescale::MPEG), i64::MAX);
    }

    #[test]
    fn hash_agrees_with_eq() {
        use std::collections::HashSet;
        let mut set = HashSet::new();
        set.insert(Timestamp::from_millis(1000));
        assert!(set.contains(&Timestamp::new(90_000, Timescale::MPEG)));
        assert!(!set.contains(&Timestamp::new(90_001, Timescale::MPEG)));
        assert_eq!(
            Timestamp::from_millis(5) + Timestamp::from_millis(7),
            Timestamp::from_millis(12)
        );
        assert_eq!(
            Timestamp::from_millis(5) - Timestamp::new(900, Timescale::MPEG),
            Timestamp::from_millis(-5)
        );
    }

    #[test]
    fn compare_across_scales() {
        assert_eq!(
            Timestamp::from_millis(1000),
            Timestamp::new(90_000, Timescale::MPEG)
        );
        assert!(Timestamp::from_millis(1001) > Timestamp::new(90_000, Timescale::MPEG));
    }

    #[test]
    fn rollover_32_and_33() {
        let mut r = Rollover::new(32);
        assert_eq!(r.unwrap(u32::MAX as u64 - 5), u32::MAX as i64 - 5);
        assert_eq!(r.unwrap(3), (1i64 << 32) + 3);
        // small step back across the wrap goes back, not forward.
        assert_eq!(r.unwrap(u32::MAX as u64), u32::MAX as i64);
        let mut t = Rollover::new(33);
        let mut prev = 0;
        for i in 0..10_000u64 {
            let v = t.unwrap((i * 3_000_000) & ((1 << 33) - 1));
            assert!(v >= prev);
            assert_eq!(v, (i * 3_000_000) as i64);
            prev = v;
        }
    }
}
