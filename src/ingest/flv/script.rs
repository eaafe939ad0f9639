//! Script data tags (Adobe FLV v10.1 E.4.4 `SCRIPTDATA`) and the `onMetaData` keys
//! (E.5), including the RTMP `@setDataFrame` wrapper.

use super::relocate;
use crate::error::{Error, Result};
use crate::ingest::amf0::{self, Value};
use crate::time::Timestamp;

/// The `onMetaData` properties of a stream (E.5), in wire order, with typed getters for
/// the common keys. Every getter reads the value as declared by the encoder, which is
/// informational: the codec configuration in the stream is authoritative.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct FlvMetadata {
    /// All properties, in wire order.
    pub properties: Vec<(String, Value)>,
}

impl FlvMetadata {
    /// The first property named `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
    /// A numeric property.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.get(key)?.as_f64()
    }
    fn whole(&self, key: &str) -> Option<u32> {
        let n = self.number(key)?;
        (n.is_finite() && (0.0..=u32::MAX as f64).contains(&n)).then(|| n.round() as u32)
    }
    /// `width` in pixels.
    pub fn width(&self) -> Option<u32> {
        self.whole("width")
    }
    /// `height` in pixels.
    pub fn height(&self) -> Option<u32> {
        self.whole("height")
    }
    /// `framerate` in frames per second, as declared.
    pub fn frame_rate(&self) -> Option<f64> {
        self.number("framerate").filter(|n| n.is_finite())
    }
    /// `videodatarate` in kilobits per second, as declared.
    pub fn video_data_rate(&self) -> Option<f64> {
        self.number("videodatarate").filter(|n| n.is_finite())
    }
    /// `audiodatarate` in kilobits per second, as declared.
    pub fn audio_data_rate(&self) -> Option<f64> {
        self.number("audiodatarate").filter(|n| n.is_finite())
    }
    /// `audiosamplerate` in Hz.
    pub fn audio_sample_rate(&self) -> Option<u32> {
        self.whole("audiosamplerate")
    }
    /// `duration` (seconds on the wire), rounded to milliseconds.
    pub fn duration(&self) -> Option<Timestamp> {
        let s = self.number("duration")?;
        let ms = s * 1000.0;
        (ms.is_finite() && (0.0..=i64::MAX as f64 / 2.0).contains(&ms))
            .then(|| Timestamp::from_millis(ms.round() as i64))
    }
    /// `encoder` (or `Encoder`) name.
    pub fn encoder(&self) -> Option<&str> {
        self.get("encoder")
            .or_else(|| self.get("Encoder"))?
            .as_str()
    }
    /// A declared data rate (`videodatarate`/`audiodatarate`, kbit/s) in bit/s, when
    /// positive and representable.
    pub(crate) fn bitrate(&self, key: &str) -> Option<u32> {
        let kbps = self.number(key)?;
        let bps = (kbps * 1000.0).round();
        (bps.is_finite() && bps >= 1.0 && bps <= u32::MAX as f64).then_some(bps as u32)
    }
}

/// A script data tag, decoded as far as the demuxer needs: the handler name and, for
/// `onMetaData`, the metadata.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScriptData {
    /// The first string of the body (`onMetaData`, `@setDataFrame`, `onCuePoint`...).
    pub name: String,
    /// The metadata, for `onMetaData` and `@setDataFrame` + `onMetaData` whose value is an
    /// object or ECMA array.
    pub metadata: Option<FlvMetadata>,
}

impl ScriptData {
    /// Decodes the name (and the metadata when it is `onMetaData`) of a script tag body.
    /// Bytes after what is needed are not examined.
    ///
    /// Errors: malformed AMF0 in the decoded part, or a body that does not start with a
    /// string.
    pub fn parse(body: &[u8]) -> Result<ScriptData> {
        let mut rest = body;
        let at = |rest: &[u8]| (body.len() - rest.len()) as u64;
        let name = name_string(&mut rest)?;
        let is_meta = match name.as_str() {
            "onMetaData" => true,
            // RTMP publishers wrap the metadata: "@setDataFrame", "onMetaData", value.
            "@setDataFrame" if !rest.is_empty() => {
                let base = at(rest);
                name_string(&mut rest).map_err(|e| relocate(e, base))? == "onMetaData"
            }
            _ => false,
        };
        let mut metadata = None;
        if is_meta && !rest.is_empty() {
            let base = at(rest);
            let v = amf0::decode(&mut rest).map_err(|e| relocate(e, base))?;
            if let Value::Object(p) | Value::EcmaArray(p) = v {
                metadata = Some(FlvMetadata { properties: p });
            }
        }
        Ok(ScriptData { name, metadata })
    }
}

fn name_string(rest: &mut &[u8]) -> Result<String> {
    match amf0::decode(rest)? {
        Value::String(s) | Value::LongString(s) => Ok(s),
        _ => Err(Error::malformed("FLV script tag does not start with a name string").at_offset(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn body(values: &[Value]) -> Vec<u8> {
        let mut b = BytesMut::new();
        amf0::encode_all(values, &mut b);
        b.to_vec()
    }

    #[test]
    fn on_metadata_and_wrapper() {
        let meta = Value::ecma_array([
            ("duration", Value::Number(3.0)),
            ("width", Value::Number(320.0)),
            ("height", Value::Number(240.0)),
            ("videodatarate", Value::Number(195.3125)),
            ("framerate", Value::Number(25.0)),
            ("audiodatarate", Value::Number(128.0)),
            ("encoder", Value::from("Lavf59.27.100")),
        ]);
        let s = ScriptData::parse(&body(&["onMetaData".into(), meta.clone()])).unwrap();
        assert_eq!(s.name, "onMetaData");
        let m = s.metadata.unwrap();
        assert_eq!((m.width(), m.height()), (Some(320), Some(240)));
        assert_eq!(m.frame_rate(), Some(25.0));
        assert_eq!(m.video_data_rate(), Some(195.3125));
        assert_eq!(m.bitrate("videodatarate"), Some(195_313));
        assert_eq!(m.bitrate("audiodatarate"), Some(128_000));
        assert_eq!(m.duration(), Some(Timestamp::from_secs(3)));
        assert_eq!(m.encoder(), Some("Lavf59.27.100"));
        assert_eq!(m.audio_sample_rate(), None);

        let s =
            ScriptData::parse(&body(&["@setDataFrame".into(), "onMetaData".into(), meta])).unwrap();
        assert_eq!(s.name, "@setDataFrame");
        assert_eq!(s.metadata.unwrap().width(), Some(320));
    }

    #[test]
    fn other_handlers_and_errors() {
        let s = ScriptData::parse(&body(&[
            "onCuePoint".into(),
            Value::object([("name", "x".into())]),
        ]))
        .unwrap();
        assert_eq!((s.name.as_str(), s.metadata), ("onCuePoint", None));
        // Trailing bytes after the name of another handler are not examined.
        let mut b = body(&["onTextData".into()]);
        b.push(0xff);
        assert!(ScriptData::parse(&b).is_ok());
        // onMetaData with a non-object value: no metadata, no error.
        let s = ScriptData::parse(&body(&["onMetaData".into(), Value::Null])).unwrap();
        assert_eq!(s.metadata, None);
        // Malformed metadata is an error with an offset inside the body.
        let mut b = body(&["onMetaData".into()]);
        b.extend_from_slice(&[0x08, 0, 0, 0, 1, 0, 5, b'w']);
        let e = ScriptData::parse(&b).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Malformed);
        assert!(e.offset().unwrap() >= 13);
        assert!(ScriptData::parse(&body(&[Value::Number(1.0)])).is_err());
        assert!(ScriptData::parse(&[]).is_err());
    }
}
