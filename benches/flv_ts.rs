//! FLV demux and FLV -> MPEG-TS segmenting, in memory, output discarded.
//!
//! Input: a real x264 + AAC capture made by ffmpeg (1080p25, ~6 Mbit/s, 20 s),
//! generated once into `target/bench-media/`. Throughput is reported per input byte
//! (`flv_ts/*/bytes`) and per TS packet written (`flv_ts/segment/packets`).

use std::path::PathBuf;
use std::process::Command;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strom::container::ts::{TsMuxer, TsMuxerOptions};
use strom::ingest::flv::FlvDemuxer;
use strom::media::Item;
use strom::package::{Segmenter, SegmenterOptions};
use strom::pipeline::Stage;

/// Read size of the example's file adapter (examples/common/input.rs).
const CHUNK: usize = 256 * 1024;

fn input() -> Bytes {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-media");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench_1080p_6m_20s.flv");
    if !path.is_file() {
        let tmp = dir.join(".bench_1080p_6m_20s.flv");
        let st = Command::new("ffmpeg")
            .args(["-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=1920x1080:rate=25:duration=20")
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000:duration=20",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-profile:v",
                "high",
                "-bf",
                "3",
            ])
            .args([
                "-g", "50", "-b:v", "6000k", "-maxrate", "6000k", "-bufsize", "12000k",
            ])
            .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv"])
            .arg(&tmp)
            .status()
            .expect("ffmpeg is needed to make the bench input (scripts/test.sh installs it)");
        assert!(st.success());
        std::fs::rename(&tmp, &path).unwrap();
    }
    Bytes::from(std::fs::read(path).unwrap())
}

fn demux(data: &Bytes, mut on_item: impl FnMut(Item)) {
    let mut d = FlvDemuxer::new();
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + CHUNK).min(data.len());
        d.push(data.slice(pos..end)).unwrap();
        while let Some(i) = d.poll() {
            on_item(i.unwrap());
        }
        pos = end;
    }
    d.finish().unwrap();
    while let Some(i) = d.poll() {
        on_item(i.unwrap());
    }
}

/// FLV -> segmenter -> TS muxer; returns TS packets written.
fn segment(data: &Bytes, out: &mut BytesMut) -> u64 {
    let mut seg = Segmenter::new(SegmenterOptions::default()).unwrap();
    let mut mux: Option<TsMuxer> = None;
    let mut packets = 0u64;
    let mut write = |s: strom::package::Segment, out: &mut BytesMut| {
        let m =
            mux.get_or_insert_with(|| TsMuxer::new(&s.tracks, TsMuxerOptions::default()).unwrap());
        out.clear();
        m.write_segment(&s, out).unwrap();
        packets += (out.len() / 188) as u64;
    };
    demux(data, |item| {
        seg.push(item).unwrap();
        while let Some(s) = seg.poll() {
            write(s.unwrap(), out);
        }
    });
    seg.finish().unwrap();
    while let Some(s) = seg.poll() {
        write(s.unwrap(), out);
    }
    packets
}

fn bench(c: &mut Criterion) {
    let data = input();
    let mut out = BytesMut::with_capacity(8 << 20);
    let packets = segment(&data, &mut out);

    let mut g = c.benchmark_group("flv_ts");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("demux/bytes", |b| {
        b.iter(|| {
            let mut n = 0usize;
            demux(&data, |i| n += matches!(i, Item::Frame(_)) as usize);
            n
        })
    });
    g.bench_function("segment/bytes", |b| b.iter(|| segment(&data, &mut out)));
    g.throughput(Throughput::Elements(packets));
    g.bench_function("segment/packets", |b| b.iter(|| segment(&data, &mut out)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
