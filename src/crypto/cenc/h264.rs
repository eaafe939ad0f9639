//! The length of an H.264 slice header (ITU-T H.264 §7.3.3), for subsample encryption:
//! the fields of the sequence and picture parameter sets the slice header syntax
//! depends on (§7.3.2.1.1, §7.3.2.2), kept per id and updated by in-band units.

use super::bits::{ceil_log2, EscapedBits};
use crate::error::{Error, Result};

/// NAL unit types (Table 7-1).
const SLICE: u8 = 1;
const IDR: u8 = 5;
const SPS: u8 = 7;
const PPS: u8 = 8;

/// The SPS fields slice headers need.
#[derive(Debug, Clone, Copy)]
struct Sps {
    separate_colour_plane: bool,
    chroma_array_type: u32,
    log2_max_frame_num: u32,
    frame_mbs_only: bool,
    poc_type: u32,
    log2_max_poc_lsb: u32,
    delta_pic_order_always_zero: bool,
    pic_size_in_map_units: u32,
}

/// The PPS fields slice headers need.
#[derive(Debug, Clone, Copy)]
struct Pps {
    sps_id: u32,
    entropy_coding_mode: bool,
    bottom_field_pic_order_in_frame_present: bool,
    num_slice_groups_minus1: u32,
    slice_group_map_type: u32,
    slice_group_change_rate: u32,
    num_ref_idx_l0_default_minus1: u32,
    num_ref_idx_l1_default_minus1: u32,
    weighted_pred: bool,
    weighted_bipred_idc: u32,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

/// Parameter sets by id (SPS 0..=31, PPS 0..=255) and the slice header parser.
#[derive(Debug, Clone, Default)]
pub(crate) struct H264Slices {
    sps: Vec<Option<Sps>>,
    pps: Vec<Option<Pps>>,
}

/// Whether a unit of this type is a coded slice whose data gets encrypted.
pub(crate) fn is_slice(nal_type: u8) -> bool {
    nal_type == SLICE || nal_type == IDR
}

/// The NAL unit type of a unit (low 5 bits of the header byte).
pub(crate) fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

impl H264Slices {
    /// Parser state from the parameter sets of a configuration (SPS first, then PPS).
    pub(crate) fn new<'a>(
        sps: impl IntoIterator<Item = &'a [u8]>,
        pps: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self> {
        let mut s = H264Slices {
            sps: vec![None; 32],
            pps: vec![None; 256],
        };
        for u in sps {
            s.parse_sps(u).map_err(|e| e.context("H.264 SPS"))?;
        }
        for u in pps {
            s.parse_pps(u).map_err(|e| e.context("H.264 PPS"))?;
        }
        Ok(s)
    }

    /// Takes note of an in-band parameter set; other units are ignored.
    pub(crate) fn process(&mut self, nal: &[u8]) -> Result<()> {
        match nal_type(nal) {
            SPS => self.parse_sps(nal).map_err(|e| e.context("H.264 SPS")),
            PPS => self.parse_pps(nal).map_err(|e| e.context("H.264 PPS")),
            _ => Ok(()),
        }
    }

    fn parse_sps(&mut self, nal: &[u8]) -> Result<()> {
        let mut r = EscapedBits::new(nal, 1);
        let profile_idc = r.bits(8)?;
        r.skip(16)?; // constraint flags, level_idc
        let id = r.ue_max(31, "seq_parameter_set_id above 31")?;
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.ue_max(3, "chroma_format_idc above 3")?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit()?;
            }
            r.ue()?; // bit_depth_luma_minus8
            r.ue()?; // bit_depth_chroma_minus8
            r.bit()?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let log2_max_frame_num = r.ue_max(12, "log2_max_frame_num_minus4 above 12")? + 4;
        let poc_type = r.ue_max(2, "pic_order_cnt_type above 2")?;
        let mut log2_max_poc_lsb = 0;
        let mut delta_pic_order_always_zero = false;
        if poc_type == 0 {
            log2_max_poc_lsb = r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4 above 12")? + 4;
        } else if poc_type == 1 {
            delta_pic_order_always_zero = r.bit()?;
            r.se()?;
            r.se()?;
            let n = r.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle above 255")?;
            for _ in 0..n {
                r.se()?;
            }
        }
        r.ue()?; // max_num_ref_frames
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        let w = r.ue_max(1 << 16, "pic_width_in_mbs_minus1 out of range")? + 1;
        let h = r.ue_max(1 << 16, "pic_height_in_map_units_minus1 out of range")? + 1;
        let frame_mbs_only = r.bit()?;
        let sps = Sps {
            separate_colour_plane,
            chroma_array_type: if separate_colour_plane {
                0
            } else {
                chroma_format_idc
            },
            log2_max_frame_num,
            frame_mbs_only,
            poc_type,
            log2_max_poc_lsb,
            delta_pic_order_always_zero,
            pic_size_in_map_units: w.saturating_mul(h),
        };
        if let Some(slot) = self.sps.get_mut(id as usize) {
            *slot = Some(sps);
        }
        Ok(())
    }

    fn parse_pps(&mut self, nal: &[u8]) -> Result<()> {
        let mut r = EscapedBits::new(nal, 1);
        let id = r.ue_max(255, "pic_parameter_set_id above 255")?;
        let sps_id = r.ue_max(31, "seq_parameter_set_id above 31")?;
        let entropy_coding_mode = r.bit()?;
        let bottom_field_pic_order_in_frame_present = r.bit()?;
        let num_slice_groups_minus1 = r.ue_max(7, "num_slice_groups_minus1 above 7")?;
        let mut slice_group_map_type = 0;
        let mut slice_group_change_rate = 1;
        if num_slice_groups_minus1 > 0 {
            slice_group_map_type = r.ue_max(6, "slice_group_map_type above 6")?;
            match slice_group_map_type {
                0 => {
                    for _ in 0..=num_slice_groups_minus1 {
                        r.ue()?; // run_length_minus1
                    }
                }
                2 => {
                    for _ in 0..num_slice_groups_minus1 {
                        r.ue()?; // top_left
                        r.ue()?; // bottom_right
                    }
                }
                3..=5 => {
                    r.bit()?; // slice_group_change_direction_flag
                    slice_group_change_rate = r.ue()?.saturating_add(1);
                }
                6 => {
                    let n = r.ue_max(1 << 20, "pic_size_in_map_units_minus1 out of range")?;
                    let bits = ceil_log2(num_slice_groups_minus1 + 1);
                    for _ in 0..=n {
                        r.bits(bits)?; // slice_group_id
                    }
                }
                _ => {}
            }
        }
        let num_ref_idx_l0_default_minus1 =
            r.ue_max(31, "num_ref_idx_l0_default_active_minus1 above 31")?;
        let num_ref_idx_l1_default_minus1 =
            r.ue_max(31, "num_ref_idx_l1_default_active_minus1 above 31")?;
        let weighted_pred = r.bit()?;
        let weighted_bipred_idc = r.bits(2)?;
        if weighted_bipred_idc > 2 {
            return Err(Error::malformed("weighted_bipred_idc of 3"));
        }
        r.se()?; // pic_init_qp_minus26
        r.se()?; // pic_init_qs_minus26
        r.se()?; // chroma_qp_index_offset
        let deblocking_filter_control_present = r.bit()?;
        r.bit()?; // constrained_intra_pred_flag
        let redundant_pic_cnt_present = r.bit()?;
        let pps = Pps {
            sps_id,
            entropy_coding_mode,
            bottom_field_pic_order_in_frame_present,
            num_slice_groups_minus1,
            slice_group_map_type,
            slice_group_change_rate,
            num_ref_idx_l0_default_minus1,
            num_ref_idx_l1_default_minus1,
            weighted_pred,
            weighted_bipred_idc,
            deblocking_filter_control_present,
            redundant_pic_cnt_present,
        };
        if let Some(slot) = self.pps.get_mut(id as usize) {
            *slot = Some(pps);
        }
        Ok(())
    }

    /// Stored bytes of the NAL unit header and slice header of a coded slice `nal`
    /// (§7.3.3), rounded up to a whole byte: where the slice data starts.
    pub(crate) fn header_len(&self, nal: &[u8]) -> Result<usize> {
        let header = *nal.first().ok_or(Error::malformed("empty NAL unit"))?;
        let nal_ref_idc = (header >> 5) & 3;
        let idr = header & 0x1f == IDR;
        let mut r = EscapedBits::new(nal, 1);
        r.ue()?; // first_mb_in_slice
        let slice_type = r.ue_max(9, "slice_type above 9")? % 5;
        let (p, b, i, sp, si) = (
            slice_type == 0,
            slice_type == 1,
            slice_type == 2,
            slice_type == 3,
            slice_type == 4,
        );
        let pps_id = r.ue_max(255, "pic_parameter_set_id above 255")?;
        let pps = self
            .pps
            .get(pps_id as usize)
            .copied()
            .flatten()
            .ok_or_else(|| Error::malformed("slice refers to an unknown PPS"))?;
        let sps = self
            .sps
            .get(pps.sps_id as usize)
            .copied()
            .flatten()
            .ok_or_else(|| Error::malformed("PPS refers to an unknown SPS"))?;
        if sps.separate_colour_plane {
            r.skip(2)?; // colour_plane_id
        }
        r.skip(sps.log2_max_frame_num as usize)?; // frame_num
        let mut field_pic = false;
        if !sps.frame_mbs_only {
            field_pic = r.bit()?;
            if field_pic {
                r.bit()?; // bottom_field_flag
            }
        }
        if idr {
            r.ue()?; // idr_pic_id
        }
        if sps.poc_type == 0 {
            r.skip(sps.log2_max_poc_lsb as usize)?;
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se()?; // delta_pic_order_cnt_bottom
            }
        }
        if sps.poc_type == 1 && !sps.delta_pic_order_always_zero {
            r.se()?;
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se()?;
            }
        }
        if pps.redundant_pic_cnt_present {
            r.ue()?;
        }
        if b {
            r.bit()?; // direct_spatial_mv_pred_flag
        }
        let mut l0 = pps.num_ref_idx_l0_default_minus1;
        let mut l1 = pps.num_ref_idx_l1_default_minus1;
        if (p || sp || b) && r.bit()? {
            l0 = r.ue_max(31, "num_ref_idx_l0_active_minus1 above 31")?;
            if b {
                l1 = r.ue_max(31, "num_ref_idx_l1_active_minus1 above 31")?;
            }
        }
        // ref_pic_list_modification() (§7.3.3.1); types 20/21 never reach here.
        if !i && !si {
            skip_ref_pic_list_modification(&mut r)?;
        }
        if b {
            skip_ref_pic_list_modification(&mut r)?;
        }
        if (pps.weighted_pred && (p || sp)) || (pps.weighted_bipred_idc == 1 && b) {
            // pred_weight_table() (§7.3.3.2)
            r.ue()?; // luma_log2_weight_denom
            if sps.chroma_array_type != 0 {
                r.ue()?;
            }
            skip_weights(&mut r, l0, sps.chroma_array_type)?;
            if b {
                skip_weights(&mut r, l1, sps.chroma_array_type)?;
            }
        }
        if nal_ref_idc != 0 {
            // dec_ref_pic_marking() (§7.3.3.3)
            if idr {
                r.skip(2)?;
            } else if r.bit()? {
                let mut n = 0;
                loop {
                    let op = r.ue_max(6, "memory_management_control_operation above 6")?;
                    if op == 0 {
                        break;
                    }
                    if op == 1 || op == 3 {
                        r.ue()?;
                    }
                    if op == 2 {
                        r.ue()?;
                    }
                    if op == 3 || op == 6 {
                        r.ue()?;
                    }
                    if op == 4 {
                        r.ue()?;
                    }
                    n += 1;
                    if n > 66 {
                        return Err(Error::malformed("too many memory management operations"));
                    }
                }
            }
        }
        if pps.entropy_coding_mode && !i && !si {
            r.ue_max(2, "cabac_init_idc above 2")?;
        }
        r.se()?; // slice_qp_delta
        if sp || si {
            if sp {
                r.bit()?; // sp_for_switch_flag
            }
            r.se()?; // slice_qs_delta
        }
        if pps.deblocking_filter_control_present {
            let idc = r.ue_max(2, "disable_deblocking_filter_idc above 2")?;
            if idc != 1 {
                r.se()?;
                r.se()?;
            }
        }
        if pps.num_slice_groups_minus1 > 0 && (3..=5).contains(&pps.slice_group_map_type) {
            // Ceil(Log2(PicSizeInMapUnits ÷ SliceGroupChangeRate + 1)) bits (7-35).
            let rate = u64::from(pps.slice_group_change_rate.max(1));
            let units = u64::from(sps.pic_size_in_map_units);
            let mut bits = 0u32;
            while (1u64 << bits) * rate < units + rate && bits < 32 {
                bits += 1;
            }
            r.skip(bits as usize)?;
        }
        Ok(r.stored_len())
    }
}

/// `scaling_list()` (§7.3.2.1.1.1) of `size` coefficients.
fn skip_scaling_list(r: &mut EscapedBits<'_>, size: usize) -> Result<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// One list of `ref_pic_list_modification()`: the flag, then operations until 3.
fn skip_ref_pic_list_modification(r: &mut EscapedBits<'_>) -> Result<()> {
    if !r.bit()? {
        return Ok(());
    }
    for _ in 0..=33 {
        match r.ue_max(5, "modification_of_pic_nums_idc above 5")? {
            3 => return Ok(()),
            _ => {
                r.ue()?; // abs_diff_pic_num_minus1 / long_term_pic_num / abs_diff_view_idx
            }
        }
    }
    Err(Error::malformed("ref_pic_list_modification without an end"))
}

/// The weights of one list of `pred_weight_table()`.
fn skip_weights(r: &mut EscapedBits<'_>, minus1: u32, chroma_array_type: u32) -> Result<()> {
    for _ in 0..=minus1 {
        if r.bit()? {
            r.se()?;
            r.se()?;
        }
        if chroma_array_type != 0 && r.bit()? {
            for _ in 0..4 {
                r.se()?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitstream::test_vectors::{PPS_720P, SPS_720P};

    /// Writes bits MSB first, with emulation prevention, for hand-made slices.
    struct Writer {
        bits: Vec<bool>,
    }

    impl Writer {
        fn new() -> Self {
            Writer { bits: Vec::new() }
        }
        fn u(&mut self, n: u32, v: u32) {
            for i in (0..n).rev() {
                self.bits.push(v >> i & 1 == 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let x = v as u64 + 1;
            let len = 64 - x.leading_zeros();
            for _ in 0..len - 1 {
                self.bits.push(false);
            }
            for i in (0..len).rev() {
                self.bits.push(x >> i & 1 == 1);
            }
        }
        fn se(&mut self, v: i32) {
            self.ue(if v > 0 {
                2 * v as u32 - 1
            } else {
                (-2 * v) as u32
            });
        }
        /// The NAL unit: header, escaped payload (padded with 1s to a byte, then `tail`).
        fn nal(&self, header: u8, tail: &[u8]) -> (Vec<u8>, usize) {
            let mut bytes = Vec::new();
            for chunk in self.bits.chunks(8) {
                let mut b = 0u8;
                for (i, bit) in chunk.iter().enumerate() {
                    b |= (*bit as u8) << (7 - i);
                }
                if chunk.len() < 8 {
                    b |= 0xff >> chunk.len();
                }
                bytes.push(b);
            }
            bytes.extend_from_slice(tail);
            let mut out = vec![header];
            let mut zeros = 0;
            let mut header_end = 0;
            for (i, &b) in bytes.iter().enumerate() {
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                out.push(b);
                zeros = if b == 0 { zeros + 1 } else { 0 };
                if i + 1 == self.bits.len().div_ceil(8) {
                    header_end = out.len();
                }
            }
            (out, header_end)
        }
    }

    #[test]
    fn idr_and_p_slices_of_the_720p_parameter_sets() {
        let s = H264Slices::new([SPS_720P], [PPS_720P]).unwrap();
        let sps = s.sps[0].unwrap();
        let pps = s.pps[0].unwrap();
        assert!(sps.frame_mbs_only);
        assert!(pps.entropy_coding_mode);
        // IDR I slice: first_mb 0, slice_type 7, pps 0, frame_num, idr_pic_id, poc lsb,
        // dec_ref_pic_marking (2 bits), slice_qp_delta, deblocking.
        let mut w = Writer::new();
        w.ue(0);
        w.ue(7);
        w.ue(0);
        w.u(sps.log2_max_frame_num, 0);
        w.ue(0);
        if sps.poc_type == 0 {
            w.u(sps.log2_max_poc_lsb, 0);
        }
        w.u(2, 0);
        w.se(-3);
        if pps.deblocking_filter_control_present {
            w.ue(0);
            w.se(0);
            w.se(0);
        }
        let (nal, end) = w.nal(0x65, &[0x88, 0x84, 0x00]);
        assert_eq!(s.header_len(&nal).unwrap(), end);
        // Truncated: an error, never a panic.
        for n in 0..end {
            assert!(s.header_len(&nal[..n]).is_err(), "{n}");
        }
        // A P slice with an override, a modification list, and MMCO.
        let mut w = Writer::new();
        w.ue(10);
        w.ue(5);
        w.ue(0);
        w.u(sps.log2_max_frame_num, 3);
        if sps.poc_type == 0 {
            w.u(sps.log2_max_poc_lsb, 6);
        }
        w.u(1, 1); // override
        w.ue(2);
        w.u(1, 1); // modification l0
        w.ue(0);
        w.ue(4);
        w.ue(3);
        if pps.weighted_pred {
            w.ue(0);
            w.ue(0);
            for _ in 0..3 {
                w.u(2, 0);
            }
        }
        w.u(1, 1); // adaptive_ref_pic_marking_mode_flag
        w.ue(1);
        w.ue(0);
        w.ue(0);
        w.ue(1); // cabac_init_idc
        w.se(2);
        if pps.deblocking_filter_control_present {
            w.ue(1);
        }
        let (nal, end) = w.nal(0x41, &[0, 0, 1, 2]);
        assert_eq!(s.header_len(&nal).unwrap(), end);
        // An unknown PPS id.
        let mut w = Writer::new();
        w.ue(0);
        w.ue(5);
        w.ue(9);
        let (nal, _) = w.nal(0x41, &[0; 8]);
        assert!(s.header_len(&nal).is_err());
    }

    #[test]
    fn hostile_parameter_sets_are_errors() {
        assert!(H264Slices::new([&[0x67u8][..]], []).is_err());
        assert!(H264Slices::new([SPS_720P], [&[0x68u8, 0xff, 0xff][..]]).is_err());
        assert!(H264Slices::new([SPS_720P], [&[0x68u8, 0xff][..]]).is_err());
        let mut s = H264Slices::new([SPS_720P], [PPS_720P]).unwrap();
        assert!(s.process(&[0x67, 0x64]).is_err());
        assert!(s.process(&[0x06, 0x05]).is_ok()); // SEI: ignored
    }
}
