//! What an inspector captures and hides, shared by every connection of a forward.

/// The value a redacted header carries instead of its own.
pub const REDACTED: &str = "[redacted]";

/// Headers whose values are never kept, whatever the configuration says (lowercase).
pub const ALWAYS_REDACTED: [&str; 4] = [
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// The most body bytes an exchange may keep per message, whatever the configuration asks: 1 MiB.
pub const MAX_BODY_CAPTURE: usize = 1 << 20;

/// The default limit on a message head (start line and header fields): 64 KiB, a little above
/// the 48–64 KiB that common servers (nginx, Go's net/http at 1 MiB excepted) accept by default.
pub const DEFAULT_MAX_HEAD: usize = 64 << 10;

/// Inspector configuration. Build it once per forward and share it in an `Arc`.
///
/// ```
/// let config = ferry_http::Config::default().with_body_capture(4096).with_redacted(["X-Api-Key"]);
/// assert_eq!(config.body_capture(), 4096);
/// assert!(config.is_redacted("x-api-key"));
/// assert!(config.is_redacted("Authorization"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Body bytes kept per message.
    body_capture: usize,
    /// The largest head accepted before the connection is abandoned.
    max_head: usize,
    /// Extra header names to redact, lowercase.
    redact: Vec<String>,
}

impl Default for Config {
    /// No body capture, heads up to [`DEFAULT_MAX_HEAD`], only [`ALWAYS_REDACTED`] redacted.
    fn default() -> Self {
        Self {
            body_capture: 0,
            max_head: DEFAULT_MAX_HEAD,
            redact: Vec::new(),
        }
    }
}

impl Config {
    /// Keeps the first `bytes` of each request and response body (de-chunked), at most
    /// [`MAX_BODY_CAPTURE`]. Default: 0, no body is kept.
    #[must_use]
    pub fn with_body_capture(mut self, bytes: usize) -> Self {
        self.body_capture = bytes.min(MAX_BODY_CAPTURE);
        self
    }

    /// Abandons a connection whose message head (or chunked trailer section) grows past
    /// `bytes`, clamped to 1 KiB ..= 1 MiB. Default: [`DEFAULT_MAX_HEAD`].
    #[must_use]
    pub fn with_max_head(mut self, bytes: usize) -> Self {
        self.max_head = bytes.clamp(1 << 10, 1 << 20);
        self
    }

    /// Redacts these headers too (case-insensitive), in requests, responses and trailers.
    #[must_use]
    pub fn with_redacted<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for name in names {
            let name = name.as_ref().trim().to_ascii_lowercase();
            if !name.is_empty() && !self.is_redacted(&name) {
                self.redact.push(name);
            }
        }
        self
    }

    /// Body bytes kept per message.
    pub fn body_capture(&self) -> usize {
        self.body_capture
    }

    /// The largest head accepted.
    pub fn max_head(&self) -> usize {
        self.max_head
    }

    /// Whether a header of this name has its value replaced by [`REDACTED`].
    pub fn is_redacted(&self, name: &str) -> bool {
        ALWAYS_REDACTED
            .iter()
            .any(|always| name.eq_ignore_ascii_case(always))
            || self
                .redact
                .iter()
                .any(|extra| name.eq_ignore_ascii_case(extra))
    }
}
