//! DASH events (ISO/IEC 23009-1 §5.10): [`EventStream`]s of the Period, written in the
//! MPD, and [`InbandEventStream`] descriptors announcing events that travel in `emsg`
//! boxes of the segments ([`crate::container::fmp4::Emsg`]). SCTE-35 cues use the
//! schemes of SCTE 214-1 (§6.7).

use bytes::Bytes;

use super::xml;
use crate::container::fmp4::{Emsg, EmsgTime, EMSG_DURATION_UNKNOWN};
use crate::crypto::base64;
use crate::error::{Error, Result};

/// SCTE-35 in an MPD `EventStream` (SCTE 214-1 §6.7.4): each `Event` holds a
/// `scte35:Signal` with the whole `splice_info_section` in base64 in `scte35:Binary`.
pub const SCHEME_SCTE35_XML_BIN: &str = "urn:scte:scte35:2014:xml+bin";
/// SCTE-35 in `emsg` boxes (SCTE 214-3, SCTE 214-1 §6.7): the
/// `message_data` is one whole `splice_info_section`; the `InbandEventStream` of the
/// AdaptationSet announces it.
pub const SCHEME_SCTE35_BIN: &str = "urn:scte:scte35:2013:bin";
/// Namespace of `scte35:Signal` and `scte35:Binary` (the 2016 XML schema of
/// SCTE 35), declared on the `MPD` element when an event uses it.
pub const SCTE35_NAMESPACE: &str = "http://www.scte.org/schemas/35/2016";

/// What a [`DashEvent`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventMessage {
    /// One whole SCTE-35 `splice_info_section` (SCTE 35 §9.6, CRC included), written as
    /// `<scte35:Signal><scte35:Binary>` base64 `</scte35:Binary></scte35:Signal>`
    /// (SCTE 214-1 §6.7.4). Only in a stream of [`SCHEME_SCTE35_XML_BIN`].
    Scte35Binary(Bytes),
    /// Text content of the `Event` element, escaped for XML, for other schemes.
    Text(String),
}

/// One `Event` of an [`EventStream`] (ISO/IEC 23009-1 §5.10.2).
///
/// Times are ticks of the stream's [`EventStream::timescale`]; the event starts at
/// `(presentation_time - presentation_time_offset) / timescale` seconds after the
/// Period start.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DashEvent {
    /// `@id`: identifies the event in its stream; the same event repeated in later MPD
    /// versions keeps its id. `xs:unsignedInt` in the MPD schema: at most `u32::MAX`.
    pub id: u64,
    /// `@presentationTime` in ticks.
    pub presentation_time: u64,
    /// `@duration` in ticks; `None`: unknown (not written).
    pub duration: Option<u64>,
    /// The content.
    pub message: EventMessage,
}

impl DashEvent {
    /// An event without duration.
    pub fn new(id: u64, presentation_time: u64, message: EventMessage) -> Self {
        DashEvent {
            id,
            presentation_time,
            duration: None,
            message,
        }
    }

    /// Sets [`DashEvent::duration`] in ticks (builder style).
    #[must_use]
    pub fn with_duration(mut self, ticks: u64) -> Self {
        self.duration = Some(ticks);
        self
    }

    fn write(&self, out: &mut String, scheme: &str) -> Result<()> {
        if self.id > u64::from(u32::MAX) {
            return Err(Error::usage("Event@id above 2^32 - 1 (xs:unsignedInt)"));
        }
        out.push_str("      <Event");
        xml::attr_num(out, "presentationTime", self.presentation_time);
        if let Some(d) = self.duration {
            xml::attr_num(out, "duration", d);
        }
        xml::attr_num(out, "id", self.id);
        let scte35 = scheme == SCHEME_SCTE35_XML_BIN;
        match &self.message {
            EventMessage::Scte35Binary(section) => {
                if !scte35 {
                    return Err(Error::usage(
                        "SCTE-35 binary event outside a urn:scte:scte35:2014:xml+bin stream",
                    ));
                }
                if section.is_empty() {
                    return Err(Error::usage("empty SCTE-35 section"));
                }
                out.push_str(">\n        <scte35:Signal>\n          <scte35:Binary>");
                out.push_str(&base64::standard(section));
                out.push_str("</scte35:Binary>\n        </scte35:Signal>\n      </Event>\n");
            }
            EventMessage::Text(text) => {
                if scte35 {
                    return Err(Error::usage(
                        "text event in a urn:scte:scte35:2014:xml+bin stream",
                    ));
                }
                if text.is_empty() {
                    out.push_str("/>\n");
                } else {
                    out.push('>');
                    xml::escaped(out, text)?;
                    out.push_str("</Event>\n");
                }
            }
        }
        Ok(())
    }
}

/// An `EventStream` of the Period (ISO/IEC 23009-1 §5.10.2): events of one scheme,
/// written in the MPD before the AdaptationSets.
///
/// ```
/// use bytes::Bytes;
/// use strom::package::dash::{DashEvent, EventMessage, EventStream, SCHEME_SCTE35_XML_BIN};
///
/// let section = Bytes::from_static(&[0xfc, 0x30, 0x11, 0x00]); // cut short
/// let mut stream = EventStream::new(SCHEME_SCTE35_XML_BIN, 90_000);
/// stream.events.push(
///     DashEvent::new(7, 900_000, EventMessage::Scte35Binary(section)).with_duration(2_700_000),
/// );
/// assert!(stream.uses_scte35_namespace());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct EventStream {
    /// `@schemeIdUri`, e.g. [`SCHEME_SCTE35_XML_BIN`]. Not empty.
    pub scheme_id_uri: String,
    /// `@value`: a sub-scheme. Default: `None`.
    pub value: Option<String>,
    /// `@timescale`: ticks per second of the events' times and durations. Not zero.
    pub timescale: u32,
    /// `@presentationTimeOffset`: the event time of the Period start, in ticks; written
    /// when not zero. Default: 0.
    pub presentation_time_offset: u64,
    /// The events, by non-decreasing presentation time, ids unique.
    pub events: Vec<DashEvent>,
}

impl EventStream {
    /// An empty stream of `scheme_id_uri` counting `timescale` ticks per second.
    pub fn new(scheme_id_uri: impl Into<String>, timescale: u32) -> Self {
        EventStream {
            scheme_id_uri: scheme_id_uri.into(),
            value: None,
            timescale,
            presentation_time_offset: 0,
            events: Vec::new(),
        }
    }

    /// Whether the stream writes `scte35:` elements (so the MPD declares
    /// [`SCTE35_NAMESPACE`]).
    pub fn uses_scte35_namespace(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e.message, EventMessage::Scte35Binary(_)))
    }

    /// Appends the `EventStream` element, indented for a child of `Period`.
    pub(super) fn write(&self, out: &mut String) -> Result<()> {
        if self.scheme_id_uri.is_empty() {
            return Err(Error::usage("EventStream@schemeIdUri is empty"));
        }
        if self.timescale == 0 {
            return Err(Error::usage("EventStream@timescale is zero"));
        }
        out.push_str("    <EventStream");
        xml::attr(out, "schemeIdUri", &self.scheme_id_uri)?;
        if let Some(v) = &self.value {
            xml::attr(out, "value", v)?;
        }
        xml::attr_num(out, "timescale", self.timescale);
        if self.presentation_time_offset != 0 {
            xml::attr_num(out, "presentationTimeOffset", self.presentation_time_offset);
        }
        if self.events.is_empty() {
            out.push_str("/>\n");
            return Ok(());
        }
        out.push_str(">\n");
        let mut ids = std::collections::HashSet::new();
        let mut last = 0u64;
        for e in &self.events {
            if e.presentation_time < last {
                return Err(Error::usage(format!(
                    "Event {} before the event preceding it (presentation times must not decrease)",
                    e.id
                )));
            }
            last = e.presentation_time;
            if !ids.insert(e.id) {
                return Err(Error::usage(format!("duplicate Event id {}", e.id)));
            }
            e.write(out, &self.scheme_id_uri)
                .map_err(|err| err.context(format!("Event {}", e.id)))?;
        }
        out.push_str("    </EventStream>\n");
        Ok(())
    }
}

/// An `InbandEventStream` descriptor (ISO/IEC 23009-1 §5.10.3.2): the segments of the
/// AdaptationSet carry `emsg` boxes of this scheme and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct InbandEventStream {
    /// `@schemeIdUri`, e.g. [`SCHEME_SCTE35_BIN`]. Not empty.
    pub scheme_id_uri: String,
    /// `@value`; `None`: not written (any value).
    pub value: Option<String>,
}

impl InbandEventStream {
    /// A descriptor of `scheme_id_uri` and `value`.
    pub fn new(scheme_id_uri: impl Into<String>, value: Option<String>) -> Self {
        InbandEventStream {
            scheme_id_uri: scheme_id_uri.into(),
            value,
        }
    }

    /// The descriptor of SCTE-35 cues in `emsg` boxes: [`SCHEME_SCTE35_BIN`], no value.
    pub fn scte35() -> Self {
        Self::new(SCHEME_SCTE35_BIN, None)
    }

    /// Appends the element, indented for a child of `AdaptationSet`.
    pub(super) fn write(&self, out: &mut String) -> Result<()> {
        if self.scheme_id_uri.is_empty() {
            return Err(Error::usage("InbandEventStream@schemeIdUri is empty"));
        }
        out.push_str("      <InbandEventStream");
        xml::attr(out, "schemeIdUri", &self.scheme_id_uri)?;
        if let Some(v) = &self.value {
            xml::attr(out, "value", v)?;
        }
        out.push_str("/>\n");
        Ok(())
    }
}

/// A version 1 `emsg` box carrying one SCTE-35 `splice_info_section` in band
/// ([`SCHEME_SCTE35_BIN`], empty value; SCTE 214-3).
///
/// `presentation_time` is on the track's media timeline (that of `tfdt`), in
/// `timescale` ticks; `duration` (ticks) `None` writes
/// [`EMSG_DURATION_UNKNOWN`]. The box goes before the `moof` of the segment that
/// starts at or before the cue ([`crate::container::fmp4::emsg_insert_offset`]).
///
/// Errors ([`Error::usage`]): an empty section, a zero timescale, a duration that does
/// not fit the 32-bit field (`0xFFFFFFFF` itself means unknown, so it is refused too).
pub fn scte35_emsg(
    timescale: u32,
    presentation_time: u64,
    duration: Option<u64>,
    id: u32,
    section: Bytes,
) -> Result<Emsg> {
    if section.is_empty() {
        return Err(Error::usage("empty SCTE-35 section"));
    }
    if timescale == 0 {
        return Err(Error::usage("emsg timescale is zero"));
    }
    let duration = match duration {
        None => EMSG_DURATION_UNKNOWN,
        Some(d) => u32::try_from(d)
            .ok()
            .filter(|&d| d != EMSG_DURATION_UNKNOWN)
            .ok_or_else(|| Error::usage("emsg duration does not fit 32 bits"))?,
    };
    Ok(Emsg::new(
        SCHEME_SCTE35_BIN,
        "",
        timescale,
        EmsgTime::Absolute(presentation_time),
        section,
    )
    .with_id(id)
    .with_duration(duration))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn stream_xml(s: &EventStream) -> Result<String> {
        let mut out = String::new();
        s.write(&mut out)?;
        Ok(out)
    }

    #[test]
    fn golden_scte35_stream() {
        let mut s = EventStream::new(SCHEME_SCTE35_XML_BIN, 90_000);
        s.presentation_time_offset = 90;
        s.events.push(
            DashEvent::new(
                1,
                900_090,
                EventMessage::Scte35Binary(Bytes::from_static(b"foob")),
            )
            .with_duration(2_700_000),
        );
        s.events.push(DashEvent::new(
            2,
            900_090,
            EventMessage::Scte35Binary(Bytes::from_static(b"\xfc\x30")),
        ));
        assert_eq!(
            stream_xml(&s).unwrap(),
            r#"    <EventStream schemeIdUri="urn:scte:scte35:2014:xml+bin" timescale="90000" presentationTimeOffset="90">
      <Event presentationTime="900090" duration="2700000" id="1">
        <scte35:Signal>
          <scte35:Binary>Zm9vYg==</scte35:Binary>
        </scte35:Signal>
      </Event>
      <Event presentationTime="900090" id="2">
        <scte35:Signal>
          <scte35:Binary>/DA=</scte35:Binary>
        </scte35:Signal>
      </Event>
    </EventStream>
"#
        );
        assert!(s.uses_scte35_namespace());
    }

    #[test]
    fn golden_text_stream_and_inband() {
        let mut s = EventStream::new("urn:example:cue", 1000);
        s.value = Some("a&b".into());
        s.events
            .push(DashEvent::new(0, 0, EventMessage::Text("<x> & y".into())));
        s.events.push(DashEvent::new(
            u64::from(u32::MAX),
            5,
            EventMessage::Text(String::new()),
        ));
        assert_eq!(
            stream_xml(&s).unwrap(),
            r#"    <EventStream schemeIdUri="urn:example:cue" value="a&amp;b" timescale="1000">
      <Event presentationTime="0" id="0">&lt;x&gt; &amp; y</Event>
      <Event presentationTime="5" id="4294967295"/>
    </EventStream>
"#
        );
        assert!(!s.uses_scte35_namespace());
        assert_eq!(
            stream_xml(&EventStream::new("urn:x", 1)).unwrap(),
            "    <EventStream schemeIdUri=\"urn:x\" timescale=\"1\"/>\n"
        );
        let mut out = String::new();
        InbandEventStream::scte35().write(&mut out).unwrap();
        InbandEventStream::new("urn:x", Some("1".into()))
            .write(&mut out)
            .unwrap();
        assert_eq!(
            out,
            "      <InbandEventStream schemeIdUri=\"urn:scte:scte35:2013:bin\"/>\n      \
             <InbandEventStream schemeIdUri=\"urn:x\" value=\"1\"/>\n"
        );
    }

    #[test]
    fn inconsistent_streams_are_usage_errors() {
        let scte =
            |id, t| DashEvent::new(id, t, EventMessage::Scte35Binary(Bytes::from_static(b"x")));
        let text = |id, t| DashEvent::new(id, t, EventMessage::Text("t".into()));
        let with = |scheme: &str, timescale, events: Vec<DashEvent>| {
            let mut s = EventStream::new(scheme, timescale);
            s.events = events;
            s
        };
        for (s, needle) in [
            (with("", 1, vec![]), "schemeIdUri is empty"),
            (with("urn:x", 0, vec![]), "timescale is zero"),
            (
                with("urn:x", 1, vec![text(1, 5), text(2, 4)]),
                "must not decrease",
            ),
            (
                with("urn:x", 1, vec![text(1, 5), text(1, 6)]),
                "duplicate Event id 1",
            ),
            (with("urn:x", 1, vec![text(1 << 32, 0)]), "xs:unsignedInt"),
            (with("urn:x", 1, vec![scte(1, 0)]), "outside a urn:scte"),
            (
                with(SCHEME_SCTE35_XML_BIN, 1, vec![text(1, 0)]),
                "text event",
            ),
            (
                with(
                    SCHEME_SCTE35_XML_BIN,
                    1,
                    vec![DashEvent::new(
                        3,
                        0,
                        EventMessage::Scte35Binary(Bytes::new()),
                    )],
                ),
                "Event 3: usage error: empty SCTE-35 section",
            ),
            (
                with(
                    "urn:x",
                    1,
                    vec![DashEvent::new(1, 0, EventMessage::Text("\u{1}".into()))],
                ),
                "XML 1.0 forbids",
            ),
        ] {
            let e = stream_xml(&s).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage);
            assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
        }
        let e = InbandEventStream::new("", None)
            .write(&mut String::new())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
    }

    #[test]
    fn scte35_emsg_box() {
        let section = Bytes::from_static(b"\xfc\x30\x11");
        let e = scte35_emsg(90_000, 1 << 33, Some(180_000), 5, section.clone()).unwrap();
        assert_eq!(e.scheme_id_uri, SCHEME_SCTE35_BIN);
        assert_eq!(
            (e.version(), e.time, e.event_duration, e.id),
            (1, EmsgTime::Absolute(1 << 33), 180_000, 5)
        );
        assert_eq!(e.message_data, section);
        let e = scte35_emsg(90_000, 0, None, 5, section.clone()).unwrap();
        assert_eq!(e.event_duration, EMSG_DURATION_UNKNOWN);
        for bad in [
            scte35_emsg(90_000, 0, Some(1 << 32), 1, section.clone()),
            scte35_emsg(90_000, 0, Some(u64::from(u32::MAX)), 1, section.clone()),
            scte35_emsg(0, 0, None, 1, section.clone()),
            scte35_emsg(90_000, 0, None, 1, Bytes::new()),
        ] {
            assert_eq!(bad.unwrap_err().kind(), ErrorKind::Usage);
        }
    }
}
