//! [`BandwidthMeter`]: the `BANDWIDTH` and `AVERAGE-BANDWIDTH` of a variant from its
//! segments (RFC 8216bis §4.4.6.2), in integer maths.

use crate::time::Timestamp;

/// Accumulates (segment bytes, segment duration) pairs of one variant.
///
/// * [`BandwidthMeter::peak`]: the largest segment bit rate, `bytes * 8 / duration`
///   rounded up, for `BANDWIDTH` ("the peak segment bit rate", §4.4.6.2).
/// * [`BandwidthMeter::average`]: total bits over total duration, rounded up, for
///   `AVERAGE-BANDWIDTH`.
///
/// Segments of zero duration count towards the totals but not the peak. No floating
/// point: rates are computed in 128-bit integers and saturate at `u64::MAX`.
///
/// ```
/// use strom::package::hls::BandwidthMeter;
/// use strom::time::Timestamp;
/// let mut m = BandwidthMeter::new();
/// m.record(750_000, Timestamp::from_secs(6)); // 1 Mbit/s
/// m.record(300_000, Timestamp::from_secs(2)); // 1.2 Mbit/s
/// assert_eq!(m.peak(), 1_200_000);
/// assert_eq!(m.average(), 1_050_000);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BandwidthMeter {
    peak: u64,
    bytes: u128,
    /// Total duration, in the timescale of the first recorded segment.
    duration: Option<Timestamp>,
    segments: u64,
}

impl BandwidthMeter {
    /// An empty meter: peak and average 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one segment of `bytes` lasting `duration`. Negative durations count as 0.
    pub fn record(&mut self, bytes: u64, duration: Timestamp) {
        let ticks = duration.ticks().max(0);
        if let Some(rate) = bits_per_second(bytes as u128, ticks, duration.scale().get()) {
            self.peak = self.peak.max(rate);
        }
        self.bytes = self.bytes.saturating_add(bytes as u128);
        let d = Timestamp::new(ticks, duration.scale());
        self.duration = Some(self.duration.map_or(d, |total| total.add(d)));
        self.segments = self.segments.saturating_add(1);
    }

    /// Peak segment bit rate in bits per second, rounded up; 0 before any segment
    /// with a positive duration.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// Average bit rate over all recorded segments in bits per second, rounded up;
    /// 0 while the total duration is zero.
    pub fn average(&self) -> u64 {
        self.duration
            .and_then(|d| bits_per_second(self.bytes, d.ticks(), d.scale().get()))
            .unwrap_or(0)
    }

    /// Segments recorded.
    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// Total bytes recorded.
    pub fn total_bytes(&self) -> u128 {
        self.bytes
    }
}

/// `ceil(bytes * 8 * scale / ticks)`, `None` for a non-positive duration.
fn bits_per_second(bytes: u128, ticks: i64, scale: u32) -> Option<u64> {
    if ticks <= 0 {
        return None;
    }
    let num = bytes.saturating_mul(8).saturating_mul(scale as u128);
    let den = ticks as u128;
    Some(u64::try_from(num.div_ceil(den)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timescale;

    #[test]
    fn peak_and_average_round_up() {
        let mut m = BandwidthMeter::new();
        assert_eq!((m.peak(), m.average()), (0, 0));
        // 1001 bytes over 3 s = 2669.33 bit/s -> 2670.
        m.record(1001, Timestamp::from_secs(3));
        assert_eq!((m.peak(), m.average()), (2670, 2670));
        // 6.006 s at 90 kHz: 1_000_000 bytes -> 1_332_001.33 -> 1_332_002.
        m.record(1_000_000, Timestamp::new(540_540, Timescale::MPEG));
        assert_eq!(m.peak(), 1_332_002);
        // (1_001_001 * 8) / 9.006 s = 889_185.87 -> 889_186.
        assert_eq!(m.average(), 889_186);
        // Zero and negative durations: counted in totals, not in the peak.
        m.record(5_000_000, Timestamp::from_millis(0));
        m.record(1, Timestamp::from_millis(-5));
        assert_eq!(m.peak(), 1_332_002);
        assert_eq!(m.segments(), 4);
        assert_eq!(m.total_bytes(), 6_001_002);
        assert_eq!(m.average(), (6_001_002u64 * 8 * 1000).div_ceil(9006));
        // Absurd sizes saturate instead of overflowing.
        m.record(u64::MAX, Timestamp::new(1, Timescale::MPEG));
        assert_eq!(m.peak(), u64::MAX);
    }
}
