//! The length of an H.265 slice segment header (ITU-T H.265 §7.3.6.1), for subsample
//! encryption: the SPS and PPS fields the header syntax depends on (§7.3.2.2.1,
//! §7.3.2.3.1, with the short-term reference picture sets of §7.3.7 and their inter
//! prediction, §7.4.8), kept per id and updated by in-band units.
//!
//! Not handled: the screen content coding and multi-layer extensions (a PPS using them
//! is refused when a slice refers to it).

use super::bits::{ceil_log2, EscapedBits};
use crate::error::{Error, Result};

const IDR_W_RADL: u8 = 19;
const IDR_N_LP: u8 = 20;
const SPS: u8 = 33;
const PPS: u8 = 34;

/// Most entries of one short-term reference picture set (16 pictures in the DPB).
const MAX_RPS_PICS: usize = 32;

/// A short-term reference picture set, derived: the POC deltas before and after the
/// current picture, with their `used_by_curr_pic` flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rps {
    s0: Vec<(i32, bool)>,
    s1: Vec<(i32, bool)>,
}

impl Rps {
    fn num_delta_pocs(&self) -> usize {
        self.s0.len() + self.s1.len()
    }

    fn used(&self) -> u32 {
        self.s0.iter().chain(&self.s1).filter(|e| e.1).count() as u32
    }
}

#[derive(Debug, Clone)]
struct Sps {
    separate_colour_plane: bool,
    chroma_array_type: u32,
    log2_max_poc_lsb: u32,
    pic_size_in_ctbs: u32,
    sample_adaptive_offset: bool,
    rps: Vec<Rps>,
    long_term_ref_pics_present: bool,
    lt_used_by_curr: Vec<bool>,
    temporal_mvp: bool,
}

#[derive(Debug, Clone, Copy)]
struct Pps {
    sps_id: u32,
    dependent_slice_segments_enabled: bool,
    output_flag_present: bool,
    num_extra_slice_header_bits: u32,
    cabac_init_present: bool,
    num_ref_idx_l0_default_minus1: u32,
    num_ref_idx_l1_default_minus1: u32,
    slice_chroma_qp_offsets_present: bool,
    weighted_pred: bool,
    weighted_bipred: bool,
    tiles_enabled: bool,
    entropy_coding_sync_enabled: bool,
    loop_filter_across_slices_enabled: bool,
    deblocking_filter_override_enabled: bool,
    deblocking_filter_disabled: bool,
    lists_modification_present: bool,
    slice_segment_header_extension_present: bool,
    chroma_qp_offset_list_enabled: bool,
    unsupported_extension: bool,
}

/// Parameter sets by id (SPS 0..=15, PPS 0..=63) and the slice header parser.
#[derive(Debug, Clone, Default)]
pub(crate) struct H265Slices {
    sps: Vec<Option<Sps>>,
    pps: Vec<Option<Pps>>,
}

/// The NAL unit type (bits 1..=6 of the first header byte).
pub(crate) fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| (b >> 1) & 0x3f)
}

/// Whether a unit of this type is a coded slice segment (Table 7-1: TRAIL to RASL,
/// BLA, IDR, CRA).
pub(crate) fn is_slice(nal_type: u8) -> bool {
    nal_type <= 9 || (16..=21).contains(&nal_type)
}

impl H265Slices {
    /// Parser state from the parameter sets of a configuration.
    pub(crate) fn new<'a>(
        sps: impl IntoIterator<Item = &'a [u8]>,
        pps: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self> {
        let mut s = H265Slices {
            sps: vec![None; 16],
            pps: vec![None; 64],
        };
        for u in sps {
            s.parse_sps(u).map_err(|e| e.context("H.265 SPS"))?;
        }
        for u in pps {
            s.parse_pps(u).map_err(|e| e.context("H.265 PPS"))?;
        }
        Ok(s)
    }

    /// Takes note of an in-band SPS or PPS; other units are ignored.
    pub(crate) fn process(&mut self, nal: &[u8]) -> Result<()> {
        match nal_type(nal) {
            SPS => self.parse_sps(nal).map_err(|e| e.context("H.265 SPS")),
            PPS => self.parse_pps(nal).map_err(|e| e.context("H.265 PPS")),
            _ => Ok(()),
        }
    }

    fn parse_sps(&mut self, nal: &[u8]) -> Result<()> {
        let mut r = EscapedBits::new(nal, 2);
        r.skip(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = r.bits(3)?;
        r.skip(1)?;
        skip_profile_tier_level(&mut r, max_sub_layers_minus1)?;
        let id = r.ue_max(15, "sps_seq_parameter_set_id above 15")?;
        let chroma_format_idc = r.ue_max(3, "chroma_format_idc above 3")?;
        let mut separate_colour_plane = false;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        let width = r.ue_max(1 << 16, "pic_width_in_luma_samples out of range")?;
        let height = r.ue_max(1 << 16, "pic_height_in_luma_samples out of range")?;
        if r.bit()? {
            for _ in 0..4 {
                r.ue()?; // conformance window
            }
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        let log2_max_poc_lsb = r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4 above 12")? + 4;
        let ordering_all = r.bit()?;
        let first = if ordering_all {
            0
        } else {
            max_sub_layers_minus1
        };
        for _ in first..=max_sub_layers_minus1 {
            r.ue()?;
            r.ue()?;
            r.ue()?;
        }
        let min_cb_log2 = r.ue_max(4, "log2_min_luma_coding_block_size_minus3 above 4")? + 3;
        let ctb_log2 =
            min_cb_log2 + r.ue_max(3, "log2_diff_max_min_luma_coding_block_size above 3")?;
        if ctb_log2 > 6 {
            return Err(Error::malformed("coding tree block larger than 64"));
        }
        r.ue()?; // log2_min_luma_transform_block_size_minus2
        r.ue()?; // log2_diff_max_min_luma_transform_block_size
        r.ue()?; // max_transform_hierarchy_depth_inter
        r.ue()?; // max_transform_hierarchy_depth_intra
        if r.bit()? && r.bit()? {
            skip_scaling_list_data(&mut r)?;
        }
        r.bit()?; // amp_enabled_flag
        let sample_adaptive_offset = r.bit()?;
        if r.bit()? {
            // pcm
            r.skip(8)?;
            r.ue()?;
            r.ue()?;
            r.bit()?;
        }
        let num_rps = r.ue_max(64, "num_short_term_ref_pic_sets above 64")?;
        let mut rps: Vec<Rps> = Vec::with_capacity(num_rps as usize);
        for i in 0..num_rps as usize {
            let set = parse_rps(&mut r, i, &rps, false)?;
            rps.push(set);
        }
        let long_term_ref_pics_present = r.bit()?;
        let mut lt_used_by_curr = Vec::new();
        if long_term_ref_pics_present {
            let n = r.ue_max(32, "num_long_term_ref_pics_sps above 32")?;
            for _ in 0..n {
                r.skip(log2_max_poc_lsb as usize)?;
                lt_used_by_curr.push(r.bit()?);
            }
        }
        let temporal_mvp = r.bit()?;
        let ctb = 1u32 << ctb_log2;
        let pic_size_in_ctbs = width.div_ceil(ctb) * height.div_ceil(ctb);
        let sps = Sps {
            separate_colour_plane,
            chroma_array_type: if separate_colour_plane {
                0
            } else {
                chroma_format_idc
            },
            log2_max_poc_lsb,
            pic_size_in_ctbs,
            sample_adaptive_offset,
            rps,
            long_term_ref_pics_present,
            lt_used_by_curr,
            temporal_mvp,
        };
        if let Some(slot) = self.sps.get_mut(id as usize) {
            *slot = Some(sps);
        }
        Ok(())
    }

    fn parse_pps(&mut self, nal: &[u8]) -> Result<()> {
        let mut r = EscapedBits::new(nal, 2);
        let id = r.ue_max(63, "pps_pic_parameter_set_id above 63")?;
        let sps_id = r.ue_max(15, "pps_seq_parameter_set_id above 15")?;
        let dependent_slice_segments_enabled = r.bit()?;
        let output_flag_present = r.bit()?;
        let num_extra_slice_header_bits = r.bits(3)?;
        r.bit()?; // sign_data_hiding_enabled_flag
        let cabac_init_present = r.bit()?;
        let num_ref_idx_l0_default_minus1 =
            r.ue_max(14, "num_ref_idx_l0_default_active_minus1 above 14")?;
        let num_ref_idx_l1_default_minus1 =
            r.ue_max(14, "num_ref_idx_l1_default_active_minus1 above 14")?;
        r.se()?; // init_qp_minus26
        r.bit()?; // constrained_intra_pred_flag
        let transform_skip_enabled = r.bit()?;
        if r.bit()? {
            r.ue()?; // diff_cu_qp_delta_depth
        }
        r.se()?; // pps_cb_qp_offset
        r.se()?; // pps_cr_qp_offset
        let slice_chroma_qp_offsets_present = r.bit()?;
        let weighted_pred = r.bit()?;
        let weighted_bipred = r.bit()?;
        r.bit()?; // transquant_bypass_enabled_flag
        let tiles_enabled = r.bit()?;
        let entropy_coding_sync_enabled = r.bit()?;
        if tiles_enabled {
            let cols = r.ue_max(255, "num_tile_columns_minus1 out of range")?;
            let rows = r.ue_max(255, "num_tile_rows_minus1 out of range")?;
            if !r.bit()? {
                for _ in 0..cols {
                    r.ue()?;
                }
                for _ in 0..rows {
                    r.ue()?;
                }
            }
            r.bit()?; // loop_filter_across_tiles_enabled_flag
        }
        let loop_filter_across_slices_enabled = r.bit()?;
        let mut deblocking_filter_override_enabled = false;
        let mut deblocking_filter_disabled = false;
        if r.bit()? {
            deblocking_filter_override_enabled = r.bit()?;
            deblocking_filter_disabled = r.bit()?;
            if !deblocking_filter_disabled {
                r.se()?;
                r.se()?;
            }
        }
        if r.bit()? {
            skip_scaling_list_data(&mut r)?;
        }
        let lists_modification_present = r.bit()?;
        r.ue()?; // log2_parallel_merge_level_minus2
        let slice_segment_header_extension_present = r.bit()?;
        let mut chroma_qp_offset_list_enabled = false;
        let mut unsupported_extension = false;
        if r.bit()? {
            let range = r.bit()?;
            let multilayer = r.bit()?;
            let three_d = r.bit()?;
            let scc = r.bit()?;
            r.skip(4)?;
            unsupported_extension = multilayer || three_d || scc;
            if range {
                if transform_skip_enabled {
                    r.ue()?;
                }
                r.bit()?; // cross_component_prediction_enabled_flag
                chroma_qp_offset_list_enabled = r.bit()?;
            }
        }
        let pps = Pps {
            sps_id,
            dependent_slice_segments_enabled,
            output_flag_present,
            num_extra_slice_header_bits,
            cabac_init_present,
            num_ref_idx_l0_default_minus1,
            num_ref_idx_l1_default_minus1,
            slice_chroma_qp_offsets_present,
            weighted_pred,
            weighted_bipred,
            tiles_enabled,
            entropy_coding_sync_enabled,
            loop_filter_across_slices_enabled,
            deblocking_filter_override_enabled,
            deblocking_filter_disabled,
            lists_modification_present,
            slice_segment_header_extension_present,
            chroma_qp_offset_list_enabled,
            unsupported_extension,
        };
        if let Some(slot) = self.pps.get_mut(id as usize) {
            *slot = Some(pps);
        }
        Ok(())
    }

    /// Stored bytes of the NAL unit header and slice segment header of `nal`, up to and
    /// including `byte_alignment()` (§7.3.6.1): where the slice segment data starts.
    pub(crate) fn header_len(&self, nal: &[u8]) -> Result<usize> {
        let nal_type = nal_type(nal);
        if nal.len() < 2 {
            return Err(Error::malformed("H.265 NAL unit shorter than its header"));
        }
        let mut r = EscapedBits::new(nal, 2);
        let first_slice_segment = r.bit()?;
        if (16..=23).contains(&nal_type) {
            r.bit()?; // no_output_of_prior_pics_flag
        }
        let pps_id = r.ue_max(63, "slice_pic_parameter_set_id above 63")?;
        let pps = self
            .pps
            .get(pps_id as usize)
            .copied()
            .flatten()
            .ok_or_else(|| Error::malformed("slice refers to an unknown PPS"))?;
        if pps.unsupported_extension {
            return Err(Error::unsupported(
                "H.265 PPS with multi-layer, 3D or screen content extensions",
            ));
        }
        let sps = self
            .sps
            .get(pps.sps_id as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::malformed("PPS refers to an unknown SPS"))?;
        let mut dependent = false;
        if !first_slice_segment {
            if pps.dependent_slice_segments_enabled {
                dependent = r.bit()?;
            }
            r.skip(ceil_log2(sps.pic_size_in_ctbs) as usize)?; // slice_segment_address
        }
        if !dependent {
            r.skip(pps.num_extra_slice_header_bits as usize)?;
            let slice_type = r.ue_max(2, "slice_type above 2")?;
            let (b, p) = (slice_type == 0, slice_type == 1);
            if pps.output_flag_present {
                r.bit()?;
            }
            if sps.separate_colour_plane {
                r.skip(2)?;
            }
            let mut temporal_mvp = false;
            let mut num_pic_total_curr = 0u32;
            if nal_type != IDR_W_RADL && nal_type != IDR_N_LP {
                r.skip(sps.log2_max_poc_lsb as usize)?; // slice_pic_order_cnt_lsb
                let num_rps = sps.rps.len();
                if !r.bit()? {
                    let own = parse_rps(&mut r, num_rps, &sps.rps, true)?;
                    num_pic_total_curr += own.used();
                } else {
                    let idx = if num_rps > 1 {
                        r.bits(ceil_log2(num_rps as u32))? as usize
                    } else {
                        0
                    };
                    let set = sps.rps.get(idx).ok_or_else(|| {
                        Error::malformed("short_term_ref_pic_set_idx out of range")
                    })?;
                    num_pic_total_curr += set.used();
                }
                if sps.long_term_ref_pics_present {
                    let n_sps = sps.lt_used_by_curr.len() as u32;
                    let num_lt_sps = if n_sps > 0 {
                        r.ue_max(n_sps, "num_long_term_sps out of range")?
                    } else {
                        0
                    };
                    let num_lt_pics = r.ue_max(32, "num_long_term_pics above 32")?;
                    for i in 0..num_lt_sps + num_lt_pics {
                        if i < num_lt_sps {
                            let idx = if n_sps > 1 {
                                r.bits(ceil_log2(n_sps))? as usize
                            } else {
                                0
                            };
                            if sps.lt_used_by_curr.get(idx).copied().unwrap_or(false) {
                                num_pic_total_curr += 1;
                            }
                        } else {
                            r.skip(sps.log2_max_poc_lsb as usize)?; // poc_lsb_lt
                            if r.bit()? {
                                num_pic_total_curr += 1;
                            }
                        }
                        if r.bit()? {
                            r.ue()?; // delta_poc_msb_cycle_lt
                        }
                    }
                }
                if sps.temporal_mvp {
                    temporal_mvp = r.bit()?;
                }
            }
            let mut sao_luma = false;
            let mut sao_chroma = false;
            if sps.sample_adaptive_offset {
                sao_luma = r.bit()?;
                if sps.chroma_array_type != 0 {
                    sao_chroma = r.bit()?;
                }
            }
            if p || b {
                let mut l0 = pps.num_ref_idx_l0_default_minus1;
                let mut l1 = pps.num_ref_idx_l1_default_minus1;
                if r.bit()? {
                    l0 = r.ue_max(14, "num_ref_idx_l0_active_minus1 above 14")?;
                    if b {
                        l1 = r.ue_max(14, "num_ref_idx_l1_active_minus1 above 14")?;
                    }
                }
                if pps.lists_modification_present && num_pic_total_curr > 1 {
                    let bits = ceil_log2(num_pic_total_curr) as usize;
                    if r.bit()? {
                        r.skip(bits * (l0 as usize + 1))?;
                    }
                    if b && r.bit()? {
                        r.skip(bits * (l1 as usize + 1))?;
                    }
                }
                if b {
                    r.bit()?; // mvd_l1_zero_flag
                }
                if pps.cabac_init_present {
                    r.bit()?;
                }
                if temporal_mvp {
                    let from_l0 = if b { r.bit()? } else { true };
                    if (from_l0 && l0 > 0) || (!from_l0 && l1 > 0) {
                        r.ue()?; // collocated_ref_idx
                    }
                }
                if (pps.weighted_pred && p) || (pps.weighted_bipred && b) {
                    // pred_weight_table() (§7.3.6.3)
                    r.ue()?; // luma_log2_weight_denom
                    let chroma = sps.chroma_array_type != 0;
                    if chroma {
                        r.se()?;
                    }
                    skip_weights(&mut r, l0, chroma)?;
                    if b {
                        skip_weights(&mut r, l1, chroma)?;
                    }
                }
                r.ue()?; // five_minus_max_num_merge_cand
            }
            r.se()?; // slice_qp_delta
            if pps.slice_chroma_qp_offsets_present {
                r.se()?;
                r.se()?;
            }
            if pps.chroma_qp_offset_list_enabled {
                r.bit()?; // cu_chroma_qp_offset_enabled_flag
            }
            let mut override_flag = false;
            if pps.deblocking_filter_override_enabled {
                override_flag = r.bit()?;
            }
            let mut deblocking_disabled = pps.deblocking_filter_disabled;
            if override_flag {
                deblocking_disabled = r.bit()?;
                if !deblocking_disabled {
                    r.se()?;
                    r.se()?;
                }
            }
            if pps.loop_filter_across_slices_enabled
                && (sao_luma || sao_chroma || !deblocking_disabled)
            {
                r.bit()?;
            }
        }
        if pps.tiles_enabled || pps.entropy_coding_sync_enabled {
            let n = r.ue_max(1 << 16, "num_entry_point_offsets out of range")?;
            if n > 0 {
                let len = r.ue_max(31, "offset_len_minus1 above 31")? as usize + 1;
                for _ in 0..n {
                    r.skip(len)?;
                }
            }
        }
        if pps.slice_segment_header_extension_present {
            let n = r.ue_max(256, "slice_segment_header_extension_length above 256")?;
            r.skip(8 * n as usize)?;
        }
        // byte_alignment(): a one bit, then zero bits up to a byte boundary.
        if !r.bit()? {
            return Err(Error::malformed("slice header without its alignment bit"));
        }
        while !r.byte_aligned() {
            r.bit()?;
        }
        Ok(r.stored_len())
    }
}

/// `profile_tier_level(1, max_sub_layers_minus1)` (§7.3.3).
fn skip_profile_tier_level(r: &mut EscapedBits<'_>, max_sub_layers_minus1: u32) -> Result<()> {
    r.skip(96)?; // general profile, tier, flags and level
    let n = max_sub_layers_minus1 as usize;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(n) {
        *p = (r.bit()?, r.bit()?);
    }
    if n > 0 {
        r.skip(2 * (8 - n))?;
    }
    for &(profile, level) in present.iter().take(n) {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    Ok(())
}

/// `scaling_list_data()` (§7.3.4).
fn skip_scaling_list_data(r: &mut EscapedBits<'_>) -> Result<()> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        let mut matrix_id = 0;
        while matrix_id < 6 {
            if !r.bit()? {
                r.ue()?; // scaling_list_pred_matrix_id_delta
            } else {
                let coefs = 64.min(1 << (4 + (size_id << 1)));
                if size_id > 1 {
                    r.se()?;
                }
                for _ in 0..coefs {
                    r.se()?;
                }
            }
            matrix_id += step;
        }
    }
    Ok(())
}

/// `st_ref_pic_set(idx)` (§7.3.7) with the derivation of §7.4.8; `in_slice` for the set a
/// slice header carries (idx = num_short_term_ref_pic_sets).
fn parse_rps(r: &mut EscapedBits<'_>, idx: usize, sets: &[Rps], in_slice: bool) -> Result<Rps> {
    let inter = idx != 0 && r.bit()?;
    if inter {
        let delta_idx = if in_slice {
            r.ue_max(idx as u32 - 1, "delta_idx_minus1 out of range")? as usize + 1
        } else {
            1
        };
        let reference = idx
            .checked_sub(delta_idx)
            .and_then(|i| sets.get(i))
            .ok_or_else(|| Error::malformed("reference RPS out of range"))?;
        let sign = r.bit()?;
        let abs = i64::from(r.ue_max(1 << 15, "abs_delta_rps_minus1 above 2^15")?) + 1;
        let delta_rps = (if sign { -abs } else { abs }) as i32;
        let n = reference.num_delta_pocs();
        let mut used = Vec::with_capacity(n + 1);
        let mut use_delta = Vec::with_capacity(n + 1);
        for _ in 0..=n {
            let u = r.bit()?;
            used.push(u);
            use_delta.push(if u { true } else { r.bit()? });
        }
        let neg = reference.s0.len();
        let mut out = Rps::default();
        // (7-61)
        for (j, &(d, _)) in reference.s1.iter().enumerate().rev() {
            let p = d + delta_rps;
            if p < 0 && use_delta[neg + j] {
                out.s0.push((p, used[neg + j]));
            }
        }
        if delta_rps < 0 && use_delta[n] {
            out.s0.push((delta_rps, used[n]));
        }
        for (j, &(d, _)) in reference.s0.iter().enumerate() {
            let p = d + delta_rps;
            if p < 0 && use_delta[j] {
                out.s0.push((p, used[j]));
            }
        }
        // (7-62)
        for (j, &(d, _)) in reference.s0.iter().enumerate().rev() {
            let p = d + delta_rps;
            if p > 0 && use_delta[j] {
                out.s1.push((p, used[j]));
            }
        }
        if delta_rps > 0 && use_delta[n] {
            out.s1.push((delta_rps, used[n]));
        }
        for (j, &(d, _)) in reference.s1.iter().enumerate() {
            let p = d + delta_rps;
            if p > 0 && use_delta[neg + j] {
                out.s1.push((p, used[neg + j]));
            }
        }
        if out.num_delta_pocs() > MAX_RPS_PICS {
            return Err(Error::malformed("reference picture set too large"));
        }
        Ok(out)
    } else {
        let neg = r.ue_max(MAX_RPS_PICS as u32, "num_negative_pics out of range")?;
        let pos = r.ue_max(MAX_RPS_PICS as u32, "num_positive_pics out of range")?;
        if (neg + pos) as usize > MAX_RPS_PICS {
            return Err(Error::malformed("reference picture set too large"));
        }
        let mut out = Rps::default();
        let mut poc = 0i32;
        for _ in 0..neg {
            poc -= r.ue_max(1 << 15, "delta_poc_s0_minus1 above 2^15")? as i32 + 1;
            out.s0.push((poc, r.bit()?));
        }
        poc = 0;
        for _ in 0..pos {
            poc += r.ue_max(1 << 15, "delta_poc_s1_minus1 above 2^15")? as i32 + 1;
            out.s1.push((poc, r.bit()?));
        }
        Ok(out)
    }
}

/// The weights of one list of `pred_weight_table()`: all luma flags, all chroma flags,
/// then the values.
fn skip_weights(r: &mut EscapedBits<'_>, minus1: u32, chroma: bool) -> Result<()> {
    let n = minus1 as usize + 1;
    let mut luma = [false; 16];
    let mut chroma_flags = [false; 16];
    for f in luma.iter_mut().take(n) {
        *f = r.bit()?;
    }
    if chroma {
        for f in chroma_flags.iter_mut().take(n) {
            *f = r.bit()?;
        }
    }
    for i in 0..n {
        if luma[i] {
            r.se()?;
            r.se()?;
        }
        if chroma_flags[i] {
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

    fn rps(s0: &[(i32, bool)], s1: &[(i32, bool)]) -> Rps {
        Rps {
            s0: s0.to_vec(),
            s1: s1.to_vec(),
        }
    }

    #[test]
    fn inter_rps_prediction_follows_7_61_and_7_62() {
        // Reference set: -1 (used), +2 (used). deltaRps = -1 (sign 1, abs_minus1 0);
        // flags for j = 0 (-1), 1 (+2), 2 (deltaRps): all used.
        // Bits: inter 1 | sign 1 | abs_minus1 ue(0)=1 | used 1,1,1 -> 1111 11 then pad.
        let data = [0xff, 0xfc];
        let mut r = EscapedBits::new(&data, 0);
        let reference = rps(&[(-1, true)], &[(2, true)]);
        let got = parse_rps(&mut r, 1, &[reference], false).unwrap();
        // s0: from s1 reversed: 2-1 = 1 (not < 0); deltaRps -1; s0: -1-1 = -2.
        // s1: from s0 reversed: -2 (no); deltaRps < 0 (no); s1: 2-1 = 1.
        assert_eq!(got, rps(&[(-1, true), (-2, true)], &[(1, true)]));
        assert_eq!(got.used(), 3);
        assert_eq!(r.rbsp_bits(), 6);
    }

    #[test]
    fn explicit_rps_and_limits() {
        // neg ue(2)=011, pos ue(1)=010, s0: ue(0)=1 used 1, ue(1)=010 used 0, s1: ue(2)=011 used 1
        // 011 010 1 1 010 0 011 1 -> 0110 1011 0100 0111
        let data = [0b0110_1011, 0b0100_0111];
        let mut r = EscapedBits::new(&data, 0);
        let got = parse_rps(&mut r, 0, &[], false).unwrap();
        assert_eq!(got, rps(&[(-1, true), (-3, false)], &[(3, true)]));
        // 33 negative pictures: refused.
        let data = [0b0000_0100, 0b0100_0000];
        assert!(parse_rps(&mut EscapedBits::new(&data, 0), 0, &[], false).is_err());
        // Inter prediction without a reference set: refused.
        let data = [0xff, 0xff];
        assert!(parse_rps(&mut EscapedBits::new(&data, 0), 1, &[], false).is_err());
    }

    #[test]
    fn hostile_units_are_errors() {
        assert!(H265Slices::new([&[0x42u8, 0x01][..]], []).is_err());
        let s = H265Slices::new([], []).unwrap();
        assert!(s.header_len(&[0x26, 0x01, 0xaf]).is_err());
        assert!(s.header_len(&[0x26]).is_err());
        assert!(is_slice(0) && is_slice(21) && !is_slice(32) && !is_slice(10));
    }
}
