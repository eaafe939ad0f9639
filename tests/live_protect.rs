//! Just-in-time protection from the live origin (`examples/live_origin.rs` with
//! `--key-secret`, `--playback-secret`, `--rotate`): ffmpeg publishes RTMP, the origin
//! stores the segments clear and serves `/live/{name}/aes128/...` as HLS AES-128 with keys
//! from `/keys/...`, all behind playback tokens. OpenSSL decrypts a served segment back
//! to the clear one byte for byte, and hls.js plays the stream live in Chromium, fetching
//! its keys with the token.
mod common;

use common::live::*;
use common::players::{self, PlayOpts, Player};
use common::*;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strom::auth::TokenAuthorizer;

const KEY_SECRET: &str = "live-protect: content keys derive from this";
const PLAYBACK_SECRET: &str = "live-protect: playback tokens";

fn unix_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The `(sequence, key URI)` of every segment of a media playlist, the key being the
/// last `EXT-X-KEY` before it.
fn keyed_segments(pl: &str) -> Vec<(u64, String)> {
    let mut seq: u64 = pl
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse().ok())
        .expect("media sequence");
    let mut key = None;
    let mut out = Vec::new();
    for line in pl.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
            assert!(attrs.starts_with("METHOD=AES-128,URI=\""), "{line}");
            assert!(!attrs.contains("IV="), "{line}");
            key = attrs.split('"').nth(1).map(str::to_string);
        } else if !line.is_empty() && !line.starts_with('#') {
            let uri = key
                .clone()
                .unwrap_or_else(|| panic!("no key before {line}:\n{pl}"));
            out.push((seq, uri));
            seq += 1;
        }
    }
    out
}

#[test]
fn aes128_live_behind_tokens_decrypts_with_openssl_and_plays_in_hls_js() {
    let input = avc_aac_25(10, Container::Flv);
    let origin = Origin::start_with(&[
        "--publish-secret",
        PUBLISH_SECRET,
        "--key-secret",
        KEY_SECRET,
        "--playback-secret",
        PLAYBACK_SECRET,
        "--rotate",
        "3",
    ]);
    let dir = TempDir::new("live-protect");
    let name = "protected";
    let mut ff = publish(
        &input,
        &origin.publish_url(name, &Origin::token_query(name)),
        120,
        &dir.join("ffmpeg.log"),
    );
    let tokens = TokenAuthorizer::new(PLAYBACK_SECRET.as_bytes().to_vec());
    let token = tokens.token(name, unix_s() + 3600);
    let q = format!("?token={token}");
    let media = format!("/live/{name}/aes128/media.m3u8");
    // Wait (bounded) for a window of 4 segments: two crypto periods of 3.
    let t0 = Instant::now();
    let pl = loop {
        let r = origin.get(&format!("{media}{q}")).expect("GET media.m3u8");
        if r.status == 200 {
            let text = String::from_utf8(r.body).unwrap();
            if keyed_segments(&text).len() >= 4 {
                break text;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40) && ff.exited().is_none(),
            "no protected playlist: {}\n{}",
            origin.log(),
            std::fs::read_to_string(dir.join("ffmpeg.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let segs = keyed_segments(&pl);
    let keys: std::collections::BTreeSet<&str> = segs.iter().map(|(_, k)| k.as_str()).collect();
    assert!(keys.len() >= 2, "rotation every 3 segments:\n{pl}");
    for (seq, key_uri) in &segs {
        assert_eq!(
            *key_uri,
            format!("{}{q}", key_uri.strip_suffix(&q).unwrap())
        );
        assert!(pl.contains(&format!("\n{seq}.ts{q}\n")), "{pl}");
    }

    // Without a token, or with another stream's or an expired one: 403 everywhere.
    let (seq, key_uri) = segs[0].clone();
    let key_path = key_uri.strip_suffix(&q).unwrap().to_string();
    let seg_path = format!("/live/{name}/aes128/{seq}.ts");
    let other = format!("?token={}", tokens.token("other", unix_s() + 3600));
    let expired = format!("?token={}", tokens.token(name, unix_s() - 5));
    for path in [&media, &seg_path, &key_path] {
        for bad in ["", other.as_str(), expired.as_str()] {
            let r = origin.get(&format!("{path}{bad}")).unwrap();
            assert_eq!(r.status, 403, "{path}{bad}");
        }
    }

    // OpenSSL turns the served segment back into the stored clear one, byte for byte.
    let key = origin.get(&key_uri).unwrap();
    assert_eq!(key.status, 200, "{key_uri}");
    assert_eq!(key.body.len(), 16);
    let enc = origin.get(&format!("{seg_path}{q}")).unwrap();
    assert_eq!(enc.status, 200);
    let clear = origin.get(&format!("/live/{name}/{seq}.ts")).unwrap();
    assert_eq!(clear.status, 200);
    assert_ne!(enc.body, clear.body);
    let (enc_file, dec_file) = (dir.join("enc.ts"), dir.join("dec.ts"));
    std::fs::write(&enc_file, &enc.body).unwrap();
    let iv = format!("{seq:032x}");
    let st = Command::new("openssl")
        .args([
            "enc",
            "-d",
            "-aes-128-cbc",
            "-K",
            &hex(&key.body),
            "-iv",
            &iv,
            "-in",
        ])
        .arg(&enc_file)
        .arg("-out")
        .arg(&dec_file)
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl enc -d failed");
    assert!(
        std::fs::read(&dec_file).unwrap() == clear.body,
        "openssl's decryption differs from the stored segment {seq}"
    );
    println!(
        "segment {seq}: {} bytes encrypted, openssl decrypts it to the {} clear bytes; {} keys in a window of {} segments",
        enc.body.len(),
        clear.body.len(),
        keys.len(),
        segs.len()
    );

    // hls.js plays it live, fetching keys and segments with the token.
    let url = origin.http_url(&format!("/live/{name}/aes128/index.m3u8{q}"));
    if let Some(o) = players::play(&PlayOpts::url(Player::HlsJs, &url, 16).live()) {
        println!("hls.js AES-128: {}", o.summary());
        assert!(o.ok, "{}\n{}", o.summary(), o.raw);
        assert!(o.live, "{}", o.summary());
        assert!(o.http_errors.is_empty(), "{:?}", o.http_errors);
        assert!(o.video_width > 0, "no picture: {}", o.summary());
        let latency = o.live_latency_s.expect("latency");
        assert!((0.0..=12.0).contains(&latency), "latency {latency}");
    }
    assert!(ff.exited().is_none(), "ffmpeg stopped publishing");
    ff.kill();
}
