//! CENC helpers shared by the `cenc_*` targets (`#[path = "shared/cenc.rs"] mod cenc;`):
//! a key, valid tracks and frames whose video samples the subsample generator parses
//! (I slices of the constant SPS/PPS with SEI and AUD units), and protected fragments.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use strom::bitstream::aac::build_asc;
use strom::container::fmp4::{protect_fragment, Fmp4Writer, ProtectionInfo, PsshBox};
use strom::crypto::{ContentKey, KeyId};
use strom::media::{AacConfig, CodecConfig, Frame, FrameFlags, H264Config, TrackInfo};
use strom::time::{Timescale, Timestamp};

use super::input::Input;
use super::params::{PPS, SPS};

pub const KID: KeyId = KeyId([0x11; 16]);
pub const KEY: ContentKey = ContentKey([0x22; 16]);

pub fn scale() -> Timescale {
    Timescale::new(90_000).expect("non-zero")
}

pub fn track(id: u32, video: bool) -> TrackInfo {
    let config = if video {
        CodecConfig::H264(
            H264Config::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
                .expect("constant SPS/PPS parse"),
        )
    } else {
        CodecConfig::Aac(AacConfig::from_asc(build_asc(2, 3, 2)).expect("ASC"))
    };
    TrackInfo::new(id, scale(), config)
}

pub fn protection(cbcs: bool, seed: u64) -> ProtectionInfo {
    let p = if cbcs {
        ProtectionInfo::cbcs(KID, [0x33; 16])
    } else {
        ProtectionInfo::cenc(KID).with_iv_seed(seed)
    };
    p.with_pssh(PsshBox::clearkey(vec![KID]))
}

/// An I slice of the constant SPS/PPS (frame_num 4 bits, POC LSB 6 bits, CABAC,
/// deblocking control) with `payload` after its header, emulation prevention applied.
pub fn i_slice(idr: bool, payload: &[u8]) -> Vec<u8> {
    let mut bits: Vec<bool> = Vec::new();
    let ue = |bits: &mut Vec<bool>, v: u32| {
        let x = u64::from(v) + 1;
        let n = 64 - x.leading_zeros();
        bits.extend(std::iter::repeat_n(false, n as usize - 1));
        bits.extend((0..n).rev().map(|i| x >> i & 1 == 1));
    };
    ue(&mut bits, 0); // first_mb_in_slice
    ue(&mut bits, 7); // slice_type I
    ue(&mut bits, 0); // pic_parameter_set_id
    bits.extend([false; 4]); // frame_num
    if idr {
        ue(&mut bits, 0); // idr_pic_id
    }
    bits.extend([false; 6]); // pic_order_cnt_lsb
    bits.extend(if idr {
        &[false, false][..]
    } else {
        &[false][..]
    }); // marking
    ue(&mut bits, 0); // slice_qp_delta
    ue(&mut bits, 1); // disable_deblocking_filter_idc
    while !bits.len().is_multiple_of(8) {
        bits.push(true); // cabac_alignment_one_bit
    }
    let mut rbsp: Vec<u8> = bits
        .chunks(8)
        .map(|c| c.iter().fold(0u8, |a, &b| a << 1 | u8::from(b)))
        .collect();
    rbsp.extend_from_slice(payload);
    let mut nal = vec![if idr { 0x65 } else { 0x61 }];
    let mut zeros = 0;
    for b in rbsp {
        if zeros >= 2 && b <= 3 {
            nal.push(3);
            zeros = 0;
        }
        nal.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    nal
}

/// Valid frames of track `id` from `start`: I slices with SEI/AUD units for video (and
/// sometimes two slices), raw frames for audio.
pub fn frames(inp: &mut Input, id: u32, video: bool, start: i64) -> Vec<Frame> {
    let n = usize::from(inp.u8() % 6) + 1;
    (0..n)
        .map(|i| {
            let t = Timestamp::new(start + i as i64 * 3000, scale());
            let len = usize::from(inp.u8()) * 4;
            let body: Vec<u8> = (0..len).map(|k| inp.u8() ^ k as u8).collect();
            let data = if video {
                let mut units = vec![
                    vec![0x09, 0xf0],
                    vec![0x06, 5, 1, 0x80],
                    i_slice(i == 0, &body),
                ];
                if inp.u8() & 1 == 1 {
                    units.push(i_slice(false, &body[..body.len() / 2]));
                }
                let mut d = Vec::new();
                for nal in units {
                    d.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    d.extend_from_slice(&nal);
                }
                d
            } else {
                body
            };
            Frame::new(id, t, t, Bytes::from(data)).with_flags(FrameFlags::KEYFRAME)
        })
        .collect()
}

/// A protected init segment and one protected fragment of valid frames.
pub fn protected(inp: &mut Input, video: bool, cbcs: bool) -> (Bytes, Bytes, Vec<Frame>) {
    let track = track(1, video);
    let p = protection(cbcs, 0);
    let mut w = Fmp4Writer::new(track.clone()).expect("valid track");
    let mut init = BytesMut::new();
    w.protected_init_segment(&p, &mut init).expect("init");
    let frames = frames(inp, 1, video, 0);
    let end = Timestamp::new(frames.len() as i64 * 3000, scale());
    let mut clear = BytesMut::new();
    let info = w
        .media_segment(&frames, 1, Some(end), &mut clear)
        .expect("valid frames");
    let mut out = BytesMut::new();
    protect_fragment(&clear, &info, &track, &p, &KEY, &mut out).expect("valid fragment");
    (init.freeze(), out.freeze(), frames)
}
