//! Recording and restart safety of the live origin example (`--record DIR`): ffmpeg
//! publishes over RTMP, the origin is killed with SIGKILL mid-stream and started again on
//! the same directory; everything it listed before is served again byte for byte, and the
//! stream continues, numbering and all, with a discontinuity when the publisher returns.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::live::*;
use common::*;

/// Polls `f` every 100 ms until it returns `Some`, at most `limit`.
fn wait<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// GET `path`: the body of a 200, else a panic naming the status.
fn fetch(o: &Origin, path: &str) -> Vec<u8> {
    let r = o
        .get(path)
        .unwrap_or_else(|| panic!("GET {path}: no answer"));
    assert_eq!(r.status, 200, "GET {path}");
    r.body
}

/// The URIs of a playlist (lines that are not tags).
fn uris(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Everything the origin lists for `name` now: TS segments, and per CMAF rendition its
/// init segment and fragments, by path, with their bytes.
fn snapshot(o: &Origin, name: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let media = String::from_utf8(fetch(o, &format!("/live/{name}/media.m3u8"))).unwrap();
    for u in uris(&media) {
        let p = format!("/live/{name}/{u}");
        out.insert(p.clone(), fetch(o, &p));
    }
    let cmaf = String::from_utf8(fetch(o, &format!("/live/{name}/cmaf.m3u8"))).unwrap();
    let mut renditions: Vec<String> = uris(&cmaf);
    for l in cmaf.lines().filter(|l| l.starts_with("#EXT-X-MEDIA")) {
        if let Some(at) = l.find("URI=\"") {
            let rest = &l[at + 5..];
            renditions.push(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    for r in renditions {
        let dir = r.trim_end_matches("media.m3u8");
        let pl = String::from_utf8(fetch(o, &format!("/live/{name}/{r}"))).unwrap();
        let init = format!("/live/{name}/{dir}init.mp4");
        out.insert(init.clone(), fetch(o, &init));
        for u in uris(&pl) {
            let p = format!("/live/{name}/{dir}{u}");
            out.insert(p.clone(), fetch(o, &p));
        }
    }
    out
}

#[test]
fn kill_9_restart_serves_the_same_bytes_and_continues_with_a_discontinuity() {
    let dir = TempDir::new("live-record");
    let rec = dir.join("rec");
    let rec_s = rec.to_str().unwrap().to_string();
    let args = [
        "--publish-secret",
        PUBLISH_SECRET,
        "--record",
        &rec_s,
        "--dvr-window-s",
        "3600",
    ];
    let input = avc_aac_25(10, Container::Flv);
    let name = "cam";

    let mut first = Origin::start_with(&args);
    let url = first.publish_url(name, &Origin::token_query(name));
    let mut ff = publish(&input, &url, 120, &dir.join("ffmpeg-1.log"));
    let listed = wait(Duration::from_secs(40), "6 segments", || {
        let p = Playlist::parse(&first.playlist(name)?);
        (p.segments.len() >= 6).then_some(p)
    });
    let before = snapshot(&first, name);
    let last_listed = listed.newest();
    println!(
        "before the kill: {} objects listed (TS {}..={})",
        before.len(),
        listed.media_sequence,
        last_listed
    );
    // SIGKILL while the publisher is still streaming: no shutdown path runs.
    assert!(ff.exited().is_none(), "the publisher stopped early");
    first.proc.kill();
    ff.kill();
    drop(first);

    let second = Origin::start_with(&args);
    assert!(
        second.log().contains("restored from") || second.get("/live/cam/media.m3u8").is_some(),
        "{}",
        second.log()
    );
    for (path, bytes) in &before {
        let again = fetch(&second, path);
        assert!(again == *bytes, "{path} differs after the restart");
    }
    println!("after the restart: all {} objects identical", before.len());
    // The live playlist is back: it still lists what was listed last (and what was
    // stored between the snapshot and the kill).
    let restored = Playlist::parse(&second.playlist(name).expect("restored playlist"));
    let newest_stored = restored.newest();
    assert!(newest_stored >= last_listed, "{}", restored.text);
    assert!(
        !restored.text.contains("#EXT-X-ENDLIST"),
        "{}",
        restored.text
    );

    // The publisher returns: numbering continues after the stored segments, and the
    // first new segment follows a discontinuity.
    let url = second.publish_url(name, &Origin::token_query(name));
    let mut ff = publish(&input, &url, 60, &dir.join("ffmpeg-2.log"));
    let cont = wait(Duration::from_secs(40), "two new segments", || {
        let p = Playlist::parse(&second.playlist(name)?);
        (p.newest() > newest_stored + 1).then_some(p)
    });
    ff.kill();
    let (at, first_new) = cont
        .segments
        .iter()
        .enumerate()
        .find(|(_, s)| s.0 == newest_stored + 1)
        .unwrap_or_else(|| panic!("no segment {}:\n{}", newest_stored + 1, cont.text));
    assert_eq!(
        first_new.1,
        format!("{}.ts", newest_stored + 1),
        "{}",
        cont.text
    );
    assert!(
        first_new.2,
        "no discontinuity before the first new segment:\n{}",
        cont.text
    );
    assert!(
        cont.segments[at + 1..].iter().all(|s| !s.2),
        "{}",
        cont.text
    );
    check_segment(&second, name, &first_new.1, &dir);
    // The DVR playlist holds the whole recording, both publishes, one discontinuity.
    let dvr = String::from_utf8(fetch(&second, &format!("/live/{name}/dvr.m3u8"))).unwrap();
    let d = Playlist::parse(&dvr);
    assert_eq!(d.media_sequence, 0, "{dvr}");
    assert!(d.newest() > newest_stored, "{dvr}");
    assert_eq!(
        d.segments.iter().filter(|s| s.2).count(),
        1,
        "one discontinuity in the recording:\n{dvr}"
    );
    for (i, s) in d.segments.iter().enumerate() {
        assert_eq!(
            s.1,
            format!("{}.ts", s.0),
            "segment {i} of the DVR playlist"
        );
    }
    // The recording as one MP4: the newest run (the second publish), frame-identical
    // to its stored CMAF fragments.
    std::thread::sleep(Duration::from_millis(1500)); // the publisher's end is flushed
    let mp4 = fetch(&second, &format!("/live/{name}/recording.mp4"));
    let mp4_path = dir.join("recording.mp4");
    std::fs::write(&mp4_path, &mp4).unwrap();
    assert_eq!(&mp4[4..8], b"ftyp");
    for (rendition, spec) in [("v1", "v:0"), ("a2", "a:0")] {
        let pl = String::from_utf8(fetch(
            &second,
            &format!("/live/{name}/{rendition}/dvr.m3u8"),
        ))
        .unwrap();
        let mut concat = fetch(&second, &format!("/live/{name}/{rendition}/init.mp4"));
        let mut n = 0;
        for u in uris(&pl) {
            let number: u64 = u.trim_end_matches(".m4s").parse().unwrap();
            if number > newest_stored {
                concat.extend(fetch(&second, &format!("/live/{name}/{rendition}/{u}")));
                n += 1;
            }
        }
        let frag_path = dir.join(&format!("{rendition}-run.mp4"));
        std::fs::write(&frag_path, &concat).unwrap();
        let want = framemd5(&frag_path, "0");
        let got = framemd5(&mp4_path, spec);
        assert!(!want.is_empty(), "{rendition}: no frames in the fragments");
        assert_eq!(
            got, want,
            "{rendition}: the export differs from its {n} fragments"
        );
        println!(
            "recording.mp4 ({} bytes): {rendition} {} frames identical to its {n} fragments",
            mp4.len(),
            got.len()
        );
    }
    println!(
        "continued: {} -> {}, DVR playlist {} segments, discontinuity before {}",
        newest_stored,
        cont.newest(),
        d.segments.len(),
        first_new.1
    );
}
