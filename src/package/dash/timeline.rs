//! [`SegmentTimeline`]: the `<S t d r>` list of segment times (ISO/IEC 23009-1 §5.3.9.6).

use std::fmt::Write as _;

use crate::error::{Error, Result};

/// One `<S>` element: `r + 1` consecutive segments of duration `d` starting at `t`
/// (ISO/IEC 23009-1 §5.3.9.6, Table 21), in the template's timescale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimelineEntry {
    /// `@t`: start of the first segment of the run, in timescale ticks.
    pub t: u64,
    /// `@d`: duration of every segment of the run, in ticks; never zero.
    pub d: u64,
    /// `@r`: how many more segments of the same duration follow (0 = just one).
    pub r: u64,
}

impl TimelineEntry {
    /// Segments in this run (`r + 1`).
    pub fn count(&self) -> u64 {
        self.r.saturating_add(1)
    }
    /// End of the run: `t + d * (r + 1)`.
    pub fn end(&self) -> u64 {
        self.t.saturating_add(self.d.saturating_mul(self.count()))
    }
}

/// The start times and durations of a representation's segments, run-length compressed
/// (ISO/IEC 23009-1 §5.3.9.6): consecutive segments of equal duration share one `<S>`
/// with `@r`.
///
/// Segments are contiguous: each starts where the previous one ended. A gap or an
/// overlap is an [`Error::usage`]; a live window drops old segments with
/// [`SegmentTimeline::pop_front`].
///
/// ```
/// use strom::package::dash::SegmentTimeline;
/// let mut tl = SegmentTimeline::new();
/// for (t, d) in [(0, 2000), (2000, 2000), (4000, 2000), (6000, 1500)] {
///     tl.push(t, d).unwrap();
/// }
/// assert_eq!(tl.entries().len(), 2);
/// assert_eq!(tl.segments(), 4);
/// assert!(tl.push(9000, 2000).is_err()); // gap after 7500
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentTimeline {
    entries: Vec<TimelineEntry>,
}

impl SegmentTimeline {
    /// An empty timeline.
    pub fn new() -> Self {
        SegmentTimeline::default()
    }

    /// A timeline of `(start, duration)` segments in order (see [`SegmentTimeline::push`]).
    pub fn from_segments(segments: impl IntoIterator<Item = (u64, u64)>) -> Result<Self> {
        let mut tl = SegmentTimeline::new();
        for (n, (t, d)) in segments.into_iter().enumerate() {
            tl.push(t, d)
                .map_err(|e| e.context(format!("segment {n}")))?;
        }
        Ok(tl)
    }

    /// Appends a segment starting at `start` lasting `duration` ticks.
    ///
    /// Errors ([`Error::usage`]): a zero duration; an end beyond `u64`; a start that is
    /// not the previous segment's end (gap or overlap). Nothing changes on error.
    pub fn push(&mut self, start: u64, duration: u64) -> Result<()> {
        if duration == 0 {
            return Err(Error::usage("segment timeline: zero segment duration"));
        }
        if start.checked_add(duration).is_none() {
            return Err(Error::usage("segment timeline: segment end overflows"));
        }
        let Some(last) = self.entries.last_mut() else {
            self.entries.push(TimelineEntry {
                t: start,
                d: duration,
                r: 0,
            });
            return Ok(());
        };
        let end = last.end();
        if start < end {
            return Err(Error::usage(format!(
                "segment timeline: segment at {start} overlaps the previous one ending at {end}"
            )));
        }
        if start > end {
            return Err(Error::usage(format!(
                "segment timeline: gap from {end} to {start}"
            )));
        }
        if last.d == duration {
            last.r += 1;
        } else {
            self.entries.push(TimelineEntry {
                t: start,
                d: duration,
                r: 0,
            });
        }
        Ok(())
    }

    /// Removes the oldest segment and returns its `(start, duration)`: the live window
    /// moves on (the `@startNumber` of a `$Number$` template must move with it).
    pub fn pop_front(&mut self) -> Option<(u64, u64)> {
        let first = self.entries.first_mut()?;
        let out = (first.t, first.d);
        if first.r == 0 {
            self.entries.remove(0);
        } else {
            first.r -= 1;
            first.t += first.d;
        }
        Some(out)
    }

    /// The `<S>` runs, oldest first.
    pub fn entries(&self) -> &[TimelineEntry] {
        &self.entries
    }

    /// Number of segments listed.
    pub fn segments(&self) -> u64 {
        self.entries
            .iter()
            .fold(0u64, |n, e| n.saturating_add(e.count()))
    }

    /// True when no segment is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Start of the first segment, in ticks.
    pub fn start(&self) -> Option<u64> {
        self.entries.first().map(|e| e.t)
    }

    /// End of the last segment, in ticks.
    pub fn end(&self) -> Option<u64> {
        self.entries.last().map(TimelineEntry::end)
    }

    /// The longest segment duration, in ticks.
    pub fn max_duration(&self) -> Option<u64> {
        self.entries.iter().map(|e| e.d).max()
    }

    /// Appends `<SegmentTimeline>` with one `<S>` per run, `indent` spaces deep. `@t` is
    /// written on the first run only (the others follow on, §5.3.9.6.3); `@r` only
    /// when not zero.
    pub(crate) fn write(&self, out: &mut String, indent: usize) {
        let pad = " ".repeat(indent);
        let _ = writeln!(out, "{pad}<SegmentTimeline>");
        for (i, e) in self.entries.iter().enumerate() {
            let _ = write!(out, "{pad}  <S");
            if i == 0 {
                let _ = write!(out, " t=\"{}\"", e.t);
            }
            let _ = write!(out, " d=\"{}\"", e.d);
            if e.r != 0 {
                let _ = write!(out, " r=\"{}\"", e.r);
            }
            out.push_str("/>\n");
        }
        let _ = writeln!(out, "{pad}</SegmentTimeline>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn run_length_compression() {
        let tl = SegmentTimeline::from_segments([
            (100, 2000),
            (2100, 2000),
            (4100, 2000),
            (6100, 1000),
            (7100, 2000),
            (9100, 2000),
        ])
        .unwrap();
        assert_eq!(
            tl.entries(),
            &[
                TimelineEntry {
                    t: 100,
                    d: 2000,
                    r: 2
                },
                TimelineEntry {
                    t: 6100,
                    d: 1000,
                    r: 0
                },
                TimelineEntry {
                    t: 7100,
                    d: 2000,
                    r: 1
                },
            ]
        );
        assert_eq!(tl.segments(), 6);
        assert_eq!(tl.start(), Some(100));
        assert_eq!(tl.end(), Some(11_100));
        assert_eq!(tl.max_duration(), Some(2000));
        let mut s = String::new();
        tl.write(&mut s, 2);
        assert_eq!(
            s,
            "  <SegmentTimeline>\n    <S t=\"100\" d=\"2000\" r=\"2\"/>\n    <S d=\"1000\"/>\n    \
             <S d=\"2000\" r=\"1\"/>\n  </SegmentTimeline>\n"
        );
    }

    #[test]
    fn gaps_overlaps_and_zero_are_errors() {
        let mut tl = SegmentTimeline::from_segments([(0, 10), (10, 10)]).unwrap();
        let before = tl.clone();
        for (t, d) in [(25, 10), (15, 10), (19, 10), (20, 0), (20, u64::MAX)] {
            let e = tl.push(t, d).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{t} {d}");
            assert_eq!(tl, before);
        }
        assert!(tl.push(20, 10).is_ok());
        let e = SegmentTimeline::from_segments([(0, 10), (11, 10)]).unwrap_err();
        assert!(e.to_string().contains("segment 1"), "{e}");
        assert!(e.to_string().contains("gap from 10 to 11"), "{e}");
    }

    #[test]
    fn pop_front_moves_the_window() {
        let mut tl = SegmentTimeline::from_segments([(0, 10), (10, 10), (20, 5)]).unwrap();
        assert_eq!(tl.pop_front(), Some((0, 10)));
        assert_eq!(
            tl.entries(),
            &[
                TimelineEntry { t: 10, d: 10, r: 0 },
                TimelineEntry { t: 20, d: 5, r: 0 }
            ]
        );
        assert_eq!(tl.pop_front(), Some((10, 10)));
        assert_eq!(tl.pop_front(), Some((20, 5)));
        assert!(tl.is_empty());
        assert_eq!(tl.pop_front(), None);
        // An emptied timeline starts again anywhere.
        tl.push(1000, 7).unwrap();
        assert_eq!(tl.start(), Some(1000));
    }
}
