//! MPEG-TS demux throughput, in memory, frames discarded.
//!
//! Input: a real x264 + AAC transport stream made by ffmpeg (1080p25, ~6 Mbit/s, 20 s,
//! about 15 MB), generated once into `target/bench-media/`. Throughput is per input byte
//! (`ts_demux/*/bytes`): the demuxer alone, fed 1 MiB chunks (the example file
//! adapter's read size) and 188-byte chunks (one packet per push, a UDP/SRT-like
//! feed), and demux + `TsMuxer` re-mux (TS in, TS out).
//!
//! One-shot mode for `scripts/bench_ts_demux.sh` (compared with `ffmpeg -c copy -f null`
//! under the same timer): with `STROM_TS_DEMUX_FILE=<file.ts>` set, the binary reads
//! that file, demuxes it `STROM_TS_DEMUX_PASSES` times (default 1), prints the frame
//! count and exits without running criterion.

mod common;

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput};
use strom::container::ts::{TsDemuxer, TsMuxer, TsMuxerOptions};
use strom::media::{Event, Item, TrackInfo};
use strom::pipeline::Stage;

/// Read size of the example's file adapter (examples/common/input.rs).
const CHUNK: usize = 1024 * 1024;

/// The bench input, made once (the same file `scripts/bench_ts_demux.sh` uses).
fn input_path() -> PathBuf {
    common::bench_1080p("mpegts", "ts")
}

/// Demuxes `data` pushed in `chunk`-byte pieces; `on_item` sees every item.
fn demux(data: &Bytes, chunk: usize, mut on_item: impl FnMut(Item)) {
    let mut d = TsDemuxer::new();
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + chunk).min(data.len());
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

/// Frames in the input.
fn count(data: &Bytes) -> u64 {
    let mut frames = 0u64;
    demux(data, CHUNK, |i| frames += u64::from(i.as_frame().is_some()));
    frames
}

/// Demux and re-mux into one buffer (cleared per MiB of output); returns packets.
fn remux(data: &Bytes, out: &mut BytesMut) -> u64 {
    let mut tracks: Vec<TrackInfo> = Vec::new();
    let mut frames = Vec::new();
    let mut mux: Option<TsMuxer> = None;
    let mut packets = 0u64;
    demux(data, CHUNK, |item| match item {
        Item::Event(Event::TrackAdded(t)) => tracks.push(t),
        Item::Frame(f) => {
            // Tracks are all announced within the first second: hold frames until then.
            if mux.is_none() && tracks.len() < 2 {
                frames.push(f);
                return;
            }
            let m = mux
                .get_or_insert_with(|| TsMuxer::new(&tracks, TsMuxerOptions::default()).unwrap());
            for f in frames.drain(..).chain(std::iter::once(f)) {
                m.write_frame(&f, out).unwrap();
            }
            if out.len() >= CHUNK {
                packets += (out.len() / 188) as u64;
                out.clear();
            }
        }
        _ => {}
    });
    if let Some(m) = mux.as_mut() {
        m.flush(out).unwrap();
    }
    packets + (out.len() / 188) as u64
}

fn benches(c: &mut Criterion) {
    let data = Bytes::from(std::fs::read(input_path()).unwrap());
    assert!(count(&data) > 1000);
    let mut g = c.benchmark_group("ts_demux");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("demux_1mib_chunks/bytes", |b| {
        b.iter(|| count(&data));
    });
    g.bench_function("demux_188_byte_chunks/bytes", |b| {
        b.iter(|| {
            let mut n = 0u64;
            demux(&data, 188, |i| n += u64::from(i.as_frame().is_some()));
            n
        });
    });
    let mut out = BytesMut::with_capacity(2 * CHUNK);
    g.bench_function("demux_remux_ts/bytes", |b| {
        b.iter(|| remux(&data, &mut out));
    });
    g.finish();
}

/// `STROM_TS_DEMUX_FILE` mode: demux a file for the comparison script.
fn one_shot(path: &Path) {
    let passes: u32 = std::env::var("STROM_TS_DEMUX_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let data = Bytes::from(std::fs::read(path).unwrap());
    let mut frames = 0;
    for _ in 0..passes {
        frames = count(&data);
    }
    println!("{frames} frames");
}

fn main() {
    if let Some(path) = std::env::var_os("STROM_TS_DEMUX_FILE") {
        one_shot(Path::new(&path));
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
