//! RTMP messages: protocol control (§5.4), user control (§6.2, §7.1.7) and AMF0
//! commands (§7.1.1, §7.2), parsed from and written to message payloads.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ingest::amf0::{self, Value};
use crate::{Error, Result};

/// Message type ids (§5.4, §7.1).
pub mod type_id {
    /// Set Chunk Size (§5.4.1).
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message (§5.4.2).
    pub const ABORT: u8 = 2;
    /// Acknowledgement (§5.4.3).
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message (§6.2).
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size (§5.4.4).
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth (§5.4.5).
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio message (§7.1.4).
    pub const AUDIO: u8 = 8;
    /// Video message (§7.1.5).
    pub const VIDEO: u8 = 9;
    /// AMF3 data message (§7.1.2).
    pub const DATA_AMF3: u8 = 15;
    /// AMF3 shared object (§7.1.3).
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// AMF3 command message (§7.1.1).
    pub const COMMAND_AMF3: u8 = 17;
    /// AMF0 data message (§7.1.2).
    pub const DATA_AMF0: u8 = 18;
    /// AMF0 shared object (§7.1.3).
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// AMF0 command message (§7.1.1).
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message (§7.1.6).
    pub const AGGREGATE: u8 = 22;
}

/// User control event (§7.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserControl {
    /// 0: a stream became functional (message stream id).
    StreamBegin(u32),
    /// 1: playback ended on a stream.
    StreamEof(u32),
    /// 2: no more data on a stream.
    StreamDry(u32),
    /// 3: client buffer length for a stream, in milliseconds.
    SetBufferLength {
        /// Message stream id.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// 4: the stream is recorded.
    StreamIsRecorded(u32),
    /// 6: ping request with the sender's timestamp.
    PingRequest(u32),
    /// 7: ping response echoing the request's timestamp.
    PingResponse(u32),
    /// Any other event type, kept as read.
    Other {
        /// Event type.
        event: u16,
        /// Event data.
        data: Bytes,
    },
}

impl UserControl {
    /// Parses a User Control message payload. Errors: `Malformed` when shorter than
    /// the event needs.
    pub fn parse(p: &Bytes) -> Result<UserControl> {
        let short = || Error::malformed("RTMP user control message too short");
        let ev = p.get(..2).ok_or_else(short)?;
        let event = u16::from_be_bytes([ev[0], ev[1]]);
        let u32_at = |at: usize| -> Result<u32> {
            let b = p.get(at..at + 4).ok_or_else(short)?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        Ok(match event {
            0 => UserControl::StreamBegin(u32_at(2)?),
            1 => UserControl::StreamEof(u32_at(2)?),
            2 => UserControl::StreamDry(u32_at(2)?),
            3 => UserControl::SetBufferLength {
                stream_id: u32_at(2)?,
                buffer_ms: u32_at(6)?,
            },
            4 => UserControl::StreamIsRecorded(u32_at(2)?),
            6 => UserControl::PingRequest(u32_at(2)?),
            7 => UserControl::PingResponse(u32_at(2)?),
            _ => UserControl::Other {
                event,
                data: p.slice(2..),
            },
        })
    }

    /// Appends the payload of this event.
    pub fn write(&self, out: &mut BytesMut) {
        let (ev, a, b) = match self {
            UserControl::StreamBegin(s) => (0, *s, None),
            UserControl::StreamEof(s) => (1, *s, None),
            UserControl::StreamDry(s) => (2, *s, None),
            UserControl::SetBufferLength {
                stream_id,
                buffer_ms,
            } => (3, *stream_id, Some(*buffer_ms)),
            UserControl::StreamIsRecorded(s) => (4, *s, None),
            UserControl::PingRequest(t) => (6, *t, None),
            UserControl::PingResponse(t) => (7, *t, None),
            UserControl::Other { event, data } => {
                out.put_u16(*event);
                out.put_slice(data);
                return;
            }
        };
        out.put_u16(ev);
        out.put_u32(a);
        if let Some(b) = b {
            out.put_u32(b);
        }
    }
}

/// Reads the 4-byte big-endian value of a protocol control message.
pub fn parse_u32(p: &[u8]) -> Result<u32> {
    let b = p
        .get(..4)
        .ok_or_else(|| Error::malformed("RTMP protocol control message too short"))?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// An AMF0 command message (§7.1.1): name, transaction id, command object, arguments.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Command {
    /// Command name (`connect`, `publish`, `_result`...).
    pub name: String,
    /// Transaction id (0 when no reply is expected).
    pub transaction_id: f64,
    /// Command object (`Null` for most commands after `connect`).
    pub object: Value,
    /// Remaining arguments.
    pub args: Vec<Value>,
}

impl Command {
    /// A command from its parts.
    pub fn new(name: &str, transaction_id: f64, object: Value, args: Vec<Value>) -> Self {
        Command {
            name: name.to_owned(),
            transaction_id,
            object,
            args,
        }
    }

    /// Parses an AMF0 command payload. For type 17 (AMF3 command) pass the payload
    /// after its leading format byte. Errors: AMF0 decoding errors, `Malformed` when
    /// the name is not a string.
    pub fn parse(payload: &[u8]) -> Result<Command> {
        let mut input = payload;
        let name = match amf0::decode(&mut input)? {
            Value::String(s) | Value::LongString(s) => s,
            _ => return Err(Error::malformed("RTMP command name is not a string")),
        };
        let transaction_id = if input.is_empty() {
            0.0
        } else {
            amf0::decode(&mut input)?.as_f64().unwrap_or(0.0)
        };
        let object = if input.is_empty() {
            Value::Null
        } else {
            amf0::decode(&mut input)?
        };
        let args = amf0::decode_all(input)?;
        Ok(Command {
            name,
            transaction_id,
            object,
            args,
        })
    }

    /// Appends the AMF0 encoding.
    pub fn write(&self, out: &mut BytesMut) {
        amf0::encode(&Value::String(self.name.clone()), out);
        amf0::encode(&Value::Number(self.transaction_id), out);
        amf0::encode(&self.object, out);
        for a in &self.args {
            amf0::encode(a, out);
        }
    }

    /// The string argument at `i`, if it is one.
    pub fn arg_str(&self, i: usize) -> Option<&str> {
        self.args.get(i).and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn user_control_round_trip() {
        for uc in [
            UserControl::StreamBegin(1),
            UserControl::SetBufferLength {
                stream_id: 1,
                buffer_ms: 3000,
            },
            UserControl::PingRequest(77),
            UserControl::PingResponse(78),
            UserControl::Other {
                event: 31,
                data: Bytes::from_static(&[1, 2]),
            },
        ] {
            let mut out = BytesMut::new();
            uc.write(&mut out);
            assert_eq!(UserControl::parse(&out.freeze()).unwrap(), uc);
        }
        let e = UserControl::parse(&Bytes::from_static(&[0, 3, 0, 0, 0, 1])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
        assert_eq!(
            UserControl::parse(&Bytes::from_static(&[0, 6, 0, 0, 1, 0])).unwrap(),
            UserControl::PingRequest(256)
        );
    }

    #[test]
    fn command_round_trip_and_errors() {
        let c = Command::new(
            "publish",
            5.0,
            Value::Null,
            vec![Value::from("key?x=1"), Value::from("live")],
        );
        let mut out = BytesMut::new();
        c.write(&mut out);
        let back = Command::parse(&out).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.arg_str(0), Some("key?x=1"));
        assert_eq!(
            Command::parse(&[0x00, 0, 0, 0, 0, 0, 0, 0, 0])
                .unwrap_err()
                .kind(),
            ErrorKind::Malformed
        );
        assert!(Command::parse(&[0x02, 0, 5, b'a']).is_err());
        assert_eq!(parse_u32(&[0, 0, 16, 0]).unwrap(), 4096);
        assert!(parse_u32(&[0, 0]).is_err());
    }
}
