//! Helpers shared by the FLV unit tests: real parameter sets, records and files.

use bytes::{BufMut, Bytes, BytesMut};

use super::{write_tag, FlvDemuxer, FlvHeader, TagType};
use crate::bitstream::h264;
use crate::media::Item;
use crate::pipeline::Stage;
use crate::Result;

/// x264 High@3.1 1280x720 25 fps parameter sets.
pub(crate) use crate::bitstream::test_vectors::{PPS_720P as PPS, SPS_720P};

/// x265 320x240 parameter sets.
pub(crate) const HEVC_VPS: &str = "40010c01ffff01600000030090000003000003003c959809";
pub(crate) const HEVC_SPS: &str =
    "42010101600000030090000003000003003ca00a080f165959a4932bc05a020000030002000003003210";
pub(crate) const HEVC_PPS: &str = "4401c172b46240";

pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// An `AVCDecoderConfigurationRecord` with `nal_length_size`-byte NAL lengths.
pub(crate) fn avcc(nal_length_size: u8) -> Bytes {
    let rec =
        h264::build_avcc(&[Bytes::from_static(SPS_720P)], &[Bytes::from_static(PPS)]).unwrap();
    let mut v = rec.to_vec();
    v[4] = 0xfc | (nal_length_size - 1);
    Bytes::from(v)
}

/// An `HEVCDecoderConfigurationRecord` (Main, level 2, 4-byte NAL lengths).
pub(crate) fn hvcc() -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(&[
        1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x3c, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0,
        0x0f, 3,
    ]);
    for (ty, nal) in [(32u8, HEVC_VPS), (33, HEVC_SPS), (34, HEVC_PPS)] {
        let nal = hex(nal);
        b.put_u8(0x80 | ty);
        b.put_u16(1);
        b.put_u16(nal.len() as u16);
        b.put_slice(&nal);
    }
    b.freeze()
}

/// NAL units with `size`-byte length prefixes.
pub(crate) fn prefixed(units: &[&[u8]], size: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for u in units {
        v.extend_from_slice(&(u.len() as u32).to_be_bytes()[4 - size..]);
        v.extend_from_slice(u);
    }
    v
}

/// A legacy AVC video tag body.
pub(crate) fn avc_body(frame_type: u8, packet_type: u8, cts: i32, data: &[u8]) -> Vec<u8> {
    let c = cts.to_be_bytes();
    let mut v = vec![(frame_type << 4) | 7, packet_type, c[1], c[2], c[3]];
    v.extend_from_slice(data);
    v
}

/// A whole FLV file (header flags: audio and video) with `tags`.
pub(crate) fn file(tags: &[(TagType, u32, Vec<u8>)]) -> Bytes {
    let mut out = BytesMut::new();
    FlvHeader::new(true, true).write(&mut out);
    for (kind, ts, body) in tags {
        write_tag(*kind, *ts, body, &mut out).unwrap();
    }
    out.freeze()
}

/// Pushes `input` in one piece, finishes, and collects every poll result.
pub(crate) fn run(d: &mut FlvDemuxer, input: Bytes) -> Vec<Result<Item>> {
    let mut out = Vec::new();
    d.push(input).unwrap();
    while let Some(r) = d.poll() {
        out.push(r);
    }
    if let Err(e) = d.finish() {
        out.push(Err(e));
    }
    while let Some(r) = d.poll() {
        out.push(r);
    }
    out
}

/// The items of `run`, panicking on any error.
pub(crate) fn items(d: &mut FlvDemuxer, input: Bytes) -> Vec<Item> {
    run(d, input).into_iter().map(|r| r.unwrap()).collect()
}
