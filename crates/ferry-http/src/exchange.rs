//! What one request/response pair records.
//!
//! An [`Exchange`] is plain data: the inspector builds it, the ring stores it, the UI receives
//! it as camelCase JSON. Secrets never reach it: redacted headers carry [`REDACTED`] from the
//! moment they are parsed. Field names are part of the UI's contract; add fields, don't rename.
//!
//! [`REDACTED`]: crate::REDACTED

use std::fmt;
use std::mem::size_of;

use serde::{Deserialize, Serialize};

/// One request and its response, as seen on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exchange {
    /// Assigned by [`Ring::push`](crate::Ring::push), increasing per ring; 0 before that.
    pub id: u64,
    /// When the request's first byte arrived, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// The request method, as sent (`GET`, `POST`, …).
    pub method: String,
    /// The request target as sent: usually path and query, absolute for proxy requests, `*`
    /// for `OPTIONS *`, `host:port` for `CONNECT`.
    pub target: String,
    /// The final response's status code; `None` when no final response head was seen.
    pub status: Option<u16>,
    /// The final response's reason phrase.
    pub reason: Option<String>,
    /// From the request's first byte to the response's last byte, in milliseconds; `None`
    /// when the response did not end.
    pub duration_ms: Option<f64>,
    /// The duration split into send, wait and receive; `None` with the duration.
    pub timings: Option<Timings>,
    /// The request.
    pub request: Message,
    /// The final response; `None` when no final response head was seen.
    pub response: Option<Message>,
    /// The status codes of interim (1xx) responses before the final one, in order: `[100]`
    /// after `Expect: 100-continue`.
    pub interim: Vec<u16>,
    /// The protocol the connection switched to (`websocket`, `h2c`, or `CONNECT` for a
    /// tunnel); the inspector parsed nothing after this exchange.
    pub upgrade: Option<String>,
    /// The connection ended, or parsing stopped, before the request or the response did.
    pub incomplete: bool,
}

/// A request or response head and its body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The HTTP version on the start line.
    pub version: Version,
    /// Header fields in the order sent, names as sent, secrets redacted.
    pub headers: Vec<Header>,
    /// Trailer fields after a chunked body, secrets redacted.
    pub trailers: Vec<Header>,
    /// Bytes of the head on the wire: start line, header fields and the empty line.
    pub head_size: u64,
    /// Bytes of the body on the wire, chunk framing and trailers included.
    pub body_size: u64,
    /// Bytes of the body's payload: `body_size` less any chunk framing.
    pub content_size: u64,
    /// The first bytes of the payload, up to the configured capture (base64 in JSON).
    #[serde(rename = "bodyBase64", with = "base64_bytes")]
    pub body: Vec<u8>,
    /// The payload is longer than `body` (always the case for a non-empty body when capture
    /// is off).
    pub truncated: bool,
    /// The message's end was seen: all of its body, as its framing said.
    pub complete: bool,
}

/// A header field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// The name as sent.
    pub name: String,
    /// The value (lossily decoded as UTF-8), or [`REDACTED`](crate::REDACTED).
    pub value: String,
    /// The value was replaced.
    #[serde(default, skip_serializing_if = "is_false")]
    pub redacted: bool,
}

/// An HTTP/1.x version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Version {
    /// `HTTP/1.0`.
    #[serde(rename = "HTTP/1.0")]
    Http10,
    /// `HTTP/1.1`.
    #[default]
    #[serde(rename = "HTTP/1.1")]
    Http11,
}

/// Where an exchange's time went, in milliseconds. The three add up to the duration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    /// From the request's first byte to its last.
    pub send_ms: f64,
    /// From the request's last byte to the response's first.
    pub wait_ms: f64,
    /// From the response's first byte to its last.
    pub receive_ms: f64,
}

// === impl Exchange ===

impl Exchange {
    /// The first value of the named request header (case-insensitive).
    pub fn request_header(&self, name: &str) -> Option<&str> {
        self.request.header(name)
    }

    /// The first value of the named response header (case-insensitive).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response
            .as_ref()
            .and_then(|response| response.header(name))
    }

    /// Roughly how much memory the exchange holds, for the ring's byte bound: the struct,
    /// its strings and header lists, and the captured bodies.
    pub fn approx_bytes(&self) -> usize {
        let strings = self.method.len()
            + self.target.len()
            + self.reason.as_ref().map_or(0, String::len)
            + self.upgrade.as_ref().map_or(0, String::len)
            + self.interim.len() * size_of::<u16>();
        size_of::<Self>()
            + strings
            + self.request.approx_bytes()
            + self.response.as_ref().map_or(0, Message::approx_bytes)
    }
}

// === impl Message ===

impl Message {
    /// The first value of the named header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Whether `body` holds the whole payload.
    pub fn body_is_whole(&self) -> bool {
        self.complete && !self.truncated
    }

    fn approx_bytes(&self) -> usize {
        let fields = |list: &[Header]| {
            list.iter()
                .map(|h| size_of::<Header>() + h.name.len() + h.value.len())
                .sum::<usize>()
        };
        size_of::<Self>() + fields(&self.headers) + fields(&self.trailers) + self.body.len()
    }

    /// Counts payload bytes and keeps as many as fit under `cap`.
    pub(crate) fn add_payload(&mut self, bytes: &[u8], cap: usize) {
        self.content_size += bytes.len() as u64;
        let keep = cap.saturating_sub(self.body.len()).min(bytes.len());
        self.body.extend_from_slice(&bytes[..keep]);
        if keep < bytes.len() {
            self.truncated = true;
        }
    }
}

// === impl Header ===

impl Header {
    /// A header kept as sent.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            redacted: false,
        }
    }

    /// A header whose value was replaced by [`REDACTED`](crate::REDACTED).
    pub fn redacted(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: crate::REDACTED.to_owned(),
            redacted: true,
        }
    }
}

// === impl Version ===

impl Version {
    /// The version as written on a start line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Bytes as a standard base64 string in JSON.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
