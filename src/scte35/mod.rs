//! SCTE 35 splice information: strom's typed model of a `splice_info_section`.
//!
//! A section (SCTE 35 §9.6, table_id 0xFC) carries one splice command
//! ([`SpliceCommand`]: `splice_insert`, `time_signal`...) and a loop of splice
//! descriptors ([`SpliceDescriptor`]: segmentation, avail...), closed by a CRC-32.
//! [`SpliceInfo::parse`] checks and reads one; [`SpliceInfo::encode`] writes the typed
//! fields back (byte-exact for what was parsed); [`SpliceInfo::signal`] says what it
//! means for ad insertion ([`CueSignal`]: out, in, cancel, time, duration), and
//! [`CueSignal::to_cue`] places that on a stream as a [`crate::media::SpliceCue`].
//! The wire codec underneath is the `scte35-splice` crate; its errors become
//! [`ErrorKind::Malformed`](crate::ErrorKind::Malformed) with the context "scte35".
//!
//! Every ingest path that sees SCTE 35 (a TS PID, an FLV `onCuePoint`, an operator's
//! request built with [`splice_insert_section`] / [`time_signal_section`]) goes
//! through this module, once; wire times are unwrapped there with [`unwrap_pts`].
//!
//! ```
//! use strom::media::CueKind;
//! use strom::scte35::{splice_insert_section, SpliceInfo};
//!
//! // A 30 s break starting at 90 kHz time 900 000 (10 s), event 7.
//! let section = splice_insert_section(7, true, Some(900_000), Some(30 * 90_000), true);
//! let info = SpliceInfo::parse(section.clone())?;
//! let cue = info.signal().expect("a splice_insert is a signal");
//! assert_eq!((cue.id, cue.kind), (7, CueKind::Out));
//! assert_eq!((cue.pts, cue.duration), (Some(900_000), Some(2_700_000)));
//! assert_eq!(info.encode()?, section);
//! # Ok::<(), strom::Error>(())
//! ```

mod command;
mod descriptor;
mod signal;
#[cfg(test)]
mod tests;

use broadcast_common::{Parse, Serialize};
use bytes::Bytes;
use scte35_splice::commands::{self as wire_cmd, AnyCommand};
use scte35_splice::descriptors::AvailDescriptor;
use scte35_splice::{ClearPayload, SpliceInfoSection};

use crate::{Error, Result};

pub use command::{BreakDuration, SpliceCommand, SpliceInsert, SpliceInsertComponent};
pub use descriptor::{
    segmentation_kind, DeliveryRestrictions, SegmentationComponent, SegmentationDescriptor,
    SpliceDescriptor, CUEI, TAG_AVAIL, TAG_SEGMENTATION,
};
pub use signal::{
    adjust_pts, splice_insert_section, time_signal_section, unwrap_pts, CueSignal, PTS_MAX,
    PTS_MODULUS, TIER_IGNORE,
};

/// `table_id` of a `splice_info_section` (SCTE 35 §9.6.1).
pub const TABLE_ID: u8 = 0xFC;

/// Largest `section_length` SCTE 35 §9.6.1 allows (the whole section is then 4096
/// bytes).
pub const MAX_SECTION_LENGTH: usize = 4093;

/// A parsed `splice_info_section` (SCTE 35 §9.6, Table 5), owning its original bytes.
///
/// The public fields are the whole section: [`encode`](Self::encode) writes them back.
/// A section from [`parse`](Self::parse) keeps its bytes in `raw`; one built by hand
/// (with [`new`](Self::new)) has an empty `raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpliceInfo {
    /// `protocol_version` (0 in every edition so far).
    pub protocol_version: u8,
    /// 33-bit `pts_adjustment` in 90 kHz ticks, added (modulo 2^33) to every
    /// `pts_time` of the section.
    pub pts_adjustment: u64,
    /// 12-bit `tier` (0xFFF: ignore).
    pub tier: u16,
    /// `encrypted_packet`: the command and descriptors are encrypted (then `command` is
    /// [`SpliceCommand::Encrypted`] and `descriptors` is empty).
    pub encrypted: bool,
    /// The splice command.
    pub command: SpliceCommand,
    /// The splice descriptor loop, in order.
    pub descriptors: Vec<SpliceDescriptor>,
    /// The exact section bytes (`table_id` through `CRC_32`) as parsed; empty for a
    /// section built in code.
    pub raw: Bytes,
    /// 2-bit `sap_type` (SCTE 35 2020 §9.6.1 Table 6; 3 = not specified, also what
    /// the reserved bits of earlier editions read as).
    pub sap_type: u8,
    /// 6-bit `encryption_algorithm` (meaningful when `encrypted`).
    pub encryption_algorithm: u8,
    /// `cw_index` (meaningful when `encrypted`).
    pub cw_index: u8,
    /// The command body for commands not modelled field by field: the
    /// `splice_schedule` body (in its canonical form), the `private_byte`s of a `private_command` (after its
    /// identifier), the body of a reserved command type, or for an encrypted section
    /// the encrypted region (`splice_command_type` through `E_CRC_32`). Empty
    /// otherwise.
    pub command_data: Bytes,
    /// `alignment_stuffing` between the descriptor loop and the CRC (usually empty).
    pub alignment_stuffing: Bytes,
    /// The section carried the deprecated `splice_command_length` 0xFFF ("ignore",
    /// SCTE 35 §9.6.1) and is written back that way. Only for commands whose extent
    /// follows from their syntax: with a `private_command` or a reserved command type
    /// the length cannot be derived, and such a section is malformed.
    pub legacy_command_length: bool,
}

/// A `scte35-splice` parse error as a strom error.
fn malformed(e: scte35_splice::Error) -> Error {
    Error::malformed(e.to_string()).context("scte35")
}

/// A `scte35-splice` serialize error (a field out of its wire range) as a strom error.
fn unencodable(e: scte35_splice::Error) -> Error {
    Error::usage(e.to_string()).context("scte35 encode")
}

impl SpliceInfo {
    /// A clear section carrying `command`: protocol version 0, no `pts_adjustment`,
    /// `tier` 0 (set [`TIER_IGNORE`] to have it ignored), `sap_type` 3, no
    /// descriptors, empty `raw`.
    pub fn new(command: SpliceCommand) -> Self {
        SpliceInfo {
            protocol_version: 0,
            pts_adjustment: 0,
            tier: 0,
            encrypted: false,
            command,
            descriptors: Vec::new(),
            raw: Bytes::new(),
            sap_type: 3,
            encryption_algorithm: 0,
            cw_index: 0,
            command_data: Bytes::new(),
            alignment_stuffing: Bytes::new(),
            legacy_command_length: false,
        }
    }

    /// Parses one section (SCTE 35 §9.6), CRC-32 checked.
    ///
    /// `section` starts at `table_id`; bytes after `section_length` (TS stuffing) are
    /// ignored, and `raw` keeps exactly the section. Any bad input (short, wrong
    /// `table_id`, a `section_length` over 4093 or past the end, a bad CRC, a command
    /// or descriptor running past its length) is an
    /// [`ErrorKind::Malformed`](crate::ErrorKind::Malformed) error with the context
    /// "scte35", never a panic. Encrypted sections parse with their encrypted region
    /// kept as bytes ([`SpliceCommand::Encrypted`]).
    ///
    /// ```
    /// use strom::scte35::{SpliceCommand, SpliceDescriptor, SpliceInfo};
    /// use strom::ErrorKind;
    ///
    /// // SCTE 35 §14.3: time_signal, provider placement opportunity end (type 0x35).
    /// let hex = "fc302f000000000000fffff00506fe746290a000190217435545494800008e7f9f\
    ///            0808000000002ca0a18a350200a9cc6758";
    /// let bytes: Vec<u8> = (0..hex.len())
    ///     .step_by(2)
    ///     .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
    ///     .collect();
    /// let info = SpliceInfo::parse(bytes.clone().into())?;
    /// assert_eq!(info.command, SpliceCommand::TimeSignal { pts_time: Some(0x0_7462_90a0) });
    /// let SpliceDescriptor::Segmentation(seg) = &info.descriptors[0] else { panic!() };
    /// assert_eq!((seg.event_id, seg.type_id), (0x4800_008e, 0x35));
    ///
    /// let mut bad = bytes;
    /// bad[20] ^= 1;
    /// assert_eq!(SpliceInfo::parse(bad.into()).unwrap_err().kind(), ErrorKind::Malformed);
    /// # Ok::<(), strom::Error>(())
    /// ```
    pub fn parse(section: Bytes) -> Result<SpliceInfo> {
        // Bound the section by its own length first, so `raw` is exact and a length the
        // encoder could not write back is refused here.
        let (Some(&table_id), Some(&b1), Some(&b2)) =
            (section.first(), section.get(1), section.get(2))
        else {
            return Err(Error::malformed("section shorter than its 3-byte header")
                .at_offset(section.len() as u64)
                .context("scte35"));
        };
        if table_id != TABLE_ID {
            return Err(Error::malformed("table_id is not 0xFC")
                .at_offset(0)
                .context("scte35"));
        }
        let declared = usize::from(b1 & 0x0F) << 8 | usize::from(b2);
        if declared > MAX_SECTION_LENGTH {
            return Err(Error::malformed("section_length over 4093")
                .at_offset(1)
                .context("scte35"));
        }
        if section.len() < 3 + declared {
            return Err(
                Error::malformed("section_length runs past the end of the input")
                    .at_offset(1)
                    .context("scte35"),
            );
        }
        let raw = section.slice(..3 + declared);
        let wire = SpliceInfoSection::parse(&raw).map_err(malformed)?;
        let mut info = SpliceInfo {
            protocol_version: wire.protocol_version,
            pts_adjustment: wire.pts_adjustment,
            tier: wire.tier,
            encrypted: wire.encrypted_packet,
            command: SpliceCommand::Null,
            descriptors: Vec::new(),
            raw: raw.clone(),
            sap_type: wire.sap_type,
            encryption_algorithm: wire.encryption_algorithm,
            cw_index: wire.cw_index,
            command_data: Bytes::new(),
            alignment_stuffing: Bytes::new(),
            legacy_command_length: false,
        };
        match (&wire.clear, wire.encrypted_payload) {
            (Some(clear), _) => {
                info.legacy_command_length = clear.legacy_command_length_sentinel;
                if info.legacy_command_length
                    && matches!(
                        clear.command,
                        AnyCommand::PrivateCommand(_) | AnyCommand::Unknown { .. }
                    )
                {
                    // Any length fits a private or reserved command: the codec's guess (the
                    // first that fits) is not a derivation, and would change with the loop.
                    return Err(Error::malformed(
                        "splice_command_length 0xFFF with a private or reserved command, \
                         whose length cannot be derived",
                    )
                    .at_offset(11)
                    .context("scte35"));
                }
                info.alignment_stuffing = descriptor::sub_bytes(&raw, clear.alignment_stuffing);
                let (command, data) =
                    command_from_wire(&clear.command, &raw, clear.descriptor_loop);
                info.command = command;
                info.command_data = data;
                info.descriptors = parse_descriptors(&raw, clear.descriptor_loop)?;
            }
            (None, Some(enc)) => {
                info.command = SpliceCommand::Encrypted {
                    command_length: wire.encrypted_splice_command_length.unwrap_or(0x0FFF),
                };
                info.command_data = descriptor::sub_bytes(&raw, enc);
            }
            (None, None) => {
                return Err(Error::malformed("section without a command").context("scte35"));
            }
        }
        Ok(info)
    }

    /// Encodes the typed fields back to a section, with a fresh CRC-32.
    ///
    /// Always written from the typed fields through `scte35-splice`; reserved bits are
    /// written as 1 (SCTE 35 §9.6.1). For a conformant section from
    /// [`parse`](Self::parse) the result is byte-exact with `raw`. A parsed section
    /// whose sender wrote reserved bits as 0, or padded a command or descriptor
    /// beyond its fields, has a canonical form that differs from `raw`: while its
    /// fields are unchanged (they equal what `raw` parses to), `raw` itself is
    /// returned, so pass-through keeps the sender's bytes; once a field changes, the
    /// canonical encoding of the new fields is returned.
    ///
    /// Fails with [`ErrorKind::Usage`](crate::ErrorKind::Usage) when a field does not
    /// fit its wire field (a 33-bit time at 2^33 or more, a `tier` over 0xFFF, a UPID
    /// over 255 bytes, a section over 4096 bytes...).
    pub fn encode(&self) -> Result<Bytes> {
        let encoded = self.encode_canonical()?;
        if encoded != self.raw && !self.raw.is_empty() {
            if let Ok(mut reparsed) = SpliceInfo::parse(self.raw.clone()) {
                reparsed.raw = self.raw.clone();
                if reparsed == *self {
                    return Ok(self.raw.clone());
                }
            }
        }
        Ok(encoded)
    }

    /// The canonical encoding of the typed fields, `raw` not consulted: reserved bits
    /// set, no padding (SCTE 35 §9.6.1). [`encode`](Self::encode) without its
    /// pass-through of a non-canonical sender's bytes; the same errors.
    pub fn encode_canonical(&self) -> Result<Bytes> {
        let mut descriptor_loop = Vec::new();
        if !self.encrypted {
            for d in &self.descriptors {
                write_descriptor(d, &mut descriptor_loop)?;
            }
        }
        let mut wire =
            SpliceInfoSection::new_clear(AnyCommand::SpliceNull(Default::default()), &[]);
        wire.sap_type = self.sap_type;
        wire.protocol_version = self.protocol_version;
        wire.encrypted_packet = self.encrypted;
        wire.encryption_algorithm = self.encryption_algorithm;
        wire.pts_adjustment = self.pts_adjustment;
        wire.cw_index = self.cw_index;
        wire.tier = self.tier;
        if self.encrypted {
            wire.clear = None;
            wire.encrypted_payload = Some(&self.command_data);
            wire.encrypted_splice_command_length = match self.command {
                SpliceCommand::Encrypted { command_length } => Some(command_length),
                _ => None,
            };
        } else {
            wire.clear = Some(ClearPayload {
                command: self.command_to_wire()?,
                descriptor_loop: &descriptor_loop,
                alignment_stuffing: &self.alignment_stuffing,
                legacy_command_length_sentinel: self.legacy_command_length,
            });
        }
        wire.try_to_bytes().map(Bytes::from).map_err(unencodable)
    }

    fn command_to_wire(&self) -> Result<AnyCommand<'_>> {
        let data: &[u8] = &self.command_data;
        if self.legacy_command_length
            && matches!(
                self.command,
                SpliceCommand::Private { .. } | SpliceCommand::Other(_)
            )
        {
            return Err(Error::usage(
                "splice_command_length 0xFFF with a private or reserved command",
            )
            .context("scte35 encode"));
        }
        Ok(match &self.command {
            SpliceCommand::Null => AnyCommand::SpliceNull(Default::default()),
            SpliceCommand::Insert(ins) => AnyCommand::SpliceInsert(ins.to_wire()),
            SpliceCommand::TimeSignal { pts_time } => {
                AnyCommand::TimeSignal(wire_cmd::TimeSignal {
                    splice_time: scte35_splice::time::SpliceTime {
                        pts_time: *pts_time,
                    },
                })
            }
            SpliceCommand::Schedule => AnyCommand::Unknown {
                command_type: 0x04,
                body: data,
            },
            SpliceCommand::BandwidthReservation => {
                AnyCommand::BandwidthReservation(Default::default())
            }
            SpliceCommand::Private { identifier } => {
                AnyCommand::PrivateCommand(wire_cmd::PrivateCommand {
                    identifier: *identifier,
                    private_bytes: data,
                })
            }
            SpliceCommand::Other(command_type) => AnyCommand::Unknown {
                command_type: *command_type,
                body: data,
            },
            SpliceCommand::Encrypted { .. } => {
                return Err(Error::usage("an encrypted command in a clear section")
                    .context("scte35 encode"))
            }
        })
    }
}

/// The typed command and the body kept as bytes (see [`SpliceInfo::command_data`]).
fn command_from_wire(
    c: &AnyCommand<'_>,
    raw: &Bytes,
    descriptor_loop: &[u8],
) -> (SpliceCommand, Bytes) {
    match c {
        AnyCommand::SpliceInsert(ins) => (
            SpliceCommand::Insert(SpliceInsert::from_wire(ins)),
            Bytes::new(),
        ),
        AnyCommand::TimeSignal(ts) => (
            SpliceCommand::TimeSignal {
                pts_time: ts.splice_time.pts_time,
            },
            Bytes::new(),
        ),
        AnyCommand::PrivateCommand(p) => (
            SpliceCommand::Private {
                identifier: p.identifier,
            },
            descriptor::sub_bytes(raw, p.private_bytes),
        ),
        AnyCommand::BandwidthReservation(_) => (SpliceCommand::BandwidthReservation, Bytes::new()),
        AnyCommand::SpliceSchedule(_) => {
            // The schedule's canonical body (reserved bits set, no padding), so that the
            // fields kept here are the same whichever way the sender wrote them.
            let mut body = vec![0u8; c.body_len()];
            let data = match c.serialize_body_into(&mut body) {
                Ok(n) if n == body.len() => Bytes::from(body),
                // Cannot happen for a parsed schedule; keep the wire body then.
                _ => command_body(raw, descriptor_loop),
            };
            (SpliceCommand::Schedule, data)
        }
        AnyCommand::Unknown { command_type, body } => (
            SpliceCommand::Other(*command_type),
            descriptor::sub_bytes(raw, body),
        ),
        // splice_null, and any command a later codec version types.
        AnyCommand::SpliceNull(_) => (SpliceCommand::Null, Bytes::new()),
        other => (SpliceCommand::Other(other.command_type()), Bytes::new()),
    }
}

/// The command body of a clear section: from byte 14 (after `splice_command_type`) up
/// to the `descriptor_loop_length` field, two bytes before the loop (`descriptor_loop`
/// is a slice of `raw`). Exact even when `splice_command_length` was 0xFFF.
fn command_body(raw: &Bytes, descriptor_loop: &[u8]) -> Bytes {
    let loop_start = (descriptor_loop.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
    match loop_start.checked_sub(2) {
        Some(end) if (14..=raw.len()).contains(&end) => raw.slice(14..end),
        _ => Bytes::new(),
    }
}

/// Walks the descriptor loop (SCTE 35 §10.2): typed segmentation and avail
/// descriptors, every other tag as bytes. Tags are SCTE's only under the "CUEI"
/// identifier (§10.2): a private descriptor reusing tag 0x00 or 0x02 stays bytes.
fn parse_descriptors(raw: &Bytes, descriptor_loop: &[u8]) -> Result<Vec<SpliceDescriptor>> {
    let mut out = Vec::new();
    let mut rest = descriptor_loop;
    while !rest.is_empty() {
        let (tag, len) = match rest {
            [tag, len, ..] => (*tag, usize::from(*len)),
            _ => {
                return Err(Error::malformed("truncated splice_descriptor header").context("scte35"))
            }
        };
        let Some(full) = rest.get(..2 + len) else {
            return Err(
                Error::malformed("splice_descriptor runs past the descriptor loop")
                    .context("scte35"),
            );
        };
        rest = &rest[2 + len..];
        let Some((id, data)) = full[2..].split_first_chunk::<4>() else {
            return Err(
                Error::malformed("splice_descriptor shorter than its identifier").context("scte35"),
            );
        };
        let identifier = u32::from_be_bytes(*id);
        let d = match tag {
            TAG_SEGMENTATION if identifier == CUEI => {
                let w = scte35_splice::descriptors::SegmentationDescriptor::parse(full)
                    .map_err(malformed)?;
                SpliceDescriptor::Segmentation(SegmentationDescriptor::from_wire(&w, raw))
            }
            TAG_AVAIL if identifier == CUEI && data.len() == 4 => {
                let w = AvailDescriptor::parse(full).map_err(malformed)?;
                SpliceDescriptor::Avail {
                    provider_avail_id: w.provider_avail_id,
                }
            }
            _ => SpliceDescriptor::Other {
                tag,
                identifier,
                data: descriptor::sub_bytes(raw, data),
            },
        };
        out.push(d);
    }
    Ok(out)
}

/// Appends one descriptor (header included) to the loop.
fn write_descriptor(d: &SpliceDescriptor, out: &mut Vec<u8>) -> Result<()> {
    match d {
        SpliceDescriptor::Segmentation(s) => {
            let b = s.to_wire().try_to_bytes().map_err(unencodable)?;
            out.extend_from_slice(&b);
        }
        SpliceDescriptor::Avail { provider_avail_id } => {
            let b = AvailDescriptor {
                identifier: CUEI,
                provider_avail_id: *provider_avail_id,
            }
            .try_to_bytes()
            .map_err(unencodable)?;
            out.extend_from_slice(&b);
        }
        SpliceDescriptor::Other {
            tag,
            identifier,
            data,
        } => {
            let len = u8::try_from(4 + data.len()).map_err(|_| {
                Error::usage("splice_descriptor over 255 bytes").context("scte35 encode")
            })?;
            out.extend_from_slice(&[*tag, len]);
            out.extend_from_slice(&identifier.to_be_bytes());
            out.extend_from_slice(data);
        }
    }
    Ok(())
}
