//! A recorded stream as one progressive MP4 ([`Mp4Export`]): its stored CMAF renditions
//! (video first), from the newest run of fragments (since the last discontinuity: one
//! publish, one track configuration, one timeline) to the newest fragment, without
//! re-encoding. Served as `/live/{stream}/recording.mp4` up to
//! [`super::OriginOptions::max_recording_body`]; a host that streams larger files asks
//! [`super::Origin::recording`] and writes the parts itself.

use bytes::{Bytes, BytesMut};

use super::store::{CmafKey, SegmentRecord, SegmentStore, Series};
use crate::container::mp4::{ExportPart, ExportedMp4, Mp4Export, Mp4ExportOptions, PayloadMode};
use crate::error::{Error, Result};

/// Name of the MP4 export of a stream's recording.
pub const RECORDING_NAME: &str = "recording.mp4";

/// A stream's recording laid out as one MP4 file: [`parts`](Self::parts) in order,
/// the header bytes and ranges of stored fragments, which
/// [`part_bytes`](Self::part_bytes) reads from the store. Holds the sample tables
/// only, never the media.
#[derive(Debug)]
pub struct Recording {
    stream: String,
    mp4: ExportedMp4,
    /// Per exported track: its rendition and the fragment numbers pushed, in order.
    tracks: Vec<(String, Vec<u64>)>,
}

impl Recording {
    /// Builds the export of `stream` from `store`: one pass over its newest run of
    /// fragments (each read once for its sample table).
    ///
    /// Errors: [`Error::usage`] when nothing is stored for the stream; the export's
    /// errors (a fragment missing from the store, a timeline the MP4 cannot carry,
    /// limits).
    pub(super) fn build<S: SegmentStore + ?Sized>(store: &S, stream: &str) -> Result<Recording> {
        let mut export = Mp4Export::new(Mp4ExportOptions {
            payloads: PayloadMode::Refer,
            ..Mp4ExportOptions::default()
        })?;
        let mut renditions = Vec::new();
        for rendition in store.stored_renditions(stream) {
            let init = store
                .get_cmaf(
                    stream,
                    CmafKey::Init {
                        rendition: &rendition,
                    },
                )
                .ok_or(Error::usage(
                    "recording: a rendition without its init segment",
                ))?;
            let numbers = newest_run(store, stream, &rendition)?;
            if !numbers.is_empty() {
                renditions.push((rendition, init, numbers));
            }
        }
        if renditions.is_empty() {
            return Err(Error::usage("recording: nothing stored for this stream"));
        }
        // Video first, as players and tools expect (renditions are `v{track}`,
        // `a{track}`, see crate::package::cmaf).
        renditions.sort_by_key(|(r, _, _)| (!r.starts_with('v'), r.clone()));
        let mut added = Vec::with_capacity(renditions.len());
        for (rendition, init, numbers) in renditions {
            let at = export.add_track(init)?;
            added.push((at, rendition, numbers));
        }
        let mut tracks = vec![(String::new(), Vec::new()); added.len()];
        for (at, rendition, numbers) in &added {
            for &number in numbers {
                let key = CmafKey::Fragment { rendition, number };
                let data = store
                    .get_cmaf(stream, key)
                    .ok_or(Error::usage("recording: an indexed fragment is missing"))?;
                export.push_fragment(*at, data)?;
            }
            if let Some(t) = tracks.get_mut(*at) {
                *t = (rendition.clone(), numbers.clone());
            }
        }
        Ok(Recording {
            stream: stream.to_string(),
            mp4: export.finish()?,
            tracks,
        })
    }

    /// Length of the file in bytes.
    pub fn len(&self) -> u64 {
        self.mp4.len()
    }

    /// Whether the file is empty (never, for a built recording).
    pub fn is_empty(&self) -> bool {
        self.mp4.is_empty()
    }

    /// The parts of the file, in order.
    pub fn parts(&self) -> &[ExportPart] {
        self.mp4.parts()
    }

    /// The export (tracks, timescales, whether offsets are 64-bit).
    pub fn export(&self) -> &ExportedMp4 {
        &self.mp4
    }

    /// The bytes of `part`: itself, or its range of the stored fragment.
    ///
    /// Errors: [`Error::usage`] when the fragment is gone from the store (retention
    /// deleted it since the recording was built) or shorter than the range.
    pub fn part_bytes<S: SegmentStore + ?Sized>(
        &self,
        store: &S,
        part: &ExportPart,
    ) -> Result<Bytes> {
        match part {
            ExportPart::Data(b) => Ok(b.clone()),
            ExportPart::Fragment {
                track,
                fragment,
                offset,
                len,
            } => {
                let (rendition, numbers) = self
                    .tracks
                    .get(*track)
                    .ok_or(Error::usage("recording: a part of an unknown track"))?;
                let number = usize::try_from(*fragment)
                    .ok()
                    .and_then(|i| numbers.get(i))
                    .ok_or(Error::usage("recording: a part of an unknown fragment"))?;
                let data = store
                    .get_cmaf(
                        &self.stream,
                        CmafKey::Fragment {
                            rendition,
                            number: *number,
                        },
                    )
                    .ok_or(Error::usage("recording: a fragment was deleted"))?;
                let start = usize::try_from(*offset).unwrap_or(usize::MAX);
                let end = start.saturating_add(usize::try_from(*len).unwrap_or(usize::MAX));
                if end > data.len() {
                    return Err(Error::usage("recording: a stored fragment changed"));
                }
                Ok(data.slice(start..end))
            }
        }
    }

    /// The whole file in one buffer.
    ///
    /// Errors: as [`part_bytes`](Self::part_bytes); [`Error::limit`] above `max` bytes.
    pub fn to_bytes<S: SegmentStore + ?Sized>(&self, store: &S, max: u64) -> Result<Bytes> {
        if self.len() > max {
            return Err(Error::limit("recording: larger than one response may be"));
        }
        let mut out = BytesMut::with_capacity(usize::try_from(self.len()).unwrap_or(0));
        for p in self.parts() {
            out.extend_from_slice(&self.part_bytes(store, p)?);
        }
        Ok(out.freeze())
    }
}

/// The numbers of the newest run of stored fragments of `rendition`: from its last
/// record flagged as a discontinuity (or its first) to its newest, consecutive.
fn newest_run<S: SegmentStore + ?Sized>(
    store: &S,
    stream: &str,
    rendition: &str,
) -> Result<Vec<u64>> {
    let mut run: Vec<u64> = Vec::new();
    store.records(
        stream,
        Series::Cmaf { rendition },
        0,
        &mut |r: &SegmentRecord| {
            let follows = run.last().is_some_and(|&n| r.number == n + 1);
            if r.discontinuity || !follows {
                run.clear();
            }
            run.push(r.number);
            true
        },
    )?;
    Ok(run)
}
