//! [`Request`] and [`Response`]: the HTTP semantics the origin needs, without a
//! server. The host translates its server's request into a [`Request`] and writes
//! the [`Response`] back (RFC 9110 semantics; framing is the host's business).

use bytes::Bytes;

/// The request method (RFC 9110 §9).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the headers of `GET`, no body (§9.3.2).
    Head,
    /// `OPTIONS`: CORS preflight (§9.3.7).
    Options,
    /// `POST` (§9.3.3): W3C Clear Key licence requests.
    Post,
    /// Any other method (answered with 405).
    Other(String),
}

impl Method {
    /// Parses a method token; methods are case-sensitive (RFC 9110 §9.1).
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            "POST" => Method::Post,
            other => Method::Other(other.to_string()),
        }
    }
}

/// An HTTP request as the origin sees it: a method and the request target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The origin-form request target: the path and the optional query
    /// (`/live/cam/index.m3u8?token=x`), as received (not percent-decoded).
    pub path: String,
    /// Who asks (an address, a session cookie), for counting viewers with
    /// [`super::Origin::handle_counting`]. Default: `None`.
    pub client: Option<String>,
    /// The request content (a `POST`'s licence request). The host bounds it (the
    /// licence endpoint refuses more than
    /// [`clearkey::MAX_REQUEST_LEN`](super::clearkey::MAX_REQUEST_LEN) bytes).
    /// Default: empty.
    pub body: Bytes,
}

impl Request {
    /// A request with `method` for `path` (path and query, as received).
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request {
            method,
            path: path.into(),
            client: None,
            body: Bytes::new(),
        }
    }
    /// Sets [`Request::client`] (builder style).
    #[must_use]
    pub fn with_client(mut self, client: impl Into<String>) -> Self {
        self.client = Some(client.into());
        self
    }
    /// A `GET` of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Request::new(Method::Get, path)
    }
    /// A `POST` of `body` to `path`.
    pub fn post(path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Request {
            body: body.into(),
            ..Request::new(Method::Post, path)
        }
    }
    /// A `HEAD` of `path`.
    pub fn head(path: impl Into<String>) -> Self {
        Request::new(Method::Head, path)
    }
}

/// An HTTP response: status code, header fields in order, body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// Status code (200, 204, 400, 403, 404, 405, 500).
    pub status: u16,
    /// Header fields, names in lower case, in the order to send them.
    pub headers: Vec<(String, String)>,
    /// The body; empty for `HEAD` and `OPTIONS`.
    pub body: Bytes,
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Appends a header field (builder style).
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_headers() {
        assert_eq!(Method::parse("GET"), Method::Get);
        assert_eq!(Method::parse("get"), Method::Other("get".into()));
        let r = Response::new(200).with_header("Content-Type", "text/plain");
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.header("CONTENT-TYPE"), Some("text/plain"));
        assert_eq!(r.header("content-length"), None);
        assert_eq!(Request::head("/x").method, Method::Head);
    }
}
