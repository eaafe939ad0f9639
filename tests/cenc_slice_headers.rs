//! The slice header lengths behind CENC subsamples, checked against FFmpeg's own parser:
//! `ffmpeg -bsf:v trace_headers` prints every syntax element of every slice header with
//! its bit position, so the end of the last one (plus the H.265 `byte_alignment()`) is
//! where the slice data starts. strom's [`SubsampleGenerator`] must leave exactly the NAL
//! length prefix, the NAL header and that many bytes clear for `cbcs` (rounded up to a
//! byte, counting emulation prevention bytes), for every slice of real encodes: x264
//! High (CABAC, B-frames, weighted prediction), Baseline (CAVLC, 4 slices per picture),
//! interlaced (MBAFF: field flags), and x265 (WPP entry points, weighted prediction, SAO,
//! several slices).

mod common;

use std::path::Path;
use std::process::Command;

use common::cmaf::demux;
use common::{avc_aac_25, media, tool, Container};
use strom::crypto::cenc::{Subsample, SubsampleGenerator};
use strom::crypto::Scheme;
use strom::media::MediaKind;

/// The end (in RBSP bits from the start of the NAL unit) of every slice header FFmpeg's
/// `trace_headers` prints, in stream order.
fn traced_header_ends(path: &Path) -> Vec<usize> {
    let out = Command::new(tool("ffmpeg"))
        .args(["-nostdin", "-nostats", "-v", "info", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-bsf:v",
            "trace_headers",
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stderr);
    let mut ends = Vec::new();
    let mut in_slice = false;
    let mut end = None;
    for line in text.lines() {
        let Some((_, rest)) = line
            .split_once("] ")
            .filter(|_| line.starts_with("[trace_headers"))
        else {
            continue;
        };
        let parts: Vec<&str> = rest.split_whitespace().collect();
        // A syntax element: "<bit position> <name> <bits> = <value>".
        let element =
            parts.len() == 5 && parts[3] == "=" && parts[2].chars().all(|c| c == '0' || c == '1');
        let pos = parts.first().and_then(|p| p.parse::<usize>().ok());
        let Some(pos) = pos.filter(|_| element) else {
            // A new structure ("Slice Header", "Packet: ...", "Supplemental ...").
            if in_slice {
                ends.push(end.take().expect("slice header without elements"));
            }
            in_slice = rest.starts_with("Slice Header") || rest.starts_with("Slice Segment Header");
            continue;
        };
        if !in_slice {
            continue;
        }
        let (name, bits) = (parts[1], parts[2]);
        if name == "cabac_alignment_one_bit" {
            continue; // H.264: part of slice_data(), not of the header
        }
        end = Some(pos + bits.len());
    }
    if in_slice {
        ends.push(end.expect("slice header without elements"));
    }
    ends
}

/// Stored bytes (emulation prevention bytes counted) holding the first `rbsp_bytes` of
/// the RBSP of `nal`.
fn stored_len(nal: &[u8], rbsp_bytes: usize) -> usize {
    let (mut rbsp, mut zeros, mut i) = (0, 0, 0);
    while rbsp < rbsp_bytes {
        let b = nal[i];
        if zeros >= 2 && b == 3 {
            zeros = 0;
            i += 1;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp += 1;
        i += 1;
    }
    i
}

fn check(path: &Path, h265: bool) -> usize {
    let (tracks, frames) = demux(path);
    let track = tracks.iter().find(|t| t.kind == MediaKind::Video).unwrap();
    let mut gen = SubsampleGenerator::new(&track.config, Scheme::Cbcs)
        .unwrap()
        .unwrap();
    let ends = traced_header_ends(path);
    let mut n = 0;
    let mut with_epb = 0;
    for f in &frames[&track.id] {
        let mut pos = 0;
        while pos < f.data.len() {
            let len = u32::from_be_bytes(f.data[pos..pos + 4].try_into().unwrap()) as usize;
            let unit = &f.data[pos..pos + 4 + len];
            let nal = &unit[4..];
            pos += 4 + len;
            let ty = if h265 {
                (nal[0] >> 1) & 0x3f
            } else {
                nal[0] & 0x1f
            };
            let slice = if h265 {
                ty <= 9 || (16..=21).contains(&ty)
            } else {
                ty == 1 || ty == 5
            };
            // One unit at a time: in-band parameter sets update the generator.
            let mut out = Vec::new();
            gen.subsamples(unit, &mut out).unwrap();
            if !slice {
                assert_eq!(out, [Subsample::new(unit.len() as u16, 0)], "type {ty}");
                continue;
            }
            let end_bits = ends[n];
            let header = stored_len(nal, end_bits.div_ceil(8));
            if header != end_bits.div_ceil(8) {
                with_epb += 1;
            }
            let want = if header < len {
                vec![Subsample::new((4 + header) as u16, (len - header) as u32)]
            } else {
                vec![Subsample::new(unit.len() as u16, 0)]
            };
            assert_eq!(
                out, want,
                "slice {n} (type {ty}): FFmpeg ends its header at bit {end_bits}"
            );
            n += 1;
        }
    }
    assert_eq!(n, ends.len(), "every traced slice compared");
    eprintln!(
        "{}: {n} slices, {with_epb} with emulation prevention in the header",
        path.display()
    );
    n
}

#[test]
fn h264_high_cabac_bframes() {
    let file = avc_aac_25(4, Container::Mp4);
    assert!(check(&file, false) >= 100);
}

#[test]
fn h264_baseline_cavlc_four_slices() {
    let file = media(
        "cenc_h264_baseline_slices.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=2",
            "-c:v",
            "libx264",
            "-threads",
            "1",
            "-profile:v",
            "baseline",
            "-x264-params",
            "slices=4:keyint=25",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    assert!(check(&file, false) >= 200);
}

#[test]
fn h264_interlaced_mbaff() {
    let file = media(
        "cenc_h264_interlaced.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=720x576:rate=25:duration=2",
            "-c:v",
            "libx264",
            "-threads",
            "1",
            "-flags",
            "+ildct+ilme",
            "-x264-params",
            "tff=1:keyint=25:weightp=2:bframes=2:b-pyramid=normal:ref=4",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    assert!(check(&file, false) >= 50);
}

#[test]
fn h265_wpp_weighted_sao_slices() {
    let file = media(
        "cenc_h265_slices.mp4",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=2",
            "-c:v", "libx265", "-preset", "fast", "-x265-params",
            "log-level=error:keyint=25:bframes=3:weightp=1:weightb=1:wpp=1:slices=2:pools=1:frame-threads=1:ref=3",
            "-tag:v", "hvc1",
        ],
    );
    assert!(check(&file, true) >= 100);
}
