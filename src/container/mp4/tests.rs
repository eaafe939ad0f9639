//! Demuxer tests over files built with `mp4-atom`'s writer (an independent encoder).

use bytes::Bytes;
use mp4_atom as m;
use mp4_atom::Encode;

use super::{Mp4Demuxer, Mp4Options};
use crate::error::{ErrorKind, Result};
use crate::media::{CodecConfig, Event, Frame, FrameFlags, Item, TrackId};
use std::collections::HashMap;

/// SPS/PPS of a 1920x1080 High profile stream.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x28, 0xAC, 0xD9, 0x40, 0x78, 0x02, 0x27, 0xE5, 0x84, 0x00, 0x00, 0x03, 0x00,
    0x04, 0x00, 0x00, 0x03, 0x00, 0xF0, 0x3C, 0x60, 0xC6, 0x58,
];
const PPS: &[u8] = &[0x68, 0xEB, 0xEC, 0xB2, 0x2C];

#[derive(Clone)]
struct Spec {
    id: u32,
    timescale: u32,
    codec: m::Codec,
    handler: &'static [u8; 4],
    language: &'static str,
    stts: Vec<(u32, u32)>,
    ctts: Option<Vec<(u32, i64)>>,
    stss: Option<Vec<u32>>,
    samples: Vec<Vec<u8>>,
    per_chunk: u32,
    elst: Option<Vec<m::ElstEntry>>,
}

fn aac(rate: u16) -> m::Codec {
    let sampling_index = match rate {
        48000 => 3,
        24000 => 6,
        _ => 4,
    };
    let asc = vec![
        0x10 | (sampling_index >> 1),
        ((sampling_index & 1) << 7) | (2 << 3),
    ];
    m::Mp4a {
        audio: m::Audio {
            data_reference_index: 1,
            channel_count: 2,
            sample_size: 16,
            sample_rate: rate.into(),
        },
        esds: m::Esds {
            es_desc: m::esds::EsDescriptor {
                es_id: 1,
                dec_config: m::esds::DecoderConfig {
                    object_type_indication: 0x40,
                    stream_type: 5,
                    avg_bitrate: 128_000,
                    dec_specific: Some(m::esds::DecoderSpecific {
                        raw: asc,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        btrt: None,
        taic: None,
    }
    .into()
}

fn avc(length_size: u8) -> m::Codec {
    m::Avc1 {
        visual: m::Visual {
            data_reference_index: 1,
            width: 1920,
            height: 1080,
            ..Default::default()
        },
        avcc: m::Avcc {
            configuration_version: 1,
            avc_profile_indication: 100,
            profile_compatibility: 0,
            avc_level_indication: 40,
            length_size,
            sequence_parameter_sets: vec![SPS.to_vec()],
            picture_parameter_sets: vec![PPS.to_vec()],
            ext: None,
        },
        ..Default::default()
    }
    .into()
}

fn audio_spec(id: u32, rate: u16, n: usize, delta: u32) -> Spec {
    Spec {
        id,
        timescale: u32::from(rate),
        codec: aac(rate),
        handler: b"soun",
        language: "und",
        stts: vec![(n as u32, delta)],
        ctts: None,
        stss: None,
        samples: (0..n).map(|i| vec![id as u8; 10 + i % 7]).collect(),
        per_chunk: 5,
        elst: None,
    }
}

/// A video sample: NAL units with `size`-byte length prefixes.
fn nals(size: usize, units: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for u in units {
        v.extend_from_slice(&(u.len() as u32).to_be_bytes()[4 - size..]);
        v.extend_from_slice(u);
    }
    v
}

fn video_spec(id: u32, length_size: u8, n: usize) -> Spec {
    let samples = (0..n)
        .map(|i| {
            let ty = if i % 10 == 0 { 0x65 } else { 0x41 };
            nals(
                length_size as usize,
                &[&[0x09, 0xf0], &vec![ty; 20 + i][..]],
            )
        })
        .collect();
    Spec {
        id,
        timescale: 90_000,
        codec: avc(length_size),
        handler: b"vide",
        language: "eng",
        stts: vec![(n as u32, 3000)],
        // I P B B pattern offsets.
        ctts: Some(vec![
            (1, 6000),
            (1, 9000),
            (1, 0),
            (1, 3000),
            (n as u32 - 4, 6000),
        ]),
        stss: Some(
            (0..n as u32)
                .filter(|i| i % 10 == 0)
                .map(|i| i + 1)
                .collect(),
        ),
        samples,
        per_chunk: 4,
        elst: Some(vec![m::ElstEntry {
            segment_duration: 1000,
            media_time: Some(6000),
            media_rate: 1i16.into(),
        }]),
    }
}

fn trak(spec: &Spec, offsets: &[u64], co64: bool, constant: bool) -> m::Trak {
    let sizes: Vec<u32> = spec.samples.iter().map(|s| s.len() as u32).collect();
    let stsz = if constant {
        m::StszSamples::Identical {
            count: sizes.len() as u32,
            size: sizes[0],
        }
    } else {
        m::StszSamples::Different { sizes }
    };
    let (stco, co64) = if co64 {
        (
            None,
            Some(m::Co64 {
                entries: offsets.to_vec(),
            }),
        )
    } else {
        let entries = offsets.iter().map(|&o| o as u32).collect();
        (Some(m::Stco { entries }), None)
    };
    m::Trak {
        tkhd: m::Tkhd {
            track_id: spec.id,
            enabled: true,
            ..Default::default()
        },
        edts: spec.elst.clone().map(|entries| m::Edts {
            elst: Some(m::Elst { entries }),
        }),
        mdia: m::Mdia {
            mdhd: m::Mdhd {
                timescale: spec.timescale,
                language: spec.language.into(),
                ..Default::default()
            },
            hdlr: m::Hdlr {
                handler: m::FourCC::new(spec.handler),
                name: "Handler".into(),
            },
            minf: m::Minf {
                dinf: m::Dinf {
                    dref: m::Dref {
                        entries: vec![m::Url::default().into()],
                    },
                },
                stbl: m::Stbl {
                    stsd: m::Stsd {
                        codecs: vec![spec.codec.clone()],
                    },
                    stts: m::Stts {
                        entries: spec
                            .stts
                            .iter()
                            .map(|&(sample_count, sample_delta)| m::SttsEntry {
                                sample_count,
                                sample_delta,
                            })
                            .collect(),
                    },
                    ctts: spec.ctts.as_ref().map(|c| m::Ctts {
                        entries: c
                            .iter()
                            .map(|&(sample_count, sample_offset)| m::CttsEntry {
                                sample_count,
                                sample_offset,
                            })
                            .collect(),
                    }),
                    stss: spec.stss.clone().map(|entries| m::Stss { entries }),
                    stsc: m::Stsc {
                        entries: vec![m::StscEntry {
                            first_chunk: 1,
                            samples_per_chunk: spec.per_chunk,
                            sample_description_index: 1,
                        }],
                    },
                    stsz: m::Stsz { samples: stsz },
                    stco,
                    co64,
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

#[derive(Clone, Copy, Default)]
struct Layout {
    faststart: bool,
    co64: bool,
    constant: bool,
    largesize: bool,
    mvex: bool,
}

fn encode<T: Encode>(t: &T) -> Vec<u8> {
    let mut v = Vec::new();
    t.encode(&mut v).unwrap();
    v
}

/// `ftyp`, then `mdat` and `moov` in the order `layout` asks; chunks interleaved.
fn build(specs: &[Spec], layout: Layout) -> Bytes {
    let ftyp = encode(&m::Ftyp {
        major_brand: b"isom".into(),
        minor_version: 512,
        compatible_brands: vec![b"isom".into(), b"mp41".into()],
    });
    // Chunk payloads interleaved round robin, offsets relative to the mdat body.
    let mut body = Vec::new();
    let mut rel: Vec<Vec<u64>> = vec![Vec::new(); specs.len()];
    let most = specs.iter().map(|s| s.samples.len()).max().unwrap_or(0);
    for k in 0..most {
        for (i, s) in specs.iter().enumerate() {
            let per = s.per_chunk as usize;
            if k * per < s.samples.len() {
                rel[i].push(body.len() as u64);
                for smp in s.samples.iter().skip(k * per).take(per) {
                    body.extend_from_slice(smp);
                }
            }
        }
    }
    let mdat_header = if layout.largesize {
        let mut h = vec![0, 0, 0, 1];
        h.extend_from_slice(b"mdat");
        h.extend_from_slice(&(body.len() as u64 + 16).to_be_bytes());
        h
    } else {
        let mut h = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        h.extend_from_slice(b"mdat");
        h
    };
    let moov = |base: u64| {
        let traks = specs
            .iter()
            .zip(&rel)
            .map(|(s, r)| {
                let abs: Vec<u64> = r.iter().map(|o| o + base).collect();
                trak(s, &abs, layout.co64, layout.constant)
            })
            .collect();
        encode(&m::Moov {
            mvhd: m::Mvhd {
                timescale: 1000,
                ..Default::default()
            },
            mvex: layout.mvex.then(m::Mvex::default),
            trak: traks,
            ..Default::default()
        })
    };
    let mut file = ftyp.clone();
    if layout.faststart {
        let size = moov(0).len();
        let base = (ftyp.len() + size + mdat_header.len()) as u64;
        file.extend_from_slice(&moov(base));
        file.extend_from_slice(&mdat_header);
        file.extend_from_slice(&body);
    } else {
        let base = (ftyp.len() + mdat_header.len()) as u64;
        file.extend_from_slice(&mdat_header);
        file.extend_from_slice(&body);
        file.extend_from_slice(&moov(base));
    }
    Bytes::from(file)
}

/// Drives the demuxer, returning the items and the number of reads.
fn drive(file: &Bytes, opts: Mp4Options) -> Result<(Vec<Item>, usize)> {
    let mut d = Mp4Demuxer::with_options(file.len() as u64, opts);
    let mut items = Vec::new();
    for reads in 0..100_000 {
        while let Some(item) = d.poll_item() {
            items.push(item?);
        }
        let Some(req) = d.poll_read() else {
            return Ok((items, reads));
        };
        let start = req.offset as usize;
        d.supply(req.offset, file.slice(start..start + req.len))?;
    }
    panic!("no progress");
}

fn frames(items: &[Item]) -> Vec<&Frame> {
    items.iter().filter_map(Item::as_frame).collect()
}

#[test]
fn video_and_audio_match_their_tables() {
    let v = video_spec(1, 2, 30);
    let a = audio_spec(2, 48000, 47, 1024);
    let file = build(&[v.clone(), a.clone()], Layout::default());
    let (items, reads) = drive(&file, Mp4Options::default()).unwrap();
    // ftyp, mdat, moov headers, moov body, then all sample data in one contiguous run.
    assert_eq!(reads, 5);
    let Item::Event(Event::TrackAdded(t1)) = &items[0] else {
        panic!()
    };
    let Item::Event(Event::TrackAdded(t2)) = &items[1] else {
        panic!()
    };
    assert_eq!(
        (t1.id, t1.timescale.get(), t1.language.as_deref()),
        (1, 90_000, Some("eng"))
    );
    assert_eq!(t1.config.codecs_string(), "avc1.640028");
    assert_eq!(t1.config.resolution(), Some((1920, 1080)));
    assert_eq!(
        (t2.id, t2.timescale.get(), t2.language.as_deref()),
        (2, 48000, None)
    );
    assert_eq!(t2.config.codecs_string(), "mp4a.40.2");
    assert!(
        matches!(&t2.config, CodecConfig::Aac(c) if c.sample_rate == 48000 && c.channel_config == 2)
    );
    assert_eq!(t2.bitrate, Some(128_000));
    assert_eq!(t2.name.as_deref(), Some("Handler"));
    assert_eq!(items.last(), Some(&Item::Event(Event::EndOfStream)));

    let fs = frames(&items);
    let video: Vec<&&Frame> = fs.iter().filter(|f| f.track == 1).collect();
    let audio: Vec<&&Frame> = fs.iter().filter(|f| f.track == 2).collect();
    assert_eq!((video.len(), audio.len()), (30, 47));
    let ctts = [6000, 9000, 0, 3000];
    for (i, f) in video.iter().enumerate() {
        // Edit list media_time 6000 moves the first presented frame to 0.
        let dts = i as i64 * 3000 - 6000;
        assert_eq!(f.dts.ticks(), dts);
        assert_eq!(f.pts.ticks(), dts + ctts.get(i).copied().unwrap_or(6000));
        assert_eq!(f.duration.unwrap().ticks(), 3000);
        assert_eq!(f.is_keyframe(), i % 10 == 0);
        // 2-byte NAL lengths became 4-byte ones.
        let ty = if i % 10 == 0 { 0x65 } else { 0x41 };
        assert_eq!(
            f.data,
            Bytes::from(nals(4, &[&[0x09, 0xf0], &vec![ty; 20 + i][..]]))
        );
    }
    assert_eq!(video.iter().map(|f| f.pts.ticks()).min(), Some(0));
    let range = file.as_ptr() as usize..file.as_ptr() as usize + file.len();
    for (i, f) in audio.iter().enumerate() {
        assert_eq!(f.dts.ticks(), i as i64 * 1024);
        assert_eq!(f.pts, f.dts);
        assert!(f.is_keyframe());
        assert_eq!(&f.data[..], &a.samples[i][..]);
        // Zero copy: the frame is a slice of the supplied bytes.
        assert!(range.contains(&(f.data.as_ptr() as usize)));
    }
    for w in fs.windows(2) {
        assert!(w[0].dts <= w[1].dts);
    }
}

#[test]
fn ties_across_timescales_go_to_the_lower_offset() {
    // Same instants in two timescales; track 2's chunks come first in the file.
    let a = audio_spec(2, 48000, 10, 1024);
    let b = audio_spec(1, 24000, 10, 512);
    let file = build(&[a, b], Layout::default());
    let items = Mp4Demuxer::read_all(file).unwrap();
    let order: Vec<(u32, i64)> = frames(&items)
        .iter()
        .map(|f| (f.track, f.dts.ticks()))
        .collect();
    let want: Vec<(u32, i64)> = (0..10)
        .flat_map(|i| [(2, i * 1024), (1, i * 512)])
        .collect();
    assert_eq!(order, want);
}

#[test]
fn faststart_co64_constant_sizes_largesize() {
    let mut a = audio_spec(7, 48000, 23, 1024);
    a.samples = (0..23).map(|i| vec![i as u8; 9]).collect();
    for layout in [
        Layout {
            faststart: true,
            co64: true,
            constant: true,
            ..Layout::default()
        },
        Layout {
            largesize: true,
            constant: true,
            ..Layout::default()
        },
    ] {
        let file = build(std::slice::from_ref(&a), layout);
        let items = Mp4Demuxer::read_all(file).unwrap();
        let fs = frames(&items);
        assert_eq!(fs.len(), 23);
        for (i, f) in fs.iter().enumerate() {
            assert_eq!(&f.data[..], &[i as u8; 9][..]);
        }
    }
}

#[test]
fn small_reads_and_buffer_budget_give_the_same_frames() {
    let specs = [video_spec(1, 4, 40), audio_spec(2, 48000, 60, 1024)];
    let file = build(&specs, Layout::default());
    let (all, few) = drive(&file, Mp4Options::default()).unwrap();
    let opts = Mp4Options {
        read_size: 64,
        max_buffered: 128,
        ..Mp4Options::default()
    };
    let (small, many) = drive(&file, opts).unwrap();
    assert_eq!(all, small);
    assert!(many > few + 20, "{many} reads");
}

#[test]
fn empty_edit_delays_the_track() {
    let mut a = audio_spec(1, 48000, 5, 1024);
    a.elst = Some(vec![
        m::ElstEntry {
            segment_duration: 500, // ms, movie timescale
            media_time: None,
            media_rate: 1i16.into(),
        },
        m::ElstEntry {
            segment_duration: 1000,
            media_time: Some(1024),
            media_rate: 1i16.into(),
        },
    ]);
    let items = Mp4Demuxer::read_all(build(&[a], Layout::default())).unwrap();
    let dts: Vec<i64> = frames(&items).iter().map(|f| f.dts.ticks()).collect();
    assert_eq!(dts, vec![22976, 24000, 25024, 26048, 27072]);
}

fn err_of(file: Bytes, opts: Mp4Options) -> crate::Error {
    drive(&file, opts).unwrap_err()
}

#[test]
fn limits_are_typed_errors() {
    // stts claiming 2^40 samples.
    let mut a = audio_spec(1, 48000, 3, 1024);
    a.stts = vec![(u32::MAX, 1024); 256];
    let e = err_of(build(&[a], Layout::default()), Mp4Options::default());
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    assert!(e.to_string().contains("track 1"), "{e}");
    // A moov larger than allowed.
    let file = build(&[audio_spec(1, 48000, 3, 1024)], Layout::default());
    let opts = Mp4Options {
        max_moov_size: 100,
        ..Mp4Options::default()
    };
    assert_eq!(err_of(file.clone(), opts).kind(), ErrorKind::Limit);
    // A sample larger than allowed.
    let opts = Mp4Options {
        max_sample_size: 8,
        ..Mp4Options::default()
    };
    assert_eq!(err_of(file, opts).kind(), ErrorKind::Limit);
}

#[test]
fn unsupported_tracks_are_skipped() {
    let text = Spec {
        codec: m::Tx3g::default().into(),
        handler: b"text",
        ..audio_spec(1, 1000, 4, 100)
    };
    let file = build(
        &[text.clone(), audio_spec(2, 48000, 4, 1024)],
        Layout::default(),
    );
    let items = Mp4Demuxer::read_all(file).unwrap();
    let tracks: Vec<u32> = items
        .iter()
        .filter_map(|i| match i {
            Item::Event(Event::TrackAdded(t)) => Some(t.id),
            _ => None,
        })
        .collect();
    assert_eq!(tracks, vec![2]);
    assert!(frames(&items).iter().all(|f| f.track == 2));
    // Nothing supported at all.
    let e = err_of(build(&[text], Layout::default()), Mp4Options::default());
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    // Fragmented: sample tables empty, samples in moof.
    let mut a = audio_spec(1, 48000, 0, 1024);
    a.stts.clear();
    let layout = Layout {
        mvex: true,
        ..Layout::default()
    };
    let e = err_of(build(&[a], layout), Mp4Options::default());
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("fragmented"), "{e}");
}

#[test]
fn misuse_is_a_usage_error_that_keeps_state() {
    let file = build(&[audio_spec(1, 48000, 4, 1024)], Layout::default());
    let mut d = Mp4Demuxer::new(file.len() as u64);
    assert!(d.poll_item().is_none());
    let req = d.poll_read().unwrap();
    assert_eq!((req.offset, req.len), (0, 32));
    assert_eq!(d.poll_read(), Some(req), "same request until supplied");
    let e = d.supply(1, file.slice(1..40)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    let e = d.supply(0, file.slice(0..8)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    // Extra bytes are fine.
    d.supply(0, file.slice(0..64)).unwrap();
    assert!(d.tracks().is_empty());
    let mut items = Vec::new();
    while !d.is_finished() {
        while let Some(i) = d.poll_item() {
            items.push(i.unwrap());
        }
        if let Some(r) = d.poll_read() {
            let s = r.offset as usize;
            d.supply(r.offset, file.slice(s..s + r.len)).unwrap();
        }
    }
    assert_eq!(d.tracks().len(), 1);
    assert_eq!(frames(&items).len(), 4);
    assert_eq!(
        d.supply(0, file.clone()).unwrap_err().kind(),
        ErrorKind::Usage
    );
    assert!(d.poll_item().is_none() && d.poll_read().is_none());
    // An empty file fails on the first poll.
    let mut d = Mp4Demuxer::new(0);
    assert!(d.poll_read().is_none());
    assert_eq!(
        d.poll_item().unwrap().unwrap_err().kind(),
        ErrorKind::Malformed
    );
    assert!(d.is_finished());
}

#[test]
fn index_stays_compact() {
    // A 10-minute 1080p25 file: 15 000 video samples with B-frame ctts, 28 125 AAC frames.
    let n_video = 15_000;
    let n_audio = 28_125;
    let mut v = video_spec(1, 4, 8);
    v.samples = vec![vec![0, 0, 0, 1, 0x41]; n_video];
    v.stts = vec![(n_video as u32, 3600)];
    v.ctts = Some(
        (0..n_video)
            .map(|i| (1, [7200i64, 0, 3600][i % 3]))
            .collect(),
    );
    v.stss = Some((0..n_video as u32).step_by(50).map(|i| i + 1).collect());
    v.per_chunk = 25;
    let mut a = audio_spec(2, 48000, n_audio, 1024);
    a.samples = vec![vec![0x21; 3]; n_audio];
    a.per_chunk = 47;
    let file = build(&[v, a], Layout::default());
    let mut d = Mp4Demuxer::new(file.len() as u64);
    let mut count = 0usize;
    let mut heap_at_start = None;
    loop {
        while let Some(item) = d.poll_item() {
            count += usize::from(item.unwrap().as_frame().is_some());
        }
        if heap_at_start.is_none() && !d.tracks().is_empty() {
            heap_at_start = Some(d.index_heap_bytes());
        }
        let Some(r) = d.poll_read() else { break };
        let s = r.offset as usize;
        d.supply(r.offset, file.slice(s..s + r.len)).unwrap();
    }
    assert_eq!(count, n_video + n_audio);
    let heap = heap_at_start.unwrap();
    // stsz (4 B) + ctts (8 B) per video sample, stsz per audio sample, plus runs.
    let per_sample = heap as f64 / (n_video + n_audio) as f64;
    assert!(
        per_sample < 12.0,
        "{heap} bytes of index, {per_sample:.1} per sample"
    );
}

/// Two audio tracks of 40 samples, track 2's `stco` patched to point at track 1's
/// chunks: both read the same bytes. Returns track 1's spec and the file.
fn twin_chunks() -> (Spec, Bytes) {
    let a = audio_spec(1, 48000, 40, 1024);
    let mut b = audio_spec(2, 48000, 40, 1024);
    b.samples = a.samples.clone();
    let file = build(&[a.clone(), b], Layout::default());
    let mut bytes = file.to_vec();
    let stco: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == b"stco")
        .map(|(i, _)| i + 4)
        .collect();
    let n = u32::from_be_bytes(bytes[stco[0] + 4..stco[0] + 8].try_into().unwrap()) as usize;
    let first = bytes[stco[0] + 8..stco[0] + 8 + 4 * n].to_vec();
    bytes[stco[1] + 8..stco[1] + 8 + 4 * n].copy_from_slice(&first);
    let file = Bytes::from(bytes);
    (a, file)
}

#[test]
fn overlapping_chunks_read_the_same_bytes() {
    // Track 2's stco is patched to point at track 1's chunks: both read the same bytes.
    let (a, file) = twin_chunks();
    for read_size in [1 << 20, 16] {
        let opts = Mp4Options {
            read_size,
            ..Mp4Options::default()
        };
        let (items, _) = drive(&file, opts).unwrap();
        let fs = frames(&items);
        assert_eq!(fs.len(), 80);
        for f in fs {
            let i = (f.dts.ticks() / 1024) as usize;
            assert_eq!(
                &f.data[..],
                &a.samples[i][..],
                "track {} sample {i}",
                f.track
            );
        }
    }
}

/// What [`drive_transformed`] did to one sample: where it was and its length.
type Transformed = HashMap<(TrackId, u32), (usize, usize)>;

/// Drives the demuxer as a host that transforms every listed sample in its read buffer
/// with `f` ([`Mp4Demuxer::read_samples`], [`Mp4Demuxer::supply_transformed`]).
fn drive_transformed(
    file: &Bytes,
    opts: Mp4Options,
    f: impl Fn(TrackId, &mut [u8]),
) -> Result<(Vec<Item>, Transformed)> {
    let mut d = Mp4Demuxer::with_options(file.len() as u64, opts);
    let (mut items, mut done) = (Vec::new(), Transformed::new());
    for _ in 0..100_000 {
        while let Some(item) = d.poll_item() {
            items.push(item?);
        }
        let Some(req) = d.poll_read() else {
            return Ok((items, done));
        };
        let start = req.offset as usize;
        let mut buf = file[start..start + req.len].to_vec();
        for s in d.read_samples() {
            let bytes = &mut buf[s.range()];
            f(s.track, bytes);
            // Listed again only when an earlier read of it was dropped unused.
            done.insert((s.track, s.index), (bytes.as_ptr() as usize, s.len));
        }
        d.supply_transformed(req.offset, Bytes::from(buf))?;
    }
    panic!("no progress");
}

#[test]
fn transformed_reads_flag_exactly_their_frames() {
    // Track 3's 2-byte NAL lengths are rewritten (a copy): never listed.
    let specs = [
        video_spec(1, 4, 30),
        audio_spec(2, 48000, 47, 1024),
        video_spec(3, 2, 12),
    ];
    let file = build(&specs, Layout::default());
    let (clear, _) = drive(&file, Mp4Options::default()).unwrap();
    let xor = |track: TrackId, b: &mut [u8]| {
        if track == 2 {
            b.iter_mut().for_each(|x| *x ^= 0x5A);
        }
    };
    let small = Mp4Options {
        read_size: 64,
        max_buffered: 128,
        ..Mp4Options::default()
    };
    for opts in [Mp4Options::default(), small] {
        let (items, done) = drive_transformed(&file, opts, xor).unwrap();
        assert_eq!(items.len(), clear.len());
        let mut index: HashMap<TrackId, u32> = HashMap::new();
        let mut flagged = 0;
        for (got, want) in items.iter().zip(&clear) {
            let (Some(got), Some(want)) = (got.as_frame(), want.as_frame()) else {
                assert_eq!(got, want);
                continue;
            };
            let i = *index.entry(got.track).and_modify(|i| *i += 1).or_insert(0);
            let is_flagged = got.flags.contains(FrameFlags::TRANSFORMED);
            assert_eq!(is_flagged, got.track != 3, "track {} sample {i}", got.track);
            assert_eq!(
                (got.track, got.dts, got.pts),
                (want.track, want.dts, want.pts)
            );
            if is_flagged {
                flagged += 1;
                // The very bytes the host transformed, transformed once.
                let at = done[&(got.track, i)];
                assert_eq!(at, (got.data.as_ptr() as usize, got.data.len()));
                let mut expect = want.data.to_vec();
                xor(got.track, &mut expect);
                assert_eq!(&got.data[..], &expect[..], "track {} sample {i}", got.track);
            } else {
                assert_eq!(got.data, want.data);
            }
        }
        assert_eq!(flagged, 30 + 47);
        assert_eq!(done.len(), flagged, "every listed sample came out flagged");
    }
}

#[test]
fn samples_sharing_bytes_are_transformed_once_or_not_at_all() {
    // Every sample shares its bytes with its twin of the other track.
    let (a, file) = twin_chunks();
    for read_size in [1 << 20, 16] {
        let opts = Mp4Options {
            read_size,
            ..Mp4Options::default()
        };
        let (items, done) =
            drive_transformed(&file, opts, |_, b| b.iter_mut().for_each(|x| *x ^= 0xFF)).unwrap();
        let fs = frames(&items);
        assert_eq!(fs.len(), 80);
        let mut flagged = 0;
        for f in fs {
            // Twins read together are both left alone; a sample whose twin already came
            // out of an earlier read is transformed in this one, and flagged.
            let i = (f.dts.ticks() / 1024) as usize;
            let mut expect = a.samples[i].clone();
            if f.flags.contains(FrameFlags::TRANSFORMED) {
                flagged += 1;
                expect.iter_mut().for_each(|x| *x ^= 0xFF);
                let at = done[&(f.track, i as u32)];
                assert_eq!(at, (f.data.as_ptr() as usize, f.data.len()));
            }
            assert_eq!(
                &f.data[..],
                &expect[..],
                "{read_size}: track {} sample {i}",
                f.track
            );
        }
        assert!(flagged < 80, "{read_size}: {flagged} flagged");
    }
}
