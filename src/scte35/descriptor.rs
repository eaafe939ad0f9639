//! Splice descriptors (SCTE 35 §10): `avail_descriptor`, `segmentation_descriptor`,
//! and every other tag kept as bytes; the segmentation type table (§10.3.3.1 Table 23).

use bytes::Bytes;
use scte35_splice::descriptors::{
    self as wire, DeviceRestrictions, SegmentationTypeId, SegmentationUpidType,
};

use crate::media::CueKind;

/// `identifier` of the descriptors SCTE 35 defines: ASCII "CUEI" (§10.2).
pub const CUEI: u32 = 0x4355_4549;

/// `splice_descriptor_tag` of `avail_descriptor` (§10.3.1).
pub const TAG_AVAIL: u8 = 0x00;
/// `splice_descriptor_tag` of `segmentation_descriptor` (§10.3.3).
pub const TAG_SEGMENTATION: u8 = 0x02;

/// One splice descriptor of a section's descriptor loop (SCTE 35 §10, Table 16).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpliceDescriptor {
    /// `segmentation_descriptor()` (tag 0x02 with the "CUEI" identifier, §10.3.3).
    Segmentation(SegmentationDescriptor),
    /// `avail_descriptor()` (tag 0x00, §10.3.1) with the "CUEI" identifier and
    /// exactly its one field.
    Avail {
        /// `provider_avail_id`.
        provider_avail_id: u32,
    },
    /// Any other descriptor (DTMF, time, audio, private tags...), kept as bytes.
    Other {
        /// `splice_descriptor_tag`.
        tag: u8,
        /// 32-bit `identifier` (the first four bytes after `descriptor_length`).
        identifier: u32,
        /// The bytes after the identifier (`descriptor_length` - 4 of them).
        data: Bytes,
    },
}

impl SpliceDescriptor {
    /// The descriptor's `splice_descriptor_tag`.
    pub fn tag(&self) -> u8 {
        match self {
            SpliceDescriptor::Segmentation(_) => TAG_SEGMENTATION,
            SpliceDescriptor::Avail { .. } => TAG_AVAIL,
            SpliceDescriptor::Other { tag, .. } => *tag,
        }
    }
}

/// Delivery restriction flags of a segmentation descriptor (present when
/// `delivery_not_restricted_flag` is 0; SCTE 35 §10.3.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryRestrictions {
    /// `web_delivery_allowed_flag`.
    pub web_delivery_allowed: bool,
    /// `no_regional_blackout_flag`.
    pub no_regional_blackout: bool,
    /// `archive_allowed_flag`.
    pub archive_allowed: bool,
    /// 2-bit `device_restrictions` (Table 21: 0-2 restrict device group 0-2, 3 none).
    pub device_restrictions: u8,
}

/// One component of a component-mode segmentation descriptor (deprecated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentationComponent {
    /// `component_tag`.
    pub component_tag: u8,
    /// 33-bit `pts_offset` in 90 kHz ticks.
    pub pts_offset: u64,
}

/// `segmentation_descriptor()` (SCTE 35 §10.3.3, Table 20).
///
/// When `cancel` is set no field after it is on the wire: they keep their defaults.
/// The UPID is kept as bytes with its type (Table 22); MPU() and MID() structures
/// are not decoded here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentationDescriptor {
    /// 32-bit `identifier`: "CUEI" ([`CUEI`]). Tag 0x02 under any other identifier is
    /// a private descriptor and parses as [`SpliceDescriptor::Other`].
    pub identifier: u32,
    /// `segmentation_event_id`.
    pub event_id: u32,
    /// `segmentation_event_cancel_indicator`: the event with this id is withdrawn.
    pub cancel: bool,
    /// `segmentation_event_id_compliance_indicator` (a reserved bit, written 1,
    /// before SCTE 35 2020).
    pub event_id_compliance: bool,
    /// `program_segmentation_flag`: 1 for the whole program (the supported mode),
    /// 0 lists components (deprecated, tolerated).
    pub program_segmentation: bool,
    /// Delivery restrictions; `None` when `delivery_not_restricted_flag` is 1.
    pub delivery_restrictions: Option<DeliveryRestrictions>,
    /// Component-mode entries (only when `program_segmentation` is false).
    pub components: Vec<SegmentationComponent>,
    /// 40-bit `segmentation_duration` in 90 kHz ticks, when the flag is set.
    pub duration: Option<u64>,
    /// `segmentation_upid_type` (Table 22: 0x00 not used, 0x03 Ad-ID, 0x08 TI,
    /// 0x09 ADI, 0x0C MPU, 0x0D MID, 0x0F URI...).
    pub upid_type: u8,
    /// `segmentation_upid()` bytes (at most 255).
    pub upid: Bytes,
    /// `segmentation_type_id` (Table 23; see [`segmentation_kind`]).
    pub type_id: u8,
    /// `segment_num`.
    pub segment_num: u8,
    /// `segments_expected`.
    pub segments_expected: u8,
    /// `(sub_segment_num, sub_segments_expected)` when the descriptor carries them
    /// (placement opportunity and ad block types, SCTE 35 2016 and later).
    pub sub_segment: Option<(u8, u8)>,
}

impl Default for SegmentationDescriptor {
    /// A program-mode, unrestricted, non-cancelled descriptor with the "CUEI"
    /// identifier, no duration, no UPID and type 0x00 (not indicated).
    fn default() -> Self {
        SegmentationDescriptor {
            identifier: CUEI,
            event_id: 0,
            cancel: false,
            event_id_compliance: true,
            program_segmentation: true,
            delivery_restrictions: None,
            components: Vec::new(),
            duration: None,
            upid_type: 0,
            upid: Bytes::new(),
            type_id: 0,
            segment_num: 0,
            segments_expected: 0,
            sub_segment: None,
        }
    }
}

impl SegmentationDescriptor {
    /// A descriptor for `event_id` of type `type_id` with an optional duration (90 kHz
    /// ticks), otherwise as [`Default`] (fill in the public fields).
    pub fn new(event_id: u32, type_id: u8, duration: Option<u64>) -> Self {
        SegmentationDescriptor {
            event_id,
            type_id,
            duration,
            ..Default::default()
        }
    }

    /// What this descriptor means for ad insertion: [`segmentation_kind`] of its
    /// type, [`CueKind::Other`] when cancelled (no type on the wire).
    pub fn kind(&self) -> CueKind {
        if self.cancel {
            CueKind::Other
        } else {
            segmentation_kind(self.type_id)
        }
    }

    /// `upid` borrowed from `section`, whose memory holds `w`'s slices.
    pub(super) fn from_wire(w: &wire::SegmentationDescriptor<'_>, section: &Bytes) -> Self {
        SegmentationDescriptor {
            identifier: w.identifier,
            event_id: w.segmentation_event_id,
            cancel: w.segmentation_event_cancel_indicator,
            event_id_compliance: w.segmentation_event_id_compliance_indicator,
            program_segmentation: w.program_segmentation_flag,
            delivery_restrictions: w.delivery_restrictions.map(|d| DeliveryRestrictions {
                web_delivery_allowed: d.web_delivery_allowed,
                no_regional_blackout: d.no_regional_blackout,
                archive_allowed: d.archive_allowed,
                device_restrictions: d.device_restrictions.bits(),
            }),
            components: w
                .components
                .iter()
                .map(|c| SegmentationComponent {
                    component_tag: c.component_tag,
                    pts_offset: c.pts_offset,
                })
                .collect(),
            duration: w.segmentation_duration,
            upid_type: w.segmentation_upid_type.to_u8(),
            upid: sub_bytes(section, w.segmentation_upid),
            type_id: w.segmentation_type_id.to_u8(),
            segment_num: w.segment_num,
            segments_expected: w.segments_expected,
            sub_segment: w.sub_segments,
        }
    }

    pub(super) fn to_wire(&self) -> wire::SegmentationDescriptor<'_> {
        wire::SegmentationDescriptor {
            identifier: self.identifier,
            segmentation_event_id: self.event_id,
            segmentation_event_cancel_indicator: self.cancel,
            segmentation_event_id_compliance_indicator: self.event_id_compliance,
            program_segmentation_flag: self.program_segmentation,
            delivery_restrictions: self
                .delivery_restrictions
                .map(|d| wire::DeliveryRestrictions {
                    web_delivery_allowed: d.web_delivery_allowed,
                    no_regional_blackout: d.no_regional_blackout,
                    archive_allowed: d.archive_allowed,
                    device_restrictions: DeviceRestrictions::from_bits(d.device_restrictions),
                }),
            components: self
                .components
                .iter()
                .map(|c| wire::SegmentationComponent {
                    component_tag: c.component_tag,
                    pts_offset: c.pts_offset,
                })
                .collect(),
            segmentation_duration: self.duration,
            segmentation_upid_type: SegmentationUpidType::from_u8(self.upid_type),
            segmentation_upid: &self.upid,
            segmentation_type_id: SegmentationTypeId::from_u8(self.type_id),
            segment_num: self.segment_num,
            segments_expected: self.segments_expected,
            sub_segments: self.sub_segment,
        }
    }
}

/// `sub` (a slice of `whole`'s memory) as a zero-copy `Bytes`.
pub(super) fn sub_bytes(whole: &Bytes, sub: &[u8]) -> Bytes {
    let start = (sub.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    match start.checked_add(sub.len()) {
        Some(end) if start <= whole.len() && end <= whole.len() => whole.slice(start..end),
        // Not a sub-slice (cannot happen for slices parsed out of `whole`): copy.
        _ => Bytes::copy_from_slice(sub),
    }
}

/// What a `segmentation_type_id` means for ad insertion (SCTE 35 2019/2022 §10.3.3.1,
/// Table 23).
///
/// | type id | Table 23 name | kind |
/// |---|---|---|
/// | 0x22 / 0x23 | Break Start / End | Out / In |
/// | 0x30 / 0x31 | Provider Advertisement Start / End | Out / In |
/// | 0x32 / 0x33 | Distributor Advertisement Start / End | Out / In |
/// | 0x34 / 0x35 | Provider Placement Opportunity Start / End | Out / In |
/// | 0x36 / 0x37 | Distributor Placement Opportunity Start / End | Out / In |
/// | 0x38 / 0x39 | Provider Overlay Placement Opportunity Start / End | Out / In |
/// | 0x3A / 0x3B | Distributor Overlay Placement Opportunity Start / End | Out / In |
/// | 0x3C / 0x3D | Provider Promo Start / End | Out / In |
/// | 0x3E / 0x3F | Distributor Promo Start / End | Out / In |
/// | 0x44 / 0x45 | Provider Ad Block Start / End | Out / In |
/// | 0x46 / 0x47 | Distributor Ad Block Start / End | Out / In |
///
/// Everything else is [`CueKind::Other`]: content identification, program, chapter
/// and credit boundaries (0x01-0x27 outside Break), 0x40 / 0x41 Unscheduled Event
/// Start / End (an unplanned program event, not a break), 0x42 / 0x43 Alternate
/// Content Opportunity Start / End (content replacement, SCTE 224 style, not an ad
/// avail), 0x50 / 0x51 Network Start / End, and reserved values.
pub fn segmentation_kind(type_id: u8) -> CueKind {
    match type_id {
        0x22 | 0x30 | 0x32 | 0x34 | 0x36 | 0x38 | 0x3A | 0x3C | 0x3E | 0x44 | 0x46 => CueKind::Out,
        0x23 | 0x31 | 0x33 | 0x35 | 0x37 | 0x39 | 0x3B | 0x3D | 0x3F | 0x45 | 0x47 => CueKind::In,
        _ => CueKind::Other,
    }
}
