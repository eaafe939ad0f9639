//! HLS SAMPLE-AES of one MPEG-TS segment, in memory, output into a reused buffer.
//!
//! Input: a real x264 + AAC capture made by ffmpeg (1080p25, ~6 Mbit/s, 20 s; the
//! file `benches/flv_ts.rs` uses, generated once into `target/bench-media/`), demuxed
//! and cut by the crate's segmenter; the bench takes the second segment (6 s, a whole
//! GOP run, no encoder warm-up).
//!
//! Criterion ids:
//!
//! * `sample_aes/segment`: [`write_sample_aes_segment`], what an origin does per
//!   request (TS muxing with the slices and AAC frames encrypted), throughput in
//!   bytes of the segment's frames (everything the muxer reads).
//! * `sample_aes/segment_encrypted`: the same work, throughput in bytes that go
//!   through AES (the 16-byte blocks of the 1:9 pattern and of the AAC frames),
//!   about a tenth of the video.
//! * `sample_aes/clear_segment`: the same segment muxed clear by [`TsMuxer`], the
//!   baseline the encryption adds to.
//! * `sample_aes/frames`: [`SampleAes`] alone over the segment's NAL units and AAC
//!   frames (escaping included, no TS), bytes of the frames.

mod common;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strom::container::ts::{write_sample_aes_segment, TsMuxer, TsMuxerOptions};
use strom::crypto::sample_aes::{
    aac_encrypted_len, h264_nal_is_protected, SampleAes, H264_CLEAR_LEADER, PATTERN_LEN,
};
use strom::crypto::{ContentKey, Iv};
use strom::ingest::flv::FlvDemuxer;
use strom::media::{CodecConfig, MediaKind};
use strom::package::{Segment, Segmenter, SegmenterOptions};
use strom::pipeline::Stage;
use strom::time::Timestamp;

fn input() -> Bytes {
    Bytes::from(std::fs::read(common::bench_1080p("flv", "flv")).unwrap())
}

/// The second 6 s segment of the input.
fn segment(data: &Bytes) -> Segment {
    let mut d = FlvDemuxer::new();
    let mut opts = SegmenterOptions::default();
    opts.target_duration = Timestamp::from_secs(6);
    let mut s = Segmenter::new(opts).unwrap();
    let mut segs = Vec::new();
    let pump = |d: &mut FlvDemuxer, s: &mut Segmenter, segs: &mut Vec<Segment>| {
        while let Some(item) = d.poll() {
            s.push(item.unwrap()).unwrap();
            while let Some(seg) = s.poll() {
                segs.push(seg.unwrap());
            }
        }
    };
    for chunk in data.chunks(1 << 20) {
        d.push(data.slice_ref(chunk)).unwrap();
        pump(&mut d, &mut s, &mut segs);
    }
    d.finish().unwrap();
    pump(&mut d, &mut s, &mut segs);
    s.finish().unwrap();
    while let Some(seg) = s.poll() {
        segs.push(seg.unwrap());
    }
    segs.swap_remove(1)
}

/// Bytes that go through AES in `seg` under SAMPLE-AES.
fn encrypted_bytes(seg: &Segment) -> u64 {
    let mut n = 0;
    for f in &seg.frames {
        let kind = seg
            .tracks
            .iter()
            .find(|t| t.id == f.track)
            .map(|t| t.config.kind());
        match kind {
            Some(MediaKind::Video) => {
                let mut pos = 0;
                while pos + 4 <= f.data.len() {
                    let len = u32::from_be_bytes(f.data[pos..pos + 4].try_into().unwrap()) as usize;
                    let nal = &f.data[pos + 4..pos + 4 + len];
                    if h264_nal_is_protected(nal) {
                        let body = len - H264_CLEAR_LEADER;
                        // A block per 160-byte run with more than 16 bytes left.
                        let full = body / PATTERN_LEN;
                        let tail = body % PATTERN_LEN;
                        n += 16 * (full + usize::from(tail > 16)) as u64;
                    }
                    pos += 4 + len;
                }
            }
            Some(_) => n += aac_encrypted_len(f.data.len()) as u64,
            None => {}
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let data = input();
    let seg = segment(&data);
    let total = seg.payload_len() as u64;
    let encrypted = encrypted_bytes(&seg);
    let key = ContentKey(*b"bench sample-aes");
    let iv = Iv::from_sequence(1);
    let opts = TsMuxerOptions::default();
    let video = seg
        .tracks
        .iter()
        .find(|t| matches!(t.config, CodecConfig::H264(_)))
        .map(|t| t.id)
        .unwrap();
    eprintln!(
        "sample_aes: segment {} of {} ms, {} frames, {total} bytes, {encrypted} encrypted ({:.1} %)",
        seg.sequence,
        seg.duration.as_millis(),
        seg.frames.len(),
        encrypted as f64 * 100.0 / total as f64
    );

    let mut g = c.benchmark_group("sample_aes");
    g.sample_size(30);
    let mut out = BytesMut::with_capacity(total as usize * 11 / 10);
    g.throughput(Throughput::Bytes(total));
    g.bench_function("segment", |b| {
        b.iter(|| {
            out.clear();
            write_sample_aes_segment(&seg, &key, &iv, &opts, &mut out).unwrap();
            out.len()
        })
    });
    g.throughput(Throughput::Bytes(encrypted));
    g.bench_function("segment_encrypted", |b| {
        b.iter(|| {
            out.clear();
            write_sample_aes_segment(&seg, &key, &iv, &opts, &mut out).unwrap();
            out.len()
        })
    });
    g.throughput(Throughput::Bytes(total));
    g.bench_function("clear_segment", |b| {
        b.iter(|| {
            out.clear();
            let mut mux = TsMuxer::new(&seg.tracks, opts.clone()).unwrap();
            mux.write_segment(&seg, &mut out).unwrap();
            out.len()
        })
    });
    let sa = SampleAes::new(&key, &iv).unwrap();
    let mut nal_out = Vec::with_capacity(total as usize * 11 / 10);
    let mut aac = Vec::with_capacity(8192);
    g.bench_function("frames", |b| {
        b.iter(|| {
            nal_out.clear();
            for f in &seg.frames {
                if f.track == video {
                    let mut pos = 0;
                    while pos + 4 <= f.data.len() {
                        let len =
                            u32::from_be_bytes(f.data[pos..pos + 4].try_into().unwrap()) as usize;
                        sa.encrypt_h264_nal(&f.data[pos + 4..pos + 4 + len], &mut nal_out);
                        pos += 4 + len;
                    }
                } else {
                    aac.clear();
                    aac.extend_from_slice(&f.data);
                    sa.encrypt_aac_frame(&mut aac);
                }
            }
            nal_out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
