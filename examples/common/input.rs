//! File adapter shared by the examples and the integration tests: reads an FLV or
//! MP4 file (detected from its content) and hands its items to a callback. All the
//! format logic lives in the sans-IO demuxers; this only moves bytes.

#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use bytes::Bytes;
use strom::container::mp4::{Mp4Demuxer, ReadSample};
use strom::ingest::flv::FlvDemuxer;
use strom::media::Item;
use strom::pipeline::Stage;

/// Container formats the adapter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Flash Video.
    Flv,
    /// ISO BMFF / MP4 (progressive).
    Mp4,
}

/// Detects the format from the first bytes of a file (at least 12).
pub fn detect(head: &[u8]) -> Option<Format> {
    if head.len() >= 3 && &head[..3] == b"FLV" {
        return Some(Format::Flv);
    }
    if head.len() >= 8 {
        let t = &head[4..8];
        if [
            b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"styp",
        ]
        .iter()
        .any(|k| t == *k)
        {
            return Some(Format::Mp4);
        }
    }
    None
}

/// Errors of the adapter: IO or the library's typed error.
#[derive(Debug)]
pub enum InputError {
    /// Reading the file failed.
    Io(io::Error),
    /// The content is not an FLV or MP4 file.
    UnknownFormat,
    /// The demuxer (or the callback) rejected the input.
    Media(strom::Error),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Io(e) => write!(f, "read error: {e}"),
            InputError::UnknownFormat => {
                f.write_str("input is neither FLV nor MP4 (detected from content)")
            }
            InputError::Media(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for InputError {
    fn from(e: io::Error) -> Self {
        InputError::Io(e)
    }
}
impl From<strom::Error> for InputError {
    fn from(e: strom::Error) -> Self {
        InputError::Media(e)
    }
}

/// Progress reported to the callback: bytes of the file consumed so far.
pub type Progress = u64;

const FLV_CHUNK: usize = 1024 * 1024;

/// What [`read_file_with`] hands the host: an item with the bytes read so far, or (MP4
/// input) a sample still in the buffer just read, which the host may transform in place
/// (answering `true` if it did), such as `VodPackager::encrypt_in_place`.
pub enum Input<'a> {
    /// The next item.
    Item(Item, Progress),
    /// A sample of the read about to be handed to the demuxer; its frame will carry
    /// these bytes, flagged `FrameFlags::TRANSFORMED` when any sample of the read was.
    Sample(ReadSample, &'a mut [u8]),
}

/// Reads `path` and calls `sink` with every item, in order, and the bytes read so far.
pub fn read_file(
    path: &Path,
    mut sink: impl FnMut(Item, Progress) -> Result<(), strom::Error>,
) -> Result<Format, InputError> {
    read_file_with(path, false, |input| match input {
        Input::Item(item, read) => sink(item, read).map(|()| false),
        Input::Sample(..) => Ok(false),
    })
}

/// [`read_file`], and with `samples` (MP4 input) every sample of each read before the
/// demuxer gets it ([`Input::Sample`]), for transforming in place while it is in cache.
pub fn read_file_with(
    path: &Path,
    samples: bool,
    mut sink: impl FnMut(Input<'_>) -> Result<bool, strom::Error>,
) -> Result<Format, InputError> {
    let mut sink_item = |item: Item, read: Progress| sink(Input::Item(item, read)).map(drop);
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut head = [0u8; 12];
    let n = read_up_to(&mut file, &mut head)?;
    let format = detect(&head[..n]).ok_or(InputError::UnknownFormat)?;
    file.seek(SeekFrom::Start(0))?;
    match format {
        Format::Flv => {
            let mut demux = FlvDemuxer::new();
            let mut read = 0u64;
            loop {
                let buf = read_exact_uninit(&mut file, FLV_CHUNK, false)?;
                if buf.is_empty() {
                    break;
                }
                read += buf.len() as u64;
                demux.push(buf)?;
                while let Some(item) = demux.poll() {
                    sink_item(item?, read)?;
                }
            }
            demux.finish()?;
            while let Some(item) = demux.poll() {
                sink_item(item?, read)?;
            }
        }
        Format::Mp4 => {
            let mut demux = Mp4Demuxer::new(size);
            let mut read = 0u64;
            loop {
                while let Some(item) = demux.poll_item() {
                    sink(Input::Item(item?, read))?;
                }
                let Some(req) = demux.poll_read() else {
                    break;
                };
                file.seek(SeekFrom::Start(req.offset))?;
                let mut buf = read_vec_uninit(&mut file, req.len, true)?;
                read = read.max(req.end());
                let mut transformed = false;
                if samples {
                    for s in demux.read_samples() {
                        if let Some(bytes) = buf.get_mut(s.range()) {
                            transformed |= sink(Input::Sample(s, bytes))?;
                        }
                    }
                }
                // The Bytes keeps the Vec's memory: frames slice the transformed bytes.
                let buf = Bytes::from(buf);
                if transformed {
                    demux.supply_transformed(req.offset, buf)?;
                } else {
                    demux.supply(req.offset, buf)?;
                }
            }
        }
    }
    Ok(format)
}

/// Reads up to `len` bytes (exactly `len` when `exact`) into a fresh buffer without
/// zero-filling it first: frames slice this buffer, so it cannot be reused.
fn read_exact_uninit(file: &mut File, len: usize, exact: bool) -> io::Result<Bytes> {
    read_vec_uninit(file, len, exact).map(Bytes::from)
}

/// [`read_exact_uninit`], as the `Vec` (still mutable).
fn read_vec_uninit(file: &mut File, len: usize, exact: bool) -> io::Result<Vec<u8>> {
    let mut v = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut v)?;
    if exact && v.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shorter than its index says",
        ));
    }
    Ok(v)
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Convenience for tests: all items of a file.
pub fn read_items(path: &Path) -> Result<Vec<Item>, InputError> {
    let mut v = Vec::new();
    read_file(path, |i, _| {
        v.push(i);
        Ok(())
    })?;
    Ok(v)
}
