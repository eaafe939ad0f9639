//! CENC sample encryption throughput (`strom::crypto::cenc`, `strom::container::fmp4`),
//! in the forms to compare with `openssl speed -evp aes-128-ctr` / `aes-128-cbc`.
//!
//! Criterion ids (stable), throughput in bytes:
//!
//! * `cenc/cenc_16k`, `cenc/cenc_1k_single`: [`SampleCipher::encrypt`] with scheme `cenc`
//!   of one 16 KiB / 1 KiB sample protected whole, a new IV each time (one IV per sample,
//!   the expanded key reused); bytes of sample.
//! * `cenc/cenc_1k`: [`SampleCipher::encrypt_run`] of 64 samples of 1 KiB laid end to end,
//!   each with its own IV (keystream restarted per sample), in one call, as
//!   `protect_fragment` encrypts a fragment's `mdat`; bytes of samples.
//! * `cenc/cbcs_segment`: scheme `cbcs` over the video samples of a 2 s 1080p25 H.264
//!   fragment at ~6 Mbit/s (x264, encoded once with ffmpeg into `target/bench-media/`),
//!   with their subsample tables (slice headers clear, 1:9 pattern, constant IV); bytes
//!   *encrypted* (the 1 block in 10 the pattern encrypts).
//!   `cenc/cbcs_segment_total`: the same work per byte of payload.
//! * `cenc/protect_fragment`, `cenc/protect_fragment_cbcs`: [`protect_fragment`] of that
//!   fragment, from the clear bytes and the writer's table to the protected `styp` +
//!   `moof` + `mdat` in a reused buffer (subsample tables, IVs, `senc`/`saiz`/`saio`, the
//!   payload copy and its encryption); bytes of payload.

use std::path::PathBuf;
use std::process::Command;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strom::container::fmp4::{protect_fragment, Fmp4Writer, FragmentInfo, ProtectionInfo};
use strom::container::mp4::Mp4Demuxer;
use strom::crypto::cenc::{
    derive_sample_iv, Pattern, RunSample, SampleCipher, Subsample, SubsampleGenerator,
};
use strom::crypto::{ContentKey, Iv, KeyId, Scheme};
use strom::media::{Frame, Item, MediaKind, TrackInfo};

const KEY: ContentKey = ContentKey([0x3c; 16]);

/// xorshift64* bytes.
fn pseudo_random(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A 2 s 1080p25 H.264 encode at ~6 Mbit/s, made once with ffmpeg.
fn capture() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-media");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cenc_1080p25_6mbps_2s.mp4");
    if path.is_file() {
        return path;
    }
    let tmp = dir.join(format!(".cenc_1080p.{}.mp4", std::process::id()));
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1920x1080:rate=25:duration=2")
        .args([
            "-c:v",
            "libx264",
            "-threads",
            "1",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            "6M",
            "-maxrate",
            "6M",
            "-bufsize",
            "12M",
            "-g",
            "50",
            "-bf",
            "3",
        ])
        .arg(&tmp)
        .output()
        .expect("ffmpeg is needed to make the bench input (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// The video track and one clear fragment of all its frames (bytes and table).
fn fragment() -> (TrackInfo, Bytes, FragmentInfo) {
    let data = Bytes::from(std::fs::read(capture()).unwrap());
    let mut track = None;
    let mut frames: Vec<Frame> = Vec::new();
    for item in Mp4Demuxer::read_all(data).unwrap() {
        match item {
            Item::Event(strom::media::Event::TrackAdded(t)) if t.kind == MediaKind::Video => {
                track = Some(t)
            }
            Item::Frame(f) => frames.push(f),
            _ => {}
        }
    }
    let track = track.unwrap();
    frames.retain(|f| f.track == track.id);
    let first = frames[0].dts;
    for f in &mut frames {
        f.dts = strom::time::Timestamp::new(f.dts.ticks() - first.ticks(), first.scale());
        f.pts = strom::time::Timestamp::new(f.pts.ticks() - first.ticks(), first.scale());
    }
    let mut w = Fmp4Writer::new(track.clone()).unwrap();
    let mut out = BytesMut::new();
    let last = frames.last().unwrap().dts;
    let end = strom::time::Timestamp::new(last.ticks() + 3600, last.scale());
    let info = w.media_segment(&frames, 1, Some(end), &mut out).unwrap();
    (track, out.freeze(), info)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("cenc");
    let cenc = SampleCipher::new(Scheme::Cenc, &KEY).unwrap();
    // One sample per call.
    for (id, size) in [("cenc_16k", 16 * 1024), ("cenc_1k_single", 1024)] {
        let mut buf = pseudo_random(size as u64, size);
        let mut n = 0u32;
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(id, |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                let iv = derive_sample_iv(1, n, 0, 0).unwrap();
                cenc.encrypt(&mut buf, &iv, &[], Pattern::NONE).unwrap();
            })
        });
    }
    // A run of 1 KiB samples (each its own IV and keystream), as protect_fragment
    // encrypts a fragment's mdat: 64 per call.
    {
        let (size, count) = (1024usize, 64u32);
        let mut buf = pseudo_random(7, size * count as usize);
        let mut n = 0u32;
        g.throughput(Throughput::Bytes((size * count as usize) as u64));
        g.bench_function("cenc_1k", |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                let run: Vec<RunSample<'_>> = (0..count)
                    .map(|i| RunSample::new(size, derive_sample_iv(1, n, i, 0).unwrap(), &[]))
                    .collect();
                cenc.encrypt_run(&mut buf, &run, Pattern::NONE).unwrap();
            })
        });
    }

    let (track, clear, info) = fragment();
    let payload: u64 = info.samples.iter().map(|s| u64::from(s.size)).sum();
    eprintln!(
        "cenc bench: {} video samples, {payload} payload bytes ({:.2} Mbit/s over {} s)",
        info.samples.len(),
        payload as f64 * 8.0 / 2e6,
        2
    );

    // cbcs over the samples with their subsample tables.
    let mut gen = SubsampleGenerator::new(&track.config, Scheme::Cbcs)
        .unwrap()
        .unwrap();
    let mut samples: Vec<(Vec<u8>, Vec<Subsample>)> = Vec::new();
    for s in &info.samples {
        let data = clear[s.offset..s.offset + s.size as usize].to_vec();
        let mut subs = Vec::new();
        gen.subsamples(&data, &mut subs).unwrap();
        samples.push((data, subs));
    }
    // Bytes the 1:9 pattern encrypts: the first block of every 10 full blocks.
    let encrypted: u64 = samples
        .iter()
        .flat_map(|(_, subs)| subs.iter())
        .map(|s| {
            let blocks = u64::from(s.protected) / 16;
            16 * blocks.div_ceil(10)
        })
        .sum();
    eprintln!("cenc bench: cbcs encrypts {encrypted} of {payload} bytes");
    let cbcs = SampleCipher::new(Scheme::Cbcs, &KEY).unwrap();
    let iv = Iv::Iv16([0x42; 16]);
    for (id, bytes) in [("cbcs_segment", encrypted), ("cbcs_segment_total", payload)] {
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(id, |b| {
            b.iter(|| {
                for (data, subs) in samples.iter_mut() {
                    cbcs.encrypt(data, &iv, subs, Pattern::CBCS_VIDEO).unwrap();
                }
            })
        });
    }

    let kid = KeyId([0x11; 16]);
    let mut out = BytesMut::with_capacity(clear.len() + 64 * 1024);
    for (id, p) in [
        ("protect_fragment", ProtectionInfo::cenc(kid)),
        (
            "protect_fragment_cbcs",
            ProtectionInfo::cbcs(kid, [0x42; 16]),
        ),
    ] {
        g.throughput(Throughput::Bytes(payload));
        g.bench_function(id, |b| {
            b.iter(|| {
                out.clear();
                protect_fragment(&clear, &info, &track, &p, &KEY, &mut out).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
