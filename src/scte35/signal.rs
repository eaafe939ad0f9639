//! What a section means for ad insertion ([`CueSignal`]), the 33-bit clock unwrap, and
//! section builders for operators and tests.

use bytes::Bytes;

use super::command::{BreakDuration, SpliceCommand, SpliceInsert};
use super::descriptor::{SegmentationDescriptor, SpliceDescriptor};
use super::SpliceInfo;
use crate::media::{CueKind, SpliceCue};
use crate::time::{Timescale, Timestamp};
use crate::Result;

/// 2^33: the modulus of every 33-bit 90 kHz field (`pts_time`, `pts_adjustment`).
pub const PTS_MODULUS: u64 = 1 << 33;

/// The largest 33-bit value.
pub const PTS_MAX: u64 = PTS_MODULUS - 1;

/// `tier` value that downstream equipment ignores (SCTE 35 §9.6.1); the builders use it.
pub const TIER_IGNORE: u16 = 0x0FFF;

/// What a section means for ad insertion, before it is placed on a stream's timeline.
///
/// Built by [`SpliceInfo::signal`]; placed with [`CueSignal::to_cue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CueSignal {
    /// `splice_event_id` (splice_insert) or `segmentation_event_id` (time_signal).
    pub id: u32,
    /// Out (a break starts), In (it ends) or Other (a cancel, whose kind is not on
    /// the wire).
    pub kind: CueKind,
    /// Splice time in 90 kHz, `pts_adjustment` already added, modulo 2^33; `None` =
    /// immediate.
    pub pts: Option<u64>,
    /// Planned duration in 90 kHz ticks (`break_duration` or `segmentation_duration`).
    pub duration: Option<u64>,
    /// `segmentation_type_id` when the signal came from a segmentation descriptor.
    pub segmentation_type: Option<u8>,
    /// The event with `id` is withdrawn (`splice_event_cancel_indicator` or
    /// `segmentation_event_cancel_indicator`).
    pub cancel: bool,
}

impl CueSignal {
    /// Places the signal on a stream timeline.
    ///
    /// `at` is the splice time the ingest mapped `pts` to (after [`unwrap_pts`] and
    /// its own timeline offset), or the arrival time for an immediate cue (`pts` is
    /// `None`). The [`SpliceCue`] keeps `raw` (the section, for pass-through), the
    /// duration as a 90 kHz [`Timestamp`], the segmentation type and the cancel flag,
    /// and is marked immediate when `pts` is `None`.
    pub fn to_cue(&self, at: Timestamp, raw: Bytes) -> SpliceCue {
        let duration = self.duration.map(|d| {
            // 40-bit at most from the wire; saturate anything a caller put beyond i64.
            Timestamp::new(i64::try_from(d).unwrap_or(i64::MAX), Timescale::MPEG)
        });
        let mut cue = SpliceCue::new(self.id, self.kind, at, duration).with_raw(raw);
        if let Some(t) = self.segmentation_type {
            cue = cue.with_segmentation_type(t);
        }
        if self.cancel {
            cue = cue.cancelled();
        }
        if self.pts.is_none() {
            cue = cue.immediate();
        }
        cue
    }
}

/// `pts_time + pts_adjustment` modulo 2^33 (SCTE 35 §9.6.1: the carry is ignored).
pub fn adjust_pts(pts_time: u64, pts_adjustment: u64) -> u64 {
    (pts_time & PTS_MAX).wrapping_add(pts_adjustment & PTS_MAX) & PTS_MAX
}

/// Unwraps a 33-bit 90 kHz time to the value nearest `reference` (unwrapped 90 kHz
/// ticks).
///
/// Returns the `x` with `x ≡ pts33 (mod 2^33)` (only the low 33 bits of `pts33` are
/// used) that is nearest to `reference`; at exactly 2^32 on either side, the later
/// one. The ingest calls it once per cue with the unwrapped time of the stream it
/// rides on, so a splice time a few seconds ahead of a wrap lands after it. If the
/// nearest value does not fit an `i64` (a reference within 2^32 of the `i64` range
/// ends), the other neighbour is returned.
pub fn unwrap_pts(pts33: u64, reference: i64) -> i64 {
    let m = PTS_MODULUS as i128;
    let half = m / 2;
    let r = i128::from(reference);
    let p = i128::from(pts33 & PTS_MAX);
    // Candidate in the same 2^33 period as the reference, then the nearer neighbour:
    // the result lies in (r - half, r + half].
    let mut x = r - r.rem_euclid(m) + p;
    if x - r > half {
        x -= m;
    } else if r - x >= half {
        x += m;
    }
    match i64::try_from(x) {
        Ok(v) => v,
        // Out of range: step back towards the reference (always in range then).
        Err(_) => {
            let other = if x > r { x - m } else { x + m };
            i64::try_from(other).unwrap_or(reference)
        }
    }
}

impl SpliceInfo {
    /// The ad signal this section carries, if any.
    ///
    /// * `splice_insert`: `out_of_network_indicator` 1 is [`CueKind::Out`], 0 is
    ///   [`CueKind::In`]; a cancel is [`CueKind::Other`] with `cancel` set; the time is
    ///   the program splice time (or the first component's), the duration the
    ///   `break_duration`.
    /// * `time_signal`: the first segmentation descriptor that is a cancel or whose
    ///   type starts or ends a break, ad, promo or placement opportunity
    ///   ([`segmentation_kind`](super::segmentation_kind)), with the command's time and
    ///   the descriptor's duration; `None` if there is none.
    /// * every other command (`splice_null`, schedule, encrypted...): `None`.
    ///
    /// `pts` is `pts_time + pts_adjustment` modulo 2^33 (SCTE 35 §9.6.1).
    pub fn signal(&self) -> Option<CueSignal> {
        let adjust = |t: Option<u64>| t.map(|t| adjust_pts(t, self.pts_adjustment));
        match &self.command {
            SpliceCommand::Insert(ins) => Some(CueSignal {
                id: ins.event_id,
                kind: if ins.cancel {
                    CueKind::Other
                } else if ins.out_of_network {
                    CueKind::Out
                } else {
                    CueKind::In
                },
                pts: if ins.cancel {
                    None
                } else {
                    adjust(ins.pts_time())
                },
                duration: ins.break_duration.map(|b| b.ticks),
                segmentation_type: None,
                cancel: ins.cancel,
            }),
            SpliceCommand::TimeSignal { pts_time } => {
                self.descriptors.iter().find_map(|d| match d {
                    SpliceDescriptor::Segmentation(s) if s.cancel || s.kind() != CueKind::Other => {
                        Some(CueSignal {
                            id: s.event_id,
                            kind: s.kind(),
                            pts: adjust(*pts_time),
                            duration: s.duration,
                            segmentation_type: (!s.cancel).then_some(s.type_id),
                            cancel: s.cancel,
                        })
                    }
                    _ => None,
                })
            }
            _ => None,
        }
    }
}

/// Builds a program-mode `splice_insert` section (SCTE 35 §9.7.3) with a fresh CRC,
/// `tier` 0xFFF, `pts_adjustment` 0 and no descriptors.
///
/// `pts` is the splice time in 90 kHz (`None`: `splice_immediate_flag` set), `duration`
/// the `break_duration` in 90 kHz ticks with its `auto_return` flag. Both are taken
/// modulo 2^33, the width of their fields. Never fails: every field is in range (an
/// empty result would mean a codec fault, logged at error level).
pub fn splice_insert_section(
    event_id: u32,
    out_of_network: bool,
    pts: Option<u64>,
    duration: Option<u64>,
    auto_return: bool,
) -> Bytes {
    let mut ins = SpliceInsert::new(event_id, out_of_network);
    ins.immediate = pts.is_none();
    ins.splice_time = pts.map(|p| p & PTS_MAX);
    ins.break_duration = duration.map(|d| BreakDuration {
        auto_return,
        ticks: d & PTS_MAX,
    });
    let mut info = SpliceInfo::new(SpliceCommand::Insert(ins));
    info.tier = TIER_IGNORE;
    // Every field is in range by construction, so the codec does not refuse it; were it
    // to, the cue goes on without bytes rather than bringing the stream down.
    info.encode().unwrap_or_else(|e| {
        tracing::error!("scte35: splice_insert with in-range fields refused: {e}");
        Bytes::new()
    })
}

/// Builds a `time_signal` section (SCTE 35 §9.7.4) carrying one segmentation
/// descriptor, with a fresh CRC, `tier` 0xFFF and `pts_adjustment` 0.
///
/// `pts` is the signal time in 90 kHz (taken modulo 2^33; `None`: no time specified).
/// Fails with [`ErrorKind::Usage`](crate::ErrorKind::Usage) when a descriptor field
/// does not fit its wire field (a UPID over 255 bytes, a duration over 40 bits, a
/// descriptor over 255 bytes).
pub fn time_signal_section(
    pts: Option<u64>,
    segmentation: &SegmentationDescriptor,
) -> Result<Bytes> {
    let mut info = SpliceInfo::new(SpliceCommand::TimeSignal {
        pts_time: pts.map(|p| p & PTS_MAX),
    });
    info.tier = TIER_IGNORE;
    info.descriptors
        .push(SpliceDescriptor::Segmentation(segmentation.clone()));
    info.encode()
}
