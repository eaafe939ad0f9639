//! `EXT-X-KEY` and `EXT-X-SESSION-KEY` as the HLS writers emit them, read back by an
//! independent parser (m3u8-rs), by a second, deliberately naive reading of the
//! text that applies RFC 8216bis §4.4.4.4 literally (a tag applies to every later
//! segment until the next tag with the same KEYFORMAT), and played by ffmpeg.
//!
//! * A live sliding window with key rotation (the crate's `KeyRotation` and
//!   `HmacKeyProvider`) and two key systems: at every step, every listed segment
//!   resolves to the key of its crypto period, the first listed one included.
//! * A VOD playlist and a multivariant playlist with several key systems over
//!   SAMPLE-AES segments: ffmpeg (which ignores `KEYFORMAT` and takes the last
//!   `EXT-X-KEY`) plays them and decodes the source's pictures.

mod common;
#[path = "../examples/common/input.rs"]
mod input;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::BytesMut;
use common::*;
use strom::container::ts::{write_sample_aes_segment, TsMuxerOptions};
use strom::crypto::key::{HmacKeyProvider, KeyProvider, KeyRotation};
use strom::crypto::{ContentKey, Iv};
use strom::package::hls::{
    Key, KeyMethod, MediaPlaylist, MediaSegment, MultivariantPlaylist, PlaylistType, Variant,
    KEYFORMAT_IDENTITY, KEYFORMAT_WIDEVINE,
};
use strom::package::{Segment, Segmenter, SegmenterOptions};
use strom::pipeline::Stage;
use strom::time::Timestamp;

/// The keys of segment `seq`: an identity key file per crypto period and a
/// Widevine entry naming the same key id.
fn keys_for(provider: &impl KeyProvider, rotation: KeyRotation, seq: u64) -> Vec<Key> {
    let period = rotation.period(seq);
    let sk = provider.key("live", period).unwrap();
    vec![
        Key::new(KeyMethod::SampleAes, format!("keys/{period}.key")),
        Key::new(
            KeyMethod::SampleAes,
            format!("data:text/plain;kid={}", sk.kid),
        )
        .with_keyformat(KEYFORMAT_WIDEVINE, &[1]),
    ]
}

/// KEYFORMAT -> (METHOD, URI) of the keys in force.
type InForce = BTreeMap<String, (String, String)>;

/// The keys in force for each segment URI, read from the playlist text by the
/// letter of §4.4.4.4: KEYFORMAT -> (METHOD, URI), replaced by later tags of the
/// same KEYFORMAT; METHOD=NONE clears them.
fn resolve(text: &str) -> Vec<(String, InForce)> {
    let mut in_force = InForce::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
            let mut m = BTreeMap::new();
            // Attribute values here have no commas inside quotes.
            for kv in attrs.split(',') {
                let (k, v) = kv.split_once('=').unwrap();
                m.insert(k.to_string(), v.trim_matches('"').to_string());
            }
            let method = m["METHOD"].clone();
            if method == "NONE" {
                in_force.clear();
                continue;
            }
            let format = m
                .get("KEYFORMAT")
                .cloned()
                .unwrap_or_else(|| "identity".into());
            in_force.insert(format, (method, m["URI"].clone()));
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((line.to_string(), in_force.clone()));
        }
    }
    out
}

#[test]
fn live_window_states_the_key_of_its_first_segment() {
    let provider = HmacKeyProvider::new(b"hls-keys test secret, 32 bytes..").unwrap();
    let rotation = KeyRotation::every(3);
    let mut pl = MediaPlaylist::new(PlaylistType::Live);
    pl.target_duration = Some(2);
    const WINDOW: usize = 4;
    let mut checked = 0;
    for seq in 0..20u64 {
        pl.push_segment(
            MediaSegment::new(format!("s{seq}.ts"), Timestamp::from_millis(2000))
                .with_keys(keys_for(&provider, rotation, seq)),
        );
        while pl.segments.len() > WINDOW {
            pl.pop_front();
        }
        let text = pl.write().unwrap();
        let first = seq + 1 - pl.segments.len() as u64;
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:5\n"), "{text}");

        // The literal reading: every listed segment has its period's two keys.
        let resolved = resolve(&text);
        assert_eq!(resolved.len(), pl.segments.len());
        for (i, (uri, keys)) in resolved.iter().enumerate() {
            let s = first + i as u64;
            assert_eq!(uri, &format!("s{s}.ts"));
            let period = rotation.period(s);
            let kid = provider.key("live", period).unwrap().kid;
            assert_eq!(keys.len(), 2, "{uri}: {keys:?}\n{text}");
            assert_eq!(
                keys[KEYFORMAT_IDENTITY],
                ("SAMPLE-AES".into(), format!("keys/{period}.key"))
            );
            assert_eq!(
                keys[KEYFORMAT_WIDEVINE].1,
                format!("data:text/plain;kid={kid}")
            );
        }
        // Tags only before the first listed segment and at rotations.
        let groups = 1
            + (first + 1..=seq)
                .filter(|&s| rotation.is_period_start(s))
                .count();
        assert_eq!(text.matches("#EXT-X-KEY:").count(), 2 * groups, "{text}");

        // m3u8-rs: media sequence, and the identity key (written last) before the
        // first segment and each rotation.
        let p = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("m3u8-rs parses it");
        assert_eq!(p.media_sequence, first);
        assert_eq!(p.version, Some(5));
        for (i, seg) in p.segments.iter().enumerate() {
            let s = first + i as u64;
            let stated = i == 0 || rotation.is_period_start(s);
            assert_eq!(seg.key.is_some(), stated, "segment {s}");
            if let Some(k) = &seg.key {
                assert_eq!(k.method, m3u8_rs::KeyMethod::SampleAES);
                let period = rotation.period(s);
                assert_eq!(k.uri.as_deref(), Some(&*format!("keys/{period}.key")));
                assert_eq!(k.keyformat, None);
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 20);
}

/// The segments of `input` cut at `segment_ms` by the library's segmenter.
fn segments(input: &Path, segment_ms: i64) -> Vec<Segment> {
    let mut opts = SegmenterOptions::default();
    opts.target_duration = Timestamp::from_millis(segment_ms);
    let mut s = Segmenter::new(opts).unwrap();
    let mut out = Vec::new();
    input::read_file(input, |item, _| {
        s.push(item)?;
        while let Some(seg) = s.poll() {
            out.push(seg?);
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    s.finish().unwrap();
    while let Some(seg) = s.poll() {
        out.push(seg.unwrap());
    }
    out
}

#[test]
fn several_key_systems_play_in_ffmpeg() {
    let src = avc_aac_25(8, Container::Mp4);
    let segs = segments(&src, 4000);
    let dir = TempDir::new("hls-keys");
    let key = ContentKey(*b"several systems!");
    let iv = Iv::from_hex("0x0f0e0d0c0b0a09080706050403020100").unwrap();
    fs::write(dir.join("key.bin"), key.as_bytes()).unwrap();
    let keys = vec![
        // Listed first on purpose: the writer puts the identity key last.
        Key::new(KeyMethod::SampleAes, "key.bin").with_iv(iv),
        Key::new(KeyMethod::SampleAes, "data:text/plain;base64,AAAAAA==")
            .with_keyformat(KEYFORMAT_WIDEVINE, &[1])
            .with_iv(iv),
    ];
    let mut pl = MediaPlaylist::new(PlaylistType::Vod);
    let mut sizes = Vec::new();
    for s in &segs {
        let mut out = BytesMut::new();
        write_sample_aes_segment(s, &key, &iv, &TsMuxerOptions::default(), &mut out).unwrap();
        let name = format!("{}.ts", s.sequence);
        fs::write(dir.join(&name), &out).unwrap();
        sizes.push((out.len() as u64, s.duration));
        pl.push_segment(MediaSegment::from_segment(s, name).with_keys(keys.clone()));
    }
    let text = pl.write().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let first_key = lines
        .iter()
        .position(|l| l.starts_with("#EXT-X-KEY"))
        .unwrap();
    assert!(lines[first_key].contains(KEYFORMAT_WIDEVINE), "{text}");
    assert!(
        lines[first_key + 1].starts_with("#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"key.bin\",IV=0x0f0e")
    );
    assert_eq!(text.matches("#EXT-X-KEY").count(), 2);
    fs::write(dir.join("media.m3u8"), &text).unwrap();

    // A multivariant playlist announcing both keys.
    let mut meter = strom::package::hls::BandwidthMeter::new();
    for (bytes, d) in &sizes {
        meter.record(*bytes, *d);
    }
    let mut mv = MultivariantPlaylist::new();
    mv.variants.push(Variant::new(
        "media.m3u8",
        meter.peak(),
        "avc1.64001e,mp4a.40.2",
    ));
    mv.session_keys = keys.clone();
    let main = mv.write().unwrap();
    let p = m3u8_rs::parse_master_playlist_res(main.as_bytes()).expect("m3u8-rs parses it");
    assert_eq!(p.session_key.len(), 2);
    assert_eq!(p.session_key[0].0.uri.as_deref(), Some("key.bin"));
    assert_eq!(
        p.session_key[1].0.keyformat.as_deref(),
        Some(KEYFORMAT_WIDEVINE)
    );
    fs::write(dir.join("main.m3u8"), &main).unwrap();

    // ffmpeg through both playlists: the source's pictures, except the last access
    // unit, which ffmpeg's HLS demuxer hands out after the last segment and leaves
    // encrypted (see tests/sample_aes.rs).
    let theirs = framemd5(&src, "v:0");
    for pl in ["media.m3u8", "main.m3u8"] {
        let ours = hls_framemd5(&tool("ffmpeg"), &dir.join(pl), "v:0");
        assert_eq!(ours.len(), theirs.len(), "{pl}");
        let differ = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
        assert!(
            differ <= 1,
            "{pl}: {differ} of {} frames differ",
            ours.len()
        );
        assert_same_audio(
            &framemd5(&src, "a:0"),
            &hls_framemd5(&tool("ffmpeg"), &dir.join(pl), "a:0"),
            pl,
        );
    }
}
