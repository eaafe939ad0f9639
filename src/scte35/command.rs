//! Splice commands (SCTE 35 §9.7): `splice_null`, `splice_schedule`, `splice_insert`,
//! `time_signal`, `bandwidth_reservation`, `private_command` and reserved types.

use scte35_splice::commands as wire;
use scte35_splice::time::{BreakDuration as WireBreakDuration, SpliceTime};

/// The splice command of a section (SCTE 35 §9.7, `splice_command_type` of Table 7).
///
/// Commands strom does not model field by field (`splice_schedule`, the payload of a
/// `private_command`, reserved command types, the encrypted region) keep their body
/// in [`SpliceInfo::command_data`](super::SpliceInfo::command_data), so they
/// re-encode byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpliceCommand {
    /// `splice_null()` (0x00, §9.7.1): a heartbeat, or a carrier for descriptors.
    Null,
    /// `splice_insert()` (0x05, §9.7.3).
    Insert(SpliceInsert),
    /// `time_signal()` (0x06, §9.7.4): a time for the segmentation descriptors that
    /// ride with it.
    TimeSignal {
        /// 33-bit `pts_time` in 90 kHz ticks, *without* `pts_adjustment`; `None` when
        /// `time_specified_flag` is 0 (immediate).
        pts_time: Option<u64>,
    },
    /// `splice_schedule()` (0x04, §9.7.2); its body is kept in `command_data`.
    Schedule,
    /// `bandwidth_reservation()` (0x07, §9.7.5); no fields.
    BandwidthReservation,
    /// `private_command()` (0xFF, §9.7.6); the `private_byte`s after the identifier
    /// are kept in `command_data`.
    Private {
        /// 32-bit registered `identifier`.
        identifier: u32,
    },
    /// A reserved `splice_command_type` (0x01-0x03, 0x08-0xFE); the body is kept in
    /// `command_data`.
    Other(u8),
    /// The section is encrypted (`encrypted_packet` = 1, §11): the command type is
    /// inside the encrypted region, which is kept verbatim in `command_data` (from
    /// `splice_command_type` through `E_CRC_32`) and not decrypted.
    Encrypted {
        /// The `splice_command_length` field (outside the encrypted region).
        command_length: u16,
    },
}

impl SpliceCommand {
    /// The wire `splice_command_type` (SCTE 35 §9.6.1 Table 7); `None` for an
    /// encrypted command, whose type is encrypted.
    pub fn command_type(&self) -> Option<u8> {
        Some(match self {
            SpliceCommand::Null => 0x00,
            SpliceCommand::Schedule => 0x04,
            SpliceCommand::Insert(_) => 0x05,
            SpliceCommand::TimeSignal { .. } => 0x06,
            SpliceCommand::BandwidthReservation => 0x07,
            SpliceCommand::Private { .. } => 0xFF,
            SpliceCommand::Other(t) => *t,
            SpliceCommand::Encrypted { .. } => return None,
        })
    }
}

/// `break_duration()` (SCTE 35 §9.8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BreakDuration {
    /// `auto_return`: the splicer returns to the network when `ticks` have elapsed.
    pub auto_return: bool,
    /// 33-bit duration in 90 kHz ticks.
    pub ticks: u64,
}

/// One component of a component-mode `splice_insert` (deprecated in SCTE 35 §9.7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpliceInsertComponent {
    /// `component_tag` (the PMT `stream_identifier_descriptor` tag).
    pub component_tag: u8,
    /// 33-bit `pts_time` for this component (90 kHz, without adjustment); `None` when
    /// immediate or `time_specified_flag` is 0.
    pub splice_time: Option<u64>,
}

/// `splice_insert()` (SCTE 35 §9.7.3, Table 10).
///
/// When `cancel` is set no other field is on the wire: they keep their defaults
/// (`program_splice` and `event_id_compliance` true, everything else empty).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpliceInsert {
    /// `splice_event_id`.
    pub event_id: u32,
    /// `splice_event_cancel_indicator`: the event with this id is withdrawn.
    pub cancel: bool,
    /// `out_of_network_indicator`: 1 leaves the network (a break starts), 0 returns.
    pub out_of_network: bool,
    /// `program_splice_flag`: 1 splices the whole program (the supported mode),
    /// 0 lists components (deprecated).
    pub program_splice: bool,
    /// `splice_immediate_flag`: splice at the nearest opportunity, no time given.
    pub immediate: bool,
    /// `event_id_compliance_flag` (a reserved bit, written 1, before SCTE 35 2020).
    pub event_id_compliance: bool,
    /// Program-mode `pts_time` (33-bit, 90 kHz, *without* `pts_adjustment`); written
    /// only when `program_splice` is set and `immediate` is not; `None` when
    /// `time_specified_flag` is 0.
    pub splice_time: Option<u64>,
    /// Component-mode entries (only when `program_splice` is false).
    pub components: Vec<SpliceInsertComponent>,
    /// `break_duration()`, when `duration_flag` is set.
    pub break_duration: Option<BreakDuration>,
    /// `unique_program_id`.
    pub unique_program_id: u16,
    /// `avail_num`.
    pub avail_num: u8,
    /// `avails_expected`.
    pub avails_expected: u8,
}

impl SpliceInsert {
    /// A program-mode insert for `event_id` with no time, duration or avail numbers
    /// (fill in the public fields).
    pub fn new(event_id: u32, out_of_network: bool) -> Self {
        SpliceInsert {
            event_id,
            cancel: false,
            out_of_network,
            program_splice: true,
            immediate: false,
            event_id_compliance: true,
            splice_time: None,
            components: Vec::new(),
            break_duration: None,
            unique_program_id: 0,
            avail_num: 0,
            avails_expected: 0,
        }
    }

    pub(super) fn from_wire(w: &wire::SpliceInsert) -> Self {
        SpliceInsert {
            event_id: w.splice_event_id,
            cancel: w.splice_event_cancel_indicator,
            out_of_network: w.out_of_network_indicator,
            program_splice: w.program_splice_flag,
            immediate: w.splice_immediate_flag,
            event_id_compliance: w.event_id_compliance_flag,
            splice_time: w.splice_time.and_then(|t| t.pts_time),
            components: w
                .components
                .iter()
                .map(|c| SpliceInsertComponent {
                    component_tag: c.component_tag,
                    splice_time: c.splice_time.and_then(|t| t.pts_time),
                })
                .collect(),
            break_duration: w.break_duration.map(|b| BreakDuration {
                auto_return: b.auto_return,
                ticks: b.duration,
            }),
            unique_program_id: w.unique_program_id,
            avail_num: w.avail_num,
            avails_expected: w.avails_expected,
        }
    }

    pub(super) fn to_wire(&self) -> wire::SpliceInsert {
        // A component or program time is on the wire only when not immediate; then its
        // `time_specified_flag` follows the Option.
        let time = |t: Option<u64>| (!self.immediate).then_some(SpliceTime { pts_time: t });
        wire::SpliceInsert {
            splice_event_id: self.event_id,
            splice_event_cancel_indicator: self.cancel,
            out_of_network_indicator: self.out_of_network,
            program_splice_flag: self.program_splice,
            splice_immediate_flag: self.immediate,
            event_id_compliance_flag: self.event_id_compliance,
            splice_time: if self.program_splice {
                time(self.splice_time)
            } else {
                None
            },
            components: self
                .components
                .iter()
                .map(|c| wire::SpliceInsertComponent {
                    component_tag: c.component_tag,
                    splice_time: time(c.splice_time),
                })
                .collect(),
            break_duration: self.break_duration.map(|b| WireBreakDuration {
                auto_return: b.auto_return,
                duration: b.ticks,
            }),
            unique_program_id: self.unique_program_id,
            avail_num: self.avail_num,
            avails_expected: self.avails_expected,
        }
    }

    /// The splice time this insert signals (33-bit, without adjustment): the program
    /// time, or in component mode the first component's time; `None` when immediate.
    pub fn pts_time(&self) -> Option<u64> {
        if self.immediate {
            return None;
        }
        if self.program_splice {
            self.splice_time
        } else {
            self.components.iter().find_map(|c| c.splice_time)
        }
    }
}
