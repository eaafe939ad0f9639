//! [`RtmpClient`]: the sans-IO RTMP publish client (Adobe RTMP specification 1.0,
//! §5.2 handshake, §5.4 protocol control, §7.2.1 NetConnection and §7.2.2
//! NetStream commands), the counterpart of the server-side
//! [`RtmpSession`](super::RtmpSession).

use std::collections::VecDeque;

use bytes::{Buf, BufMut, BytesMut};

use super::chunk::{ChunkLimits, ChunkReader, ChunkWriter, Message, MessageHeader, MAX_CHUNK_SIZE};
use super::handshake::{PACKET_SIZE, RTMP_VERSION};
use super::message::{parse_u32, type_id, Command, UserControl};
use super::session::RejectReason;
use crate::ingest::amf0::{self, Value};
use crate::ingest::flv::TagType;
use crate::{Error, Result};

/// Chunk stream for protocol control messages (§5.4).
const CSID_CONTROL: u32 = 2;
/// Chunk stream for NetConnection commands.
const CSID_COMMAND: u32 = 3;
/// Chunk stream for audio.
const CSID_AUDIO: u32 = 4;
/// Chunk stream for NetStream commands and data messages.
const CSID_STREAM: u32 = 5;
/// Chunk stream for video.
const CSID_VIDEO: u32 = 6;

/// Transaction ids of the commands whose answers the client waits for.
const TXN_CONNECT: f64 = 1.0;
const TXN_RELEASE: f64 = 2.0;
const TXN_FCPUBLISH: f64 = 3.0;
const TXN_CREATE: f64 = 4.0;
const TXN_PUBLISH: f64 = 5.0;

/// Options of an [`RtmpClient`]. Each field's doc states its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtmpClientConfig {
    /// Application name sent in `connect` (`app`), e.g. `live`. Default empty.
    pub app: String,
    /// `tcUrl` sent in `connect`, e.g. `rtmp://127.0.0.1:1935/live`. Default empty
    /// (the property is then left out).
    pub tc_url: String,
    /// Stream name given to `publish`, with its `?query` if any (stream keys and
    /// tokens travel there). Default empty.
    pub stream_name: String,
    /// `flashVer` sent in `connect`. Default `FMLE/3.0 (compatible; strom)`, the form
    /// encoders use (servers tell publishers from players by the `FMLE` prefix).
    pub flash_ver: String,
    /// Publishing type argument of `publish` (§7.2.2.6: `live`, `record`, `append`).
    /// Default `live`.
    pub publish_type: String,
    /// Chunk size announced with Set Chunk Size right after the handshake and used
    /// for everything the client sends. Default 4096 (clamped to `1..=0x7FFFFFFF`).
    pub out_chunk_size: u32,
    /// Limits of the reader of the server's chunk stream. Default: messages up to
    /// 1 MiB, 8 partial messages, 4 MiB buffered, 64 chunk streams (a server sends a
    /// publisher only small control and command messages).
    pub chunk_limits: ChunkLimits,
    /// Most events queued for [`RtmpClient::poll_event`]; a server that makes more
    /// pile up is a limit error. Default 1024.
    pub max_events: usize,
    /// Most bytes waiting in [`RtmpClient::poll_transmit`]: past it, `send_tag` and
    /// replies the server asks for (acknowledgements, pings) are limit errors. The host
    /// should send what `poll_transmit` gives before sending more tags. Default 64 MiB.
    pub max_transmit_bytes: usize,
    /// Seed of the C1 filler bytes. Default 0.
    pub handshake_seed: u64,
    /// Milliseconds the server has to complete the handshake, counted from the first
    /// [`RtmpClient::handle_timeout`]. Default 10 000.
    pub handshake_timeout_ms: i64,
    /// Milliseconds the server has to answer each of `connect`, `createStream` and
    /// `publish`, counted from the first `handle_timeout` after the command was sent.
    /// Default 10 000.
    pub response_timeout_ms: i64,
}

impl Default for RtmpClientConfig {
    fn default() -> Self {
        RtmpClientConfig {
            app: String::new(),
            tc_url: String::new(),
            stream_name: String::new(),
            flash_ver: "FMLE/3.0 (compatible; strom)".to_owned(),
            publish_type: "live".to_owned(),
            out_chunk_size: 4096,
            chunk_limits: ChunkLimits {
                max_message_len: 1 << 20,
                max_partial_streams: 8,
                max_buffered: 4 << 20,
                max_chunk_streams: 64,
            },
            max_events: 1024,
            max_transmit_bytes: 64 << 20,
            handshake_seed: 0,
            handshake_timeout_ms: 10_000,
            response_timeout_ms: 10_000,
        }
    }
}

impl RtmpClientConfig {
    /// Options for publishing to `url` (`rtmp://host[:port]/app/stream[?query]`): the
    /// first path segment is the application, the rest (query included) the stream
    /// name, and `tcUrl` is the URL up to the application, as FFmpeg and librtmp split
    /// it. Other fields keep their defaults.
    ///
    /// Errors: `Usage` when the scheme is not `rtmp://`, or the application or the
    /// stream name is empty.
    ///
    /// ```
    /// use strom::ingest::rtmp::RtmpClientConfig;
    /// let c = RtmpClientConfig::from_url("rtmp://127.0.0.1:1935/live/cam1?key=k").unwrap();
    /// assert_eq!((c.app.as_str(), c.stream_name.as_str()), ("live", "cam1?key=k"));
    /// assert_eq!(c.tc_url, "rtmp://127.0.0.1:1935/live");
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| Error::usage("RTMP URL must start with rtmp://"))?;
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| Error::usage("RTMP URL has no application"))?;
        let (app, name) = path
            .split_once('/')
            .ok_or_else(|| Error::usage("RTMP URL has no stream name"))?;
        if host.is_empty() || app.is_empty() || name.is_empty() {
            return Err(Error::usage(
                "RTMP URL needs a host, an application and a stream",
            ));
        }
        Ok(RtmpClientConfig {
            app: app.to_owned(),
            tc_url: format!("rtmp://{host}/{app}"),
            stream_name: name.to_owned(),
            ..RtmpClientConfig::default()
        })
    }
}

/// The command an [`RtmpClientEvent::Rejected`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientStep {
    /// `connect` (§7.2.1.1).
    Connect,
    /// `createStream` (§7.2.1.3).
    CreateStream,
    /// `publish` (§7.2.2.6), or the published stream later on.
    Publish,
}

/// What the client reports to the host, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RtmpClientEvent {
    /// The server accepted `connect` (`_result`); `releaseStream`, `FCPublish` and
    /// `createStream` are on their way.
    Connected {
        /// `fmsVer` of the server's properties, if sent.
        server: Option<String>,
    },
    /// `createStream` returned this message stream id; `publish` is on its way.
    StreamCreated {
        /// Message stream id.
        stream_id: u32,
    },
    /// `onStatus` `NetStream.Publish.Start`: [`RtmpClient::send_tag`] may be called.
    PublishStarted {
        /// Message stream id.
        stream_id: u32,
    },
    /// The server refused a step: an `_error` answer, or an `onStatus` of level
    /// `error` (`NetStream.Publish.BadName`, `NetStream.Publish.Unauthorized`,
    /// `NetConnection.Connect.Rejected`...). The client is closed.
    Rejected {
        /// The step refused.
        step: ClientStep,
        /// The reason, for the codes that have one.
        reason: Option<RejectReason>,
        /// `code` of the information object (`NetStream.Publish.BadName`), empty
        /// when the server sent none.
        code: String,
        /// `description` of the information object, empty when absent.
        description: String,
    },
    /// Any other `onStatus` (level `status` or `warning`), e.g.
    /// `NetStream.Unpublish.Success`.
    Status {
        /// `level`.
        level: String,
        /// `code`.
        code: String,
        /// `description`, empty when absent.
        description: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// C0+C1 sent, waiting for S0+S1+S2.
    Handshake,
    /// `connect` sent.
    Connecting,
    /// `createStream` sent.
    CreatingStream,
    /// `publish` sent on this stream.
    PublishPending(u32),
    /// `NetStream.Publish.Start` received.
    Publishing(u32),
    /// [`RtmpClient::unpublish`] was called: input is still read (control messages,
    /// status), nothing more is sent but replies.
    Unpublished,
    /// Rejected or failed.
    Closed,
}

/// A publishing RTMP client connection, without IO.
///
/// The mirror of [`RtmpSession`](super::RtmpSession): [`new`](Self::new) queues C0+C1;
/// the host sends what [`poll_transmit`](Self::poll_transmit) gives, feeds every byte
/// received to [`handle_input`](Self::handle_input), and polls
/// [`poll_event`](Self::poll_event). The client answers S1 with C2, announces its
/// chunk size, sends `connect`, then (as FFmpeg does) `releaseStream`, `FCPublish` and
/// `createStream`, then `publish` on the new stream. Once
/// [`RtmpClientEvent::PublishStarted`] is out, [`send_tag`](Self::send_tag) sends FLV
/// tags as audio (8), video (9) and AMF0 data (18) messages; [`unpublish`](Self::unpublish)
/// ends. Acknowledgements (§5.4.3), Window Acknowledgement Size replies to Set Peer
/// Bandwidth (§5.4.5) and ping responses (§7.1.7) are sent by the client itself.
///
/// The handshake is the plain one (§5.2: C1 version 0, no digest); the server's S2
/// is not checked, as servers differ in what they echo. What the server can make
/// the client hold is bounded ([`RtmpClientConfig::chunk_limits`],
/// [`RtmpClientConfig::max_events`], [`RtmpClientConfig::max_transmit_bytes`]).
/// An error from `handle_input` or `handle_timeout` closes the client.
///
/// ```
/// use bytes::BytesMut;
/// use strom::ingest::flv::TagType;
/// use strom::ingest::rtmp::{RtmpClient, RtmpClientConfig, RtmpClientEvent, RtmpEvent, RtmpSession};
///
/// let cfg = RtmpClientConfig::from_url("rtmp://127.0.0.1/live/cam").unwrap();
/// let mut client = RtmpClient::new(cfg);
/// let mut server = RtmpSession::new(Default::default());
/// let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
/// let mut started = false;
/// for _ in 0..10 {
///     client.poll_transmit(&mut up);
///     server.handle_input(&up.split()).unwrap();
///     while let Some(ev) = server.poll_event() {
///         if let RtmpEvent::PublishRequested { id, .. } = ev {
///             server.accept(id).unwrap();
///         }
///     }
///     server.poll_transmit(&mut down);
///     client.handle_input(&down.split()).unwrap();
///     while let Some(ev) = client.poll_event() {
///         started |= matches!(ev, RtmpClientEvent::PublishStarted { .. });
///     }
/// }
/// assert!(started);
/// client.send_tag(TagType::Audio, 0, &[0xaf, 0, 0x12, 0x10]).unwrap();
/// client.poll_transmit(&mut up);
/// server.handle_input(&up.split()).unwrap();
/// assert!(matches!(server.poll_event(), Some(RtmpEvent::Media { kind: TagType::Audio, .. })));
/// ```
#[derive(Debug)]
pub struct RtmpClient {
    cfg: RtmpClientConfig,
    state: State,
    input: BytesMut,
    reader: ChunkReader,
    writer: ChunkWriter,
    tx: BytesMut,
    events: VecDeque<RtmpClientEvent>,
    /// Bytes received from the server, handshake included.
    received: u64,
    last_ack: u64,
    /// Window Acknowledgement Size the server set (0: none).
    window: u32,
    /// The Window Acknowledgement Size the client last sent.
    sent_window: Option<u32>,
    /// Host time of the first `handle_timeout`.
    started_ms: Option<i64>,
    /// Host time at which the current command was first seen outstanding.
    waiting_since_ms: Option<i64>,
    /// Tags sent since publishing started.
    tags_sent: u64,
}

fn fill_pseudo_random(buf: &mut [u8], seed: u64) {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for b in buf {
        // xorshift64*: filler only, it carries no security.
        x |= 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *b = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
    }
}

fn reason_of(code: &str) -> Option<RejectReason> {
    if code.ends_with(".BadName") || code.ends_with(".StreamNotFound") {
        Some(RejectReason::BadName)
    } else if code.ends_with(".Unauthorized") || code.ends_with(".Rejected") {
        Some(RejectReason::Unauthorized)
    } else {
        None
    }
}

fn info_str(info: Option<&Value>, key: &str) -> String {
    info.and_then(|v| v.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Whether an AMF0 body starts with the string `onMetaData` (FFmpeg wraps those in
/// `@setDataFrame` when publishing; see [`RtmpClient::send_tag`]).
fn is_on_metadata(body: &[u8]) -> bool {
    body.get(..13) == Some(b"\x02\x00\x0aonMetaData".as_slice())
}

impl RtmpClient {
    /// A client that has queued C0+C1 (§5.2.2, §5.2.3) for [`poll_transmit`](Self::poll_transmit).
    pub fn new(cfg: RtmpClientConfig) -> Self {
        let mut tx = BytesMut::with_capacity(1 + PACKET_SIZE);
        tx.put_u8(RTMP_VERSION);
        // C1: time 0, zero (plain handshake), filler.
        let mut c1 = [0u8; PACKET_SIZE];
        fill_pseudo_random(&mut c1[8..], cfg.handshake_seed);
        tx.put_slice(&c1);
        RtmpClient {
            reader: ChunkReader::new(cfg.chunk_limits),
            cfg,
            state: State::Handshake,
            input: BytesMut::new(),
            writer: ChunkWriter::new(),
            tx,
            events: VecDeque::new(),
            received: 0,
            last_ack: 0,
            window: 0,
            sent_window: None,
            started_ms: None,
            waiting_since_ms: None,
            tags_sent: 0,
        }
    }

    /// True once publishing started and until [`unpublish`](Self::unpublish), a
    /// rejection or an error.
    pub fn is_publishing(&self) -> bool {
        matches!(self.state, State::Publishing(_))
    }

    /// True once the client has ended (unpublished, rejected or failed): send what
    /// [`poll_transmit`](Self::poll_transmit) gives and close the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed | State::Unpublished)
    }

    /// The message stream id `createStream` returned, once known.
    pub fn stream_id(&self) -> Option<u32> {
        match self.state {
            State::PublishPending(s) | State::Publishing(s) => Some(s),
            _ => None,
        }
    }

    /// Tags sent with [`send_tag`](Self::send_tag) so far.
    pub fn tags_sent(&self) -> u64 {
        self.tags_sent
    }

    /// Bytes waiting in [`poll_transmit`](Self::poll_transmit): a host that paces
    /// sending waits for this to drain before sending more tags.
    pub fn pending_transmit(&self) -> usize {
        self.tx.len()
    }

    /// Appends the bytes to send to the server to `out`.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.tx);
        } else {
            out.extend_from_slice(&self.tx);
            self.tx.clear();
        }
    }

    /// The next event, in order.
    pub fn poll_event(&mut self) -> Option<RtmpClientEvent> {
        self.events.pop_front()
    }

    /// Processes bytes received from the server.
    ///
    /// Errors (the connection must then be closed): `Malformed` for a bad handshake,
    /// chunk stream or answer (a `createStream` result that is not a stream id),
    /// `Unsupported` for an S0 asking for RTMPE, `Limit` past the configured limits,
    /// `Usage` after the client was closed by an error or a rejection. After
    /// [`unpublish`](Self::unpublish) input is still read (the server's last status
    /// messages).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<()> {
        if self.state == State::Closed {
            return Err(Error::usage("RTMP client is closed"));
        }
        let r = self.process(data);
        if r.is_err() {
            self.state = State::Closed;
        }
        r.map_err(|e| e.context("rtmp client"))
    }

    fn process(&mut self, data: &[u8]) -> Result<()> {
        self.received += data.len() as u64;
        self.input.extend_from_slice(data);
        if self.state == State::Handshake {
            if !self.handshake()? {
                return Ok(());
            }
            self.reader
                .set_position(self.received - self.input.len() as u64);
        }
        while self.state != State::Closed {
            let Some(msg) = self.reader.read_message(&mut self.input)? else {
                break;
            };
            self.handle_message(msg)?;
            if self.events.len() > self.cfg.max_events {
                return Err(Error::limit("RTMP client: too many events not polled"));
            }
        }
        if self.input.is_empty() && self.input.capacity() > 4096 {
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

    /// Reads S0+S1+S2; once complete, queues C2, Set Chunk Size and `connect`.
    fn handshake(&mut self) -> Result<bool> {
        let Some(&s0) = self.input.first() else {
            return Ok(false);
        };
        if s0 != RTMP_VERSION {
            return Err(if s0 == 6 || s0 == 8 {
                Error::unsupported("RTMPE (encrypted RTMP) handshake").at_offset(0)
            } else {
                Error::malformed("RTMP handshake: S0 version is not 3").at_offset(0)
            });
        }
        if self.input.len() < 1 + 2 * PACKET_SIZE {
            return Ok(false);
        }
        let s = self.input.split_to(1 + 2 * PACKET_SIZE);
        // C2 echoes S1 (§5.2.3); S2 is not checked.
        self.tx.extend_from_slice(&s[1..1 + PACKET_SIZE]);
        let size = self.cfg.out_chunk_size.clamp(1, MAX_CHUNK_SIZE);
        let mut p = BytesMut::new();
        p.put_u32(size);
        self.control(type_id::SET_CHUNK_SIZE, &p)?;
        self.writer.set_chunk_size(size)?;
        let mut props = vec![
            ("app", Value::from(self.cfg.app.as_str())),
            ("type", Value::from("nonprivate")),
            ("flashVer", Value::from(self.cfg.flash_ver.as_str())),
        ];
        if !self.cfg.tc_url.is_empty() {
            props.push(("tcUrl", Value::from(self.cfg.tc_url.as_str())));
        }
        let c = Command::new("connect", TXN_CONNECT, Value::object(props), vec![]);
        self.command(CSID_COMMAND, 0, &c)?;
        self.wait(State::Connecting);
        Ok(true)
    }

    /// Moves to a state that waits for the server's answer.
    fn wait(&mut self, state: State) {
        self.state = state;
        self.waiting_since_ms = None;
    }

    /// Checks the handshake and response timeouts at host time `now_ms`
    /// (milliseconds on any monotonic clock the host keeps). Call it when
    /// [`poll_timeout`](Self::poll_timeout) expires, or periodically.
    ///
    /// Errors: `Limit` when the server did not complete the handshake or answer
    /// `connect`, `createStream` or `publish` in time; the client is then closed.
    pub fn handle_timeout(&mut self, now_ms: i64) -> Result<()> {
        let started = *self.started_ms.get_or_insert(now_ms);
        let msg = match self.state {
            State::Closed | State::Unpublished | State::Publishing(_) => return Ok(()),
            State::Handshake => {
                if now_ms.saturating_sub(started) < self.cfg.handshake_timeout_ms {
                    return Ok(());
                }
                "RTMP server did not complete the handshake in time"
            }
            State::Connecting | State::CreatingStream | State::PublishPending(_) => {
                let since = *self.waiting_since_ms.get_or_insert(now_ms);
                if now_ms.saturating_sub(since) < self.cfg.response_timeout_ms {
                    return Ok(());
                }
                match self.state {
                    State::Connecting => "RTMP server did not answer connect in time",
                    State::CreatingStream => "RTMP server did not answer createStream in time",
                    _ => "RTMP server did not answer publish in time",
                }
            }
        };
        self.state = State::Closed;
        Err(Error::limit(msg).context("rtmp client"))
    }

    /// The host time at which [`handle_timeout`](Self::handle_timeout) should next be
    /// called: `None` before its first call, while publishing and once closed.
    pub fn poll_timeout(&self) -> Option<i64> {
        match self.state {
            State::Closed | State::Unpublished | State::Publishing(_) => None,
            State::Handshake => Some(
                self.started_ms?
                    .saturating_add(self.cfg.handshake_timeout_ms),
            ),
            _ => Some(
                self.waiting_since_ms
                    .or(self.started_ms)?
                    .saturating_add(self.cfg.response_timeout_ms),
            ),
        }
    }

    /// Sends one FLV tag body as an RTMP message on the published stream: audio (8),
    /// video (9) or AMF0 data (18, for [`TagType::Script`]; other tag types go out
    /// with their own type id). `timestamp_ms` is the tag's 32-bit timestamp.
    ///
    /// A script body that starts with `onMetaData` is sent as `@setDataFrame`,
    /// `onMetaData`, ... (as FFmpeg and encoders publish metadata, and servers such as
    /// [`RtmpSession`](super::RtmpSession) unwrap it); other script bodies
    /// (`onCuePoint`, `onTextData`) are sent as they are.
    ///
    /// Errors: `Usage` before [`RtmpClientEvent::PublishStarted`] or after the client
    /// closed, or for a body over 16 MiB - 1; `Limit` when
    /// [`RtmpClientConfig::max_transmit_bytes`] are waiting in `poll_transmit`.
    pub fn send_tag(&mut self, kind: TagType, timestamp_ms: u32, body: &[u8]) -> Result<()> {
        let State::Publishing(sid) = self.state else {
            return Err(Error::usage(
                "RTMP client: send_tag before the publish started or after it ended",
            ));
        };
        let (csid, t) = match kind {
            TagType::Audio => (CSID_AUDIO, type_id::AUDIO),
            TagType::Video => (CSID_VIDEO, type_id::VIDEO),
            TagType::Script => (CSID_STREAM, type_id::DATA_AMF0),
            TagType::Other(t) => (CSID_STREAM, t),
        };
        if kind == TagType::Script && is_on_metadata(body) {
            let mut p = BytesMut::with_capacity(16 + body.len());
            amf0::encode(&Value::from("@setDataFrame"), &mut p);
            p.put_slice(body);
            self.send(csid, sid, t, timestamp_ms, &p)?;
        } else {
            self.send(csid, sid, t, timestamp_ms, body)?;
        }
        self.tags_sent += 1;
        Ok(())
    }

    /// Ends publishing: queues `FCUnpublish` and `deleteStream` (§7.2.2.3) and closes
    /// the client ([`is_closed`](Self::is_closed) turns true: send what
    /// `poll_transmit` gives, then close the connection). Before the stream was
    /// created it queues nothing.
    pub fn unpublish(&mut self) -> Result<()> {
        let sid = match self.state {
            State::Publishing(s) | State::PublishPending(s) => Some(s),
            _ => None,
        };
        if self.state != State::Closed {
            self.state = State::Unpublished;
        }
        if let Some(sid) = sid {
            let name = Value::from(self.cfg.stream_name.as_str());
            let c = Command::new("FCUnpublish", 6.0, Value::Null, vec![name]);
            self.command(CSID_COMMAND, 0, &c)?;
            let c = Command::new(
                "deleteStream",
                7.0,
                Value::Null,
                vec![Value::Number(f64::from(sid))],
            );
            self.command(CSID_COMMAND, 0, &c)?;
        }
        Ok(())
    }

    fn send(&mut self, csid: u32, sid: u32, t: u8, ts: u32, payload: &[u8]) -> Result<()> {
        if self.tx.len() > self.cfg.max_transmit_bytes {
            return Err(Error::limit(
                "RTMP client: transmit buffer full (send what poll_transmit gives first)",
            ));
        }
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

    fn handle_message(&mut self, m: Message) -> Result<()> {
        match m.type_id {
            type_id::SET_CHUNK_SIZE => self.reader.set_chunk_size(parse_u32(&m.payload)?)?,
            type_id::ABORT => self.reader.abort(parse_u32(&m.payload)?),
            type_id::WINDOW_ACK_SIZE => self.window = parse_u32(&m.payload)?,
            type_id::SET_PEER_BANDWIDTH => {
                // §5.4.5: answer with a Window Acknowledgement Size when it differs from
                // the last one sent.
                let size = parse_u32(&m.payload)?;
                if self.sent_window != Some(size) {
                    self.sent_window = Some(size);
                    let mut p = BytesMut::new();
                    p.put_u32(size);
                    self.control(type_id::WINDOW_ACK_SIZE, &p)?;
                }
            }
            type_id::USER_CONTROL => {
                if let UserControl::PingRequest(t) = UserControl::parse(&m.payload)? {
                    let mut p = BytesMut::new();
                    UserControl::PingResponse(t).write(&mut p);
                    self.control(type_id::USER_CONTROL, &p)?;
                }
            }
            type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => {
                let mut p = m.payload;
                if m.type_id == type_id::COMMAND_AMF3 && p.first() == Some(&0) {
                    p.advance(1);
                }
                let cmd = Command::parse(&p)?;
                self.handle_command(cmd)?;
            }
            // Acknowledgements, media or data the server might send: nothing to do.
            _ => {}
        }
        Ok(())
    }

    fn reject(&mut self, step: ClientStep, info: Option<&Value>) {
        let code = info_str(info, "code");
        let description = info_str(info, "description");
        self.events.push_back(RtmpClientEvent::Rejected {
            step,
            reason: reason_of(&code),
            code,
            description,
        });
        self.state = State::Closed;
    }

    fn step_of_txn(txn: f64) -> Option<ClientStep> {
        if txn == TXN_CONNECT {
            Some(ClientStep::Connect)
        } else if txn == TXN_CREATE {
            Some(ClientStep::CreateStream)
        } else if txn == TXN_PUBLISH {
            Some(ClientStep::Publish)
        } else {
            None
        }
    }

    fn handle_command(&mut self, cmd: Command) -> Result<()> {
        let txn = cmd.transaction_id;
        match cmd.name.as_str() {
            "_result" => match (self.state, Self::step_of_txn(txn)) {
                (State::Connecting, Some(ClientStep::Connect)) => {
                    let server = cmd
                        .object
                        .get("fmsVer")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    self.events.push_back(RtmpClientEvent::Connected { server });
                    let name = Value::from(self.cfg.stream_name.as_str());
                    let c = Command::new("releaseStream", TXN_RELEASE, Value::Null, vec![name]);
                    self.command(CSID_COMMAND, 0, &c)?;
                    let name = Value::from(self.cfg.stream_name.as_str());
                    let c = Command::new("FCPublish", TXN_FCPUBLISH, Value::Null, vec![name]);
                    self.command(CSID_COMMAND, 0, &c)?;
                    let c = Command::new("createStream", TXN_CREATE, Value::Null, vec![]);
                    self.command(CSID_COMMAND, 0, &c)?;
                    self.wait(State::CreatingStream);
                }
                (State::CreatingStream, Some(ClientStep::CreateStream)) => {
                    let id = cmd
                        .args
                        .iter()
                        .find_map(Value::as_f64)
                        .filter(|n| n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n))
                        .ok_or_else(|| {
                            Error::malformed("RTMP createStream result is not a stream id")
                        })?;
                    let sid = id as u32;
                    self.events
                        .push_back(RtmpClientEvent::StreamCreated { stream_id: sid });
                    let args = vec![
                        Value::from(self.cfg.stream_name.as_str()),
                        Value::from(self.cfg.publish_type.as_str()),
                    ];
                    let c = Command::new("publish", TXN_PUBLISH, Value::Null, args);
                    self.command(CSID_STREAM, sid, &c)?;
                    self.wait(State::PublishPending(sid));
                }
                // Answers to releaseStream / FCPublish, or late duplicates.
                _ => {}
            },
            "_error" => {
                let step = match (self.state, Self::step_of_txn(txn)) {
                    (State::Connecting, Some(s @ ClientStep::Connect))
                    | (State::CreatingStream, Some(s @ ClientStep::CreateStream))
                    | (State::PublishPending(_), Some(s @ ClientStep::Publish)) => Some(s),
                    // releaseStream / FCPublish errors are harmless (FFmpeg ignores
                    // them too).
                    _ => None,
                };
                if let Some(step) = step {
                    self.reject(step, cmd.args.first());
                }
            }
            "onStatus" => {
                let info = cmd.args.first();
                let level = info_str(info, "level");
                let code = info_str(info, "code");
                if level == "error" {
                    let step = match self.state {
                        State::Connecting => ClientStep::Connect,
                        State::CreatingStream => ClientStep::CreateStream,
                        _ => ClientStep::Publish,
                    };
                    self.reject(step, info);
                } else if let (State::PublishPending(sid), "NetStream.Publish.Start") =
                    (self.state, code.as_str())
                {
                    self.state = State::Publishing(sid);
                    self.events
                        .push_back(RtmpClientEvent::PublishStarted { stream_id: sid });
                } else {
                    self.events.push_back(RtmpClientEvent::Status {
                        level,
                        code,
                        description: info_str(info, "description"),
                    });
                }
            }
            // onFCPublish, onBWDone, _checkbw, close...: nothing to do.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::rtmp::{RtmpConfig, RtmpEvent, RtmpSession};
    use crate::ErrorKind;
    use bytes::Bytes;

    /// Moves bytes both ways until neither side has anything to send; the server
    /// answers publish requests with `decide`.
    fn pump(
        c: &mut RtmpClient,
        s: &mut RtmpSession,
        decide: &mut dyn FnMut(&mut RtmpSession, RtmpEvent),
    ) -> Vec<RtmpClientEvent> {
        let mut evs = Vec::new();
        for _ in 0..20 {
            let mut up = BytesMut::new();
            c.poll_transmit(&mut up);
            if !up.is_empty() && !s.is_closed() {
                s.handle_input(&up).unwrap();
            }
            while let Some(e) = s.poll_event() {
                decide(s, e);
            }
            let mut down = BytesMut::new();
            s.poll_transmit(&mut down);
            if !down.is_empty() && !c.is_closed() {
                c.handle_input(&down).unwrap();
            }
            evs.extend(std::iter::from_fn(|| c.poll_event()));
            if up.is_empty() && down.is_empty() {
                break;
            }
        }
        evs
    }

    fn cfg() -> RtmpClientConfig {
        RtmpClientConfig::from_url("rtmp://127.0.0.1:1935/live/cam?k=v").unwrap()
    }

    fn accept_all(s: &mut RtmpSession, e: RtmpEvent) {
        if let RtmpEvent::PublishRequested { id, .. } = e {
            s.accept(id).unwrap();
        }
    }

    #[test]
    fn publishes_to_the_session_and_tags_arrive_unchanged() {
        let mut c = RtmpClient::new(cfg());
        let mut s = RtmpSession::new(RtmpConfig::default());
        let mut requested = None;
        let evs = pump(&mut c, &mut s, &mut |s, e| match e {
            RtmpEvent::PublishRequested {
                id,
                ref app,
                ref stream_key,
                ref query,
                ..
            } => {
                requested = Some((app.clone(), stream_key.clone(), query.clone()));
                s.accept(id).unwrap();
            }
            RtmpEvent::Connected { ref tc_url, .. } => {
                assert_eq!(tc_url.as_deref(), Some("rtmp://127.0.0.1:1935/live"));
            }
            _ => {}
        });
        assert_eq!(requested, Some(("live".into(), "cam".into(), "k=v".into())));
        assert_eq!(
            evs,
            vec![
                RtmpClientEvent::Connected {
                    server: Some("FMS/3,0,1,123".into())
                },
                RtmpClientEvent::StreamCreated { stream_id: 1 },
                RtmpClientEvent::PublishStarted { stream_id: 1 },
            ]
        );
        assert!(c.is_publishing());
        assert_eq!(c.stream_id(), Some(1));
        // Large video (several chunks of 4096), audio, metadata and a cue point.
        let video: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut meta = BytesMut::new();
        amf0::encode_all(
            &[
                Value::from("onMetaData"),
                Value::ecma_array([("width", Value::Number(320.0))]),
            ],
            &mut meta,
        );
        let mut cue = BytesMut::new();
        amf0::encode_all(
            &[
                Value::from("onCuePoint"),
                Value::object([("name", Value::from("x"))]),
            ],
            &mut cue,
        );
        let tags: Vec<(TagType, u32, Bytes)> = vec![
            (TagType::Script, 0, meta.freeze()),
            (TagType::Video, 0, Bytes::from(video)),
            (TagType::Audio, 21, Bytes::from_static(&[0xaf, 1, 2])),
            (TagType::Script, 40, cue.freeze()),
            (TagType::Video, 0x0100_0000, Bytes::from_static(&[0x27, 1])),
        ];
        for (k, t, b) in &tags {
            c.send_tag(*k, *t, b).unwrap();
        }
        assert_eq!(c.tags_sent(), 5);
        let mut up = BytesMut::new();
        c.poll_transmit(&mut up);
        s.handle_input(&up).unwrap();
        let got: Vec<_> = std::iter::from_fn(|| s.poll_event())
            .map(|e| match e {
                RtmpEvent::Media {
                    kind,
                    timestamp_ms,
                    body,
                    ..
                } => (kind, timestamp_ms, body),
                e => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(got, tags);
        // Unpublish reaches the server.
        c.unpublish().unwrap();
        assert!(c.is_closed());
        let mut up = BytesMut::new();
        c.poll_transmit(&mut up);
        s.handle_input(&up).unwrap();
        assert!(matches!(
            s.poll_event(),
            Some(RtmpEvent::Unpublished { .. })
        ));
        assert_eq!(
            c.send_tag(TagType::Audio, 0, &[0xaf]).unwrap_err().kind(),
            ErrorKind::Usage
        );
    }

    #[test]
    fn rejection_is_an_event_with_the_description() {
        let mut c = RtmpClient::new(cfg());
        let mut s = RtmpSession::new(RtmpConfig::default());
        let evs = pump(&mut c, &mut s, &mut |s, e| {
            if let RtmpEvent::PublishRequested { id, .. } = e {
                s.reject(id, RejectReason::BadName, "cam is taken").unwrap();
            }
        });
        assert_eq!(
            evs.last(),
            Some(&RtmpClientEvent::Rejected {
                step: ClientStep::Publish,
                reason: Some(RejectReason::BadName),
                code: "NetStream.Publish.BadName".into(),
                description: "cam is taken".into(),
            })
        );
        assert!(c.is_closed());
        assert_eq!(
            c.send_tag(TagType::Video, 0, &[0x17]).unwrap_err().kind(),
            ErrorKind::Usage
        );
    }

    #[test]
    fn sends_are_refused_before_publish_starts() {
        let mut c = RtmpClient::new(cfg());
        assert_eq!(
            c.send_tag(TagType::Audio, 0, &[0xaf]).unwrap_err().kind(),
            ErrorKind::Usage
        );
        let mut s = RtmpSession::new(RtmpConfig::default());
        // Server holds the decision: publish pending.
        let evs = pump(&mut c, &mut s, &mut |_, _| {});
        assert_eq!(evs.len(), 2);
        assert_eq!(c.stream_id(), Some(1));
        assert!(!c.is_publishing());
        assert!(c.send_tag(TagType::Audio, 0, &[0xaf]).is_err());
    }

    /// A hand-driven server: handshake answered, then raw messages.
    fn after_handshake() -> (RtmpClient, ChunkWriter, ChunkReader) {
        let mut c = RtmpClient::new(cfg());
        let mut c0c1 = BytesMut::new();
        c.poll_transmit(&mut c0c1);
        assert_eq!(c0c1.len(), 1 + PACKET_SIZE);
        assert_eq!(&c0c1[..9], &[3, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut s = vec![3u8];
        s.extend((0..PACKET_SIZE).map(|i| (i * 7) as u8));
        s.extend_from_slice(&c0c1[1..]);
        // Delivered a byte at a time: nothing before the last one.
        for b in &s[..s.len() - 1] {
            c.handle_input(&[*b]).unwrap();
            assert_eq!(c.pending_transmit(), 0);
        }
        c.handle_input(&s[s.len() - 1..]).unwrap();
        let mut out = BytesMut::new();
        c.poll_transmit(&mut out);
        // C2 echoes S1.
        assert_eq!(&out[..PACKET_SIZE], &s[1..1 + PACKET_SIZE]);
        let mut r = ChunkReader::default();
        let mut rest = out.split_off(PACKET_SIZE);
        let m = r.read_message(&mut rest).unwrap().unwrap();
        assert_eq!(m.type_id, type_id::SET_CHUNK_SIZE);
        assert_eq!(parse_u32(&m.payload).unwrap(), 4096);
        r.set_chunk_size(4096).unwrap();
        let m = r.read_message(&mut rest).unwrap().unwrap();
        let connect = Command::parse(&m.payload).unwrap();
        assert_eq!(connect.name, "connect");
        assert_eq!(
            connect.object.get("flashVer").and_then(Value::as_str),
            Some("FMLE/3.0 (compatible; strom)")
        );
        (c, ChunkWriter::new(), r)
    }

    fn server_send(
        c: &mut RtmpClient,
        w: &mut ChunkWriter,
        csid: u32,
        sid: u32,
        t: u8,
        p: &[u8],
    ) -> Result<()> {
        let mut out = BytesMut::new();
        w.write_message(MessageHeader::new(csid, sid, t, 0), p, &mut out)
            .unwrap();
        c.handle_input(&out)
    }

    fn server_cmd(c: &mut RtmpClient, w: &mut ChunkWriter, sid: u32, cmd: Command) -> Result<()> {
        let mut p = BytesMut::new();
        cmd.write(&mut p);
        server_send(c, w, 3, sid, type_id::COMMAND_AMF0, &p)
    }

    fn client_msgs(c: &mut RtmpClient, r: &mut ChunkReader) -> Vec<Message> {
        let mut out = BytesMut::new();
        c.poll_transmit(&mut out);
        std::iter::from_fn(|| r.read_message(&mut out).unwrap()).collect()
    }

    #[test]
    fn connect_error_and_control_messages() {
        let (mut c, mut w, mut r) = after_handshake();
        // Window ack size 100: the client acknowledges once 100 bytes came in.
        server_send(
            &mut c,
            &mut w,
            2,
            0,
            type_id::WINDOW_ACK_SIZE,
            &[0, 0, 0, 100],
        )
        .unwrap();
        let m = client_msgs(&mut c, &mut r);
        assert_eq!(m.len(), 1, "the handshake alone crossed the window");
        assert_eq!(m[0].type_id, type_id::ACKNOWLEDGEMENT);
        assert_eq!(u64::from(parse_u32(&m[0].payload).unwrap()), c.received);
        // Set Peer Bandwidth: answered once with Window Acknowledgement Size.
        for _ in 0..2 {
            server_send(
                &mut c,
                &mut w,
                2,
                0,
                type_id::SET_PEER_BANDWIDTH,
                &[0, 0, 0x10, 0, 2],
            )
            .unwrap();
        }
        let m = client_msgs(&mut c, &mut r);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].type_id, parse_u32(&m[0].payload).unwrap()), (5, 4096));
        // Ping.
        let mut p = BytesMut::new();
        UserControl::PingRequest(99).write(&mut p);
        server_send(&mut c, &mut w, 2, 0, type_id::USER_CONTROL, &p).unwrap();
        let m = client_msgs(&mut c, &mut r);
        assert_eq!(
            UserControl::parse(&m[0].payload).unwrap(),
            UserControl::PingResponse(99)
        );
        // connect refused with _error.
        let info = Value::object([
            ("level", Value::from("error")),
            ("code", Value::from("NetConnection.Connect.Rejected")),
            ("description", Value::from("no such app")),
        ]);
        server_cmd(
            &mut c,
            &mut w,
            0,
            Command::new("_error", 1.0, Value::Null, vec![info]),
        )
        .unwrap();
        assert_eq!(
            c.poll_event(),
            Some(RtmpClientEvent::Rejected {
                step: ClientStep::Connect,
                reason: Some(RejectReason::Unauthorized),
                code: "NetConnection.Connect.Rejected".into(),
                description: "no such app".into()
            })
        );
        assert!(c.is_closed());
        assert_eq!(c.handle_input(&[1]).unwrap_err().kind(), ErrorKind::Usage);
    }

    #[test]
    fn bad_answers_are_typed_errors() {
        // createStream answered with a non-number.
        let (mut c, mut w, _) = after_handshake();
        server_cmd(
            &mut c,
            &mut w,
            0,
            Command::new("_result", 1.0, Value::Null, vec![]),
        )
        .unwrap();
        let e = server_cmd(
            &mut c,
            &mut w,
            0,
            Command::new("_result", 4.0, Value::Null, vec![Value::from("x")]),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
        assert!(e.to_string().starts_with("rtmp client: "));
        assert!(c.is_closed());
        // S0 asking for RTMPE.
        let mut c = RtmpClient::new(cfg());
        assert_eq!(
            c.handle_input(&[6]).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        let mut c = RtmpClient::new(cfg());
        assert_eq!(
            c.handle_input(&[9]).unwrap_err().kind(),
            ErrorKind::Malformed
        );
        // A message over the client's 1 MiB limit.
        let (mut c, _, _) = after_handshake();
        let e = c
            .handle_input(&[0x03, 0, 0, 0, 0x20, 0, 0, 20, 0, 0, 0, 0])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
        // A server that floods status messages nobody polls.
        let (mut c, mut w, _) = after_handshake();
        let info = Value::object([("level", Value::from("status")), ("code", Value::from("x"))]);
        let mut last = Ok(());
        for _ in 0..=1024 {
            last = server_cmd(
                &mut c,
                &mut w,
                0,
                Command::new("onStatus", 0.0, Value::Null, vec![info.clone()]),
            );
            if last.is_err() {
                break;
            }
        }
        assert_eq!(last.unwrap_err().kind(), ErrorKind::Limit);
    }

    #[test]
    fn timeouts() {
        let mut c = RtmpClient::new(cfg());
        assert_eq!(c.poll_timeout(), None);
        c.handle_timeout(100).unwrap();
        assert_eq!(c.poll_timeout(), Some(10_100));
        assert_eq!(
            c.handle_timeout(10_100).unwrap_err().kind(),
            ErrorKind::Limit
        );
        assert!(c.is_closed());
        // No answer to connect.
        let (mut c, _, _) = after_handshake();
        c.handle_timeout(5).unwrap();
        assert_eq!(c.poll_timeout(), Some(10_005));
        c.handle_timeout(10_004).unwrap();
        let e = c.handle_timeout(10_005).unwrap_err();
        assert!(e.to_string().contains("connect"));
    }

    #[test]
    fn transmit_buffer_is_bounded() {
        let mut c = RtmpClient::new(RtmpClientConfig {
            max_transmit_bytes: 10_000,
            ..cfg()
        });
        let mut s = RtmpSession::new(RtmpConfig::default());
        pump(&mut c, &mut s, &mut accept_all);
        assert!(c.is_publishing());
        let body = [0x17u8; 4000];
        let mut n = 0;
        let err = loop {
            match c.send_tag(TagType::Video, n, &body) {
                Ok(()) => n += 40,
                Err(e) => break e,
            }
            assert!(n < 400);
        };
        assert_eq!(err.kind(), ErrorKind::Limit);
        assert!(c.pending_transmit() > 10_000);
        let mut out = BytesMut::new();
        c.poll_transmit(&mut out);
        c.send_tag(TagType::Video, n, &body).unwrap();
    }

    #[test]
    fn url_parsing() {
        assert!(RtmpClientConfig::from_url("http://h/a/b").is_err());
        assert!(RtmpClientConfig::from_url("rtmp://h/a").is_err());
        assert!(RtmpClientConfig::from_url("rtmp://h//b").is_err());
        let c = RtmpClientConfig::from_url("rtmp://h/app/a/b").unwrap();
        assert_eq!((c.app.as_str(), c.stream_name.as_str()), ("app", "a/b"));
    }

    #[test]
    fn hostile_server_bytes_never_panic() {
        let mut seed = 0x1234_5678_9ABC_DEF1u64;
        for round in 0..300 {
            let (mut c, _, _) = if round % 2 == 0 {
                after_handshake()
            } else {
                (
                    RtmpClient::new(cfg()),
                    ChunkWriter::new(),
                    ChunkReader::default(),
                )
            };
            let mut junk = Vec::new();
            for _ in 0..400 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                junk.push((seed >> 32) as u8);
            }
            if round % 2 == 1 {
                junk[0] = 3;
            }
            for piece in junk.chunks(13) {
                if c.handle_input(piece).is_err() {
                    assert!(c.is_closed());
                    break;
                }
                while c.poll_event().is_some() {}
                let mut out = BytesMut::new();
                c.poll_transmit(&mut out);
            }
        }
    }
}
