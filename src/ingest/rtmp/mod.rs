//! RTMP ingest (Adobe RTMP specification 1.0, December 2012), sans-IO.
//!
//! - [`handshake`]: C0/C1/C2 <-> S0/S1/S2, plain and digest (§5.2).
//! - [`chunk`]: chunk stream reader and writer (§5.3), [`SharedMessage`] for fan-out.
//! - [`message`]: protocol control, user control and AMF0 commands (§5.4, §6.2, §7).
//! - [`session`]: [`RtmpSession`], the server connection state machine.
//! - [`client`]: [`RtmpClient`], the publishing client connection state machine.
//! - [`relay`]: [`RtmpRelay`], fan-out of a published stream to players.
//!
//! Media messages map 1:1 to FLV tags: the session surfaces them as
//! [`RtmpEvent::Media`] and the host feeds them to
//! [`FlvDemuxer::push_tag`](crate::ingest::flv::FlvDemuxer::push_tag).
//!
//! ```
//! use bytes::BytesMut;
//! use strom::ingest::rtmp::{RtmpEvent, RtmpSession};
//! let mut session = RtmpSession::new(Default::default());
//! // Bytes from the socket go in...
//! session.handle_input(&[3]).unwrap();
//! // ...bytes to send and events come out.
//! let mut out = BytesMut::new();
//! session.poll_transmit(&mut out);
//! while let Some(ev) = session.poll_event() {
//!     if let RtmpEvent::PublishRequested { id, .. } = ev {
//!         session.accept(id).unwrap();
//!     }
//! }
//! ```

pub mod chunk;
pub mod client;
pub mod handshake;
pub mod message;
pub mod relay;
pub mod session;

pub use chunk::{ChunkLimits, ChunkReader, ChunkWriter, MessageHeader, SharedMessage};
pub use client::{ClientStep, RtmpClient, RtmpClientConfig, RtmpClientEvent};
pub use handshake::{Handshake, HandshakeKind};
pub use relay::{PlayerId, PlayerStats, RelayOptions, RelayPoll, RtmpRelay};
pub use session::{RejectReason, RequestId, RtmpConfig, RtmpEvent, RtmpSession};
