//! CENC `cenc` and `cbcs` on real encodes (H.264 + AAC from x264/ffmpeg, H.265 from x265):
//! protect every fragment of a track from the writer's sample table, then
//! * decrypt it with strom's reader and compare every frame with the clear one;
//! * parse the protected init and fragments with an independent parser (`mp4-atom`) box by
//!   box, the CENC boxes it does not know (`sinf`, `frma`, `schm`, `tenc`, `pssh`) field by
//!   field against ISO/IEC 23001-7, and check `saio` → `senc` and `trun` → `mdat`;
//! * decrypt sample ranges with the `openssl` command line (AES-128-CTR, AES-128-CBC) and
//!   compare with the clear payloads;
//! * check determinism (same request, same bytes), the documented IV layout, that clear
//!   ranges stay clear and protected ones change, and that bad keys and hostile auxiliary
//!   information fail.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use bytes::{Bytes, BytesMut};
use common::cmaf::{cut, demux, shift_to_zero};
use common::{avc_aac_25, media, tool, Container, TempDir};
use mp4_atom::{Any, Decode};
use strom::container::fmp4::{
    decrypt_fragment, protect_fragment, protect_fragment_parts, Fmp4Reader, Fmp4Writer,
    FragmentInfo, ProtectionInfo, PsshBox,
};
use strom::crypto::{
    ContentKey, KeyId, Scheme, CLEARKEY_SYSTEM_ID, PLAYREADY_SYSTEM_ID, WIDEVINE_SYSTEM_ID,
};
use strom::media::{Frame, MediaKind, TrackInfo};
use strom::ErrorKind;

const KID: KeyId = KeyId([
    0xeb, 0x67, 0x6a, 0xbb, 0xcb, 0x34, 0x5e, 0x96, 0xbb, 0xcf, 0x61, 0x66, 0x30, 0xf1, 0xa3, 0xda,
]);
const KEY: ContentKey = ContentKey([
    0x10, 0x0b, 0x6c, 0x20, 0x94, 0x0f, 0x77, 0x9a, 0x45, 0x89, 0x15, 0x2b, 0x57, 0xd2, 0xda, 0xcb,
]);
const CONSTANT_IV: [u8; 16] = *b"strom-cbcs-iv-16";

/// A track written clear: its frames and its fragments with the writer's info.
struct Clear {
    track: TrackInfo,
    frames: Vec<Frame>,
    fragments: Vec<(Bytes, FragmentInfo, std::ops::Range<usize>)>,
}

fn tracks_of(path: &std::path::Path) -> Vec<(TrackInfo, Vec<Frame>)> {
    let (tracks, mut frames): (Vec<TrackInfo>, BTreeMap<u32, Vec<Frame>>) = demux(path);
    tracks
        .into_iter()
        .map(|t| {
            let mut f = frames.remove(&t.id).unwrap();
            shift_to_zero(&mut f);
            (t, f)
        })
        .collect()
}

fn write_clear(track: &TrackInfo, frames: Vec<Frame>) -> Clear {
    let mut w = Fmp4Writer::new(track.clone()).unwrap();
    let every = i64::from(track.timescale.get()) * 2;
    let runs = cut(&frames, every, track.kind == MediaKind::Video);
    assert!(runs.len() >= 2, "{} fragments", runs.len());
    let mut fragments = Vec::new();
    for (n, r) in runs.into_iter().enumerate() {
        let end = frames.get(r.end).map(|f| f.dts);
        let mut out = BytesMut::new();
        let info = w
            .media_segment(&frames[r.clone()], n as u32 + 1, end, &mut out)
            .unwrap();
        fragments.push((out.freeze(), info, r));
    }
    Clear {
        track: track.clone(),
        frames,
        fragments,
    }
}

fn protection(scheme: Scheme) -> ProtectionInfo {
    let p = match scheme {
        Scheme::Cenc => ProtectionInfo::cenc(KID).with_iv_seed(0x5eed),
        _ => ProtectionInfo::cbcs(KID, CONSTANT_IV),
    };
    p.with_pssh(PsshBox::clearkey(vec![KID]))
        .with_pssh(PsshBox::widevine(Bytes::from_static(
            b"\x12\x10widevine-data...",
        )))
        .with_pssh(PsshBox::playready(Bytes::from_static(b"playready object")))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// The boxes laid end to end in `data`: (type, whole box, offset).
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8], usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let size = be32(data, at) as usize;
        assert!(
            size >= 8 && at + size <= data.len(),
            "box size {size} at {at}"
        );
        out.push((
            data[at + 4..at + 8].try_into().unwrap(),
            &data[at..at + size],
            at,
        ));
        at += size;
    }
    out
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    boxes(data)
        .into_iter()
        .find(|(k, _, _)| k == kind)
        .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(kind)))
        .1
}

/// Every box under the containers decoded by mp4-atom (none unknown), except the CENC
/// boxes mp4-atom 0.17 does not know, which `cenc_box` checks by hand.
fn walk(data: &[u8], seen: &mut Vec<String>) {
    const CONTAINERS: [&[u8; 4]; 9] = [
        b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl", b"mvex", b"moof", b"traf",
    ];
    for (kind, whole, _) in boxes(data) {
        seen.push(String::from_utf8_lossy(&kind).into_owned());
        if kind == *b"pssh" {
            continue; // checked field by field in check_init
        }
        if kind == *b"stsd" {
            // One entry: encv/enca, whose clear boxes mp4-atom decodes.
            assert_eq!(be32(whole, 12), 1);
            let entry = &whole[16..];
            let ekind: [u8; 4] = entry[4..8].try_into().unwrap();
            seen.push(String::from_utf8_lossy(&ekind).into_owned());
            let fixed = if ekind == *b"encv" { 78 } else { 28 };
            for (k, inner, _) in boxes(&entry[8 + fixed..be32(entry, 0) as usize]) {
                seen.push(String::from_utf8_lossy(&k).into_owned());
                if k == *b"sinf" {
                    continue;
                }
                let mut view = inner;
                let any = Any::decode(&mut view).unwrap();
                assert!(!matches!(any, Any::Unknown(..)), "{k:?}");
            }
            continue;
        }
        let mut view = whole;
        let any = Any::decode(&mut view)
            .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&kind)));
        assert!(view.is_empty());
        assert!(!matches!(any, Any::Unknown(..)), "unknown {:?}", any.kind());
        if CONTAINERS.contains(&&kind) {
            walk(&whole[8..], seen);
        }
    }
}

/// The protected init: mp4-atom for the standard boxes, ISO/IEC 23001-7 for the rest.
fn check_init(init: &[u8], track: &TrackInfo, p: &ProtectionInfo) {
    let mut seen = Vec::new();
    walk(init, &mut seen);
    let video = track.kind == MediaKind::Video;
    let entry = if video { "encv" } else { "enca" };
    assert!(seen.iter().any(|s| s == entry), "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "pssh").count(), 3);

    let moov = child(init, b"moov");
    let stsd = child(
        child(
            child(
                child(child(&moov[8..], b"trak")[8..].as_ref(), b"mdia")[8..].as_ref(),
                b"minf",
            )[8..]
                .as_ref(),
            b"stbl",
        )[8..]
            .as_ref(),
        b"stsd",
    );
    let entry = &stsd[16..];
    let fixed = if video { 78 } else { 28 };
    let sinf = child(&entry[8 + fixed..be32(entry, 0) as usize], b"sinf");
    let inner = &sinf[8..];
    // frma: the original sample entry type.
    let frma = child(inner, b"frma");
    let original: &[u8] = match &track.config {
        strom::media::CodecConfig::H264(_) => b"avc1",
        strom::media::CodecConfig::H265(_) => b"hvc1",
        _ => b"mp4a",
    };
    assert_eq!((be32(frma, 0), &frma[8..12]), (12, original));
    // schm: FullBox v0, scheme, version 0x00010000.
    let schm = child(inner, b"schm");
    let scheme: &[u8] = if p.scheme == Scheme::Cenc {
        b"cenc"
    } else {
        b"cbcs"
    };
    assert_eq!(be32(schm, 0), 20);
    assert_eq!(&schm[8..12], &[0, 0, 0, 0]);
    assert_eq!(&schm[12..16], scheme);
    assert_eq!(be32(schm, 16), 0x0001_0000);
    // schi/tenc.
    let tenc = child(&child(inner, b"schi")[8..], b"tenc");
    if p.scheme == Scheme::Cenc {
        assert_eq!(be32(tenc, 0), 32);
        assert_eq!(&tenc[8..16], &[0, 0, 0, 0, 0, 0, 1, 8]); // v0, protected, IV size 8
        assert_eq!(&tenc[16..32], KID.as_bytes());
    } else {
        assert_eq!(be32(tenc, 0), 49);
        let pattern = if video { 0x19 } else { 0x00 };
        assert_eq!(&tenc[8..16], &[1, 0, 0, 0, 0, pattern, 1, 0]); // v1, pattern, IV size 0
        assert_eq!(&tenc[16..32], KID.as_bytes());
        assert_eq!(tenc[32], 16);
        assert_eq!(&tenc[33..49], &CONSTANT_IV);
    }
    // pssh boxes after mvex, in order: ClearKey v1 with the KID, Widevine and PlayReady v0.
    let kinds: Vec<[u8; 4]> = boxes(&moov[8..]).iter().map(|b| b.0).collect();
    assert_eq!(
        &kinds[kinds.len() - 4..],
        &[*b"mvex", *b"pssh", *b"pssh", *b"pssh"]
    );
    let pssh: Vec<&[u8]> = boxes(&moov[8..])
        .into_iter()
        .filter(|b| &b.0 == b"pssh")
        .map(|b| b.1)
        .collect();
    let mut ck = vec![0, 0, 0, 52, b'p', b's', b's', b'h', 1, 0, 0, 0];
    ck.extend_from_slice(&CLEARKEY_SYSTEM_ID);
    ck.extend_from_slice(&[0, 0, 0, 1]);
    ck.extend_from_slice(KID.as_bytes());
    ck.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(pssh[0], &ck[..]);
    assert_eq!(&pssh[1][8..12], &[0, 0, 0, 0]);
    assert_eq!(&pssh[1][12..28], &WIDEVINE_SYSTEM_ID);
    assert_eq!(be32(pssh[1], 28) as usize, pssh[1].len() - 32);
    assert_eq!(&pssh[1][32..], b"\x12\x10widevine-data...");
    assert_eq!(&pssh[2][12..28], &PLAYREADY_SYSTEM_ID);
    assert_eq!(&pssh[2][32..], b"playready object");
}

/// One sample's auxiliary information as `senc` stores it.
#[derive(Debug, Clone)]
struct Aux {
    iv: Vec<u8>,
    subsamples: Vec<(u16, u32)>,
}

/// A protected fragment with mp4-atom; returns each sample's auxiliary information.
fn check_fragment(
    frag: &[u8],
    info: &FragmentInfo,
    clear_info: &FragmentInfo,
    track: &TrackInfo,
    p: &ProtectionInfo,
) -> Vec<Aux> {
    let mut seen = Vec::new();
    walk(frag, &mut seen);
    let top = boxes(frag);
    assert_eq!(
        top.iter().map(|b| b.0).collect::<Vec<_>>(),
        [*b"styp", *b"moof", *b"mdat"]
    );
    let moof_at = top[1].2;
    assert_eq!(moof_at, info.moof_offset);
    let mut view = top[1].1;
    let Any::Moof(moof) = Any::decode(&mut view).unwrap() else {
        panic!("moof")
    };
    assert_eq!(moof.mfhd.sequence_number, clear_info.sequence);
    let traf = &moof.traf[0];
    assert_eq!(traf.tfhd.track_id, track.id);
    assert!(traf.tfhd.default_base_is_moof);
    assert_eq!(
        traf.tfdt.as_ref().unwrap().base_media_decode_time,
        clear_info.base_decode_time
    );
    // trun: the clear entries, data offset on the first byte of the new mdat body.
    let trun = &traf.trun[0];
    let entries: Vec<_> = trun.samples.iter().collect();
    assert_eq!(entries.len(), clear_info.samples.len());
    for (e, s) in entries.iter().zip(&clear_info.samples) {
        assert_eq!(e.size, Some(s.size));
        assert_eq!(e.duration, Some(s.duration));
        assert_eq!(e.flags, Some(s.flags));
    }
    assert_eq!(moof_at + trun.data_offset.unwrap() as usize, top[2].2 + 8);
    assert_eq!(info.data_offset, top[2].2 + 8);
    // senc, and saiz/saio pointing at its first entry.
    let senc = traf.senc.as_ref().expect("senc");
    let video = track.kind == MediaKind::Video;
    assert_eq!(senc.use_subsamples, video);
    let iv_size = if p.scheme == Scheme::Cenc { 8 } else { 0 };
    let count = be32(&senc.data, 0) as usize;
    assert_eq!(count, clear_info.samples.len());
    let mut pos = 4;
    let mut aux = Vec::new();
    for _ in 0..count {
        let iv = senc.data[pos..pos + iv_size].to_vec();
        pos += iv_size;
        let mut subsamples = Vec::new();
        if video {
            let n = u16::from_be_bytes(senc.data[pos..pos + 2].try_into().unwrap());
            pos += 2;
            for _ in 0..n {
                let c = u16::from_be_bytes(senc.data[pos..pos + 2].try_into().unwrap());
                let q = be32(&senc.data, pos + 2);
                subsamples.push((c, q));
                pos += 6;
            }
        }
        aux.push(Aux { iv, subsamples });
    }
    assert_eq!(pos, senc.data.len());
    let sizes: Vec<usize> = aux
        .iter()
        .map(|a| a.iv.len() + if video { 2 + 6 * a.subsamples.len() } else { 0 })
        .collect();
    if sizes.iter().all(|&s| s == 0) {
        // cbcs audio: constant IV, no subsamples: no saiz/saio (as Shaka Packager writes).
        assert!(traf.saiz.is_empty() && traf.saio.is_empty());
    } else {
        let saiz = &traf.saiz[0];
        assert_eq!(saiz.sample_count as usize, count);
        if saiz.default_sample_info_size != 0 {
            assert!(sizes
                .iter()
                .all(|&s| s == saiz.default_sample_info_size as usize));
        } else {
            let got: Vec<usize> = saiz.sample_info_size.iter().map(|&s| s as usize).collect();
            assert_eq!(got, sizes);
        }
        let saio = &traf.saio[0];
        assert_eq!(saio.offsets.len(), 1);
        // The offset (from the moof) lands on the senc's first entry: the same bytes.
        let at = moof_at + saio.offsets[0] as usize;
        let total: usize = sizes.iter().sum();
        assert_eq!(&frag[at..at + total], &senc.data[4..]);
    }
    aux
}

/// The clear and protected bytes of every sample agree with the auxiliary information:
/// clear ranges identical, protected ranges changed, sizes adding up, `cenc` ranges in
/// whole blocks, `cenc` IVs as documented.
fn check_ranges(
    frag: &[u8],
    clear: &[u8],
    info: &FragmentInfo,
    clear_info: &FragmentInfo,
    aux: &[Aux],
    track: &TrackInfo,
    p: &ProtectionInfo,
) -> (usize, usize) {
    let (mut protected_total, mut changed) = (0usize, 0usize);
    for (i, ((s, c), a)) in info
        .samples
        .iter()
        .zip(&clear_info.samples)
        .zip(aux)
        .enumerate()
    {
        let enc = &frag[s.offset..s.offset + s.size as usize];
        let plain = &clear[c.offset..c.offset + c.size as usize];
        if p.scheme == Scheme::Cenc {
            let v = (u64::from(clear_info.sequence) << 32 | u64::from(track.id) << 20 | i as u64)
                ^ p.iv_seed;
            assert_eq!(a.iv, v.to_be_bytes(), "IV of sample {i}");
        }
        let ranges: Vec<(u16, u32)> = if a.subsamples.is_empty() {
            vec![(0, s.size)]
        } else {
            a.subsamples.clone()
        };
        let total: u64 = ranges
            .iter()
            .map(|&(c, q)| u64::from(c) + u64::from(q))
            .sum();
        assert_eq!(total, u64::from(s.size), "sample {i}");
        let mut pos = 0;
        for (cl, pr) in ranges {
            let (cl, pr) = (cl as usize, pr as usize);
            assert_eq!(
                enc[pos..pos + cl],
                plain[pos..pos + cl],
                "clear bytes of sample {i}"
            );
            pos += cl;
            if p.scheme == Scheme::Cenc && !a.subsamples.is_empty() {
                assert_eq!(pr % 16, 0, "cenc protected range in whole blocks");
            }
            if pr >= 16 {
                assert_ne!(
                    enc[pos..pos + 16],
                    plain[pos..pos + 16],
                    "sample {i} not encrypted"
                );
            }
            changed += enc[pos..pos + pr]
                .iter()
                .zip(&plain[pos..pos + pr])
                .filter(|(a, b)| a != b)
                .count();
            protected_total += pr;
            pos += pr;
        }
    }
    (protected_total, changed)
}

/// `openssl enc -d` over the protected bytes of `sample` (AES-128-CTR from IV||0, or
/// AES-128-CBC over the pattern's encrypted blocks from the constant IV).
fn openssl_decrypt(enc: &[u8], aux: &Aux, scheme: Scheme, video: bool, dir: &TempDir) -> Vec<u8> {
    let ranges: Vec<(usize, usize)> = if aux.subsamples.is_empty() {
        vec![(0, enc.len())]
    } else {
        let mut pos = 0;
        aux.subsamples
            .iter()
            .map(|&(c, q)| {
                pos += c as usize;
                let r = (pos, q as usize);
                pos += q as usize;
                r
            })
            .collect()
    };
    let key: String = KEY.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let mut out = enc.to_vec();
    let run = |input: &[u8], cipher: &str, iv: &str| -> Vec<u8> {
        let inp = dir.join("in.bin");
        std::fs::write(&inp, input).unwrap();
        let o = Command::new(tool("openssl"))
            .args(["enc", "-d", cipher, "-nopad", "-K", &key, "-iv", iv, "-in"])
            .arg(&inp)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    match scheme {
        Scheme::Cenc => {
            // One keystream over the concatenated protected ranges.
            let joined: Vec<u8> = ranges
                .iter()
                .flat_map(|&(a, n)| enc[a..a + n].to_vec())
                .collect();
            let iv: String = aux
                .iv
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                + "0000000000000000";
            let plain = run(&joined, "-aes-128-ctr", &iv);
            let mut k = 0;
            for (a, n) in ranges {
                out[a..a + n].copy_from_slice(&plain[k..k + n]);
                k += n;
            }
        }
        _ => {
            // Per range: the chain runs over the encrypted blocks only, from the constant IV.
            let iv: String = CONSTANT_IV.iter().map(|b| format!("{b:02x}")).collect();
            for (a, n) in ranges {
                let blocks: Vec<usize> = (0..n / 16).filter(|b| !video || b % 10 == 0).collect();
                if blocks.is_empty() {
                    continue;
                }
                let joined: Vec<u8> = blocks
                    .iter()
                    .flat_map(|b| enc[a + b * 16..a + b * 16 + 16].to_vec())
                    .collect();
                let plain = run(&joined, "-aes-128-cbc", &iv);
                for (j, b) in blocks.iter().enumerate() {
                    out[a + b * 16..a + b * 16 + 16].copy_from_slice(&plain[j * 16..j * 16 + 16]);
                }
            }
        }
    }
    out
}

/// The whole check for one track and scheme; returns (protected bytes, bytes changed).
fn round_trip(c: &Clear, scheme: Scheme) -> (usize, usize) {
    let track = &c.track;
    let video = track.kind == MediaKind::Video;
    let p = protection(scheme);
    let w = Fmp4Writer::new(track.clone()).unwrap();
    let mut init = BytesMut::new();
    w.protected_init_segment(&p, &mut init).unwrap();
    check_init(&init, track, &p);

    let mut reader = Fmp4Reader::new(init.clone().freeze()).unwrap();
    assert_eq!(
        reader.tracks()[0].config,
        track.config,
        "encv/enca read as the original"
    );
    let e = reader.encryption(track.id).expect("protected track");
    assert_eq!((e.key_id, e.protected), (KID, true));
    assert_eq!(reader.pssh().len(), 3);
    assert_eq!(reader.pssh()[0], PsshBox::clearkey(vec![KID]));

    let dir = TempDir::new("cenc-openssl");
    let (mut protected, mut changed) = (0, 0);
    for (k, (clear, info, range)) in c.fragments.iter().enumerate() {
        let mut out = BytesMut::new();
        let pinfo = protect_fragment(clear, info, track, &p, &KEY, &mut out).unwrap();
        assert_eq!(pinfo.len, out.len());
        assert_eq!(pinfo.samples.len(), info.samples.len());
        // Deterministic: the same request gives the same bytes.
        let mut again = BytesMut::from(&b"prefix"[..]);
        protect_fragment(clear, info, track, &p, &KEY, &mut again).unwrap();
        assert_eq!(&again[6..], &out[..]);
        // The same from pieces: header then one per sample (the by-reference form), and
        // 997-byte pieces that cut samples and NAL units anywhere.
        let mut cuts: Vec<usize> = info.samples.iter().map(|s| s.offset).collect();
        cuts.push(clear.len());
        let mut per_sample = vec![&clear[..cuts[0]]];
        per_sample.extend(cuts.windows(2).map(|w| &clear[w[0]..w[1]]));
        let small: Vec<&[u8]> = clear.chunks(997).collect();
        for parts in [per_sample, small] {
            let mut from_parts = BytesMut::new();
            let pi =
                protect_fragment_parts(&parts, info, track, &p, &KEY, &mut from_parts).unwrap();
            assert_eq!((&from_parts[..], pi.len), (&out[..], pinfo.len));
        }

        let aux = check_fragment(&out, &pinfo, info, track, &p);
        let (pr, ch) = check_ranges(&out, clear, &pinfo, info, &aux, track, &p);
        protected += pr;
        changed += ch;

        // openssl decrypts two samples of the first fragment to the clear bytes.
        if k == 0 {
            for i in [0, pinfo.samples.len() - 1] {
                let s = &pinfo.samples[i];
                let enc = &out[s.offset..s.offset + s.size as usize];
                let plain = openssl_decrypt(enc, &aux[i], scheme, video, &dir);
                let cs = &info.samples[i];
                assert_eq!(
                    plain,
                    &clear[cs.offset..cs.offset + cs.size as usize],
                    "openssl, sample {i}"
                );
            }
        }

        // strom's reader decrypts every frame back.
        let out = out.freeze();
        let back = reader
            .read_segment_decrypted(out.clone(), &[(KID, KEY)])
            .unwrap();
        let want = &c.frames[range.clone()];
        assert_eq!(back.len(), want.len());
        for (b, f) in back.iter().zip(want) {
            assert_eq!(b.data, f.data);
            assert_eq!((b.dts, b.pts), (f.dts, f.pts));
            assert_eq!(b.is_keyframe(), f.is_keyframe() || !video);
        }
        // Without decryption the reader hands out the stored (encrypted) payloads.
        let stored = Fmp4Reader::new(init.clone().freeze())
            .unwrap()
            .read_segment(out.clone())
            .unwrap();
        // (A fragment of one 7-byte AAC frame has no full block for cbcs to encrypt.)
        assert!(
            want.iter().all(|f| f.data.len() < 16)
                || stored.iter().zip(want).any(|(s, f)| s.data != f.data),
            "{:?} {scheme:?} fragment {k}: stored {:?} want {:?}",
            track.kind,
            stored.iter().map(|s| s.data.len()).collect::<Vec<_>>(),
            want.iter().map(|s| s.data.len()).collect::<Vec<_>>()
        );
        // A wrong key does not give the clear frames back (or fails to).
        let wrong = ContentKey([0x55; 16]);
        let mut r2 = Fmp4Reader::new(init.clone().freeze()).unwrap();
        if let Ok(bad) = r2.read_segment_decrypted(out.clone(), &[(KID, wrong)]) {
            assert!(
                want.iter().all(|f| f.data.len() < 16)
                    || bad.iter().zip(want).any(|(b, f)| b.data != f.data)
            );
        }
        // An unknown key id is a crypto error.
        let e = Fmp4Reader::new(init.clone().freeze())
            .unwrap()
            .read_segment_decrypted(out.clone(), &[(KeyId([0; 16]), KEY)])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Crypto, "{e}");
        // decrypt_fragment does the same in one call.
        if k == 0 {
            let (tracks, frames) =
                decrypt_fragment(init.clone().freeze(), out.clone(), &[(KID, KEY)]).unwrap();
            assert_eq!(tracks[0].id, track.id);
            assert!(frames.iter().zip(want).all(|(a, b)| a.data == b.data));
        }
    }
    (protected, changed)
}

#[test]
fn h264_and_aac_round_trip_in_cenc_and_cbcs() {
    let file = avc_aac_25(6, Container::Mp4);
    for (track, frames) in tracks_of(&file) {
        let c = write_clear(&track, frames);
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let (protected, changed) = round_trip(&c, scheme);
            let payload: usize = c.frames.iter().map(|f| f.data.len()).sum();
            eprintln!(
                "{:?} {:?}: {} of {} payload bytes in protected ranges, {} changed",
                track.kind, scheme, protected, payload, changed
            );
            // Most of the payload is protected (slice data, whole audio frames) and
            // encryption changes nearly every byte of it (cbcs: 1 block in 10).
            assert!(protected * 10 > payload * 8, "{protected} of {payload}");
            let expected = if scheme == Scheme::Cbcs && track.kind == MediaKind::Video {
                protected / 12
            } else {
                protected * 9 / 10
            };
            assert!(changed > expected, "{changed} of {protected}");
        }
    }
}

#[test]
fn h265_round_trip_in_cenc_and_cbcs() {
    // x265 with B-frames, WPP entry points, weighted prediction and SAO: slice headers
    // with most optional parts.
    let file = media(
        "hevc_cenc_4s.mp4",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=4",
            "-c:v", "libx265", "-preset", "fast", "-x265-params",
            "log-level=error:keyint=50:min-keyint=50:open-gop=0:bframes=3:weightp=1:weightb=1:wpp=1:pools=1:frame-threads=1",
            "-tag:v", "hvc1",
        ],
    );
    let (track, frames) = tracks_of(&file).remove(0);
    assert!(matches!(track.config, strom::media::CodecConfig::H265(_)));
    let c = write_clear(&track, frames);
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        let (protected, _) = round_trip(&c, scheme);
        let payload: usize = c.frames.iter().map(|f| f.data.len()).sum();
        assert!(protected * 10 > payload * 8, "{protected} of {payload}");
    }
}

/// The reader finds the auxiliary information through `saiz`/`saio` when there is no
/// `senc` (renamed here to `free`), and hostile auxiliary information is a typed error.
#[test]
fn saio_fallback_and_hostile_auxiliary_information() {
    let file = avc_aac_25(4, Container::Mp4);
    let (track, frames) = tracks_of(&file)
        .into_iter()
        .find(|(t, _)| t.kind == MediaKind::Video)
        .unwrap();
    let c = write_clear(&track, frames);
    let p = protection(Scheme::Cenc);
    let mut init = BytesMut::new();
    write_protected(&track, &p, &mut init);
    let init = init.freeze();
    let (clear, info, range) = &c.fragments[0];
    let mut out = BytesMut::new();
    protect_fragment(clear, info, &track, &p, &KEY, &mut out).unwrap();
    let frag = out.to_vec();
    let senc = frag.windows(4).position(|w| w == b"senc").unwrap();

    let mut no_senc = frag.clone();
    no_senc[senc..senc + 4].copy_from_slice(b"free");
    let back = Fmp4Reader::new(init.clone())
        .unwrap()
        .read_segment_decrypted(Bytes::from(no_senc), &[(KID, KEY)])
        .unwrap();
    assert!(back
        .iter()
        .zip(&c.frames[range.clone()])
        .all(|(b, f)| b.data == f.data));

    let decrypt = |data: Vec<u8>| {
        Fmp4Reader::new(init.clone())
            .unwrap()
            .read_segment_decrypted(Bytes::from(data), &[(KID, KEY)])
    };
    // The first sample's subsample table made larger than the sample.
    let mut big = frag.clone();
    let first = senc + 4 + 4 + 4 + 8; // type, version/flags, count, IV
    let n = u16::from_be_bytes([big[first], big[first + 1]]) as usize;
    let last = first + 2 + 6 * (n - 1);
    big[last + 2..last + 6].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    assert_eq!(decrypt(big).unwrap_err().kind(), ErrorKind::Malformed);
    // A sample count other than the trun's.
    let mut count = frag.clone();
    count[senc + 8..senc + 12].copy_from_slice(&1u32.to_be_bytes());
    assert_eq!(decrypt(count).unwrap_err().kind(), ErrorKind::Malformed);
    // A subsample count running past the box.
    let mut past = frag.clone();
    past[first..first + 2].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(decrypt(past).unwrap_err().kind(), ErrorKind::Malformed);
    // saio pointing past the data (without senc).
    let mut far = frag.clone();
    far[senc..senc + 4].copy_from_slice(b"free");
    let saio = far.windows(4).position(|w| w == b"saio").unwrap();
    far[saio + 12..saio + 16].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(decrypt(far).unwrap_err().kind(), ErrorKind::Malformed);

    // Protection refuses inputs it cannot honour, appending nothing.
    let mut out = BytesMut::new();
    let e =
        protect_fragment(&clear[..clear.len() - 1], info, &track, &p, &KEY, &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    let mut big_id = track.clone();
    big_id.id = 5000;
    let e = protect_fragment(clear, info, &big_id, &p, &KEY, &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Limit);
    let mut bad = ProtectionInfo::cenc(KID);
    bad.scheme = Scheme::Aes128;
    let e = protect_fragment(clear, info, &track, &bad, &KEY, &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert!(out.is_empty());
}

fn write_protected(track: &TrackInfo, p: &ProtectionInfo, out: &mut BytesMut) {
    strom::container::fmp4::write_protected_init_segment(track, p, out).unwrap();
}
