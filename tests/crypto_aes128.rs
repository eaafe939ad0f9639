//! HLS AES-128 against independent implementations:
//!
//! * OpenSSL (`openssl enc -aes-128-cbc -K .. -iv ..`, PKCS#7 padding) encrypts random
//!   buffers byte for byte as `crypto::aes128` does, and each decrypts the other's output.
//! * ffmpeg's HLS demuxer plays a playlist of ffmpeg-made MPEG-TS segments that
//!   `crypto::aes128` encrypted, with keys from `HmacKeyProvider` rotated every two
//!   segments (`KeyRotation`), IVs from the media sequence number or an explicit `IV`
//!   attribute, and decodes the same frames as from the clear playlist.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use bytes::BytesMut;
use common::{framemd5, TempDir};

/// MD5 of every decoded frame of `spec` in an encrypted playlist, and ffmpeg's error
/// output. `-allowed_extensions ALL` lets ffmpeg's HLS demuxer open the `.bin` key
/// files (it refuses non-media extensions by default).
fn framemd5_keyed(playlist: &Path, spec: &str) -> (Vec<String>, String) {
    let out = Command::new(common::tool("ffmpeg"))
        .args([
            "-nostdin",
            "-v",
            "error",
            "-allowed_extensions",
            "ALL",
            "-i",
        ])
        .arg(playlist)
        .args(["-map", &format!("0:{spec}"), "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let md5s = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit(',').next().map(|m| m.trim().to_string()))
        .collect();
    (md5s, String::from_utf8_lossy(&out.stderr).into_owned())
}
use strom::crypto::aes128::{decrypt_segment, encrypt_segment, encrypted_len, segment_iv};
use strom::crypto::key::{HmacIv, HmacKeyProvider, KeyProvider, KeyRotation};
use strom::crypto::{ContentKey, Iv};

fn urandom(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// `openssl enc [-d] -aes-128-cbc -K key -iv iv -in input -out output`.
fn openssl_enc(decrypt: bool, key: &ContentKey, iv: &Iv, input: &Path, output: &Path) {
    let mut cmd = Command::new(common::tool("openssl"));
    cmd.arg("enc");
    if decrypt {
        cmd.arg("-d");
    }
    cmd.args(["-aes-128-cbc", "-K", &hex(key.as_bytes())])
        .args(["-iv", &hex(iv.as_bytes())])
        .arg("-in")
        .arg(input)
        .arg("-out")
        .arg(output)
        .stdin(Stdio::null());
    let out = cmd.output().expect("run openssl");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

#[test]
fn openssl_agrees_byte_for_byte_both_directions() {
    let dir = TempDir::new("crypto-aes128");
    // Padding edges, a few TS packets, a ~4.5 MB segment (6 Mbit/s for 6 s).
    for (i, len) in [0usize, 1, 15, 16, 17, 188 * 7, 65_537, 4_500_000]
        .into_iter()
        .enumerate()
    {
        let clear = urandom(len);
        let key = ContentKey(urandom(16).try_into().unwrap());
        let iv = match i % 2 {
            0 => Iv::Iv16(urandom(16).try_into().unwrap()),
            _ => segment_iv(None, u64::from_be_bytes(urandom(8).try_into().unwrap())),
        };
        let what = format!("len {len}, key {}, iv {iv}", hex(key.as_bytes()));
        let clear_path = dir.join(&format!("clear{i}"));
        fs::write(&clear_path, &clear).unwrap();

        // OpenSSL encrypts; we must produce the same bytes.
        let theirs_path = dir.join(&format!("openssl{i}.enc"));
        openssl_enc(false, &key, &iv, &clear_path, &theirs_path);
        let theirs = fs::read(&theirs_path).unwrap();
        let mut ours = BytesMut::new();
        encrypt_segment(&key, &iv, &clear, &mut ours).unwrap();
        assert_eq!(theirs.len(), encrypted_len(len), "{what}");
        assert_eq!(
            first_difference(&ours, &theirs),
            None,
            "{what}: ciphertexts differ"
        );

        // We decrypt OpenSSL's ciphertext.
        let mut back = BytesMut::new();
        decrypt_segment(&key, &iv, &theirs, &mut back).unwrap();
        assert_eq!(first_difference(&back, &clear), None, "{what}: our decrypt");

        // OpenSSL decrypts ours (checking the padding itself).
        let ours_path = dir.join(&format!("strom{i}.enc"));
        fs::write(&ours_path, &ours).unwrap();
        let dec_path = dir.join(&format!("strom{i}.dec"));
        openssl_enc(true, &key, &iv, &ours_path, &dec_path);
        let dec = fs::read(&dec_path).unwrap();
        assert_eq!(
            first_difference(&dec, &clear),
            None,
            "{what}: openssl decrypt"
        );
    }
}

#[test]
fn openssl_refuses_what_we_refuse() {
    // A wrong key: OpenSSL reports "bad decrypt" whenever our padding check fails.
    let dir = TempDir::new("crypto-aes128-wrong");
    let key = ContentKey(urandom(16).try_into().unwrap());
    let iv = Iv::from_sequence(9);
    let clear = urandom(10_000);
    let mut enc = BytesMut::new();
    encrypt_segment(&key, &iv, &clear, &mut enc).unwrap();
    let enc_path = dir.join("seg.enc");
    fs::write(&enc_path, &enc).unwrap();
    let mut refused = 0;
    for _ in 0..16 {
        let wrong = ContentKey(urandom(16).try_into().unwrap());
        let mut out = BytesMut::new();
        let ours = decrypt_segment(&wrong, &iv, &enc, &mut out);
        let status = Command::new(common::tool("openssl"))
            .args(["enc", "-d", "-aes-128-cbc", "-K", &hex(wrong.as_bytes())])
            .args(["-iv", &hex(iv.as_bytes())])
            .arg("-in")
            .arg(&enc_path)
            .arg("-out")
            .arg(dir.join("wrong.dec"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl");
        assert_eq!(
            ours.is_err(),
            !status.success(),
            "key {}",
            hex(wrong.as_bytes())
        );
        if let Err(e) = ours {
            assert_eq!(e.kind(), strom::ErrorKind::Crypto);
            refused += 1;
        } else {
            assert_ne!(&out[..], &clear[..]);
        }
    }
    assert!(refused >= 12, "only {refused} of 16 wrong keys refused");
}

/// The playlist ffmpeg wrote, with every segment encrypted under the key of its
/// crypto period and an `EXT-X-KEY` before the first segment of each period.
fn encrypt_playlist(
    clear_dir: &Path,
    out_dir: &Path,
    keys: &HmacKeyProvider,
    rotation: KeyRotation,
) -> usize {
    fs::create_dir_all(out_dir).unwrap();
    let text = fs::read_to_string(clear_dir.join("index.m3u8")).unwrap();
    let mut sequence: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut out = String::new();
    let mut first = true;
    let mut segments = 0;
    for line in text.lines() {
        if line.starts_with("#EXTINF") && (first || rotation.is_period_start(sequence)) {
            let period = rotation.period(sequence);
            let k = keys.key("cam1", period).unwrap();
            let key_name = format!("key-{}.bin", k.kid);
            fs::write(out_dir.join(&key_name), k.key.as_bytes()).unwrap();
            out.push_str(&format!("#EXT-X-KEY:METHOD=AES-128,URI=\"{key_name}\""));
            if let Some(iv) = k.iv {
                out.push_str(&format!(",IV={iv}"));
            }
            out.push('\n');
            first = false;
        }
        if !line.starts_with('#') && !line.trim().is_empty() {
            let k = keys.key("cam1", rotation.period(sequence)).unwrap();
            let iv = segment_iv(k.iv, sequence);
            let clear = fs::read(clear_dir.join(line)).unwrap();
            let mut enc = BytesMut::new();
            encrypt_segment(&k.key, &iv, &clear, &mut enc).unwrap();
            // The key really is needed: the first TS sync byte is gone.
            assert_ne!(enc[..188], clear[..188]);
            fs::write(out_dir.join(line), &enc).unwrap();
            sequence += 1;
            segments += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    fs::write(out_dir.join("index.m3u8"), out).unwrap();
    segments
}

#[test]
fn ffmpeg_plays_rotated_aes128_playlist() {
    let src = common::avc_aac_25(10, common::Container::Mp4);
    let dir = TempDir::new("crypto-aes128-hls");
    let clear = dir.join("clear");
    let clear_playlist = common::ffmpeg_hls(&src, &clear, 2);
    let video = framemd5(&clear_playlist, "v:0");
    let audio = framemd5(&clear_playlist, "a:0");
    assert!(video.len() >= 240, "{} video frames", video.len());

    for (name, iv) in [
        ("seqiv", HmacIv::SchemeDefault),
        ("explicitiv", HmacIv::Derived),
    ] {
        let keys = HmacKeyProvider::new(b"test secret for the AES-128 HLS test")
            .unwrap()
            .with_iv(iv);
        let out = dir.join(name);
        let segments = encrypt_playlist(&clear, &out, &keys, KeyRotation::every(2));
        assert!(segments >= 4, "{segments} segments");
        let playlist = out.join("index.m3u8");
        let text = fs::read_to_string(&playlist).unwrap();
        assert_eq!(
            text.matches("#EXT-X-KEY").count(),
            segments.div_ceil(2),
            "{text}"
        );
        assert_eq!(text.contains(",IV=0x"), iv == HmacIv::Derived, "{text}");
        let (v, err) = framemd5_keyed(&playlist, "v:0");
        assert_eq!(v, video, "{name}: video; ffmpeg said: {err}");
        let (a, err) = framemd5_keyed(&playlist, "a:0");
        assert_eq!(a, audio, "{name}: audio; ffmpeg said: {err}");
    }

    // And a wrong key in the playlist is not silently accepted: the frames differ.
    let keys = HmacKeyProvider::new(b"test secret for the AES-128 HLS test").unwrap();
    let out = dir.join("wrongkey");
    encrypt_playlist(&clear, &out, &keys, KeyRotation::none());
    for entry in fs::read_dir(&out).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "bin") {
            fs::write(&p, [0u8; 16]).unwrap();
        }
    }
    let (frames, err) = framemd5_keyed(&out.join("index.m3u8"), "v:0");
    let frames = frames.len();
    assert!(
        frames < video.len() / 2,
        "{frames} frames decoded with a wrong key; ffmpeg said: {err}"
    );
}
