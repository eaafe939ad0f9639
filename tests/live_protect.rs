//! Just-in-time protection from the live origin (`examples/live_origin.rs` with
//! `--key-secret`, `--playback-secret`, `--rotate`): ffmpeg publishes RTMP, the origin
//! stores the segments clear and serves `/live/{name}/aes128/...` as HLS AES-128 with keys
//! from `/keys/...`, all behind playback tokens. OpenSSL decrypts a served segment back
//! to the clear one byte for byte; `/live/{name}/sample-aes/...` is muxed again per request
//! from the stored CMAF fragments and their sample tables, and ffmpeg decrypts it to the
//! clear segment's frames; hls.js plays both live in Chromium, fetching its keys with the
//! token. `/live/{name}/cenc/...` and `.../cbcs/...` protect the stored CMAF fragments
//! per request: a current FFmpeg decrypts them to the clear fragments' frames, the
//! Clear Key licence endpoint answers only with a token, and Shaka Player plays the
//! `cenc` DASH stream live with EME Clear Key.
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
    keyed_segments_of(pl, "AES-128")
}

/// [`keyed_segments`] for keys of `method`.
fn keyed_segments_of(pl: &str, method: &str) -> Vec<(u64, String)> {
    let mut seq: u64 = pl
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse().ok())
        .expect("media sequence");
    let mut key = None;
    let mut out = Vec::new();
    for line in pl.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
            assert!(
                attrs.starts_with(&format!("METHOD={method},URI=\"")),
                "{line}"
            );
            // AES-128 takes the default IV (the media sequence number); SAMPLE-AES
            // states one IV per key, the first media sequence number of its period (3).
            match method {
                "SAMPLE-AES" => {
                    let iv = format!(",IV=0x{:032x}", seq / 3 * 3);
                    assert!(attrs.ends_with(&iv), "segment {seq}: {line}");
                }
                _ => assert!(!attrs.contains("IV="), "{line}"),
            }
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
fn aes128_and_sample_aes_live_behind_tokens_play_in_hls_js() {
    let (origin, dir, mut ff, name, q, tokens, pl) = start_protected();
    let media = format!("/live/{name}/aes128/media.m3u8");
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

    // hls.js plays AES-128 and SAMPLE-AES live, fetching keys and segments with the token.
    for scheme in ["aes128", "sample-aes"] {
        let url = origin.http_url(&format!("/live/{name}/{scheme}/index.m3u8{q}"));
        let Some(o) = players::play(&PlayOpts::url(Player::HlsJs, &url, 16).live()) else {
            break;
        };
        println!("hls.js {scheme}: {}", o.summary());
        assert!(o.ok, "{scheme}: {}\n{}", o.summary(), o.raw);
        assert!(o.live, "{scheme}: {}", o.summary());
        assert!(o.http_errors.is_empty(), "{scheme}: {:?}", o.http_errors);
        assert!(o.video_width > 0, "{scheme}: no picture: {}", o.summary());
        let latency = o.live_latency_s.expect("latency");
        assert!(
            (0.0..=12.0).contains(&latency),
            "{scheme}: latency {latency}"
        );
    }
    assert!(ff.exited().is_none(), "ffmpeg stopped publishing");
    ff.kill();
}

/// A live origin with protection (rotation every 3 segments, playback tokens) and an
/// ffmpeg publisher on `protected`; returns once the AES-128 media playlist lists 4
/// segments: (origin, scratch dir, publisher, name, `?token=T`, token maker, playlist).
fn start_protected() -> (
    Origin,
    TempDir,
    Proc,
    &'static str,
    String,
    TokenAuthorizer,
    String,
) {
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
    (origin, dir, ff, name, q, tokens, pl)
}

/// SAMPLE-AES from the live origin decodes in ffmpeg to the clear segments' frames (all
/// but the playlist's last picture, which ffmpeg's demuxer never decrypts).
#[test]
fn sample_aes_live_decodes_to_the_clear_frames_in_ffmpeg() {
    let (origin, dir, mut ff, name, q, _tokens, _pl) = start_protected();
    // SAMPLE-AES: the segment muxed again from the stored fragments, its NAL units and
    // AAC frames encrypted; ffmpeg's HLS demuxer decrypts it to the clear segment's
    // pictures and sound.
    let sa_media = format!("/live/{name}/sample-aes/media.m3u8");
    assert_eq!(origin.get(&sa_media).unwrap().status, 403);
    let sa = origin.get(&format!("{sa_media}{q}")).unwrap();
    assert_eq!(sa.status, 200);
    let sa = String::from_utf8(sa.body).unwrap();
    // Two segments of one crypto period (rotation every 3), as a player gets them.
    let listed = keyed_segments_of(&sa, "SAMPLE-AES");
    let (seq, key_uri) = listed
        .windows(2)
        .find(|w| w[0].1 == w[1].1)
        .map(|w| w[0].clone())
        .expect("two segments under one key");
    let mut local_pl = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:{seq}\n\
         #EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"{}\",IV=0x{:032x}\n",
        origin.http_url(&key_uri),
        seq / 3 * 3
    );
    let mut clear_bytes = Vec::new();
    for n in [seq, seq + 1] {
        local_pl.push_str(&format!(
            "#EXTINF:2.0,\n{}\n",
            origin.http_url(&format!("/live/{name}/sample-aes/{n}.ts{q}"))
        ));
        let c = origin.get(&format!("/live/{name}/{n}.ts")).unwrap();
        assert_eq!(c.status, 200);
        clear_bytes.extend_from_slice(&c.body);
    }
    local_pl.push_str("#EXT-X-ENDLIST\n");
    let local = dir.join("sample-aes.m3u8");
    std::fs::write(&local, local_pl).unwrap();
    let clear_file = dir.join("clear.ts");
    std::fs::write(&clear_file, &clear_bytes).unwrap();
    let clear = origin.get(&format!("/live/{name}/{seq}.ts")).unwrap();
    let enc = origin
        .get(&format!("/live/{name}/sample-aes/{seq}.ts{q}"))
        .unwrap();
    assert_eq!(enc.status, 200);
    assert_ne!(enc.body, clear.body);
    for spec in ["v", "a"] {
        let ours = hashes(
            Command::new(tool("ffmpeg"))
                .args(["-nostdin", "-v", "error"])
                .args(["-protocol_whitelist", "file,http,tcp,crypto,data"])
                .args(["-allowed_extensions", "ALL", "-i"])
                .arg(&local)
                .args(["-map", &format!("0:{spec}"), "-f", "framemd5", "-"]),
        );
        let reference = framemd5(&clear_file, spec);
        assert!(
            !reference.is_empty(),
            "no {spec} frames in segments {seq}.."
        );
        let diff: Vec<usize> = (0..ours.len().max(reference.len()))
            .filter(|&i| ours.get(i) != reference.get(i))
            .collect();
        // ffmpeg's HLS demuxer decrypts a packet with the key of the segment it is
        // reading; its H.264 parser hands the playlist's last access unit over only at
        // the end, after the last segment, and that one picture comes out still
        // encrypted. Every other frame must be identical.
        let last_video =
            |i: &usize| spec == "v" && ours.len() == reference.len() && *i + 3 >= ours.len();
        assert!(
            diff.iter().all(last_video) && diff.len() <= 1,
            "SAMPLE-AES segments {seq}, {}, stream {spec}: {} vs {} frames, differing at {diff:?}",
            seq + 1,
            ours.len(),
            reference.len()
        );
        println!(
            "SAMPLE-AES segments {seq}-{}: {} {spec} frames decode identical to the clear segments \
             (apart from {diff:?})",
            seq + 1,
            ours.len()
        );
    }

    ff.kill();
}

/// The frame checksums ffmpeg prints with `-f framemd5` (the last column).
fn hashes(cmd: &mut Command) -> Vec<String> {
    let out = cmd.output().expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    md5_column(&out.stdout)
}

/// The `id`s of the `<Representation>` elements of `mpd`.
fn representation_ids(mpd: &str) -> Vec<String> {
    mpd.split("<Representation")
        .skip(1)
        .filter_map(|r| r.split("id=\"").nth(1)?.split('"').next().map(String::from))
        .collect()
}

/// CENC from the live origin: the `cenc` and `cbcs` MPDs carry the key id and the
/// licence URL (with the token); the licence endpoint refuses requests without a token
/// and answers the key the key endpoint gives; a current FFmpeg decrypts the protected
/// init + fragments of every rendition, under both schemes, to the frames of the clear
/// ones (and does not with a wrong key); Shaka Player plays the `cenc` DASH stream live
/// in Chromium with EME Clear Key, its licence fetched from the origin.
#[test]
fn cenc_and_cbcs_live_decrypt_in_current_ffmpeg_and_play_in_shaka_with_clear_key() {
    let (origin, dir, mut ff, name, q, tokens, _pl) = start_protected();
    let t0 = Instant::now();
    let mpd = loop {
        let r = origin
            .get(&format!("/live/{name}/cenc/manifest.mpd{q}"))
            .unwrap();
        if r.status == 200 {
            break String::from_utf8(r.body).unwrap();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no cenc MPD: {}",
            r.status
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        origin
            .get(&format!("/live/{name}/cenc/manifest.mpd"))
            .unwrap()
            .status,
        403
    );
    let kid_uuid = mpd
        .split("cenc:default_KID=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("default_KID")
        .to_string();
    let kid_hex = kid_uuid.replace('-', "");
    let licence_url = origin.http_url(&format!("/licence/{name}{q}"));
    assert!(
        mpd.contains(&format!("<dashif:Laurl>{licence_url}</dashif:Laurl>")),
        "{mpd}"
    );
    let clear_mpd = String::from_utf8(
        origin
            .get(&format!("/live/{name}/manifest.mpd"))
            .unwrap()
            .body,
    )
    .unwrap();
    let reps = representation_ids(&clear_mpd);
    assert_eq!(representation_ids(&mpd), reps);
    assert!(reps.len() >= 2, "{clear_mpd}");

    // The licence endpoint: 403 without a token or with another stream's; with the token
    // the key of the requested KID, the same 16 bytes the key endpoint gives.
    let kid_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&kid_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let request = format!(
        "{{\"kids\":[\"{}\"],\"type\":\"temporary\"}}",
        strom::crypto::base64::url(&kid_bytes)
    );
    let other = format!("?token={}", tokens.token("other", unix_s() + 3600));
    for bad in ["".to_string(), other] {
        let r = origin
            .post(&format!("/licence/{name}{bad}"), request.as_bytes())
            .unwrap();
        assert_eq!(r.status, 403, "licence with {bad:?}");
    }
    let lic = origin
        .post(&format!("/licence/{name}{q}"), request.as_bytes())
        .unwrap();
    assert_eq!(lic.status, 200);
    let key = origin
        .get(&format!("/keys/{name}/{kid_hex}.key{q}"))
        .unwrap();
    assert_eq!(key.status, 200);
    let lic = String::from_utf8(lic.body).unwrap();
    assert!(
        lic.contains(&format!(
            "\"k\":\"{}\"",
            strom::crypto::base64::url(&key.body)
        )),
        "{lic}"
    );

    // A current FFmpeg decrypts init + three fragments of each rendition, under each
    // scheme, to the clear frames.
    let clear_pl = String::from_utf8(
        origin
            .get(&format!("/live/{name}/{}/media.m3u8", reps[0]))
            .unwrap()
            .body,
    )
    .unwrap();
    let numbers: Vec<u64> = clear_pl
        .lines()
        .filter_map(|l| l.strip_suffix(".m4s")?.parse().ok())
        .collect();
    assert!(numbers.len() >= 3, "{clear_pl}");
    let numbers = &numbers[numbers.len() - 3..];
    let ffmpeg9 = ffmpeg_current();
    let key_hex = hex(&key.body);
    // Every file first, in one go, while those fragments are in the live window; the
    // decoding comes after.
    let fetch = |prefix: &str, rep: &str| -> Vec<u8> {
        let mut all = Vec::new();
        let init = origin
            .get(&format!("/live/{name}/{prefix}{rep}/init.mp4{q}"))
            .unwrap();
        assert_eq!(init.status, 200, "{prefix}{rep}/init.mp4");
        all.extend_from_slice(&init.body);
        for n in numbers {
            let f = origin
                .get(&format!("/live/{name}/{prefix}{rep}/{n}.m4s{q}"))
                .unwrap();
            assert_eq!(f.status, 200, "{prefix}{rep}/{n}.m4s");
            all.extend_from_slice(&f.body);
        }
        all
    };
    for rep in &reps {
        for prefix in ["", "cenc/", "cbcs/"] {
            let file = dir.join(&format!("{rep}-{}.mp4", prefix.trim_end_matches('/')));
            std::fs::write(file, fetch(prefix, rep)).unwrap();
        }
    }
    for rep in &reps {
        let clear_file = dir.join(&format!("{rep}-.mp4"));
        let reference = hashes(
            Command::new(&ffmpeg9)
                .args(["-nostdin", "-v", "error", "-i"])
                .arg(&clear_file)
                .args(["-f", "framemd5", "-"]),
        );
        assert!(!reference.is_empty(), "{rep}: no frames");
        for scheme in ["cenc", "cbcs"] {
            let enc_file = dir.join(&format!("{rep}-{scheme}.mp4"));
            let decrypt = |k: &str| {
                Command::new(&ffmpeg9)
                    .args(["-nostdin", "-v", "error", "-decryption_key", k, "-i"])
                    .arg(&enc_file)
                    .args(["-f", "framemd5", "-"])
                    .output()
                    .expect("ffmpeg")
            };
            let right = decrypt(&key_hex);
            assert!(
                right.status.success(),
                "{scheme} {rep}: {}",
                String::from_utf8_lossy(&right.stderr)
            );
            assert_eq!(md5_column(&right.stdout), reference, "{scheme} {rep}");
            // A wrong key: the decoder fails, or decodes other frames.
            let wrong = decrypt("00112233445566778899aabbccddeeff");
            assert!(
                !wrong.status.success() || md5_column(&wrong.stdout) != reference,
                "{scheme} {rep}: a wrong key decrypts"
            );
            println!(
                "{scheme} {rep}: fragments {numbers:?} decrypt in {} to {} frames identical \
                 to the clear fragments",
                ffmpeg9.display(),
                reference.len()
            );
        }
    }

    // Shaka Player with EME Clear Key plays the cenc DASH stream live.
    let url = origin.http_url(&format!("/live/{name}/cenc/manifest.mpd{q}"));
    if let Some(o) = players::play(
        &PlayOpts::url(Player::Shaka, &url, 16)
            .live()
            .expect_key_system("org.w3.clearkey"),
    ) {
        println!("Shaka cenc DASH: {}", o.summary());
        assert!(o.ok, "{}\n{}", o.summary(), o.raw);
        assert!(o.http_errors.is_empty(), "{:?}", o.http_errors);
        assert!(o.video_width > 0, "no picture: {}", o.summary());
        assert!(
            o.key_requests
                .iter()
                .all(|r| r.contains(&format!("/licence/{name}{q}"))),
            "{:?}",
            o.key_requests
        );
    }
    // And the cbcs fMP4 HLS stream, its identity key fetched from the key endpoint.
    let url = origin.http_url(&format!("/live/{name}/cbcs/cmaf.m3u8{q}"));
    if let Some(o) = players::play(
        &PlayOpts::url(Player::Shaka, &url, 16)
            .live()
            .expect_key_system("org.w3.clearkey"),
    ) {
        println!("Shaka cbcs fMP4 HLS: {}", o.summary());
        assert!(o.ok, "{}\n{}", o.summary(), o.raw);
        assert!(o.http_errors.is_empty(), "{:?}", o.http_errors);
        assert!(o.video_width > 0, "no picture: {}", o.summary());
    }
    assert!(ff.exited().is_none(), "ffmpeg stopped publishing");
    ff.kill();
}
