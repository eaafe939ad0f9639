//! SCTE 35 sections on the program's cue PIDs (SCTE 35 §8.1, §9.6) to [`Event::Cue`].

use bytes::Bytes;
use tracing::debug;

use super::TsDemuxer;
use crate::media::{Event, Item};
use crate::scte35::{unwrap_pts, CueSignal, SpliceInfo};
use crate::time::{Timescale, Timestamp};

impl TsDemuxer {
    /// One whole section from a SCTE 35 PID.
    pub(super) fn on_cue_section(&mut self, section: Bytes) {
        self.stats.cue_sections += 1;
        let info = match SpliceInfo::parse(section) {
            Ok(info) => info,
            Err(e) => {
                self.stats.cue_errors += 1;
                debug!(error = %e, "ts demuxer: bad SCTE 35 section");
                return;
            }
        };
        let Some(signal) = info.signal() else {
            return; // splice_null, bandwidth reservation, a time_signal without a break...
        };
        match self.clock.reference() {
            Some(reference) => self.emit_cue(&signal, info.raw, reference),
            None if self.pending_cues.len() < self.opts.max_pending_cues => {
                self.pending_cues.push((signal, info.raw));
            }
            None => self.stats.cue_errors += 1,
        }
    }

    /// Places a cue next to `reference` (the last video PTS) and queues it.
    fn emit_cue(&mut self, signal: &CueSignal, raw: Bytes, reference: i64) {
        let at = signal.pts.map_or(reference, |p| unwrap_pts(p, reference));
        let cue = signal.to_cue(Timestamp::new(at, Timescale::MPEG), raw);
        self.stats.cues += 1;
        self.out.push_back(Ok(Item::Event(Event::Cue(cue))));
    }

    /// Cues that arrived before any PTS, placed once one is known.
    pub(super) fn release_cues(&mut self) {
        if self.pending_cues.is_empty() {
            return;
        }
        let Some(reference) = self.clock.reference() else {
            return;
        };
        for (signal, raw) in std::mem::take(&mut self.pending_cues) {
            self.emit_cue(&signal, raw, reference);
        }
    }

    /// End of input: cues that never got a time are dropped.
    pub(super) fn drop_pending_cues(&mut self) {
        self.stats.cue_errors += self.pending_cues.len() as u64;
        self.pending_cues.clear();
    }
}
