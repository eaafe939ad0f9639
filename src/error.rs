//! The one public error type of the crate.
//!
//! Every fallible function returns [`Error`]. Callers branch on [`Error::kind`]; the
//! message carries context (what failed, byte offset, track, media time) for humans.
//!
//! ```
//! use strom::{Error, ErrorKind};
//! let e = Error::malformed("FLV tag size exceeds limit").at_offset(1234);
//! assert_eq!(e.kind(), ErrorKind::Malformed);
//! assert!(e.to_string().contains("offset 1234"));
//! ```

use std::borrow::Cow;
use std::fmt;

/// What kind of failure an [`Error`] is; stable for callers to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input violates its specification (bad size, bad marker, bad CRC...).
    Malformed,
    /// The input is valid but uses a feature this crate does not handle.
    Unsupported,
    /// The input exceeds a configured or built-in limit (length, count, window).
    Limit,
    /// The caller broke an API contract (pushed after finish, wrong track...).
    Usage,
    /// A cryptographic operation failed (bad key, bad padding).
    Crypto,
    /// The host's storage failed (a full disk, a file over its size limit, a
    /// permission or device error, an object store that does not answer in time):
    /// raised only by the storage adapters ([`crate::origin::DiskStore`], and the
    /// object store of the `object-store` feature); the message names the operation,
    /// the path or key and the underlying error.
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Malformed => "malformed input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Limit => "limit exceeded",
            ErrorKind::Usage => "usage error",
            ErrorKind::Crypto => "crypto error",
            ErrorKind::Io => "I/O error",
        })
    }
}

/// The crate's error: a [`ErrorKind`], a static message and optional context.
///
/// Hot parse paths build it from a `&'static str` (no allocation); context such as
/// the byte offset or the stage name is added as the error crosses layers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    msg: Cow<'static, str>,
    offset: Option<u64>,
    context: Vec<Cow<'static, str>>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Outermost context first: "flv demuxer: tag 12: malformed input: ...".
        for c in self.context.iter().rev() {
            write!(f, "{c}: ")?;
        }
        write!(f, "{}: {}", self.kind, self.msg)?;
        if let Some(o) = self.offset {
            write!(f, " (at byte offset {o})")?;
        }
        Ok(())
    }
}

impl Error {
    /// A new error of `kind` with message `msg`.
    pub fn new(kind: ErrorKind, msg: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            msg: msg.into(),
            offset: None,
            context: Vec::new(),
        }
    }
    /// Shorthand for [`ErrorKind::Malformed`].
    pub fn malformed(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Malformed, msg)
    }
    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unsupported, msg)
    }
    /// Shorthand for [`ErrorKind::Limit`].
    pub fn limit(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Limit, msg)
    }
    /// Shorthand for [`ErrorKind::Usage`].
    pub fn usage(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Usage, msg)
    }
    /// Shorthand for [`ErrorKind::Crypto`].
    pub fn crypto(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Crypto, msg)
    }
    /// Shorthand for [`ErrorKind::Io`].
    pub fn io(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Io, msg)
    }
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The innermost message, without context.
    pub fn message(&self) -> &str {
        &self.msg
    }
    /// The byte offset in the input stream where the failure was detected, if known.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }
    /// Records the byte offset (absolute in the input stream) of the failure.
    /// Keeps the first offset recorded, which is the most precise.
    #[must_use]
    pub fn at_offset(mut self, offset: u64) -> Self {
        self.offset.get_or_insert(offset);
        self
    }
    /// Adds a layer of context (a stage, a track, a media time) as the error crosses layers.
    #[must_use]
    pub fn context(mut self, ctx: impl Into<Cow<'static, str>>) -> Self {
        self.context.push(ctx.into());
        self
    }
}

/// Shorthand for `Result<T, strom::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_context_and_offset() {
        let e = Error::limit("tag too large")
            .at_offset(9)
            .at_offset(12)
            .context("flv demuxer");
        assert_eq!(e.kind(), ErrorKind::Limit);
        assert_eq!(e.offset(), Some(9));
        assert_eq!(
            e.to_string(),
            "flv demuxer: limit exceeded: tag too large (at byte offset 9)"
        );
    }
}
