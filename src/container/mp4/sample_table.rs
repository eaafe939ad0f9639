//! The sample table of one track (ISO/IEC 14496-12 §8.6–§8.7), kept in its run-length
//! form and walked by a [`Cursor`] in O(1) per sample.
//!
//! Memory per track is the tables themselves: one `u32` per sample for `stsz` (none
//! when all samples have one size), a few bytes per run of `stts`, `ctts`, `stsc` and
//! per chunk offset. No per-sample heap allocation happens while walking.

use crate::error::{Error, Result};

/// A run of samples with one duration (`stts`, §8.6.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeRun {
    pub count: u32,
    pub delta: u32,
}

/// A run of samples with one composition offset (`ctts`, §8.6.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetRun {
    pub count: u32,
    pub offset: i32,
}

/// A `stsc` entry (§8.7.4) with `first_chunk` made 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRun {
    pub first_chunk: u32,
    pub samples_per_chunk: u32,
}

/// Sample sizes (`stsz`, §8.7.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sizes {
    /// Every sample has this size.
    Constant(u32),
    /// One size per sample.
    Table(Vec<u32>),
}

/// Limits applied while building a table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TableLimits {
    pub max_samples: u32,
    pub max_sample_size: u32,
    pub file_size: u64,
}

/// The entries of a track's sample table boxes, before validation.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableParts {
    /// `stts` runs.
    pub stts: Vec<TimeRun>,
    /// `ctts` runs; version 0 offsets already read as signed 32-bit (as FFmpeg does).
    pub ctts: Vec<OffsetRun>,
    /// `stsc` entries, `first_chunk` 0-based.
    pub stsc: Vec<ChunkRun>,
    /// `stco` or `co64` offsets.
    pub chunk_offsets: Vec<u64>,
    /// `stsz` sizes.
    pub sizes: Sizes,
    /// `stsz` sample count.
    pub sample_count: u32,
    /// `stss` sample numbers (1-based), any order; `None` without `stss`.
    pub sync: Option<Vec<u32>>,
}

/// A validated sample table.
#[derive(Debug, Clone)]
pub(crate) struct SampleTable {
    count: u32,
    stts: Vec<TimeRun>,
    ctts: Vec<OffsetRun>,
    stsc: Vec<ChunkRun>,
    chunk_offsets: Vec<u64>,
    sizes: Sizes,
    /// Sorted, deduplicated 1-based sync sample numbers; `None`: every sample is sync.
    sync: Option<Vec<u32>>,
}

/// One sample as the cursor yields it. Times are raw media ticks (no edit shift).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// 0-based sample index.
    pub index: u32,
    /// Absolute file offset of the first byte.
    pub offset: u64,
    /// Size in bytes.
    pub size: u32,
    /// Decode time: sum of the `stts` deltas before this sample.
    pub dts: i64,
    /// Composition offset (`ctts`), 0 without `ctts`.
    pub cts: i32,
    /// `stts` delta of this sample.
    pub duration: u32,
    /// A sync sample (`stss`; every sample without `stss`).
    pub sync: bool,
    /// 0-based chunk index.
    pub chunk: u32,
    /// Samples of the same chunk that follow this one.
    pub left_in_chunk: u32,
}

/// Walk position in a [`SampleTable`]: small and `Copy`, so planning code can look ahead.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cursor {
    sample: u32,
    stts_i: usize,
    stts_left: u32,
    ctts_i: usize,
    ctts_left: u32,
    stsc_i: usize,
    /// Current chunk; `u32::MAX` before the first.
    chunk: u32,
    chunk_left: u32,
    offset: u64,
    dts: u64,
    sync_i: usize,
}

fn bad(msg: &'static str) -> Error {
    Error::malformed(msg)
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes::Table(Vec::new())
    }
}

impl SampleTable {
    /// Builds and validates a table from its boxes' entries.
    pub fn new(parts: TableParts, limits: TableLimits) -> Result<Self> {
        let TableParts {
            stts,
            ctts,
            stsc,
            chunk_offsets,
            sizes,
            sample_count,
            sync,
        } = parts;
        if sample_count > limits.max_samples {
            return Err(Error::limit("sample count exceeds the per-track limit"));
        }
        if let Sizes::Table(t) = &sizes {
            if t.len() != sample_count as usize {
                return Err(bad("stsz table length differs from its sample count"));
            }
        }
        if chunk_offsets.len() > limits.max_samples as usize {
            return Err(Error::limit("chunk count exceeds the per-track limit"));
        }
        let timed: u64 = stts.iter().map(|r| u64::from(r.count)).sum();
        if timed > u64::from(limits.max_samples) {
            return Err(Error::limit(
                "stts sample count exceeds the per-track limit",
            ));
        }
        if timed < u64::from(sample_count) {
            return Err(bad("stts describes fewer samples than stsz"));
        }
        if timed > u64::from(sample_count) {
            tracing::debug!(
                timed,
                sample_count,
                "stts describes more samples than stsz; extra ignored"
            );
        }
        // stsc: first chunks strictly increasing from chunk 0; every chunk holds samples.
        let chunks = chunk_offsets.len() as u64;
        let mut held: u64 = 0;
        for (i, run) in stsc.iter().enumerate() {
            if i == 0 && run.first_chunk != 0 {
                return Err(bad("first stsc entry does not start at chunk 1"));
            }
            if run.samples_per_chunk == 0 {
                return Err(bad("stsc entry with zero samples per chunk"));
            }
            let next = match stsc.get(i + 1) {
                Some(n) if n.first_chunk <= run.first_chunk => {
                    return Err(bad("stsc first_chunk values not increasing"));
                }
                Some(n) => u64::from(n.first_chunk),
                None => chunks,
            };
            let span = next.min(chunks).saturating_sub(u64::from(run.first_chunk));
            held = held.saturating_add(span.saturating_mul(u64::from(run.samples_per_chunk)));
        }
        if held < u64::from(sample_count) {
            return Err(bad("chunks hold fewer samples than the sample table lists"));
        }
        let sync = sync.map(|mut s| {
            s.sort_unstable();
            s.dedup();
            s
        });
        let table = SampleTable {
            count: sample_count,
            stts,
            ctts,
            stsc,
            chunk_offsets,
            sizes,
            sync,
        };
        table.validate(limits)?;
        Ok(table)
    }

    /// Walks every sample once: offsets and sizes inside the file, times in range.
    fn validate(&self, limits: TableLimits) -> Result<()> {
        let mut c = self.cursor();
        while let Some(s) = self
            .next(&mut c)
            .map_err(|e| e.context(format!("sample {}", c.sample + 1)))?
        {
            if s.size > limits.max_sample_size {
                return Err(Error::limit("sample larger than the sample size limit")
                    .context(format!("sample {}", s.index + 1)));
            }
            let end = s.offset.checked_add(u64::from(s.size));
            if end.is_none_or(|e| e > limits.file_size) {
                return Err(
                    Error::malformed("sample data lies past the end of the file")
                        .at_offset(s.offset)
                        .context(format!("sample {}", s.index + 1)),
                );
            }
        }
        Ok(())
    }

    /// Heap bytes held by the table.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let sizes = match &self.sizes {
            Sizes::Constant(_) => 0,
            Sizes::Table(t) => t.capacity() * 4,
        };
        sizes
            + self.stts.capacity() * size_of::<TimeRun>()
            + self.ctts.capacity() * size_of::<OffsetRun>()
            + self.stsc.capacity() * size_of::<ChunkRun>()
            + self.chunk_offsets.capacity() * 8
            + self.sync.as_ref().map_or(0, |s| s.capacity() * 4)
    }

    /// Number of samples.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Size of sample `index` (0-based), 0 past the end.
    pub fn size_of(&self, index: u32) -> u32 {
        match &self.sizes {
            Sizes::Constant(s) => {
                if index < self.count {
                    *s
                } else {
                    0
                }
            }
            Sizes::Table(t) => t.get(index as usize).copied().unwrap_or(0),
        }
    }

    /// A cursor before the first sample.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            stts_left: self.stts.first().map_or(0, |r| r.count),
            ctts_left: self.ctts.first().map_or(0, |r| r.count),
            chunk: u32::MAX,
            ..Cursor::default()
        }
    }

    /// The sample at `c`, advancing `c`; `None` after the last.
    pub fn next(&self, c: &mut Cursor) -> Result<Option<Sample>> {
        if c.sample >= self.count {
            return Ok(None);
        }
        while c.stts_left == 0 {
            c.stts_i += 1;
            c.stts_left = self
                .stts
                .get(c.stts_i)
                .ok_or_else(|| bad("stts ended early"))?
                .count;
        }
        let delta = self.stts.get(c.stts_i).map_or(0, |r| r.delta);
        while c.ctts_left == 0 && c.ctts_i < self.ctts.len() {
            c.ctts_i += 1;
            c.ctts_left = self.ctts.get(c.ctts_i).map_or(0, |r| r.count);
        }
        let cts = match self.ctts.get(c.ctts_i) {
            Some(r) if c.ctts_left > 0 => r.offset,
            _ => 0,
        };
        while c.chunk_left == 0 {
            let chunk = c.chunk.wrapping_add(1);
            let offset = *self
                .chunk_offsets
                .get(chunk as usize)
                .ok_or_else(|| bad("sample lies past the last chunk"))?;
            if let Some(n) = self.stsc.get(c.stsc_i + 1) {
                if n.first_chunk == chunk {
                    c.stsc_i += 1;
                }
            }
            let run = self
                .stsc
                .get(c.stsc_i)
                .ok_or_else(|| bad("stsc is empty"))?;
            c.chunk = chunk;
            c.chunk_left = run.samples_per_chunk;
            c.offset = offset;
        }
        let size = self.size_of(c.sample);
        let sync = match &self.sync {
            None => true,
            Some(s) => {
                let number = c.sample + 1;
                while s.get(c.sync_i).is_some_and(|&n| n < number) {
                    c.sync_i += 1;
                }
                s.get(c.sync_i) == Some(&number)
            }
        };
        let dts = i64::try_from(c.dts).map_err(|_| bad("decode time overflows"))?;
        let sample = Sample {
            index: c.sample,
            offset: c.offset,
            size,
            dts,
            cts,
            duration: delta,
            sync,
            chunk: c.chunk,
            // A chunk may claim more samples than the track has left (stsc ranges past
            // the last sample are tolerated): count only real ones.
            left_in_chunk: (c.chunk_left - 1).min(self.count - c.sample - 1),
        };
        c.offset = c
            .offset
            .checked_add(u64::from(size))
            .ok_or_else(|| bad("sample offset overflows"))?;
        c.dts = c
            .dts
            .checked_add(u64::from(delta))
            .ok_or_else(|| bad("decode time overflows"))?;
        c.chunk_left -= 1;
        c.stts_left -= 1;
        c.ctts_left = c.ctts_left.saturating_sub(1);
        c.sample += 1;
        Ok(Some(sample))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> TableLimits {
        TableLimits {
            max_samples: 1000,
            max_sample_size: 1 << 20,
            file_size: 10_000,
        }
    }

    fn run(count: u32, delta: u32) -> TimeRun {
        TimeRun { count, delta }
    }

    fn chunks(first_chunk: u32, samples_per_chunk: u32) -> ChunkRun {
        ChunkRun {
            first_chunk,
            samples_per_chunk,
        }
    }

    fn table() -> SampleTable {
        let parts = TableParts {
            stts: vec![run(2, 10), run(0, 99), run(3, 20)],
            ctts: vec![
                OffsetRun {
                    count: 1,
                    offset: 20,
                },
                OffsetRun {
                    count: 2,
                    offset: -10,
                },
            ],
            stsc: vec![chunks(0, 2), chunks(1, 3)],
            chunk_offsets: vec![100, 1000],
            sizes: Sizes::Table(vec![5, 6, 7, 8, 9]),
            sample_count: 5,
            sync: Some(vec![4, 1, 4]),
        };
        SampleTable::new(parts, limits()).unwrap()
    }

    #[test]
    fn walks_runs() {
        let t = table();
        let mut c = t.cursor();
        let mut got = Vec::new();
        while let Some(s) = t.next(&mut c).unwrap() {
            got.push((
                s.offset,
                s.size,
                s.dts,
                s.cts,
                s.duration,
                s.sync,
                s.chunk,
                s.left_in_chunk,
            ));
        }
        assert_eq!(
            got,
            vec![
                (100, 5, 0, 20, 10, true, 0, 1),
                (105, 6, 10, -10, 10, false, 0, 0),
                (1000, 7, 20, -10, 20, false, 1, 2),
                (1007, 8, 40, 0, 20, true, 1, 1),
                (1015, 9, 60, 0, 20, false, 1, 0),
            ]
        );
        assert_eq!(t.len(), 5);
        assert_eq!(t.size_of(4), 9);
        assert_eq!(t.size_of(5), 0);
        // Exhausted cursors stay exhausted.
        assert_eq!(t.next(&mut c).unwrap(), None);
    }

    #[test]
    fn chunk_claiming_more_samples_than_the_track() {
        let parts = TableParts {
            stts: vec![run(3, 1)],
            stsc: vec![chunks(0, u32::MAX)],
            chunk_offsets: vec![0],
            sizes: Sizes::Constant(2),
            sample_count: 3,
            ..TableParts::default()
        };
        let t = SampleTable::new(parts, limits()).unwrap();
        let mut c = t.cursor();
        let left: Vec<u32> = std::iter::from_fn(|| t.next(&mut c).unwrap())
            .map(|s| s.left_in_chunk)
            .collect();
        assert_eq!(left, vec![2, 1, 0]);
    }

    #[test]
    fn rejects_inconsistent_tables() {
        let mk = |stsc: Vec<ChunkRun>, chunk_offsets: Vec<u64>, count: u32, file_size: u64| {
            let parts = TableParts {
                stts: vec![run(count, 1)],
                stsc,
                chunk_offsets,
                sizes: Sizes::Constant(10),
                sample_count: count,
                ..TableParts::default()
            };
            SampleTable::new(
                parts,
                TableLimits {
                    file_size,
                    ..limits()
                },
            )
        };
        let one = |spc| vec![chunks(0, spc)];
        assert!(mk(one(2), vec![0, 20], 4, 100).is_ok());
        // Chunks hold 4 samples, the table lists 5.
        assert!(mk(one(2), vec![0, 20], 5, 100).is_err());
        // Last sample ends at 40 > 39.
        let e = mk(one(2), vec![0, 20], 4, 39).unwrap_err();
        assert!(e.to_string().contains("sample 4"), "{e}");
        assert!(mk(one(0), vec![0, 20], 4, 100).is_err());
        assert!(mk(vec![chunks(1, 2)], vec![0, 20], 2, 100).is_err());
        assert!(mk(vec![chunks(0, 1), chunks(0, 1)], vec![0, 20], 2, 100).is_err());
        let e = mk(one(2), vec![0, 20], 2000, 100_000).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Limit);
        // Offset + size overflows u64.
        assert!(mk(one(1), vec![u64::MAX - 2], 1, u64::MAX).is_err());
        // stts shorter than stsz.
        let parts = TableParts {
            stts: vec![run(1, 1)],
            stsc: one(2),
            chunk_offsets: vec![0],
            sizes: Sizes::Constant(1),
            sample_count: 2,
            ..TableParts::default()
        };
        assert!(SampleTable::new(parts, limits()).is_err());
    }
}
