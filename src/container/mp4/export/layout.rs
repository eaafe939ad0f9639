//! The layout of an export: chunks, edits, interleaving, the `moov` boxes and the
//! parts of the file (ISO/IEC 14496-12 §8.2–§8.7).

use bytes::{BufMut, BytesMut};

use super::{
    ExportPart, ExportTrack, ExportedMp4, ExportedTrack, EXPORT_COMPATIBLE_BRANDS,
    EXPORT_MAJOR_BRAND,
};
use crate::container::fmp4::boxes::{begin, begin_full, end, put_dinf, put_matrix};
use crate::error::{Error, Result};
use crate::time::{rescale, Rounding, Timescale, Timestamp};

/// Lays out `tracks`: see [`Mp4Export::finish`].
pub(super) fn finish(tracks: &[ExportTrack], chunk_duration: Timestamp) -> Result<ExportedMp4> {
    if tracks.is_empty() {
        return Err(Error::usage("MP4 export without tracks"));
    }
    let mut plans = Vec::with_capacity(tracks.len());
    for t in tracks {
        let p = plan_track(t, chunk_duration)
            .map_err(|e| e.context(format!("mp4 export track {}", t.info.id)))?;
        plans.push(p);
    }
    let movie_scale = movie_timescale(tracks);
    align(tracks, &mut plans, movie_scale)?;

    // Chunks of all tracks in decode time order, and their offsets in the mdat.
    let order = interleave(tracks, &plans);
    let mut rel: u64 = 0;
    for &(ti, ci) in &order {
        let p = &mut plans[ti];
        let (Some(c), Some(o)) = (p.chunks.get(ci), p.offsets.get_mut(ci)) else {
            return Err(Error::usage("chunk index out of range"));
        };
        *o = rel;
        rel = rel
            .checked_add(c.bytes)
            .ok_or_else(|| Error::limit("mdat beyond 64 bits"))?;
    }
    let payload = rel;
    let last_chunk = order
        .last()
        .and_then(|&(ti, ci)| plans[ti].offsets.get(ci).copied())
        .unwrap_or(0);
    let large = payload > u64::from(u32::MAX) - 8;
    let mdat_header: u64 = if large { 16 } else { 8 };

    let mut ftyp = BytesMut::with_capacity(32);
    let at = begin(&mut ftyp, b"ftyp");
    ftyp.put_slice(&EXPORT_MAJOR_BRAND);
    ftyp.put_u32(0x200);
    for b in EXPORT_COMPATIBLE_BRANDS {
        ftyp.put_slice(&b);
    }
    end(&mut ftyp, at)?;

    let layout = Layout {
        tracks,
        plans: &plans,
        movie_scale,
    };
    // The moov's length does not depend on the offsets' values, only on their width.
    let fixed = ftyp.len() as u64 + mdat_header;
    let mut co64 = false;
    let mut moov_len = layout.moov(None, false)?.len() as u64;
    let base_of = |moov_len: u64| {
        fixed
            .checked_add(moov_len)
            .ok_or_else(|| Error::limit("moov beyond 64 bits"))
    };
    let beyond_32 = |base: u64| {
        base.checked_add(last_chunk)
            .is_none_or(|o| o > u64::from(u32::MAX))
    };
    if beyond_32(base_of(moov_len)?) {
        co64 = true;
        moov_len = layout.moov(None, true)?.len() as u64;
    }
    let base = base_of(moov_len)?;
    base.checked_add(payload)
        .filter(|&e| e <= i64::MAX as u64)
        .ok_or_else(|| Error::limit("exported MP4 beyond 63 bits"))?;
    let moov = layout.moov(Some(base), co64)?;
    if moov.len() as u64 != moov_len {
        return Err(Error::usage("moov length changed with its offsets"));
    }

    let mut header = BytesMut::with_capacity(ftyp.len() + moov.len() + 16);
    header.extend_from_slice(&ftyp);
    header.extend_from_slice(&moov);
    if large {
        header.put_u32(1);
        header.put_slice(b"mdat");
        header.put_u64(payload + 16);
    } else {
        header.put_u32((payload + 8) as u32);
        header.put_slice(b"mdat");
    }
    let header_len = header.len();
    let mut parts = Vec::with_capacity(order.len() + 1);
    parts.push(ExportPart::Data(header.freeze()));
    write_parts(tracks, &plans, &order, &mut parts)?;
    let len = parts.iter().map(ExportPart::len).sum::<u64>();
    if len != base + payload {
        return Err(Error::usage("exported parts do not add up to the file"));
    }
    let summary = tracks
        .iter()
        .zip(&plans)
        .map(|(t, p)| ExportedTrack {
            track_id: t.out_id,
            samples: t.sizes.len() as u32,
            chunks: p.chunks.len() as u32,
            duration: Timestamp::new(p.duration as i64, t.info.timescale),
            delay: Timestamp::new(p.delay as i64, movie_scale),
            media_time: Timestamp::new(p.media_time, t.info.timescale),
        })
        .collect();
    tracing::debug!(
        len,
        header_len,
        co64,
        chunks = order.len(),
        "mp4 export laid out"
    );
    Ok(ExportedMp4 {
        parts,
        len,
        header_len,
        movie_timescale: movie_scale,
        co64,
        tracks: summary,
    })
}

/// One chunk of one track.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    /// 0-based number of its first sample.
    first: u32,
    samples: u32,
    bytes: u64,
    /// Decode time of its first sample, relative to the track's first.
    dts: u64,
}

/// A track's layout: chunks, composition range and edit.
#[derive(Debug, Clone)]
struct Plan {
    chunks: Vec<Chunk>,
    /// Absolute (after [`Layout::moov`]'s base) or mdat-relative chunk offsets.
    offsets: Vec<u64>,
    /// Added to every composition offset so that no composition time is negative.
    cto_shift: i64,
    /// Earliest composition time (after `cto_shift`): the edit's `media_time`.
    media_time: i64,
    /// Latest composition end minus `media_time`: what the track presents, in its ticks.
    presented: u64,
    /// Sum of the sample durations.
    duration: u64,
    /// Presentation start of the track's first shown sample on the fragments' timeline,
    /// in its ticks: first decode time + init edit shift + earliest composition time.
    start: i128,
    /// Empty edit, movie ticks.
    delay: u64,
    /// Media edit duration, movie ticks.
    edit_duration: u64,
    /// Composition offsets after the shift: any not zero, any negative.
    any_cto: bool,
    negative_cto: bool,
}

/// Per-sample walk over a track's run-length tables.
fn expand<T: Copy>(runs: &[(u32, T)]) -> impl Iterator<Item = T> + '_ {
    runs.iter()
        .flat_map(|&(n, v)| std::iter::repeat_n(v, n as usize))
}

fn plan_track(t: &ExportTrack, chunk_duration: Timestamp) -> Result<Plan> {
    let first_dts = t
        .first_dts
        .ok_or_else(|| Error::usage("track without samples"))?;
    let scale = t.info.timescale;
    let chunk_ticks = rescale(
        chunk_duration.ticks(),
        chunk_duration.scale(),
        scale,
        Rounding::Up,
    )
    .max(1)
    .unsigned_abs();
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut dts: u64 = 0;
    let mut min_ct = i128::MAX;
    let mut max_end = i128::MIN;
    let samples = t.sizes.iter().zip(expand(&t.stts)).zip(expand(&t.ctts));
    for (i, ((&size, d), c)) in samples.enumerate() {
        let ct = i128::from(dts) + i128::from(c);
        min_ct = min_ct.min(ct);
        max_end = max_end.max(ct + i128::from(d));
        let new = match chunks.last() {
            None => true,
            Some(k) => dts - k.dts >= chunk_ticks,
        };
        if new {
            chunks.push(Chunk {
                first: i as u32,
                samples: 0,
                bytes: 0,
                dts,
            });
        }
        if let Some(k) = chunks.last_mut() {
            k.samples += 1;
            k.bytes = k
                .bytes
                .checked_add(u64::from(size))
                .ok_or_else(|| Error::limit("chunk beyond 64 bits"))?;
        }
        dts = dts
            .checked_add(u64::from(d))
            .ok_or_else(|| Error::limit("duration beyond 64 bits"))?;
    }
    if chunks.is_empty() {
        return Err(Error::usage("track without samples"));
    }
    let cto_shift = if min_ct < 0 { -min_ct } else { 0 };
    let too_big = || Error::limit("composition offsets span more than 31 bits");
    let cto_shift = i64::try_from(cto_shift).map_err(|_| too_big())?;
    let (mut any_cto, mut negative_cto) = (false, false);
    for &(_, c) in &t.ctts {
        let v = i64::from(c) + cto_shift;
        i32::try_from(v).map_err(|_| too_big())?;
        any_cto |= v != 0;
        negative_cto |= v < 0;
    }
    let media_time = i64::try_from(min_ct + i128::from(cto_shift)).map_err(|_| too_big())?;
    let presented =
        u64::try_from(max_end - min_ct).map_err(|_| Error::limit("presentation beyond 64 bits"))?;
    let start = i128::from(first_dts) + i128::from(t.shift) + min_ct;
    let offsets = vec![0; chunks.len()];
    Ok(Plan {
        chunks,
        offsets,
        cto_shift,
        media_time,
        presented,
        duration: dts,
        start,
        delay: 0,
        edit_duration: 0,
        any_cto,
        negative_cto,
    })
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The least common multiple of the track timescales when it fits 32 bits, else the
/// largest of them.
fn movie_timescale(tracks: &[ExportTrack]) -> Timescale {
    let mut lcm: Option<u64> = Some(1);
    let mut largest = Timescale::MILLIS;
    for (i, t) in tracks.iter().enumerate() {
        let s = t.info.timescale;
        if i == 0 || s.get() > largest.get() {
            largest = s;
        }
        lcm = lcm.and_then(|l| {
            let s = u64::from(s.get());
            let v = l / gcd(l, s) * s;
            (v <= u64::from(u32::MAX)).then_some(v)
        });
    }
    lcm.and_then(|l| Timescale::new(u32::try_from(l).ok()?))
        .unwrap_or(largest)
}

/// The edits: the movie starts at the earliest track start; later tracks get an empty
/// edit for the difference (in movie ticks, rounded to nearest).
fn align(tracks: &[ExportTrack], plans: &mut [Plan], movie: Timescale) -> Result<()> {
    let limit = || Error::limit("track start beyond 63 bits");
    let mut starts = Vec::with_capacity(plans.len());
    for (t, p) in tracks.iter().zip(plans.iter()) {
        let s = i64::try_from(p.start).map_err(|_| limit())?;
        let m = rescale(s, t.info.timescale, movie, Rounding::Nearest);
        if m == i64::MIN || m == i64::MAX {
            return Err(limit());
        }
        starts.push(m);
    }
    let first = starts.iter().copied().min().unwrap_or(0);
    for ((t, p), s) in tracks.iter().zip(plans.iter_mut()).zip(starts) {
        p.delay = s
            .checked_sub(first)
            .and_then(|d| u64::try_from(d).ok())
            .ok_or_else(limit)?;
        let presented = i64::try_from(p.presented).map_err(|_| limit())?;
        let d = rescale(presented, t.info.timescale, movie, Rounding::Nearest);
        p.edit_duration = u64::try_from(d).map_err(|_| limit())?;
    }
    Ok(())
}

/// `(track, chunk)` in file order: by decode time of the chunk's first sample on the
/// fragments' timeline, ties to the track added first.
fn interleave(tracks: &[ExportTrack], plans: &[Plan]) -> Vec<(usize, usize)> {
    let total = plans.iter().map(|p| p.chunks.len()).sum();
    let mut order = Vec::with_capacity(total);
    let mut next = vec![0usize; plans.len()];
    // Decode time of a chunk as (ticks, timescale).
    let key = |ti: usize, ci: usize| -> Option<(i128, i128)> {
        let t = tracks.get(ti)?;
        let c = plans.get(ti)?.chunks.get(ci)?;
        let at = i128::from(t.first_dts.unwrap_or(0)) + i128::from(t.shift) + i128::from(c.dts);
        Some((at, i128::from(t.info.timescale.get())))
    };
    loop {
        let mut best: Option<(usize, (i128, i128))> = None;
        for (ti, &ci) in next.iter().enumerate() {
            let Some(k) = key(ti, ci) else { continue };
            // a/sa < b/sb  <=>  a*sb < b*sa: ticks below 2^65, scales below 2^32.
            if best.is_none_or(|(_, b)| k.0 * b.1 < b.0 * k.1) {
                best = Some((ti, k));
            }
        }
        let Some((ti, _)) = best else { break };
        order.push((ti, next[ti]));
        next[ti] += 1;
    }
    order
}

/// Appends the sample data of the chunks in `order` to `parts`.
fn write_parts(
    tracks: &[ExportTrack],
    plans: &[Plan],
    order: &[(usize, usize)],
    parts: &mut Vec<ExportPart>,
) -> Result<()> {
    /// Per track: the run and how far into it the previous chunks went.
    #[derive(Clone, Copy, Default)]
    struct Cursor {
        run: usize,
        samples: u32,
        bytes: u64,
    }
    let internal = || Error::usage("sample runs and tables disagree");
    let mut cursors = vec![Cursor::default(); tracks.len()];
    for &(ti, ci) in order {
        let (Some(t), Some(p), Some(cur)) = (tracks.get(ti), plans.get(ti), cursors.get_mut(ti))
        else {
            return Err(internal());
        };
        let c = p.chunks.get(ci).ok_or_else(internal)?;
        // (fragment, offset, len) spans of this chunk, adjacent ones merged.
        let mut spans: Vec<(u64, u64, u64)> = Vec::new();
        let mut left = c.samples;
        let mut sample = c.first as usize;
        while left > 0 {
            let run = t.runs.get(cur.run).ok_or_else(internal)?;
            let take = left.min(run.samples - cur.samples);
            let mut len = 0u64;
            for s in sample..sample + take as usize {
                len += u64::from(*t.sizes.get(s).ok_or_else(internal)?);
            }
            if len > 0 {
                let off = run.offset + cur.bytes;
                match spans.last_mut() {
                    Some(sp) if sp.0 == run.fragment && sp.1 + sp.2 == off => sp.2 += len,
                    _ => spans.push((run.fragment, off, len)),
                }
            }
            cur.samples += take;
            cur.bytes += len;
            if cur.samples == run.samples {
                *cur = Cursor {
                    run: cur.run + 1,
                    samples: 0,
                    bytes: 0,
                };
            }
            left -= take;
            sample += take as usize;
        }
        for (fragment, offset, len) in spans {
            if t.fragments.is_empty() {
                parts.push(ExportPart::Fragment {
                    track: ti,
                    fragment,
                    offset,
                    len,
                });
            } else {
                let f = usize::try_from(fragment)
                    .ok()
                    .and_then(|i| t.fragments.get(i))
                    .ok_or_else(internal)?;
                let (s, e) = (offset as usize, (offset + len) as usize);
                if e > f.len() {
                    return Err(internal());
                }
                parts.push(ExportPart::Data(f.slice(s..e)));
            }
        }
    }
    Ok(())
}

fn fits_32(v: u64) -> bool {
    v <= u64::from(u32::MAX)
}

/// Writes the `moov` of laid-out tracks.
struct Layout<'a> {
    tracks: &'a [ExportTrack],
    plans: &'a [Plan],
    movie_scale: Timescale,
}

impl Layout<'_> {
    /// The `moov`, chunk offsets counted from `base` (the first byte of `mdat` data);
    /// without a base, offsets are zeros (to measure the `moov`).
    fn moov(&self, base: Option<u64>, co64: bool) -> Result<BytesMut> {
        let entries: usize = self
            .tracks
            .iter()
            .map(|t| t.sizes.len() + t.stts.len() + t.ctts.len() + t.sync.len())
            .sum();
        let mut out = BytesMut::with_capacity(1024 + 8 * entries);
        let moov = begin(&mut out, b"moov");
        let mut duration = 0u64;
        for p in self.plans {
            let d = p
                .delay
                .checked_add(p.edit_duration)
                .ok_or_else(|| Error::limit("track duration beyond 64 bits"))?;
            duration = duration.max(d);
        }
        // mvhd (§8.2.2).
        let v1 = !fits_32(duration);
        let at = begin_full(&mut out, b"mvhd", u8::from(v1), 0);
        if v1 {
            out.put_u64(0);
            out.put_u64(0);
            out.put_u32(self.movie_scale.get());
            out.put_u64(duration);
        } else {
            out.put_u32(0);
            out.put_u32(0);
            out.put_u32(self.movie_scale.get());
            out.put_u32(duration as u32);
        }
        out.put_u32(0x0001_0000); // rate 1.0
        out.put_u16(0x0100); // volume 1.0
        out.put_u16(0);
        out.put_u64(0);
        put_matrix(&mut out);
        for _ in 0..6 {
            out.put_u32(0); // pre_defined
        }
        let next_id = self.tracks.iter().map(|t| t.out_id).max().unwrap_or(0);
        out.put_u32(next_id.saturating_add(1));
        end(&mut out, at)?;
        for (t, p) in self.tracks.iter().zip(self.plans) {
            self.trak(&mut out, t, p, base, co64)
                .map_err(|e| e.context(format!("mp4 export track {}", t.info.id)))?;
        }
        end(&mut out, moov)?;
        Ok(out)
    }

    fn trak(
        &self,
        out: &mut BytesMut,
        t: &ExportTrack,
        p: &Plan,
        base: Option<u64>,
        co64: bool,
    ) -> Result<()> {
        let trak = begin(out, b"trak");
        // tkhd (§8.3.2), flags track_enabled | track_in_movie.
        let duration = p
            .delay
            .checked_add(p.edit_duration)
            .ok_or_else(|| Error::limit("track duration beyond 64 bits"))?;
        let v1 = !fits_32(duration);
        let at = begin_full(out, b"tkhd", u8::from(v1), 0x3);
        if v1 {
            out.put_u64(0);
            out.put_u64(0);
            out.put_u32(t.out_id);
            out.put_u32(0);
            out.put_u64(duration);
        } else {
            out.put_u32(0);
            out.put_u32(0);
            out.put_u32(t.out_id);
            out.put_u32(0);
            out.put_u32(duration as u32);
        }
        out.put_u64(0);
        out.put_slice(&t.boxes.tkhd_tail);
        end(out, at)?;

        // edts/elst (§8.6.5, §8.6.6).
        if p.delay > 0 || p.media_time != 0 {
            let mut entries: Vec<(u64, i64)> = Vec::with_capacity(2);
            if p.delay > 0 {
                entries.push((p.delay, -1));
            }
            entries.push((p.edit_duration, p.media_time));
            let v1 = entries
                .iter()
                .any(|&(d, m)| !fits_32(d) || i32::try_from(m).is_err());
            let edts = begin(out, b"edts");
            let elst = begin_full(out, b"elst", u8::from(v1), 0);
            out.put_u32(entries.len() as u32);
            for (d, m) in entries {
                if v1 {
                    out.put_u64(d);
                    out.put_i64(m);
                } else {
                    out.put_u32(d as u32);
                    out.put_i32(m as i32);
                }
                out.put_i16(1); // media_rate_integer
                out.put_i16(0); // media_rate_fraction
            }
            end(out, elst)?;
            end(out, edts)?;
        }

        let mdia = begin(out, b"mdia");
        // mdhd (§8.4.2).
        let v1 = !fits_32(p.duration);
        let at = begin_full(out, b"mdhd", u8::from(v1), 0);
        if v1 {
            out.put_u64(0);
            out.put_u64(0);
            out.put_u32(t.info.timescale.get());
            out.put_u64(p.duration);
        } else {
            out.put_u32(0);
            out.put_u32(0);
            out.put_u32(t.info.timescale.get());
            out.put_u32(p.duration as u32);
        }
        out.put_u16(t.boxes.language);
        out.put_u16(0);
        end(out, at)?;
        out.put_slice(&t.boxes.hdlr);

        let minf = begin(out, b"minf");
        match &t.boxes.media_header {
            Some(b) => out.put_slice(b),
            None if t.video => {
                let at = begin_full(out, b"vmhd", 0, 1);
                out.put_slice(&[0; 8]);
                end(out, at)?;
            }
            None => {
                let at = begin_full(out, b"smhd", 0, 0);
                out.put_u32(0);
                end(out, at)?;
            }
        }
        put_dinf(out)?;
        self.stbl(out, t, p, base, co64)?;
        end(out, minf)?;
        end(out, mdia)?;
        end(out, trak)
    }

    fn stbl(
        &self,
        out: &mut BytesMut,
        t: &ExportTrack,
        p: &Plan,
        base: Option<u64>,
        co64: bool,
    ) -> Result<()> {
        let count = |n: usize| {
            u32::try_from(n).map_err(|_| Error::limit("table with more than 2^32 entries"))
        };
        let stbl = begin(out, b"stbl");
        out.put_slice(&t.boxes.stsd);
        // stts (§8.6.1.2).
        let at = begin_full(out, b"stts", 0, 0);
        out.put_u32(count(t.stts.len())?);
        for &(n, d) in &t.stts {
            out.put_u32(n);
            out.put_u32(d);
        }
        end(out, at)?;
        // ctts (§8.6.1.3): offsets raised by the shift, runs stay runs.
        if p.any_cto {
            let at = begin_full(out, b"ctts", u8::from(p.negative_cto), 0);
            out.put_u32(count(t.ctts.len())?);
            for &(n, c) in &t.ctts {
                out.put_u32(n);
                // In range: checked by plan_track.
                out.put_i32((i64::from(c) + p.cto_shift) as i32);
            }
            end(out, at)?;
        }
        // stss (§8.6.2): absent when every sample is a sync sample.
        if t.sync.len() < t.sizes.len() {
            let at = begin_full(out, b"stss", 0, 0);
            out.put_u32(count(t.sync.len())?);
            for &n in &t.sync {
                out.put_u32(n);
            }
            end(out, at)?;
        }
        // stsc (§8.7.4): runs of chunks with the same sample count.
        let mut stsc: Vec<(u32, u32)> = Vec::new();
        for (i, c) in p.chunks.iter().enumerate() {
            if stsc.last().is_none_or(|&(_, n)| n != c.samples) {
                stsc.push((count(i + 1)?, c.samples));
            }
        }
        let at = begin_full(out, b"stsc", 0, 0);
        out.put_u32(count(stsc.len())?);
        for (first, n) in stsc {
            out.put_u32(first);
            out.put_u32(n);
            out.put_u32(1); // sample_description_index
        }
        end(out, at)?;
        // stsz (§8.7.3.2).
        let at = begin_full(out, b"stsz", 0, 0);
        // One size for all (not 0, which means a table follows).
        let same = t
            .sizes
            .first()
            .filter(|&&s| s > 0 && t.sizes.iter().all(|&x| x == s));
        match same {
            Some(&s) => {
                out.put_u32(s);
                out.put_u32(count(t.sizes.len())?);
            }
            None => {
                out.put_u32(0);
                out.put_u32(count(t.sizes.len())?);
                for &s in &t.sizes {
                    out.put_u32(s);
                }
            }
        }
        end(out, at)?;
        // stco / co64 (§8.7.5).
        let at = begin_full(out, if co64 { b"co64" } else { b"stco" }, 0, 0);
        out.put_u32(count(p.offsets.len())?);
        for &o in &p.offsets {
            let o = match base {
                Some(b) => b
                    .checked_add(o)
                    .ok_or_else(|| Error::limit("chunk offset beyond 64 bits"))?,
                None => 0,
            };
            if co64 {
                out.put_u64(o);
            } else {
                let o = u32::try_from(o)
                    .map_err(|_| Error::usage("chunk offset beyond 32 bits in stco"))?;
                out.put_u32(o);
            }
        }
        end(out, at)?;
        end(out, stbl)
    }
}
