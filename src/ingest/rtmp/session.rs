//! The sans-IO RTMP server session: handshake, chunk streams, NetConnection and
//! NetStream commands (RTMP 1.0 §5, §7.2), host decisions through request ids.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::chunk::{ChunkLimits, ChunkReader, ChunkWriter, Message, MessageHeader, SharedMessage};
use super::handshake::{Handshake, HandshakeKind};
use super::message::{parse_u32, type_id, Command, UserControl};
use crate::ingest::amf0::{self, Value};
use crate::ingest::flv::TagType;
use crate::{Error, Result};

/// Chunk stream for protocol control messages (§5.4).
const CSID_CONTROL: u32 = 2;
/// Chunk stream for NetConnection command replies.
const CSID_COMMAND: u32 = 3;
/// Chunk stream for audio sent to players.
const CSID_AUDIO: u32 = 4;
/// Chunk stream for NetStream status and data messages.
const CSID_STREAM: u32 = 5;
/// Chunk stream for video sent to players.
const CSID_VIDEO: u32 = 6;
/// Most NetStreams one connection may create.
const MAX_STREAMS: usize = 8;

/// Identifies a decision the host must take ([`RtmpSession::accept`] /
/// [`RtmpSession::reject`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

/// Why the host refuses a publish or play request; selects the `onStatus` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// `NetStream.Publish.BadName` / `NetStream.Play.StreamNotFound`: the name is
    /// unknown, invalid or already in use.
    BadName,
    /// `NetStream.Publish.Unauthorized` / `NetStream.Play.Failed`: missing or wrong
    /// credentials.
    Unauthorized,
}

/// Session options.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtmpConfig {
    /// Limits of the chunk reader. Default [`ChunkLimits::default`].
    pub chunk_limits: ChunkLimits,
    /// Chunk size announced to the peer after `connect`. Default 4096.
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size sent after `connect`. Default 2 500 000.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth sent after `connect` (limit type dynamic). Default 2 500 000.
    pub peer_bandwidth: u32,
    /// Seed of the handshake filler bytes. Default 0.
    pub handshake_seed: u64,
    /// Milliseconds the client has to complete the handshake, counted from the first
    /// [`RtmpSession::handle_timeout`]. Default 10 000.
    pub handshake_timeout_ms: i64,
    /// Milliseconds without input after which the session ends, except while a
    /// `play` is accepted (players may stay silent). Default 30 000.
    pub idle_timeout_ms: i64,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            chunk_limits: ChunkLimits::default(),
            out_chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            handshake_seed: 0,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
        }
    }
}

/// What the session reports to the host, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RtmpEvent {
    /// `connect` was received and answered (§7.2.1.1).
    Connected {
        /// Application name, without any `?query`.
        app: String,
        /// `tcUrl` of the command object, if sent.
        tc_url: Option<String>,
        /// Enhanced RTMP `fourCcList` of the command object (codecs the client
        /// supports, e.g. `hvc1`, `av01`); empty when absent.
        four_cc_list: Vec<String>,
    },
    /// `publish` was received (§7.2.2.6); answer with [`RtmpSession::accept`] or
    /// [`RtmpSession::reject`]. Media on the stream is dropped until accepted.
    PublishRequested {
        /// Decision handle.
        id: RequestId,
        /// Application name from `connect`.
        app: String,
        /// Stream name without its `?query`.
        stream_key: String,
        /// Query of the stream name, then of `tcUrl` (or `app`), joined by `&`.
        query: String,
        /// Message stream id the client publishes on.
        stream_id: u32,
    },
    /// `play` was received (§7.2.2.1); answer with accept or reject, then feed media
    /// with [`RtmpSession::send_media`].
    PlayRequested {
        /// Decision handle.
        id: RequestId,
        /// Application name from `connect`.
        app: String,
        /// Stream name without its `?query`.
        stream_key: String,
        /// Query as for [`RtmpEvent::PublishRequested`].
        query: String,
        /// Message stream id the client plays on.
        stream_id: u32,
    },
    /// An audio (8), video (9) or data (18/15) message on an accepted publishing
    /// stream; `body` is an FLV tag body (for data, a leading `@setDataFrame` is
    /// removed so the body starts with `onMetaData`). Feed it to
    /// [`FlvDemuxer::push_tag`](crate::ingest::flv::FlvDemuxer::push_tag).
    Media {
        /// Message stream id.
        stream_id: u32,
        /// FLV tag type.
        kind: TagType,
        /// Raw 32-bit RTMP timestamp in milliseconds; the demuxer unwraps it.
        timestamp_ms: u32,
        /// Tag body, exactly the message bytes (never a slice pinning a larger buffer).
        body: Bytes,
    },
    /// A publisher stopped (`FCUnpublish`, `closeStream` or `deleteStream`).
    Unpublished {
        /// Message stream id.
        stream_id: u32,
        /// Stream name that was published.
        stream_key: String,
    },
    /// A player stopped (`closeStream` or `deleteStream`).
    PlayStopped {
        /// Message stream id.
        stream_id: u32,
        /// Stream name that was played.
        stream_key: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Idle,
    PublishPending(RequestId),
    Publishing,
    PlayPending(RequestId),
    Playing,
}

#[derive(Debug)]
struct NetStream {
    role: Role,
    key: String,
}

/// A server-side RTMP connection, without IO.
///
/// Drive it: [`handle_input`](Self::handle_input) with received bytes, then
/// [`poll_transmit`](Self::poll_transmit) and [`poll_event`](Self::poll_event) until
/// empty; answer requests with [`accept`](Self::accept) / [`reject`](Self::reject).
/// When [`is_closed`](Self::is_closed) turns true, send what `poll_transmit` gives and
/// close the connection. An error from `handle_input` also ends the session.
///
/// ```
/// use bytes::BytesMut;
/// use strom::ingest::rtmp::RtmpSession;
/// let mut s = RtmpSession::new(Default::default());
/// let mut c0c1 = vec![3u8];
/// c0c1.extend_from_slice(&[0u8; 1536]);
/// s.handle_input(&c0c1).unwrap();
/// let mut out = BytesMut::new();
/// s.poll_transmit(&mut out);
/// assert_eq!(out.len(), 1 + 2 * 1536); // S0 S1 S2
/// ```
#[derive(Debug)]
pub struct RtmpSession {
    cfg: RtmpConfig,
    handshake: Handshake,
    input: BytesMut,
    reader: ChunkReader,
    writer: ChunkWriter,
    tx: BytesMut,
    events: VecDeque<RtmpEvent>,
    app: Option<String>,
    /// Query of `tcUrl` (or of `app`) from connect.
    connect_query: String,
    streams: HashMap<u32, NetStream>,
    next_stream_id: u32,
    next_request: u64,
    received: u64,
    last_ack: u64,
    window: u32,
    closed: bool,
    /// Host time of the first `handle_timeout`.
    started_ms: Option<i64>,
    /// Host time input was last seen at (input counts at the next `handle_timeout`).
    last_activity_ms: Option<i64>,
    /// Input arrived since the last `handle_timeout`.
    activity: bool,
}

fn split_query(s: &str) -> (&str, &str) {
    match s.split_once('?') {
        Some((a, q)) => (a, q),
        None => (s, ""),
    }
}

fn status(level: &str, code: &str, description: &str) -> Value {
    Value::object([
        ("level", Value::from(level)),
        ("code", Value::from(code)),
        ("description", Value::from(description)),
    ])
}

impl RtmpSession {
    /// A session waiting for the client's C0+C1.
    pub fn new(cfg: RtmpConfig) -> Self {
        RtmpSession {
            handshake: Handshake::new(cfg.handshake_seed),
            reader: ChunkReader::new(cfg.chunk_limits),
            cfg,
            input: BytesMut::new(),
            writer: ChunkWriter::new(),
            tx: BytesMut::new(),
            events: VecDeque::new(),
            app: None,
            connect_query: String::new(),
            streams: HashMap::new(),
            next_stream_id: 1,
            next_request: 1,
            received: 0,
            last_ack: 0,
            window: 0,
            closed: false,
            started_ms: None,
            last_activity_ms: None,
            activity: false,
        }
    }

    /// The handshake the client used, once C1 was read.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.handshake.kind()
    }

    /// True once the session has ended (after a rejection or an input error): flush
    /// [`poll_transmit`](Self::poll_transmit) and close the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The chunk size used for messages sent to the peer (for [`SharedMessage`]s).
    pub fn out_chunk_size(&self) -> u32 {
        self.writer.chunk_size()
    }

    /// The message stream id of the accepted `play`, if any.
    pub fn playing_stream_id(&self) -> Option<u32> {
        self.streams
            .iter()
            .filter(|(_, s)| s.role == Role::Playing)
            .map(|(id, _)| *id)
            .min()
    }

    /// Processes bytes received from the client.
    ///
    /// Errors (the connection must then be closed): `Malformed`/`Unsupported` for a bad
    /// handshake or chunk stream, `Limit` for oversized messages, `Usage` after the
    /// session was closed.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<()> {
        if self.closed {
            return Err(Error::usage("RTMP session is closed"));
        }
        let r = self.process(data);
        if r.is_err() {
            self.closed = true;
        }
        r.map_err(|e| e.context("rtmp session"))
    }

    /// Checks the handshake and idle timeouts at host time `now_ms` (milliseconds on
    /// any monotonic clock the host keeps). Call it when
    /// [`poll_timeout`](Self::poll_timeout) expires, or periodically; input received
    /// since the previous call counts as activity at `now_ms`.
    ///
    /// Errors: `Limit` when the handshake took too long or the connection was idle
    /// too long; the session is then closed.
    pub fn handle_timeout(&mut self, now_ms: i64) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let started = *self.started_ms.get_or_insert(now_ms);
        if self.activity || self.last_activity_ms.is_none() {
            self.last_activity_ms = Some(now_ms);
            self.activity = false;
        }
        let last = self.last_activity_ms.unwrap_or(now_ms);
        if !self.handshake.is_done()
            && now_ms.saturating_sub(started) >= self.cfg.handshake_timeout_ms
        {
            self.closed = true;
            return Err(Error::limit("RTMP handshake timed out").context("rtmp session"));
        }
        if self.playing_stream_id().is_none()
            && now_ms.saturating_sub(last) >= self.cfg.idle_timeout_ms
        {
            self.closed = true;
            return Err(Error::limit("RTMP connection idle").context("rtmp session"));
        }
        Ok(())
    }

    /// The host time at which [`handle_timeout`](Self::handle_timeout) should next be
    /// called; `None` before its first call or once closed.
    pub fn poll_timeout(&self) -> Option<i64> {
        if self.closed {
            return None;
        }
        let mut t = self
            .last_activity_ms?
            .saturating_add(self.cfg.idle_timeout_ms);
        if !self.handshake.is_done() {
            let hs = self
                .started_ms?
                .saturating_add(self.cfg.handshake_timeout_ms);
            t = t.min(hs);
        }
        Some(t)
    }

    fn process(&mut self, data: &[u8]) -> Result<()> {
        self.activity = true;
        self.received += data.len() as u64;
        self.input.extend_from_slice(data);
        if !self.handshake.is_done() {
            let base = self.received - self.input.len() as u64;
            self.handshake
                .handle_input(&mut self.input, &mut self.tx)
                .map_err(|e| e.at_offset(base))?;
            if !self.handshake.is_done() {
                return Ok(());
            }
            self.reader
                .set_position(self.received - self.input.len() as u64);
        }
        while !self.closed {
            let Some(msg) = self.reader.read_message(&mut self.input)? else {
                break;
            };
            self.handle_message(msg)?;
        }
        if self.input.is_empty() && self.input.capacity() > 4096 {
            // Everything was consumed: do not keep a large read's capacity per idle
            // connection (a live origin holds one session per publisher).
            self.input = BytesMut::new();
        }
        if self.window > 0 && self.received - self.last_ack >= u64::from(self.window) {
            self.last_ack = self.received;
            let mut p = BytesMut::new();
            p.put_u32(self.received as u32);
            self.control(type_id::ACKNOWLEDGEMENT, &p)?;
        }
        Ok(())
    }

    /// Appends bytes to send to the client.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.tx);
        } else {
            out.extend_from_slice(&self.tx);
            self.tx.clear();
        }
    }

    /// The next event, in order.
    pub fn poll_event(&mut self) -> Option<RtmpEvent> {
        self.events.pop_front()
    }

    fn find_request(&self, id: RequestId) -> Option<(u32, bool)> {
        self.streams.iter().find_map(|(sid, s)| match s.role {
            Role::PublishPending(r) if r == id => Some((*sid, true)),
            Role::PlayPending(r) if r == id => Some((*sid, false)),
            _ => None,
        })
    }

    /// Accepts a publish or play request: sends Stream Begin and
    /// `NetStream.Publish.Start`, or `NetStream.Play.Reset`, `NetStream.Play.Start`,
    /// `|RtmpSampleAccess` and `NetStream.Data.Start`.
    ///
    /// Errors: `Usage` for an unknown or already answered request.
    pub fn accept(&mut self, id: RequestId) -> Result<()> {
        let (sid, publish) = self
            .find_request(id)
            .ok_or_else(|| Error::usage("unknown or answered RTMP request id"))?;
        let key = self
            .streams
            .get(&sid)
            .map(|s| s.key.clone())
            .unwrap_or_default();
        let mut p = BytesMut::new();
        UserControl::StreamBegin(sid).write(&mut p);
        self.control(type_id::USER_CONTROL, &p)?;
        if publish {
            self.on_status(
                sid,
                status(
                    "status",
                    "NetStream.Publish.Start",
                    &format!("{key} is now published."),
                ),
            )?;
        } else {
            self.on_status(
                sid,
                status(
                    "status",
                    "NetStream.Play.Reset",
                    &format!("Playing and resetting {key}."),
                ),
            )?;
            self.on_status(
                sid,
                status(
                    "status",
                    "NetStream.Play.Start",
                    &format!("Started playing {key}."),
                ),
            )?;
            let mut d = BytesMut::new();
            amf0::encode_all(
                &[
                    Value::from("|RtmpSampleAccess"),
                    Value::from(true),
                    Value::from(true),
                ],
                &mut d,
            );
            self.send(CSID_STREAM, sid, type_id::DATA_AMF0, 0, &d)?;
            let mut d = BytesMut::new();
            amf0::encode_all(
                &[
                    Value::from("onStatus"),
                    Value::object([("code", Value::from("NetStream.Data.Start"))]),
                ],
                &mut d,
            );
            self.send(CSID_STREAM, sid, type_id::DATA_AMF0, 0, &d)?;
        }
        if let Some(s) = self.streams.get_mut(&sid) {
            s.role = if publish {
                Role::Publishing
            } else {
                Role::Playing
            };
        }
        Ok(())
    }

    /// Rejects a publish or play request with an `onStatus` of level `error`
    /// (`NetStream.Publish.BadName` / `.Unauthorized`, `NetStream.Play.StreamNotFound`
    /// / `.Failed`) carrying `description`, then closes the session.
    ///
    /// Errors: `Usage` for an unknown or already answered request.
    pub fn reject(&mut self, id: RequestId, reason: RejectReason, description: &str) -> Result<()> {
        let (sid, publish) = self
            .find_request(id)
            .ok_or_else(|| Error::usage("unknown or answered RTMP request id"))?;
        let code = match (publish, reason) {
            (true, RejectReason::BadName) => "NetStream.Publish.BadName",
            (true, RejectReason::Unauthorized) => "NetStream.Publish.Unauthorized",
            (false, RejectReason::BadName) => "NetStream.Play.StreamNotFound",
            (false, RejectReason::Unauthorized) => "NetStream.Play.Failed",
        };
        self.on_status(sid, status("error", code, description))?;
        if let Some(s) = self.streams.get_mut(&sid) {
            s.role = Role::Idle;
        }
        self.closed = true;
        Ok(())
    }

    /// Sends an audio, video or script message to the accepted player.
    ///
    /// Errors: `Usage` when no `play` was accepted or the payload exceeds 16 MiB - 1.
    pub fn send_media(&mut self, kind: TagType, timestamp_ms: u32, payload: &[u8]) -> Result<()> {
        let sid = self
            .playing_stream_id()
            .ok_or_else(|| Error::usage("no accepted RTMP play to send media to"))?;
        let (csid, t) = media_route(kind);
        self.send(csid, sid, t, timestamp_ms, payload)
    }

    /// Serialises a media message once for every player with this session's chunk
    /// size and play stream id; send it with [`send_shared`](Self::send_shared).
    pub fn shared_media(
        kind: TagType,
        stream_id: u32,
        timestamp_ms: u32,
        payload: &[u8],
        chunk_size: u32,
    ) -> Result<SharedMessage> {
        let (csid, t) = media_route(kind);
        SharedMessage::new(
            MessageHeader::new(csid, stream_id, t, timestamp_ms),
            payload,
            chunk_size,
        )
    }

    /// Sends a pre-serialised message. Errors: `Usage` when its chunk size differs
    /// from [`out_chunk_size`](Self::out_chunk_size).
    pub fn send_shared(&mut self, msg: &SharedMessage) -> Result<()> {
        self.writer.write_shared(msg, &mut self.tx)
    }

    fn send(&mut self, csid: u32, sid: u32, t: u8, ts: u32, payload: &[u8]) -> Result<()> {
        self.writer
            .write_message(MessageHeader::new(csid, sid, t, ts), payload, &mut self.tx)
    }

    fn control(&mut self, t: u8, payload: &[u8]) -> Result<()> {
        self.send(CSID_CONTROL, 0, t, 0, payload)
    }

    fn command(&mut self, csid: u32, sid: u32, cmd: &Command) -> Result<()> {
        let mut p = BytesMut::new();
        cmd.write(&mut p);
        self.send(csid, sid, type_id::COMMAND_AMF0, 0, &p)
    }

    fn on_status(&mut self, sid: u32, info: Value) -> Result<()> {
        let c = Command::new("onStatus", 0.0, Value::Null, vec![info]);
        self.command(CSID_STREAM, sid, &c)
    }

    fn reply(&mut self, txn: f64, object: Value, args: Vec<Value>) -> Result<()> {
        let c = Command::new("_result", txn, object, args);
        self.command(CSID_COMMAND, 0, &c)
    }

    fn publishing(&self, sid: u32) -> bool {
        self.streams
            .get(&sid)
            .is_some_and(|s| s.role == Role::Publishing)
    }

    fn media(&mut self, sid: u32, kind: TagType, ts: u32, body: Bytes) {
        self.events.push_back(RtmpEvent::Media {
            stream_id: sid,
            kind,
            timestamp_ms: ts,
            body,
        });
    }

    fn handle_message(&mut self, m: Message) -> Result<()> {
        let media = matches!(
            m.type_id,
            type_id::AUDIO
                | type_id::VIDEO
                | type_id::DATA_AMF0
                | type_id::DATA_AMF3
                | type_id::AGGREGATE
        );
        if media && !self.publishing(m.stream_id) {
            // Media before the host accepted the publish (or on another stream).
            return Ok(());
        }
        match m.type_id {
            type_id::SET_CHUNK_SIZE => {
                let v = parse_u32(&m.payload)?;
                self.reader.set_chunk_size(v)?;
            }
            type_id::ABORT => self.reader.abort(parse_u32(&m.payload)?),
            type_id::ACKNOWLEDGEMENT | type_id::SET_PEER_BANDWIDTH => {}
            type_id::WINDOW_ACK_SIZE => self.window = parse_u32(&m.payload)?,
            type_id::USER_CONTROL => {
                if let UserControl::PingRequest(t) = UserControl::parse(&m.payload)? {
                    let mut p = BytesMut::new();
                    UserControl::PingResponse(t).write(&mut p);
                    self.control(type_id::USER_CONTROL, &p)?;
                }
            }
            type_id::AUDIO | type_id::VIDEO => {
                let kind = if m.type_id == type_id::AUDIO {
                    TagType::Audio
                } else {
                    TagType::Video
                };
                self.media(m.stream_id, kind, m.timestamp, m.payload);
            }
            type_id::DATA_AMF0 | type_id::DATA_AMF3 => {
                let mut body = m.payload;
                if m.type_id == type_id::DATA_AMF3 && body.first() == Some(&0) {
                    body.advance(1);
                }
                let mut rest: &[u8] = &body;
                if let Ok(Value::String(s)) = amf0::decode(&mut rest) {
                    if s == "@setDataFrame" {
                        let skip = body.len() - rest.len();
                        body.advance(skip);
                    }
                }
                self.media(m.stream_id, TagType::Script, m.timestamp, body);
            }
            type_id::AGGREGATE => self.aggregate(&m)?,
            type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => {
                let mut p = m.payload.clone();
                if m.type_id == type_id::COMMAND_AMF3 && p.first() == Some(&0) {
                    p.advance(1);
                }
                let cmd = Command::parse(&p)?;
                self.handle_command(&m, cmd)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Aggregate message (§7.1.6): FLV tags with back pointers; sub-message
    /// timestamps are rebased on the aggregate's timestamp.
    fn aggregate(&mut self, m: &Message) -> Result<()> {
        let mut body = m.payload.clone();
        let mut first_ts = None;
        while !body.is_empty() {
            let h = body
                .get(..11)
                .ok_or_else(|| Error::malformed("RTMP aggregate sub-message header truncated"))?;
            let t = h[0] & 0x1f;
            let size = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
            let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
            if body.len() < 11 + size + 4 {
                return Err(Error::malformed("RTMP aggregate sub-message truncated"));
            }
            let data = body.slice(11..11 + size);
            body.advance(11 + size + 4);
            let base = *first_ts.get_or_insert(ts);
            let ts = m.timestamp.wrapping_add(ts.wrapping_sub(base));
            let kind = match t {
                8 => TagType::Audio,
                9 => TagType::Video,
                18 => TagType::Script,
                _ => continue,
            };
            self.media(m.stream_id, kind, ts, data);
        }
        Ok(())
    }

    fn stream_query(&self, name_query: &str) -> String {
        [name_query, self.connect_query.as_str()]
            .iter()
            .filter(|q| !q.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("&")
    }

    fn handle_command(&mut self, m: &Message, cmd: Command) -> Result<()> {
        let txn = cmd.transaction_id;
        if cmd.name != "connect" && self.app.is_none() {
            return Err(Error::malformed("RTMP command before connect"));
        }
        match cmd.name.as_str() {
            "connect" => self.connect(txn, &cmd)?,
            "releaseStream" => self.reply(txn, Value::Null, vec![Value::Undefined])?,
            "FCPublish" => {
                self.reply(txn, Value::Null, vec![Value::Undefined])?;
                let name = cmd.arg_str(0).unwrap_or_default().to_owned();
                let c = Command::new(
                    "onFCPublish",
                    0.0,
                    Value::Null,
                    vec![Value::object([
                        ("code", Value::from("NetStream.Publish.Start")),
                        ("description", Value::from(name)),
                    ])],
                );
                self.command(CSID_COMMAND, 0, &c)?;
            }
            "createStream" => {
                if self.streams.len() >= MAX_STREAMS {
                    return Err(Error::limit("too many RTMP streams on one connection"));
                }
                let id = self.next_stream_id;
                self.next_stream_id += 1;
                self.streams.insert(
                    id,
                    NetStream {
                        role: Role::Idle,
                        key: String::new(),
                    },
                );
                self.reply(txn, Value::Null, vec![Value::Number(f64::from(id))])?;
            }
            "publish" | "play" => {
                let publish = cmd.name == "publish";
                let sid = m.stream_id;
                let full = cmd.arg_str(0).unwrap_or_default();
                let (key, q) = split_query(full);
                let (key, query) = (key.to_owned(), self.stream_query(q));
                let busy = match self.streams.get(&sid) {
                    None => true,
                    Some(s) => s.role != Role::Idle,
                };
                if busy {
                    let code = if publish {
                        "NetStream.Publish.BadName"
                    } else {
                        "NetStream.Play.Failed"
                    };
                    return self.on_status(sid, status("error", code, "stream id not available"));
                }
                let id = RequestId(self.next_request);
                self.next_request += 1;
                let app = self.app.clone().unwrap_or_default();
                if let Some(s) = self.streams.get_mut(&sid) {
                    s.key = key.clone();
                    s.role = if publish {
                        Role::PublishPending(id)
                    } else {
                        Role::PlayPending(id)
                    };
                }
                self.events.push_back(if publish {
                    RtmpEvent::PublishRequested {
                        id,
                        app,
                        stream_key: key,
                        query,
                        stream_id: sid,
                    }
                } else {
                    RtmpEvent::PlayRequested {
                        id,
                        app,
                        stream_key: key,
                        query,
                        stream_id: sid,
                    }
                });
            }
            "FCUnpublish" => {
                let (key, _) = split_query(cmd.arg_str(0).unwrap_or_default());
                let sid = self
                    .streams
                    .iter()
                    .find(|(_, s)| s.role == Role::Publishing && s.key == key)
                    .map(|(id, _)| *id);
                if let Some(sid) = sid {
                    self.stop(sid);
                }
            }
            "closeStream" => self.stop(m.stream_id),
            "deleteStream" => {
                let sid = cmd.args.first().and_then(Value::as_f64).unwrap_or(-1.0);
                if sid >= 0.0 && sid <= f64::from(u32::MAX) {
                    let sid = sid as u32;
                    self.stop(sid);
                    self.streams.remove(&sid);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends publishing or playing on `sid`, raising the matching event.
    fn stop(&mut self, sid: u32) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        let role = std::mem::replace(&mut s.role, Role::Idle);
        let key = s.key.clone();
        match role {
            Role::Publishing => self.events.push_back(RtmpEvent::Unpublished {
                stream_id: sid,
                stream_key: key,
            }),
            Role::Playing => self.events.push_back(RtmpEvent::PlayStopped {
                stream_id: sid,
                stream_key: key,
            }),
            _ => {}
        }
    }

    fn connect(&mut self, txn: f64, cmd: &Command) -> Result<()> {
        if self.app.is_some() {
            return Err(Error::malformed("RTMP connect received twice"));
        }
        let o = &cmd.object;
        let full_app = o.get("app").and_then(Value::as_str).unwrap_or_default();
        let (app, app_q) = split_query(full_app);
        let tc_url = o.get("tcUrl").and_then(Value::as_str).map(str::to_owned);
        let tc_q = tc_url
            .as_deref()
            .map(|u| split_query(u).1)
            .unwrap_or_default();
        self.connect_query = if tc_q.is_empty() { app_q } else { tc_q }.to_owned();
        let four_cc_list: Vec<String> = o
            .get("fourCcList")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let encoding = o
            .get("objectEncoding")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        self.app = Some(app.to_owned());

        let mut p = BytesMut::new();
        p.put_u32(self.cfg.window_ack_size);
        self.control(type_id::WINDOW_ACK_SIZE, &p)?;
        let mut p = BytesMut::new();
        p.put_u32(self.cfg.peer_bandwidth);
        p.put_u8(2);
        self.control(type_id::SET_PEER_BANDWIDTH, &p)?;
        let size = self
            .cfg
            .out_chunk_size
            .clamp(1, super::chunk::MAX_CHUNK_SIZE);
        let mut p = BytesMut::new();
        p.put_u32(size);
        self.control(type_id::SET_CHUNK_SIZE, &p)?;
        self.writer.set_chunk_size(size)?;
        let props = Value::object([
            ("fmsVer", Value::from("FMS/3,0,1,123")),
            ("capabilities", Value::Number(31.0)),
            ("mode", Value::Number(1.0)),
        ]);
        let info = Value::object([
            ("level", Value::from("status")),
            ("code", Value::from("NetConnection.Connect.Success")),
            ("description", Value::from("Connection succeeded.")),
            ("objectEncoding", Value::Number(encoding)),
        ]);
        self.reply(txn, props, vec![info])?;
        self.events.push_back(RtmpEvent::Connected {
            app: app.to_owned(),
            tc_url,
            four_cc_list,
        });
        Ok(())
    }
}

fn media_route(kind: TagType) -> (u32, u8) {
    match kind {
        TagType::Audio => (CSID_AUDIO, type_id::AUDIO),
        TagType::Video => (CSID_VIDEO, type_id::VIDEO),
        TagType::Script => (CSID_STREAM, type_id::DATA_AMF0),
        TagType::Other(t) => (CSID_STREAM, t),
    }
}

/// Sessions in a given state, for the tests of the modules that drive one.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::ingest::rtmp::handshake::PACKET_SIZE;

    fn cmd(s: &mut RtmpSession, w: &mut ChunkWriter, sid: u32, c: Command) {
        let mut p = BytesMut::new();
        c.write(&mut p);
        let mut out = BytesMut::new();
        w.write_message(
            MessageHeader::new(3, sid, type_id::COMMAND_AMF0, 0),
            &p,
            &mut out,
        )
        .unwrap();
        s.handle_input(&out).unwrap();
    }

    /// A session whose client connected, created stream 1 and was accepted to `play`
    /// "x"; the server's replies after the handshake are still in `poll_transmit`.
    pub(crate) fn playing_session(cfg: RtmpConfig) -> RtmpSession {
        let mut s = RtmpSession::new(cfg);
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0u8; PACKET_SIZE]);
        s.handle_input(&c0c1).unwrap();
        s.handle_input(&[0u8; PACKET_SIZE]).unwrap();
        let mut handshake = BytesMut::new();
        s.poll_transmit(&mut handshake);
        let mut w = ChunkWriter::new();
        let app = Value::object([("app", Value::from("live"))]);
        cmd(&mut s, &mut w, 0, Command::new("connect", 1.0, app, vec![]));
        cmd(
            &mut s,
            &mut w,
            0,
            Command::new("createStream", 2.0, Value::Null, vec![]),
        );
        let play = Command::new("play", 0.0, Value::Null, vec!["x".into()]);
        cmd(&mut s, &mut w, 1, play);
        while let Some(ev) = s.poll_event() {
            if let RtmpEvent::PlayRequested { id, .. } = ev {
                s.accept(id).unwrap();
            }
        }
        assert_eq!(s.playing_stream_id(), Some(1));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::rtmp::handshake::PACKET_SIZE;
    use crate::ErrorKind;

    struct Client {
        w: ChunkWriter,
        r: ChunkReader,
        rx: BytesMut,
    }

    impl Client {
        fn connect(s: &mut RtmpSession) -> Client {
            let mut c0c1 = vec![3u8];
            c0c1.extend_from_slice(&[0u8; PACKET_SIZE]);
            s.handle_input(&c0c1).unwrap();
            s.handle_input(&[0u8; PACKET_SIZE]).unwrap();
            let mut out = BytesMut::new();
            s.poll_transmit(&mut out);
            assert_eq!(out.len(), 1 + 2 * PACKET_SIZE);
            Client {
                w: ChunkWriter::new(),
                r: ChunkReader::default(),
                rx: BytesMut::new(),
            }
        }
        fn send(&mut self, s: &mut RtmpSession, csid: u32, sid: u32, t: u8, ts: u32, p: &[u8]) {
            let mut out = BytesMut::new();
            self.w
                .write_message(MessageHeader::new(csid, sid, t, ts), p, &mut out)
                .unwrap();
            s.handle_input(&out).unwrap();
        }
        fn cmd(&mut self, s: &mut RtmpSession, sid: u32, c: Command) {
            let mut p = BytesMut::new();
            c.write(&mut p);
            self.send(s, 3, sid, type_id::COMMAND_AMF0, 0, &p);
        }
        /// Messages the server sent since the last call; applies Set Chunk Size.
        fn recv(&mut self, s: &mut RtmpSession) -> Vec<Message> {
            s.poll_transmit(&mut self.rx);
            let mut v = Vec::new();
            while let Some(m) = self.r.read_message(&mut self.rx).unwrap() {
                if m.type_id == type_id::SET_CHUNK_SIZE {
                    self.r
                        .set_chunk_size(parse_u32(&m.payload).unwrap())
                        .unwrap();
                }
                v.push(m);
            }
            v
        }
    }

    fn cmd_of(m: &Message) -> Command {
        assert_eq!(m.type_id, type_id::COMMAND_AMF0);
        Command::parse(&m.payload).unwrap()
    }

    fn code_of(m: &Message) -> String {
        let c = cmd_of(m);
        assert_eq!(c.name, "onStatus");
        c.args[0]
            .get("code")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    }

    fn connect_cmd() -> Command {
        Command::new(
            "connect",
            1.0,
            Value::object([
                ("app", Value::from("live")),
                ("tcUrl", Value::from("rtmp://h/live?b=2")),
                (
                    "fourCcList",
                    Value::StrictArray(vec![Value::from("av01"), Value::from("hvc1")]),
                ),
            ]),
            vec![],
        )
    }

    /// Handshake, connect, createStream; returns the client and the stream id.
    fn ready(s: &mut RtmpSession) -> (Client, u32) {
        let mut c = Client::connect(s);
        c.cmd(s, 0, connect_cmd());
        let replies = c.recv(s);
        let types: Vec<u8> = replies.iter().map(|m| m.type_id).collect();
        assert_eq!(types, vec![5, 6, 1, 20]);
        assert_eq!(parse_u32(&replies[2].payload).unwrap(), 4096);
        let r = cmd_of(&replies[3]);
        assert_eq!((r.name.as_str(), r.transaction_id), ("_result", 1.0));
        assert_eq!(
            r.args[0].get("code").and_then(Value::as_str),
            Some("NetConnection.Connect.Success")
        );
        assert!(r.object.get("fmsVer").is_some());
        match s.poll_event() {
            Some(RtmpEvent::Connected {
                app,
                tc_url,
                four_cc_list,
            }) => {
                assert_eq!(app, "live");
                assert_eq!(tc_url.as_deref(), Some("rtmp://h/live?b=2"));
                assert_eq!(four_cc_list, vec!["av01", "hvc1"]);
            }
            e => panic!("{e:?}"),
        }
        c.cmd(s, 0, Command::new("createStream", 4.0, Value::Null, vec![]));
        let r = c.recv(s);
        let r = cmd_of(&r[0]);
        assert_eq!((r.name.as_str(), r.transaction_id), ("_result", 4.0));
        let sid = r.args[0].as_f64().unwrap() as u32;
        (c, sid)
    }

    fn publish(s: &mut RtmpSession, c: &mut Client, sid: u32) -> RequestId {
        let args = vec![Value::from("key?a=1"), Value::from("live")];
        c.cmd(s, sid, Command::new("publish", 5.0, Value::Null, args));
        match s.poll_event() {
            Some(RtmpEvent::PublishRequested {
                id,
                app,
                stream_key,
                query,
                stream_id,
            }) => {
                assert_eq!((app.as_str(), stream_key.as_str()), ("live", "key"));
                assert_eq!(query, "a=1&b=2");
                assert_eq!(stream_id, sid);
                id
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn publish_accept_media_unpublish() {
        let mut s = RtmpSession::new(RtmpConfig::default());
        let (mut c, sid) = ready(&mut s);
        c.cmd(
            &mut s,
            0,
            Command::new("FCPublish", 3.0, Value::Null, vec!["key".into()]),
        );
        let r = c.recv(&mut s);
        assert_eq!(cmd_of(&r[0]).name, "_result");
        assert_eq!(cmd_of(&r[1]).name, "onFCPublish");
        let id = publish(&mut s, &mut c, sid);
        // Media before the decision is dropped.
        c.send(&mut s, 6, sid, type_id::VIDEO, 0, &[0x17, 0, 0, 0, 0]);
        assert_eq!(s.poll_event(), None);
        s.accept(id).unwrap();
        let r = c.recv(&mut s);
        assert_eq!(r[0].type_id, type_id::USER_CONTROL);
        assert_eq!(
            UserControl::parse(&r[0].payload).unwrap(),
            UserControl::StreamBegin(sid)
        );
        assert_eq!(code_of(&r[1]), "NetStream.Publish.Start");
        assert_eq!(r[1].stream_id, sid);
        assert_eq!(s.accept(id).unwrap_err().kind(), ErrorKind::Usage);
        // Media and metadata.
        c.send(&mut s, 6, sid, type_id::VIDEO, 40, &[0x17, 1, 0, 0, 0, 9]);
        let mut meta = BytesMut::new();
        amf0::encode_all(
            &[
                Value::from("@setDataFrame"),
                Value::from("onMetaData"),
                Value::ecma_array([("width", Value::Number(320.0))]),
            ],
            &mut meta,
        );
        c.send(&mut s, 5, sid, type_id::DATA_AMF0, 0, &meta);
        match s.poll_event() {
            Some(RtmpEvent::Media {
                kind,
                timestamp_ms,
                body,
                stream_id,
            }) => {
                assert_eq!((kind, timestamp_ms, stream_id), (TagType::Video, 40, sid));
                assert_eq!(&body[..], &[0x17, 1, 0, 0, 0, 9]);
            }
            e => panic!("{e:?}"),
        }
        match s.poll_event() {
            Some(RtmpEvent::Media { kind, body, .. }) => {
                assert_eq!(kind, TagType::Script);
                let v = amf0::decode_all(&body).unwrap();
                assert_eq!(v[0], Value::from("onMetaData"));
            }
            e => panic!("{e:?}"),
        }
        c.cmd(
            &mut s,
            0,
            Command::new("FCUnpublish", 6.0, Value::Null, vec!["key".into()]),
        );
        assert_eq!(
            s.poll_event(),
            Some(RtmpEvent::Unpublished {
                stream_id: sid,
                stream_key: "key".into()
            })
        );
        // Media after unpublish is dropped.
        c.send(&mut s, 6, sid, type_id::VIDEO, 80, &[0x27, 1]);
        assert_eq!(s.poll_event(), None);
        assert!(!s.is_closed());
    }

    #[test]
    fn reject_sends_error_status_and_closes() {
        let mut s = RtmpSession::new(RtmpConfig::default());
        let (mut c, sid) = ready(&mut s);
        let id = publish(&mut s, &mut c, sid);
        s.reject(id, RejectReason::Unauthorized, "bad token")
            .unwrap();
        let r = c.recv(&mut s);
        assert_eq!(code_of(&r[0]), "NetStream.Publish.Unauthorized");
        let info = &cmd_of(&r[0]).args[0];
        assert_eq!(info.get("level").and_then(Value::as_str), Some("error"));
        assert_eq!(
            info.get("description").and_then(Value::as_str),
            Some("bad token")
        );
        assert!(s.is_closed());
        assert_eq!(s.handle_input(&[0]).unwrap_err().kind(), ErrorKind::Usage);
    }

    #[test]
    fn play_accept_and_send_media_plain_and_shared() {
        let mut s = RtmpSession::new(RtmpConfig::default());
        let (mut c, sid) = ready(&mut s);
        c.cmd(
            &mut s,
            sid,
            Command::new("play", 0.0, Value::Null, vec!["x".into()]),
        );
        let id = match s.poll_event() {
            Some(RtmpEvent::PlayRequested { id, stream_key, .. }) => {
                assert_eq!(stream_key, "x");
                id
            }
            e => panic!("{e:?}"),
        };
        assert!(s.send_media(TagType::Video, 0, &[1]).is_err());
        s.accept(id).unwrap();
        let r = c.recv(&mut s);
        assert_eq!(code_of(&r[1]), "NetStream.Play.Reset");
        assert_eq!(code_of(&r[2]), "NetStream.Play.Start");
        let d = amf0::decode_all(&r[3].payload).unwrap();
        assert_eq!(d[0], Value::from("|RtmpSampleAccess"));
        s.send_media(TagType::Video, 40, &[0x17; 5000]).unwrap();
        let shared =
            RtmpSession::shared_media(TagType::Audio, sid, 60, &[0xAF, 1, 2], s.out_chunk_size())
                .unwrap();
        s.send_shared(&shared).unwrap();
        s.send_media(TagType::Audio, 83, &[0xAF, 1, 3]).unwrap();
        let r = c.recv(&mut s);
        let got: Vec<_> = r
            .iter()
            .map(|m| (m.type_id, m.stream_id, m.timestamp, m.payload.len()))
            .collect();
        assert_eq!(
            got,
            vec![(9, sid, 40, 5000), (8, sid, 60, 3), (8, sid, 83, 3)]
        );
        c.cmd(
            &mut s,
            0,
            Command::new(
                "deleteStream",
                7.0,
                Value::Null,
                vec![Value::Number(f64::from(sid))],
            ),
        );
        assert!(matches!(
            s.poll_event(),
            Some(RtmpEvent::PlayStopped { .. })
        ));
        assert_eq!(s.playing_stream_id(), None);
    }

    #[test]
    fn acknowledgement_when_window_is_crossed_and_ping() {
        let mut s = RtmpSession::new(RtmpConfig::default());
        let (mut c, _) = ready(&mut s);
        let mut p = BytesMut::new();
        p.put_u32(2000);
        c.send(&mut s, 2, 0, type_id::WINDOW_ACK_SIZE, 0, &p);
        // The handshake alone crossed the window: acknowledged at once.
        let r = c.recv(&mut s);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].type_id, type_id::ACKNOWLEDGEMENT);
        assert_eq!(u64::from(parse_u32(&r[0].payload).unwrap()), s.received);
        assert!(s.received > 3073);
        // Unknown message types are ignored but counted: 1500 more, no ack yet.
        c.send(&mut s, 7, 0, 30, 0, &[0u8; 1500]);
        assert!(c.recv(&mut s).is_empty());
        let before = s.received;
        c.send(&mut s, 7, 0, 30, 0, &[0u8; 600]);
        let r = c.recv(&mut s);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].type_id, type_id::ACKNOWLEDGEMENT);
        assert_eq!(u64::from(parse_u32(&r[0].payload).unwrap()), s.received);
        assert!(s.received > before);
        let mut p = BytesMut::new();
        UserControl::PingRequest(1234).write(&mut p);
        c.send(&mut s, 2, 0, type_id::USER_CONTROL, 0, &p);
        let r = c.recv(&mut s);
        assert_eq!(
            UserControl::parse(&r[0].payload).unwrap(),
            UserControl::PingResponse(1234)
        );
    }

    #[test]
    fn aggregate_messages_are_split_and_rebased() {
        let mut s = RtmpSession::new(RtmpConfig::default());
        let (mut c, sid) = ready(&mut s);
        let id = publish(&mut s, &mut c, sid);
        s.accept(id).unwrap();
        let mut agg = BytesMut::new();
        for (t, ts, body) in [
            (9u8, 5000u32, &[0x17u8, 1][..]),
            (8, 5020, &[0xAF, 1, 7][..]),
        ] {
            agg.put_u8(t);
            agg.put_slice(&(body.len() as u32).to_be_bytes()[1..]);
            agg.put_slice(&ts.to_be_bytes()[1..]);
            agg.put_u8((ts >> 24) as u8);
            agg.put_slice(&[0, 0, 0]);
            agg.put_slice(body);
            agg.put_u32(11 + body.len() as u32);
        }
        c.send(&mut s, 6, sid, type_id::AGGREGATE, 100, &agg);
        let ev: Vec<_> = std::iter::from_fn(|| s.poll_event())
            .map(|e| match e {
                RtmpEvent::Media {
                    kind,
                    timestamp_ms,
                    body,
                    ..
                } => (kind, timestamp_ms, body.len()),
                e => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(ev, vec![(TagType::Video, 100, 2), (TagType::Audio, 120, 3)]);
        // Truncated aggregate: typed error.
        let mut bad = BytesMut::new();
        bad.put_slice(&agg[..20]);
        let mut out = BytesMut::new();
        c.w.write_message(MessageHeader::new(6, sid, 22, 200), &bad, &mut out)
            .unwrap();
        assert_eq!(
            s.handle_input(&out).unwrap_err().kind(),
            ErrorKind::Malformed
        );
        assert!(s.is_closed());
    }

    #[test]
    fn protocol_errors_are_typed() {
        // Command before connect.
        let mut s = RtmpSession::new(RtmpConfig::default());
        let mut c = Client::connect(&mut s);
        let mut p = BytesMut::new();
        Command::new("createStream", 2.0, Value::Null, vec![]).write(&mut p);
        let mut out = BytesMut::new();
        c.w.write_message(MessageHeader::new(3, 0, 20, 0), &p, &mut out)
            .unwrap();
        let e = s.handle_input(&out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
        assert!(e.to_string().starts_with("rtmp session: "));
        // Type 1 chunk on a new chunk stream: offset counts from the connection start.
        let mut s = RtmpSession::new(RtmpConfig::default());
        let _ = Client::connect(&mut s);
        let e = s.handle_input(&[0x43, 0, 0, 0, 0, 0, 1, 20]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
        assert_eq!(e.offset(), Some(1 + 2 * PACKET_SIZE as u64));
        // AMF3 command message (type 17): a format byte, then AMF0.
        let mut s = RtmpSession::new(RtmpConfig::default());
        let mut c = Client::connect(&mut s);
        let mut p = BytesMut::from(&[0u8][..]);
        connect_cmd().write(&mut p);
        c.send(&mut s, 3, 0, type_id::COMMAND_AMF3, 0, &p);
        assert!(matches!(s.poll_event(), Some(RtmpEvent::Connected { .. })));
        // Set Chunk Size 0.
        let mut s = RtmpSession::new(RtmpConfig::default());
        let mut c = Client::connect(&mut s);
        let mut out = BytesMut::new();
        c.w.write_message(MessageHeader::new(2, 0, 1, 0), &[0, 0, 0, 0], &mut out)
            .unwrap();
        assert_eq!(
            s.handle_input(&out).unwrap_err().kind(),
            ErrorKind::Malformed
        );
        // Set Chunk Size 2^31 - 1 is legal.
        let mut s = RtmpSession::new(RtmpConfig::default());
        let (mut c, _) = ready(&mut s);
        c.send(&mut s, 2, 0, 1, 0, &[0x7F, 0xFF, 0xFF, 0xFF]);
        assert_eq!(s.reader.chunk_size(), 0x7FFF_FFFF);
        // AMF0 nested a thousand deep.
        let mut deep = BytesMut::new();
        amf0::encode(&Value::from("connect"), &mut deep);
        amf0::encode(&Value::Number(1.0), &mut deep);
        for _ in 0..1000 {
            deep.put_slice(&[0x0A, 0, 0, 0, 1]);
        }
        let mut s = RtmpSession::new(RtmpConfig::default());
        let mut c = Client::connect(&mut s);
        let mut out = BytesMut::new();
        c.w.write_message(MessageHeader::new(3, 0, 20, 0), &deep, &mut out)
            .unwrap();
        assert_eq!(s.handle_input(&out).unwrap_err().kind(), ErrorKind::Limit);
    }

    #[test]
    fn handshake_and_idle_timeouts() {
        // A client that connects and sends nothing.
        let mut s = RtmpSession::new(RtmpConfig::default());
        assert_eq!(s.poll_timeout(), None);
        s.handle_timeout(1_000).unwrap();
        assert_eq!(s.poll_timeout(), Some(11_000));
        s.handle_timeout(10_999).unwrap();
        let e = s.handle_timeout(11_000).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
        assert!(s.is_closed());
        assert_eq!(s.poll_timeout(), None);
        // A publisher that stops sending: idle after 30 s without input.
        let mut s = RtmpSession::new(RtmpConfig::default());
        s.handle_timeout(0).unwrap();
        let (mut c, sid) = ready(&mut s);
        let id = publish(&mut s, &mut c, sid);
        s.accept(id).unwrap();
        s.handle_timeout(5_000).unwrap();
        assert_eq!(s.poll_timeout(), Some(35_000));
        c.send(&mut s, 6, sid, type_id::VIDEO, 0, &[0x17, 1]);
        s.handle_timeout(20_000).unwrap();
        s.handle_timeout(49_999).unwrap();
        assert!(s.handle_timeout(50_000).is_err());
        // A player may stay silent.
        let mut s = RtmpSession::new(RtmpConfig::default());
        s.handle_timeout(0).unwrap();
        let (mut c, sid) = ready(&mut s);
        c.cmd(
            &mut s,
            sid,
            Command::new("play", 0.0, Value::Null, vec!["x".into()]),
        );
        let Some(RtmpEvent::PlayRequested { id, .. }) = s.poll_event() else {
            panic!("play");
        };
        s.accept(id).unwrap();
        s.handle_timeout(1).unwrap();
        s.handle_timeout(100_000).unwrap();
        assert!(!s.is_closed());
    }

    #[test]
    fn hostile_bytes_after_handshake_never_panic() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..500 {
            let mut s = RtmpSession::new(RtmpConfig::default());
            let (mut c, _) = if round % 2 == 0 {
                ready(&mut s)
            } else {
                (Client::connect(&mut s), 0)
            };
            let mut junk = Vec::new();
            for _ in 0..256 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                junk.push((seed >> 32) as u8);
            }
            for piece in junk.chunks(17) {
                if s.handle_input(piece).is_err() {
                    break;
                }
                while s.poll_event().is_some() {}
                let _ = c.recv(&mut s);
            }
        }
    }
}
