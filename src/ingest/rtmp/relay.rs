//! [`RtmpRelay`]: fan-out of one published stream to its RTMP players, starting each
//! at the last keyframe, never holding more than a bounded amount of media, and
//! never letting a slow player slow the publisher down.

use std::collections::VecDeque;

use bytes::Bytes;

use super::chunk::SharedMessage;
use super::session::RtmpSession;
use crate::error::{Error, Result};
use crate::ingest::flv::TagType;

/// Options of an [`RtmpRelay`]. Each field's doc states its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayOptions {
    /// Most media bytes the relay holds: the GOP cache plus what lagging players have
    /// not read yet. Past it, the oldest messages are dropped, players that had not
    /// read them skip to the next keyframe, and a GOP longer than this is not cached.
    /// Default: 16 MiB.
    pub max_buffer_bytes: usize,
    /// A player this many bytes behind the newest message skips ahead to a keyframe.
    /// Default: 4 MiB (about 30 s of a 1 Mbit/s stream).
    pub max_lag_bytes: usize,
    /// A player this many milliseconds (media time) behind the newest message skips
    /// ahead to a keyframe. Default: 5000.
    pub max_lag_ms: u32,
    /// A player that had to skip ahead more than this many times is dropped: it
    /// cannot keep up. Default: 5.
    pub max_skips: u32,
    /// Most players at once; [`RtmpRelay::join`] fails past it. Default: 1024.
    pub max_players: usize,
    /// Chunk size of the messages serialised once for every player (see
    /// [`RtmpSession::out_chunk_size`]). Default: 4096, the session's default.
    pub chunk_size: u32,
    /// Message stream id of those shared messages (the id `createStream` gave the
    /// player). Default: 1, what an [`RtmpSession`] gives a client's first stream.
    pub stream_id: u32,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            max_buffer_bytes: 16 << 20,
            max_lag_bytes: 4 << 20,
            max_lag_ms: 5000,
            max_skips: 5,
            max_players: 1024,
            chunk_size: 4096,
            stream_id: 1,
        }
    }
}

/// Handle of a player of an [`RtmpRelay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlayerId(u64);

/// What [`RtmpRelay::poll_into`] did for a player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayPoll {
    /// Everything available was handed to the session; wait for the next
    /// [`RtmpRelay::push`].
    CaughtUp,
    /// The byte budget was used up; call again once the session's output is sent.
    More,
    /// The player could not keep up and was removed from the relay: close it.
    Dropped,
}

/// Counters of one player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PlayerStats {
    /// Messages handed to the player's session.
    pub messages: u64,
    /// Payload bytes of those messages.
    pub bytes: u64,
    /// Times the player skipped ahead to a keyframe because it lagged.
    pub skips: u32,
    /// Payload bytes the relay holds that the player has not read yet.
    pub lag_bytes: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    kind: TagType,
    /// Timestamp on the relay's continuous timeline.
    ts: u32,
    body: Bytes,
    /// Payload bytes of every entry before this one, since the relay started.
    offset: u64,
    /// Serialised once, at the first player's read.
    shared: Option<SharedMessage>,
}

#[derive(Debug, Clone)]
struct Player {
    id: PlayerId,
    /// Sequence number of the next entry to send.
    next: u64,
    /// Skip entries until a keyframe (joined without a GOP cache, or lost data).
    await_key: bool,
    /// Send the stream configuration (metadata, sequence headers) first.
    needs_config: bool,
    dropped: bool,
    stats: PlayerStats,
}

/// Fan-out of one live stream to RTMP players (sans-IO).
///
/// The host pushes the publisher's media messages ([`RtmpEvent::Media`]) with
/// [`push`](Self::push); each player [`join`](Self::join)s and is served by
/// [`poll_into`](Self::poll_into), which writes the messages it has not seen into
/// its [`RtmpSession`]. A new player starts with the stream's metadata and
/// sequence headers, then the cached GOP from the last keyframe, so its decoder
/// starts at once. Media messages are serialised once and shared by every player
/// (a reference-count increment each, no copy).
///
/// Memory is bounded: the relay keeps the current GOP and what players have not
/// read, at most [`RelayOptions::max_buffer_bytes`]. A player more than
/// [`RelayOptions::max_lag_bytes`] or [`RelayOptions::max_lag_ms`] behind skips
/// ahead to a keyframe (the latest, or the next one); one that keeps lagging is
/// dropped. Nothing a player does delays `push`: the publisher never waits.
///
/// Timestamps stay monotonic for players across publisher reconnects: call
/// [`restart`](Self::restart) when a new publisher starts, and its timeline is
/// joined after the previous one.
///
/// [`RtmpEvent::Media`]: super::RtmpEvent::Media
///
/// ```
/// use bytes::Bytes;
/// use strom::ingest::flv::TagType;
/// use strom::ingest::rtmp::{RelayPoll, RtmpRelay};
///
/// let mut relay = RtmpRelay::new(Default::default());
/// // AVC sequence header, then a keyframe: the GOP cache starts there.
/// relay.push(TagType::Video, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64])).unwrap();
/// relay.push(TagType::Video, 0, Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65])).unwrap();
/// relay.push(TagType::Video, 40, Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41])).unwrap();
/// let player = relay.join().unwrap();
/// // The player gets the sequence header and both frames.
/// assert_eq!(relay.pending(player), Some(3));
/// ```
#[derive(Debug)]
pub struct RtmpRelay {
    opts: RelayOptions,
    ring: VecDeque<Entry>,
    /// Sequence number of `ring[0]`.
    first: u64,
    ring_bytes: usize,
    /// Payload bytes pushed since the relay started.
    total: u64,
    /// Sequence number of the newest keyframe still in the ring.
    last_key: Option<u64>,
    meta: Option<Bytes>,
    video_cfg: Option<Bytes>,
    audio_cfg: Option<Bytes>,
    has_video: bool,
    /// Added to incoming timestamps (wrapping) to keep the outgoing timeline
    /// monotonic across publishers.
    ts_offset: u32,
    /// The next push starts a new publisher's timeline.
    rebase: bool,
    last_ts: Option<u32>,
    players: Vec<Player>,
    next_player: u64,
}

/// Classification of an FLV tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagClass {
    VideoConfig,
    VideoKey,
    Audio,
    AudioConfig,
    Metadata,
    Other,
}

fn classify(kind: TagType, body: &[u8]) -> TagClass {
    match kind {
        TagType::Video => {
            let Some(&b0) = body.first() else {
                return TagClass::Other;
            };
            let frame_type = (b0 >> 4) & 0x07;
            let config = if b0 & 0x80 != 0 {
                // Enhanced RTMP: PacketType in the low nibble; 0 = SequenceStart.
                b0 & 0x0F == 0
            } else {
                // AVC (7) / legacy HEVC (12): AVCPacketType 0 = sequence header.
                matches!(b0 & 0x0F, 7 | 12) && body.get(1) == Some(&0)
            };
            if config {
                TagClass::VideoConfig
            } else if frame_type == 1 {
                TagClass::VideoKey
            } else {
                TagClass::Other
            }
        }
        TagType::Audio => {
            let Some(&b0) = body.first() else {
                return TagClass::Audio;
            };
            let config = match b0 >> 4 {
                10 => body.get(1) == Some(&0),
                // Enhanced RTMP audio: AudioPacketType 0 = SequenceStart.
                9 => b0 & 0x0F == 0,
                _ => false,
            };
            if config {
                TagClass::AudioConfig
            } else {
                TagClass::Audio
            }
        }
        TagType::Script => {
            // AMF0 string marker 0x02, length 10, "onMetaData".
            if body.get(..13) == Some(b"\x02\x00\x0aonMetaData".as_slice()) {
                TagClass::Metadata
            } else {
                TagClass::Other
            }
        }
        TagType::Other(_) => TagClass::Other,
    }
}

impl RtmpRelay {
    /// An empty relay.
    pub fn new(opts: RelayOptions) -> Self {
        RtmpRelay {
            opts,
            ring: VecDeque::new(),
            first: 0,
            ring_bytes: 0,
            total: 0,
            last_key: None,
            meta: None,
            video_cfg: None,
            audio_cfg: None,
            has_video: false,
            ts_offset: 0,
            rebase: false,
            last_ts: None,
            players: Vec::new(),
            next_player: 1,
        }
    }

    /// The options.
    pub fn options(&self) -> &RelayOptions {
        &self.opts
    }

    /// Number of players.
    pub fn player_count(&self) -> usize {
        self.players.len()
    }

    /// Payload bytes held (GOP cache and unread messages).
    pub fn buffered_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// A new publisher starts: its timestamps are shifted to follow the previous
    /// publisher's, its stream configuration replaces the old one as it arrives, and
    /// new players wait for its first keyframe. Players already joined stay.
    pub fn restart(&mut self) {
        self.rebase = self.last_ts.is_some();
        self.last_key = None;
        self.meta = None;
        self.video_cfg = None;
        self.audio_cfg = None;
        self.has_video = false;
    }

    fn seq_end(&self) -> u64 {
        self.first + self.ring.len() as u64
    }

    /// Adds one media message of the publisher: an FLV tag body of `kind` at
    /// `timestamp_ms` (as in [`RtmpEvent::Media`](super::RtmpEvent::Media)).
    /// Metadata and sequence headers are remembered for players that join later.
    /// Players that lag too far skip ahead now; the call never waits for them.
    ///
    /// Errors: `Limit` for a single message larger than
    /// [`RelayOptions::max_buffer_bytes`] (nothing is kept).
    pub fn push(&mut self, kind: TagType, timestamp_ms: u32, body: Bytes) -> Result<()> {
        if body.len() > self.opts.max_buffer_bytes {
            return Err(Error::limit(
                "RTMP relay message larger than the relay buffer",
            ));
        }
        if self.rebase {
            // Continue one millisecond after the previous publisher's last message.
            let prev = self.last_ts.unwrap_or(0);
            self.ts_offset = prev.wrapping_add(1).wrapping_sub(timestamp_ms);
            self.rebase = false;
        }
        let ts = timestamp_ms.wrapping_add(self.ts_offset);
        self.last_ts = Some(ts);
        let class = classify(kind, &body);
        match class {
            TagClass::VideoConfig => {
                self.video_cfg = Some(body.clone());
                self.has_video = true;
            }
            TagClass::AudioConfig => self.audio_cfg = Some(body.clone()),
            TagClass::Metadata => self.meta = Some(body.clone()),
            TagClass::VideoKey => self.has_video = true,
            _ => {}
        }
        // Without video, every audio frame is a starting point.
        let key = class == TagClass::VideoKey || (!self.has_video && class == TagClass::Audio);
        let seq = self.seq_end();
        let len = body.len();
        self.ring.push_back(Entry {
            kind,
            ts,
            body,
            offset: self.total,
            shared: None,
        });
        self.ring_bytes += len;
        self.total += len as u64;
        if key {
            self.last_key = Some(seq);
            for p in &mut self.players {
                if p.await_key && !p.dropped {
                    p.await_key = false;
                    p.next = seq;
                }
            }
        }
        self.enforce_lag(ts);
        self.prune();
        Ok(())
    }

    /// Moves players that lag too far ahead to a keyframe, or drops them.
    fn enforce_lag(&mut self, newest_ts: u32) {
        let (first, total, last_key, end) = (self.first, self.total, self.last_key, self.seq_end());
        for p in &mut self.players {
            if p.await_key || p.dropped || p.next >= end {
                continue;
            }
            let Some(e) = p
                .next
                .checked_sub(first)
                .and_then(|i| self.ring.get(i as usize))
            else {
                continue;
            };
            let lag_bytes = total - e.offset;
            let lag_ms = newest_ts.wrapping_sub(e.ts);
            if lag_bytes <= self.opts.max_lag_bytes as u64
                && (lag_ms <= self.opts.max_lag_ms || lag_ms > u32::MAX / 2)
            {
                continue;
            }
            p.stats.skips += 1;
            if p.stats.skips > self.opts.max_skips {
                p.dropped = true;
                continue;
            }
            p.needs_config = true;
            match last_key {
                Some(k) if k > p.next => p.next = k,
                _ => {
                    p.next = end;
                    p.await_key = true;
                }
            }
        }
    }

    /// Drops ring entries nobody needs, then enforces the byte cap.
    fn prune(&mut self) {
        let end = self.seq_end();
        let mut keep = self.last_key.unwrap_or(end);
        for p in &self.players {
            if !p.await_key && !p.dropped {
                keep = keep.min(p.next);
            }
        }
        while self.first < keep {
            self.pop_front();
        }
        while self.ring_bytes > self.opts.max_buffer_bytes && !self.ring.is_empty() {
            let seq = self.first;
            self.pop_front();
            if self.last_key.is_some_and(|k| k <= seq) {
                self.last_key = None;
            }
            for p in &mut self.players {
                if !p.await_key && p.next <= seq {
                    p.stats.skips += 1;
                    p.dropped |= p.stats.skips > self.opts.max_skips;
                    p.needs_config = true;
                    p.await_key = true;
                    p.next = end;
                }
            }
        }
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.ring.pop_front() {
            self.ring_bytes -= e.body.len();
            self.first += 1;
        }
    }

    /// Adds a player; it starts at the last keyframe (with the stream's metadata and
    /// sequence headers first), or at the next one when none is cached.
    ///
    /// Errors: `Limit` past [`RelayOptions::max_players`].
    pub fn join(&mut self) -> Result<PlayerId> {
        if self.players.len() >= self.opts.max_players {
            return Err(Error::limit("too many RTMP players on one stream"));
        }
        let id = PlayerId(self.next_player);
        self.next_player += 1;
        let (next, await_key) = match self.last_key {
            Some(k) => (k, false),
            None => (self.seq_end(), true),
        };
        self.players.push(Player {
            id,
            next,
            await_key,
            needs_config: true,
            dropped: false,
            stats: PlayerStats::default(),
        });
        Ok(id)
    }

    /// Removes a player; returns whether it was there.
    pub fn leave(&mut self, id: PlayerId) -> bool {
        let n = self.players.len();
        self.players.retain(|p| p.id != id);
        let removed = self.players.len() != n;
        if removed {
            self.prune();
        }
        removed
    }

    /// Counters of a player.
    pub fn player_stats(&self, id: PlayerId) -> Option<PlayerStats> {
        let p = self.players.iter().find(|p| p.id == id)?;
        let lag_bytes = p
            .next
            .checked_sub(self.first)
            .and_then(|i| self.ring.get(i as usize))
            .map_or(0, |e| (self.total - e.offset) as usize);
        Some(PlayerStats {
            lag_bytes,
            ..p.stats
        })
    }

    /// Messages the player would get now, the configuration messages included
    /// (`None` for an unknown player).
    pub fn pending(&self, id: PlayerId) -> Option<usize> {
        let p = self.players.iter().find(|p| p.id == id)?;
        let end = self.seq_end();
        let start = if p.await_key {
            match self.last_key {
                Some(k) if k >= p.next => k,
                _ => return Some(0),
            }
        } else {
            p.next
        };
        let media = end.saturating_sub(start) as usize;
        let config = if p.needs_config && media > 0 {
            self.config().count()
        } else {
            0
        };
        Some(media + config)
    }

    fn config(&self) -> impl Iterator<Item = (TagType, &Bytes)> {
        [
            (TagType::Script, &self.meta),
            (TagType::Video, &self.video_cfg),
            (TagType::Audio, &self.audio_cfg),
        ]
        .into_iter()
        .filter_map(|(k, b)| b.as_ref().map(|b| (k, b)))
    }

    /// Writes what player `id` has not seen into its `session` (already accepted
    /// for `play`), up to about `max_bytes` of payload, then returns. Messages are
    /// shared when the session's chunk size and play stream id match
    /// [`RelayOptions::chunk_size`] and [`RelayOptions::stream_id`], and serialised
    /// for the session otherwise.
    ///
    /// Errors: `Usage` for an unknown player or a session that is not playing.
    /// A [`RelayPoll::Dropped`] player is removed: close its connection.
    pub fn poll_into(
        &mut self,
        id: PlayerId,
        session: &mut RtmpSession,
        max_bytes: usize,
    ) -> Result<RelayPoll> {
        let idx = self
            .players
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| Error::usage("unknown RTMP relay player"))?;
        if self.players[idx].dropped {
            self.players.swap_remove(idx);
            self.prune();
            return Ok(RelayPoll::Dropped);
        }
        let sid = session
            .playing_stream_id()
            .ok_or_else(|| Error::usage("RTMP relay player's session is not playing"))?;
        let share = sid == self.opts.stream_id && session.out_chunk_size() == self.opts.chunk_size;
        let end = self.seq_end();
        let mut p = self.players[idx].clone();
        if p.await_key {
            match self.last_key {
                Some(k) if k >= p.next => {
                    p.next = k;
                    p.await_key = false;
                }
                _ => {
                    // Nothing to start from yet; skip what is there.
                    p.next = end;
                    self.players[idx] = p;
                    self.prune();
                    return Ok(RelayPoll::CaughtUp);
                }
            }
        }
        let mut sent = 0usize;
        if p.needs_config && p.next < end {
            let ts = self.ring[(p.next - self.first) as usize].ts;
            let config: Vec<(TagType, Bytes)> =
                self.config().map(|(k, b)| (k, b.clone())).collect();
            for (kind, body) in config {
                session.send_media(kind, ts, &body)?;
                sent += body.len();
                p.stats.messages += 1;
                p.stats.bytes += body.len() as u64;
            }
            p.needs_config = false;
        }
        let (chunk_size, stream_id) = (self.opts.chunk_size, self.opts.stream_id);
        while p.next < end && sent < max_bytes {
            let e = &mut self.ring[(p.next - self.first) as usize];
            if share {
                if e.shared.is_none() {
                    e.shared = Some(RtmpSession::shared_media(
                        e.kind, stream_id, e.ts, &e.body, chunk_size,
                    )?);
                }
                if let Some(m) = &e.shared {
                    session.send_shared(m)?;
                }
            } else {
                session.send_media(e.kind, e.ts, &e.body)?;
            }
            sent += e.body.len();
            p.stats.messages += 1;
            p.stats.bytes += e.body.len() as u64;
            p.next += 1;
        }
        let more = p.next < end;
        self.players[idx] = p;
        self.prune();
        Ok(if more {
            RelayPoll::More
        } else {
            RelayPoll::CaughtUp
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::rtmp::RtmpConfig;
    use crate::ErrorKind;
    use bytes::BytesMut;

    fn seq_header() -> Bytes {
        Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f])
    }
    fn frame(key: bool, n: usize) -> Bytes {
        let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        v.resize(5 + n, 0xAB);
        Bytes::from(v)
    }
    fn aac_cfg() -> Bytes {
        Bytes::from_static(&[0xAF, 0, 0x11, 0x90])
    }
    fn aac(n: usize) -> Bytes {
        let mut v = vec![0xAF, 1];
        v.resize(2 + n, 0x21);
        Bytes::from(v)
    }

    /// A session with an accepted `play` on stream 1, driven by real client bytes
    /// made by the session tests' helper.
    fn playing_session() -> RtmpSession {
        crate::ingest::rtmp::session::test_support::playing_session(RtmpConfig::default())
    }

    /// Decodes what a session sent into (type id, timestamp, payload) media messages.
    fn sent_media(
        session: &mut RtmpSession,
        reader: &mut crate::ingest::rtmp::ChunkReader,
    ) -> Vec<(u8, u32, Bytes)> {
        let mut out = BytesMut::new();
        session.poll_transmit(&mut out);
        let mut v = Vec::new();
        while let Some(m) = reader.read_message(&mut out).unwrap() {
            if m.type_id == 1 {
                let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                reader.set_chunk_size(size).unwrap();
            } else if matches!(m.type_id, 8 | 9 | 18) {
                v.push((m.type_id, m.timestamp, m.payload));
            }
        }
        v
    }

    #[test]
    fn classify_tags() {
        assert_eq!(
            classify(TagType::Video, &seq_header()),
            TagClass::VideoConfig
        );
        assert_eq!(
            classify(TagType::Video, &frame(true, 3)),
            TagClass::VideoKey
        );
        assert_eq!(classify(TagType::Video, &frame(false, 3)), TagClass::Other);
        // Enhanced RTMP: IsExHeader | key frame | SequenceStart / CodedFrames.
        assert_eq!(
            classify(TagType::Video, &[0x90, b'h', b'v', b'c', b'1']),
            TagClass::VideoConfig
        );
        assert_eq!(
            classify(TagType::Video, &[0x91, b'h', b'v', b'c', b'1']),
            TagClass::VideoKey
        );
        assert_eq!(
            classify(TagType::Video, &[0xA1, b'h', b'v', b'c', b'1']),
            TagClass::Other
        );
        assert_eq!(classify(TagType::Audio, &aac_cfg()), TagClass::AudioConfig);
        assert_eq!(classify(TagType::Audio, &aac(3)), TagClass::Audio);
        assert_eq!(classify(TagType::Audio, &[]), TagClass::Audio);
        assert_eq!(classify(TagType::Video, &[]), TagClass::Other);
        assert_eq!(
            classify(TagType::Script, b"\x02\x00\x0aonMetaData\x08\0\0\0\0"),
            TagClass::Metadata
        );
        assert_eq!(
            classify(TagType::Script, b"\x02\x00\x05hello"),
            TagClass::Other
        );
    }

    #[test]
    fn a_player_starts_at_the_last_keyframe_with_the_configuration() {
        let mut r = RtmpRelay::new(RelayOptions::default());
        let meta = Bytes::from_static(b"\x02\x00\x0aonMetaData\x08\0\0\0\0\0\0\x09");
        r.push(TagType::Script, 0, meta.clone()).unwrap();
        r.push(TagType::Video, 0, seq_header()).unwrap();
        r.push(TagType::Audio, 0, aac_cfg()).unwrap();
        let mut ts = 0;
        for gop in 0..3 {
            for i in 0..5 {
                r.push(TagType::Video, ts, frame(i == 0, 100 + gop))
                    .unwrap();
                r.push(TagType::Audio, ts + 1, aac(10)).unwrap();
                ts += 40;
            }
        }
        // Only the last GOP is kept: 10 messages.
        assert_eq!(r.ring.len(), 10);
        let id = r.join().unwrap();
        assert_eq!(r.pending(id), Some(13));
        let mut s = playing_session();
        let mut reader = crate::ingest::rtmp::ChunkReader::default();
        let _ = sent_media(&mut s, &mut reader); // the play replies
        assert_eq!(
            r.poll_into(id, &mut s, usize::MAX).unwrap(),
            RelayPoll::CaughtUp
        );
        let got = sent_media(&mut s, &mut reader);
        assert_eq!(got.len(), 13);
        // Metadata, video and audio configuration at the GOP's timestamp, then the GOP.
        assert_eq!((got[0].0, got[0].1, &got[0].2), (18, 400, &meta));
        assert_eq!((got[1].0, &got[1].2), (9, &seq_header()));
        assert_eq!((got[2].0, &got[2].2), (8, &aac_cfg()));
        assert_eq!((got[3].0, got[3].1, &got[3].2), (9, 400, &frame(true, 102)));
        assert_eq!(got[12].1, 561);
        // Then live messages as they come.
        r.push(TagType::Video, ts, frame(false, 7)).unwrap();
        assert_eq!(r.pending(id), Some(1));
        assert_eq!(
            r.poll_into(id, &mut s, usize::MAX).unwrap(),
            RelayPoll::CaughtUp
        );
        assert_eq!(
            sent_media(&mut s, &mut reader),
            vec![(9, 600, frame(false, 7))]
        );
        let st = r.player_stats(id).unwrap();
        assert_eq!((st.messages, st.skips, st.lag_bytes), (14, 0, 0));
    }

    #[test]
    fn a_player_joining_mid_gop_without_cache_waits_for_a_keyframe() {
        let mut r = RtmpRelay::new(RelayOptions::default());
        r.push(TagType::Video, 0, seq_header()).unwrap();
        r.push(TagType::Video, 0, frame(false, 10)).unwrap();
        let id = r.join().unwrap();
        let mut s = playing_session();
        let mut reader = crate::ingest::rtmp::ChunkReader::default();
        let _ = sent_media(&mut s, &mut reader);
        r.push(TagType::Video, 40, frame(false, 10)).unwrap();
        assert_eq!(r.pending(id), Some(0));
        assert_eq!(
            r.poll_into(id, &mut s, usize::MAX).unwrap(),
            RelayPoll::CaughtUp
        );
        assert!(sent_media(&mut s, &mut reader).is_empty());
        r.push(TagType::Video, 80, frame(true, 10)).unwrap();
        r.poll_into(id, &mut s, usize::MAX).unwrap();
        let got = sent_media(&mut s, &mut reader);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].2, seq_header());
        assert_eq!((got[1].1, &got[1].2), (80, &frame(true, 10)));
    }

    #[test]
    fn the_budget_splits_a_backlog() {
        let mut r = RtmpRelay::new(RelayOptions::default());
        r.push(TagType::Video, 0, frame(true, 1000)).unwrap();
        for i in 1..10 {
            r.push(TagType::Video, i * 40, frame(false, 1000)).unwrap();
        }
        let id = r.join().unwrap();
        let mut s = playing_session();
        assert_eq!(r.poll_into(id, &mut s, 3000).unwrap(), RelayPoll::More);
        assert_eq!(r.pending(id), Some(7));
        assert_eq!(
            r.poll_into(id, &mut s, 1 << 20).unwrap(),
            RelayPoll::CaughtUp
        );
        assert_eq!(r.pending(id), Some(0));
    }

    #[test]
    fn a_slow_player_skips_to_a_keyframe_then_is_dropped_and_memory_stays_bounded() {
        let opts = RelayOptions {
            max_lag_bytes: 50_000,
            max_buffer_bytes: 200_000,
            max_skips: 2,
            ..RelayOptions::default()
        };
        let mut r = RtmpRelay::new(opts);
        let mut s = playing_session();
        let slow = r.join().unwrap();
        let fast = r.join().unwrap();
        let mut fs = playing_session();
        let mut ts = 0u32;
        let gop = |r: &mut RtmpRelay, ts: &mut u32| {
            for i in 0..25 {
                r.push(TagType::Video, *ts, frame(i == 0, 1000)).unwrap();
                *ts += 40;
            }
        };
        gop(&mut r, &mut ts);
        r.poll_into(slow, &mut s, usize::MAX).unwrap();
        r.poll_into(fast, &mut fs, usize::MAX).unwrap();
        let mut out = BytesMut::new();
        s.poll_transmit(&mut out);
        // The slow player stops reading; the fast one keeps up. Two more GOPs:
        // 50 kB of lag, then a skip to the newest keyframe.
        for _ in 0..2 {
            gop(&mut r, &mut ts);
            assert_eq!(
                r.poll_into(fast, &mut fs, usize::MAX).unwrap(),
                RelayPoll::CaughtUp
            );
            assert!(r.buffered_bytes() <= 200_000);
        }
        let st = r.player_stats(slow).unwrap();
        assert_eq!(st.skips, 1, "{st:?}");
        assert!(st.lag_bytes <= 50_000, "{st:?}");
        // Its next read starts with the configuration and a keyframe.
        let mut reader = crate::ingest::rtmp::ChunkReader::default();
        reader.set_chunk_size(4096).unwrap();
        r.poll_into(slow, &mut s, 1).unwrap();
        let got = sent_media(&mut s, &mut reader);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].2[0], 0x17);
        // Stalling again and again: dropped after max_skips.
        for _ in 0..20 {
            gop(&mut r, &mut ts);
            r.poll_into(fast, &mut fs, usize::MAX).unwrap();
            assert!(r.buffered_bytes() <= 200_000);
        }
        assert_eq!(
            r.poll_into(slow, &mut s, usize::MAX).unwrap(),
            RelayPoll::Dropped
        );
        assert_eq!(r.player_count(), 1);
        assert_eq!(r.player_stats(fast).unwrap().skips, 0);
        assert_eq!(
            r.poll_into(slow, &mut s, 1).unwrap_err().kind(),
            ErrorKind::Usage
        );
        // With the slow player gone only the current GOP is held.
        assert!(r.buffered_bytes() <= 25 * 1005, "{}", r.buffered_bytes());
    }

    #[test]
    fn a_gop_larger_than_the_buffer_is_not_cached() {
        let opts = RelayOptions {
            max_buffer_bytes: 10_000,
            ..RelayOptions::default()
        };
        let mut r = RtmpRelay::new(opts);
        r.push(TagType::Video, 0, frame(true, 4000)).unwrap();
        r.push(TagType::Video, 40, frame(false, 4000)).unwrap();
        r.push(TagType::Video, 80, frame(false, 4000)).unwrap();
        assert!(r.buffered_bytes() <= 10_000);
        let id = r.join().unwrap();
        assert_eq!(r.pending(id), Some(0));
        assert_eq!(
            r.push(TagType::Video, 120, Bytes::from(vec![0x27; 10_001]))
                .unwrap_err()
                .kind(),
            ErrorKind::Limit
        );
    }

    #[test]
    fn audio_only_streams_start_anywhere() {
        let mut r = RtmpRelay::new(RelayOptions::default());
        r.push(TagType::Audio, 0, aac_cfg()).unwrap();
        for i in 0..10 {
            r.push(TagType::Audio, i * 21, aac(50)).unwrap();
        }
        // Only the newest frame is the cache.
        let id = r.join().unwrap();
        assert_eq!(r.pending(id), Some(2));
    }

    #[test]
    fn timestamps_stay_monotonic_across_publishers() {
        let mut r = RtmpRelay::new(RelayOptions::default());
        let id = r.join().unwrap();
        let mut s = playing_session();
        let mut reader = crate::ingest::rtmp::ChunkReader::default();
        let _ = sent_media(&mut s, &mut reader);
        r.push(TagType::Video, 0, seq_header()).unwrap();
        r.push(TagType::Video, 5000, frame(true, 10)).unwrap();
        r.push(TagType::Video, 5040, frame(false, 10)).unwrap();
        r.restart();
        // The new publisher's configuration waits for its keyframe.
        r.push(TagType::Video, 0, seq_header()).unwrap();
        r.push(TagType::Video, 0, frame(true, 11)).unwrap();
        r.push(TagType::Video, 40, frame(false, 11)).unwrap();
        r.poll_into(id, &mut s, usize::MAX).unwrap();
        let ts: Vec<u32> = sent_media(&mut s, &mut reader)
            .iter()
            .map(|m| m.1)
            .collect();
        assert_eq!(ts, [5000, 5000, 5040, 5041, 5041, 5081]);
        // A new player starts at the new publisher's keyframe with its configuration.
        let late = r.join().unwrap();
        assert_eq!(r.pending(late), Some(3));
    }

    #[test]
    fn players_limit_and_leave() {
        let mut r = RtmpRelay::new(RelayOptions {
            max_players: 2,
            ..RelayOptions::default()
        });
        let a = r.join().unwrap();
        r.join().unwrap();
        assert_eq!(r.join().unwrap_err().kind(), ErrorKind::Limit);
        assert!(r.leave(a));
        assert!(!r.leave(a));
        assert_eq!(r.pending(a), None);
        r.join().unwrap();
    }
}
