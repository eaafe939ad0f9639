//! AES throughput: HLS AES-128 whole-segment encryption and the raw AES-CTR keystream
//! the CENC `cenc` scheme is built on, in the forms `scripts/bench_crypto_vs_openssl.sh`
//! compares with `openssl speed -evp aes-128-cbc` / `aes-128-ctr`.
//!
//! Criterion ids (stable; the script reads `target/criterion/crypto/<id>/new/estimates.json`),
//! all reported as bytes of input:
//!
//! * `aes128_cbc_segment`: [`encrypt_segment`] of a 6 s 1080p segment at 6 Mbit/s
//!   (23 937 TS packets, 4 500 156 bytes) appended to a reused output buffer, the way an
//!   origin encrypts a stored clear segment per request.
//! * `aes128_cbc_segment_fresh`: the same into a new buffer each time (page faults of a
//!   4.5 MB allocation included).
//! * `aes128_cbc_in_place`: [`encrypt_in_place`] of that segment.
//! * `aes128_cbc_decrypt_segment`: [`decrypt_segment`] of its ciphertext (CBC decryption
//!   runs blocks in parallel).
//! * `aes128_cbc_16k`: [`SegmentEncryptor::update`] over 16 KiB chunks (what `openssl
//!   speed -bytes 16384` measures: one context, a hot buffer).
//! * `ctr_16k`, `ctr_1k`: `ctr::Ctr64BE<aes::Aes128>` keystream applied in place to a
//!   16 KiB / 1 KiB buffer, one cipher context carried on (as `openssl speed`).
//! * `ctr_1k_new_iv`: the same 1 KiB with a new IV each time from an expanded key (a CENC
//!   sample: one IV per sample).
//!
//! The segment bytes are pseudo-random: AES speed does not depend on the content.

use aes::cipher::{InnerIvInit, KeyInit, KeyIvInit, StreamCipher};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ctr::CtrCore;
use std::time::Duration;
use strom::crypto::aes128::{
    decrypt_segment, encrypt_in_place, encrypt_segment, hardware_accelerated, SegmentEncryptor,
};
use strom::crypto::{ContentKey, Iv};

/// 6 Mbit/s for 6 s, rounded up to whole 188-byte TS packets.
const SEGMENT_LEN: usize = 23_937 * 188;

type Aes128Ctr = ctr::Ctr64BE<aes::Aes128>;

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

fn bench(c: &mut Criterion) {
    eprintln!(
        "crypto bench: AES hardware acceleration {}",
        if hardware_accelerated() {
            "detected"
        } else {
            "NOT detected (software AES)"
        }
    );
    let key = ContentKey::from_hex("69eaa802a6763af979e8d1940fb88392").unwrap();
    let iv = Iv::from_sequence(1234);
    let segment = pseudo_random(1, SEGMENT_LEN);

    let mut g = c.benchmark_group("crypto");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    g.throughput(Throughput::Bytes(SEGMENT_LEN as u64));
    let mut out = BytesMut::with_capacity(SEGMENT_LEN + 16);
    g.bench_function("aes128_cbc_segment", |b| {
        b.iter(|| {
            out.clear();
            encrypt_segment(&key, &iv, &segment, &mut out).unwrap();
            out.len()
        })
    });
    g.bench_function("aes128_cbc_segment_fresh", |b| {
        b.iter(|| {
            let mut out = BytesMut::new();
            encrypt_segment(&key, &iv, &segment, &mut out).unwrap();
            out.freeze()
        })
    });
    let mut buf = BytesMut::with_capacity(SEGMENT_LEN + 16);
    g.bench_function("aes128_cbc_in_place", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&segment);
            encrypt_in_place(&key, &iv, &mut buf).unwrap();
            buf.len()
        })
    });
    let mut encrypted = BytesMut::new();
    encrypt_segment(&key, &iv, &segment, &mut encrypted).unwrap();
    let mut clear = BytesMut::with_capacity(SEGMENT_LEN + 16);
    g.bench_function("aes128_cbc_decrypt_segment", |b| {
        b.iter(|| {
            clear.clear();
            decrypt_segment(&key, &iv, &encrypted, &mut clear).unwrap();
            clear.len()
        })
    });

    // 16 KiB chunks through one encryptor, output buffer reused.
    let chunk = &segment[..16_384];
    let mut enc = SegmentEncryptor::new(&key, &iv).unwrap();
    let mut out = BytesMut::with_capacity(16_384);
    g.throughput(Throughput::Bytes(16_384));
    g.bench_function("aes128_cbc_16k", |b| {
        b.iter(|| {
            out.clear();
            enc.update(chunk, &mut out);
            out.len()
        })
    });

    // Raw AES-CTR keystream, the CENC `cenc` baseline.
    let iv_block = Iv::Iv8([7; 8]).to_block();
    for (id, len) in [("ctr_16k", 16_384usize), ("ctr_1k", 1024)] {
        let mut cipher = Aes128Ctr::new(key.as_bytes().into(), &iv_block.into());
        let mut buf = segment[..len].to_vec();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(id, |b| {
            b.iter(|| {
                cipher.apply_keystream(&mut buf);
                buf[0]
            })
        });
    }
    let aes = aes::Aes128::new(key.as_bytes().into());
    let mut buf = segment[..1024].to_vec();
    let mut sample_iv: u64 = 0;
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("ctr_1k_new_iv", |b| {
        b.iter(|| {
            sample_iv = sample_iv.wrapping_add(1);
            let block = Iv::Iv8(sample_iv.to_be_bytes()).to_block();
            let core = <CtrCore<aes::Aes128, ctr::flavors::Ctr64BE> as InnerIvInit>::inner_iv_init(
                aes.clone(),
                &block.into(),
            );
            let mut cipher = Aes128Ctr::from_core(core);
            cipher.apply_keystream(&mut buf);
            buf[0]
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
