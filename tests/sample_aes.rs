//! HLS protection of MPEG-TS segments, judged by tools nobody on this project wrote:
//!
//! * SAMPLE-AES segments (the `TsMuxer` SAMPLE-AES mode and the per-request
//!   `write_sample_aes_segment`) behind a media playlist whose `EXT-X-KEY` points at
//!   key files, decoded by ffmpeg's HLS demuxer (which implements Apple's SAMPLE-AES
//!   decryption): every video frame identical to the clear source's (`framemd5`), the
//!   audio too (apart from the priming frame an MP4 source hides).
//! * The same segments played by hls.js in Chromium (its own SAMPLE-AES decryptor)
//!   to the end, across a key rotation; hls.js needs the `IV` attribute written.
//! * The encrypted blocks of real slices against `openssl enc -aes-128-cbc -nopad`
//!   on the same bytes, laid out by the spec's pattern independently of the crate.
//! * HLS `METHOD=AES-128` segments (`crypto::aes128`) decoded by ffmpeg, and one of
//!   them decrypted by `openssl enc -d`.
//!
//! The negative checks (wrong key file, decoding without decrypting) show that these
//! comparisons can fail.

mod common;
#[path = "../examples/common/input.rs"]
mod input;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use bytes::BytesMut;
use common::*;
use strom::container::ts::{write_sample_aes_segment, TsEncryption, TsMuxer, TsMuxerOptions};
use strom::crypto::sample_aes::{h264_nal_is_protected, SampleAes, H264_CLEAR_LEADER};
use strom::crypto::{aes128, ContentKey, Iv};
use strom::package::hls::{Key, KeyMethod, MediaPlaylist, MediaSegment, PlaylistType};
use strom::package::{Segment, Segmenter, SegmenterOptions};
use strom::pipeline::Stage;
use strom::time::{Timescale, Timestamp};

const KEY0: [u8; 16] = *b"strom-sample-aes";
const KEY1: [u8; 16] = [
    0x9f, 0x00, 0x00, 0x01, 0x42, 0x17, 0xee, 0x00, 0x00, 0x03, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
];

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

/// The key of segment `n` in the rotation the tests use: KEY0 for segments 0 and 1,
/// KEY1 after; explicit IVs except for segment 2, which uses its sequence number.
fn key_of(n: u64) -> (ContentKey, Iv, Key) {
    let (k, uri) = if n < 2 {
        (ContentKey(KEY0), "key0.bin")
    } else {
        (ContentKey(KEY1), "key1.bin")
    };
    let explicit = (n != 2).then(|| {
        let mut iv = [0u8; 16];
        iv[0] = 0xa5;
        iv[8..].copy_from_slice(&(n * 0x0101_0101).to_be_bytes());
        Iv::Iv16(iv)
    });
    let iv = explicit.unwrap_or_else(|| Iv::from_sequence(n));
    let mut tag = Key::new(KeyMethod::SampleAes, uri);
    tag.iv = explicit;
    (k, iv, tag)
}

/// Writes the key files and `media.m3u8` listing `seg{n}.ts` with `keys[n]`.
fn write_playlist(dir: &Path, segs: &[Segment], keys: impl Fn(u64) -> Vec<Key>) -> String {
    fs::write(dir.join("key0.bin"), KEY0).unwrap();
    fs::write(dir.join("key1.bin"), KEY1).unwrap();
    let mut pl = MediaPlaylist::new(PlaylistType::Vod);
    for s in segs {
        pl.push_segment(
            MediaSegment::from_segment(s, format!("seg{}.ts", s.sequence))
                .with_keys(keys(s.sequence)),
        );
    }
    let text = pl.write().unwrap();
    m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("m3u8-rs parses the playlist");
    fs::write(dir.join("media.m3u8"), &text).unwrap();
    text
}

/// Display indices (presentation order) of the last video access unit, in decode
/// order, of each segment `which` accepts: the frames ffmpeg's HLS demuxer decrypts
/// under the following segment's key and IV (see the module doc).
fn held_back_frames(segs: &[Segment], which: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut pts: Vec<i64> = segs
        .iter()
        .flat_map(|s| s.frames.iter().filter(|f| f.track == 1))
        .map(|f| f.pts.ticks_in(Timescale::MPEG))
        .collect();
    pts.sort_unstable();
    segs.iter()
        .enumerate()
        .filter(|(i, _)| which(*i))
        .filter_map(|(_, s)| s.frames.iter().rev().find(|f| f.track == 1))
        .map(|f| pts.binary_search(&f.pts.ticks_in(Timescale::MPEG)).unwrap())
        .collect()
}

/// Checks the decoded playlist against the source, frame by frame: every video
/// frame identical except those in `excused`, every audio frame identical.
fn assert_decodes_like(src: &Path, playlist: &Path, excused: &[usize], what: &str) {
    let ours = hls_framemd5(&tool("ffmpeg"), playlist, "v:0");
    let theirs = framemd5(src, "v:0");
    assert!(
        theirs.len() >= 250,
        "{what}: source has {} frames",
        theirs.len()
    );
    assert_eq!(ours.len(), theirs.len(), "{what}: video frame count");
    let differ: Vec<usize> = ours
        .iter()
        .zip(&theirs)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect();
    assert!(
        differ.iter().all(|i| excused.contains(i)),
        "{what}: video frames {differ:?} differ (only {excused:?} may)"
    );
    eprintln!(
        "{what}: {} of {} video frames identical (differing: {differ:?})",
        ours.len() - differ.len(),
        ours.len()
    );
    assert_same_audio(
        &framemd5(src, "a:0"),
        &hls_framemd5(&tool("ffmpeg"), playlist, "a:0"),
        what,
    );
}

#[test]
fn sample_aes_vod_decodes_like_the_source() {
    let src = avc_aac_25(12, Container::Mp4);
    let segs = segments(&src, 4000);
    assert!(segs.len() >= 3, "{} segments", segs.len());
    let dir = TempDir::new("sample-aes-vod");

    // One muxer for the whole presentation (continuity counters run on), one key
    // and one IV: a single EXT-X-KEY at the top of the playlist.
    let iv = Iv::from_hex("0x5a5a0000000000010000000000000003").unwrap();
    let mut opts = TsMuxerOptions::default();
    opts.encryption = TsEncryption::sample_aes(ContentKey(KEY0), iv);
    let mut mux = TsMuxer::new(&segs[0].tracks, opts).unwrap();
    for s in &segs {
        let mut out = BytesMut::new();
        mux.write_segment(s, &mut out).unwrap();
        // The PMT announces SAMPLE-AES.
        let pmt = &out[188..376];
        assert!(pmt.windows(4).any(|w| w == b"zavc") && pmt.windows(4).any(|w| w == b"apad"));
        fs::write(dir.join(&format!("seg{}.ts", s.sequence)), &out).unwrap();
    }
    // Slices with the encoder's own emulation prevention bytes are in the test (their
    // pictures only decode if the extra layer is undone exactly).
    let with_epb = segs
        .iter()
        .flat_map(|s| s.frames.iter().filter(|f| f.track == 1))
        .filter(|f| f.data.windows(3).any(|w| w == [0, 0, 3]))
        .count();
    assert!(
        with_epb >= 3,
        "{with_epb} frames with emulation prevention bytes"
    );
    let tag = Key::new(KeyMethod::SampleAes, "key0.bin").with_iv(iv);
    let text = write_playlist(dir.path(), &segs, |_| vec![tag.clone()]);
    assert_eq!(text.matches("#EXT-X-KEY:").count(), 1, "{text}");
    let last = segs.len() - 1;
    let excused = held_back_frames(&segs, |i| i == last);
    assert_decodes_like(&src, &dir.join("media.m3u8"), &excused, "SAMPLE-AES VOD");

    // The same files without decryption are not the source: ffmpeg reads a segment
    // alone as H.264 (stream type 0xdb) but the pictures differ.
    let seg1 = dir.join("seg1.ts");
    let raw = framemd5(&seg1, "v:0");
    let src_md5 = framemd5(&src, "v:0");
    let same = raw.iter().filter(|m| src_md5.contains(m)).count();
    assert!(
        same < raw.len() / 10,
        "{same} of {} frames decode without the key",
        raw.len()
    );

    // A wrong key file: the playlist still plays, the pictures are wrong.
    fs::write(dir.join("key0.bin"), [0u8; 16]).unwrap();
    let wrong = hls_framemd5(&tool("ffmpeg"), &dir.join("media.m3u8"), "v:0");
    let bad = wrong.iter().zip(&src_md5).filter(|(a, b)| a != b).count();
    assert!(
        bad > wrong.len() / 2,
        "{bad} of {} frames differ with a wrong key",
        wrong.len()
    );
}

#[test]
fn sample_aes_per_request_with_key_rotation_decodes_like_the_source() {
    // The origin's path: clear segments stored, each encrypted alone when requested;
    // the key rotates after two segments and every segment has its own IV.
    let src = avc_aac_25(12, Container::Flv);
    let segs = segments(&src, 4000);
    let dir = TempDir::new("sample-aes-jit");
    let opts = TsMuxerOptions::default();
    for s in &segs {
        let (key, iv, _) = key_of(s.sequence);
        let mut out = BytesMut::new();
        write_sample_aes_segment(s, &key, &iv, &opts, &mut out).unwrap();
        assert_eq!(out.len() % 188, 0);
        // Every segment starts afresh: PAT, PMT with SAMPLE-AES stream types.
        assert_eq!(&out[..4], &[0x47, 0x40, 0x00, 0x10]);
        fs::write(dir.join(&format!("seg{}.ts", s.sequence)), &out).unwrap();
    }
    let text = write_playlist(dir.path(), &segs, |n| vec![key_of(n).2]);
    assert_eq!(
        text.matches("#EXT-X-KEY:").count(),
        segs.len(),
        "a new IV for every segment: {text}"
    );
    assert!(text.contains("#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"key1.bin\"\n#EXTINF"));
    // Every segment ends with an access unit that ffmpeg decrypts with the next IV.
    let excused = held_back_frames(&segs, |_| true);
    assert_eq!(excused.len(), segs.len());
    assert_decodes_like(
        &src,
        &dir.join("media.m3u8"),
        &excused,
        "SAMPLE-AES rotation",
    );
    // ffprobe recognises the SAMPLE-AES stream types as H.264 and AAC.
    let st = streams(&dir.join("seg0.ts"));
    let names: Vec<&str> = st.iter().map(|s| s.codec_name.as_str()).collect();
    assert_eq!(names, ["h264", "aac"]);
}

#[test]
fn encrypted_blocks_match_openssl() {
    // Real slices: the bytes SAMPLE-AES must encrypt, picked out by the spec's rules
    // here (not by the crate), encrypted by openssl in one CBC run per NAL unit.
    let src = avc_aac_25(4, Container::Mp4);
    let segs = segments(&src, 2000);
    let key = ContentKey(KEY1);
    let iv = Iv::from_sequence(0x1234_5678_9abc);
    let sa = SampleAes::new(&key, &iv).unwrap();
    let mut checked = 0;
    let mut with_epb = 0;
    let video = segs
        .iter()
        .flat_map(|s| s.frames.iter().filter(|f| f.track == 1));
    for f in video {
        let mut pos = 0;
        while pos + 4 <= f.data.len() {
            let len = u32::from_be_bytes(f.data[pos..pos + 4].try_into().unwrap()) as usize;
            let nal = &f.data[pos + 4..pos + 4 + len];
            pos += 4 + len;
            if !h264_nal_is_protected(nal) {
                continue;
            }
            // The protected blocks by the spec's loop.
            let mut plain = Vec::new();
            let mut offsets = Vec::new();
            let mut p = H264_CLEAR_LEADER;
            while p < nal.len() {
                if nal.len() - p > 16 {
                    plain.extend_from_slice(&nal[p..p + 16]);
                    offsets.push(p);
                    p += 16;
                }
                p += (nal.len() - p).min(144);
            }
            let cipher = openssl_cbc(&KEY1, &iv, &plain);
            let mut wire = Vec::new();
            assert!(sa.encrypt_h264_nal(nal, &mut wire));
            // Undo one layer of emulation prevention (a textbook loop) and compare.
            let mut unescaped = Vec::new();
            let mut zeros = 0;
            for &b in &wire {
                if zeros >= 2 && b == 3 {
                    zeros = 0;
                    continue;
                }
                unescaped.push(b);
                zeros = if b == 0 { zeros + 1 } else { 0 };
            }
            assert_eq!(unescaped.len(), nal.len());
            for (i, &o) in offsets.iter().enumerate() {
                assert_eq!(
                    &unescaped[o..o + 16],
                    &cipher[i * 16..i * 16 + 16],
                    "block at {o}"
                );
            }
            let mut expect = nal.to_vec();
            for (i, &o) in offsets.iter().enumerate() {
                expect[o..o + 16].copy_from_slice(&cipher[i * 16..i * 16 + 16]);
            }
            assert_eq!(unescaped, expect, "clear bytes untouched");
            with_epb += usize::from(nal.windows(3).any(|w| w == [0, 0, 3]));
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked} slices checked");
    // The source exercises the double escaping: some slices carry their own EPBs.
    eprintln!(
        "{checked} slices checked against openssl, {with_epb} with emulation prevention bytes"
    );
}

/// `openssl enc -aes-128-cbc -nopad` of `data` (a multiple of 16 bytes).
fn openssl_cbc(key: &[u8; 16], iv: &Iv, data: &[u8]) -> Vec<u8> {
    openssl(&["enc", "-aes-128-cbc", "-nopad"], key, iv, data)
}

fn openssl(args: &[&str], key: &[u8; 16], iv: &Iv, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut child = Command::new(tool("openssl"))
        .args(args)
        .args(["-K", &hex(key), "-iv", &hex(iv.as_bytes())])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn aes128_segments_decode_like_the_source() {
    let src = avc_aac_25(12, Container::Mp4);
    let segs = segments(&src, 4000);
    let dir = TempDir::new("aes128");
    let mut mux = TsMuxer::new(&segs[0].tracks, TsMuxerOptions::default()).unwrap();
    let mut tags = Vec::new();
    for s in &segs {
        let mut clear = BytesMut::new();
        mux.write_segment(s, &mut clear).unwrap();
        let (key, _, tag) = key_of(s.sequence);
        // The IV a client uses: the attribute, else the media sequence number.
        let iv = aes128::segment_iv(tag.iv, s.sequence);
        let mut enc = BytesMut::new();
        aes128::encrypt_segment(&key, &iv, &clear, &mut enc).unwrap();
        if s.sequence == 1 {
            // openssl, independently, gets the clear segment back.
            let back = openssl(&["enc", "-d", "-aes-128-cbc"], &KEY0, &iv, &enc);
            assert!(back == clear[..], "openssl decrypts segment 1");
        }
        fs::write(dir.join(&format!("seg{}.ts", s.sequence)), &enc).unwrap();
        let mut t = tag;
        t.method = KeyMethod::Aes128;
        tags.push(t);
    }
    let text = write_playlist(dir.path(), &segs, |n| vec![tags[n as usize].clone()]);
    assert!(text.contains("METHOD=AES-128,URI=\"key1.bin\"\n"), "{text}");
    // Whole segments are decrypted before demuxing: no frame is excused.
    assert_decodes_like(&src, &dir.join("media.m3u8"), &[], "AES-128");
}

#[test]
fn sample_aes_plays_in_hls_js() {
    // hls.js decrypts SAMPLE-AES itself (its own implementation of Apple's
    // format) and plays the result in Chromium. It needs the IV attribute: it does
    // not fall back to the media sequence number for SAMPLE-AES.
    let src = avc_aac_25(12, Container::Mp4);
    let segs = segments(&src, 4000);
    let dir = TempDir::new("sample-aes-hlsjs");
    let opts = TsMuxerOptions::default();
    for s in &segs {
        let (key, iv, _) = key_of(s.sequence);
        let mut out = BytesMut::new();
        write_sample_aes_segment(s, &key, &iv, &opts, &mut out).unwrap();
        fs::write(dir.join(&format!("seg{}.ts", s.sequence)), &out).unwrap();
    }
    // Explicit IVs everywhere (segment 2's is its sequence number, written out).
    write_playlist(dir.path(), &segs, |n| {
        let (_, iv, tag) = key_of(n);
        vec![tag.with_iv(iv)]
    });
    let Some(o) = players::play(&players::PlayOpts::dir(
        players::Player::HlsJs,
        dir.path(),
        "media.m3u8",
        14,
    )) else {
        return;
    };
    println!("hls.js SAMPLE-AES: {}", o.summary());
    assert!(o.ok, "{}\n{}", o.summary(), o.raw);
    assert_eq!((o.video_width, o.video_height), (640, 360));
    // Through every segment and key (without segment 2's IV attribute hls.js stalls
    // there).
    assert!(
        o.ended || o.advanced_s >= 11.5,
        "played {:.2} s of 12: {}",
        o.advanced_s,
        o.summary()
    );
    assert!(
        o.fatal_errors.is_empty() && o.http_errors.is_empty(),
        "{}",
        o.raw
    );
}
