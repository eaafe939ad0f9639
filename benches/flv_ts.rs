//! FLV demux and FLV -> MPEG-TS segmenting, in memory, output discarded.
//!
//! Input: a real x264 + AAC capture made by ffmpeg (1080p25, ~6 Mbit/s, 20 s),
//! generated once into `target/bench-media/`. Throughput is reported per input byte
//! (`flv_ts/*/bytes`) and per TS packet written (`flv_ts/segment/packets`).

mod common;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strom::ingest::flv::FlvDemuxer;
use strom::media::Item;
use strom::package::{VodOutput, VodPackager, VodPackagerOptions};
use strom::pipeline::Stage;

/// Read size of the example's file adapter (examples/common/input.rs).
const CHUNK: usize = 1024 * 1024;

fn input() -> Bytes {
    Bytes::from(std::fs::read(common::bench_1080p("flv", "flv")).unwrap())
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

/// FLV -> VodPackager (segmenter + TS muxer, as the package example runs it), output
/// pieces discarded; returns TS packets written.
fn segment(data: &Bytes) -> u64 {
    let mut p = VodPackager::new(VodPackagerOptions::default()).unwrap();
    let mut packets = 0u64;
    let mut take = |o: VodOutput| {
        if let VodOutput::SegmentData { data, .. } = o {
            packets += (data.len() / 188) as u64;
        }
    };
    demux(data, |item| {
        p.push(item).unwrap();
        while let Some(o) = p.poll() {
            take(o.unwrap());
        }
    });
    p.finish().unwrap();
    while let Some(o) = p.poll() {
        take(o.unwrap());
    }
    packets
}

fn bench(c: &mut Criterion) {
    let data = input();
    let packets = segment(&data);

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
    g.bench_function("segment/bytes", |b| b.iter(|| segment(&data)));
    g.throughput(Throughput::Elements(packets));
    g.bench_function("segment/packets", |b| b.iter(|| segment(&data)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
