//! The per-connection inspector: a state machine fed copies of the relayed bytes.
//!
//! Requests are parsed from the client's bytes and queued; responses are parsed from the
//! server's bytes and paired with the oldest request still waiting for one, so keep-alive and
//! pipelining pair in order. An exchange is handed out once its request and its response have
//! both ended, in the order the requests came.
//!
//! The forward must feed each chunk before it writes it on: then a server can never answer
//! bytes the inspector has not seen, and server bytes that arrive before any client byte mean
//! a protocol where the server speaks first, which HTTP is not.
//!
//! Body bytes are never copied beyond the capture limit, and every byte is looked at a
//! constant number of times: feeding is O(bytes). Buffers are bounded by the head limit.

use std::collections::VecDeque;
use std::mem;
use std::sync::Arc;
use std::time::Instant;

use crate::body::BodyDecoder;
use crate::clock::{Clock, Stamp, SystemClock};
use crate::config::Config;
use crate::exchange::{Exchange, Message, Timings};
use crate::head::{self, Framing, HeadReader, RequestHead, ResponseHead, Scan};

/// Requests waiting for their responses before the connection is abandoned. Pipelining
/// clients keep a handful in flight; this bounds what a connection can hold.
const MAX_PENDING: usize = 64;

/// Interim responses recorded per exchange; a server may send any number.
const MAX_INTERIM: usize = 16;

/// Where a connection's parsing stands. Every state but [`Detecting`](State::Detecting) and
/// [`Http`](State::Http) is terminal: bytes are passed through unparsed from then on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// No request has been recognised yet.
    Detecting,
    /// Requests and responses are being parsed.
    Http,
    /// The connection switched protocols (101 Switching Protocols, or a CONNECT tunnel) to
    /// the named protocol; the switching exchange was recorded.
    Upgraded(String),
    /// The client's first bytes were not an HTTP/1.x request.
    NotHttp(NotHttp),
    /// Parsing stopped part way through the connection.
    Abandoned(Abandon),
}

/// Why a connection is not HTTP/1.x.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotHttp {
    /// The client started a TLS handshake.
    #[error("the client speaks TLS")]
    Tls,
    /// The client sent the HTTP/2 connection preface (h2c with prior knowledge).
    #[error("the client speaks HTTP/2 (connection preface)")]
    Http2Preface,
    /// The server sent bytes before the client sent any.
    #[error("the server spoke first")]
    ServerFirst,
    /// The client's first bytes are not a request line.
    #[error("the client's first bytes are not an HTTP/1.x request ({detail})")]
    Malformed {
        /// What the parser objected to.
        detail: String,
    },
}

/// Why parsing stopped part way through a connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Abandon {
    /// A request head, response head or trailer section grew past the limit.
    #[error("a message head is larger than {limit} bytes")]
    HeadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A request did not parse.
    #[error("malformed request: {detail}")]
    MalformedRequest {
        /// What the parser objected to.
        detail: String,
    },
    /// A response did not parse.
    #[error("malformed response: {detail}")]
    MalformedResponse {
        /// What the parser objected to.
        detail: String,
    },
    /// The server sent more than a head's worth of bytes with no request to answer.
    #[error("the server sent a response to no request")]
    UnexpectedResponse,
    /// The client sent more than a head's worth of bytes after asking to switch protocols,
    /// before the server said whether it would.
    #[error("the client sent more than {limit} bytes before its protocol switch was answered")]
    UpgradeUnanswered {
        /// The configured head limit.
        limit: usize,
    },
    /// Too many requests were waiting for their responses.
    #[error("more than {limit} requests waiting for responses")]
    TooManyPending {
        /// The limit.
        limit: usize,
    },
}

/// Watches one connection. Create one per accepted connection, feed it both directions, then
/// [`finish`](Self::finish) it.
///
/// ```
/// use std::sync::Arc;
/// use ferry_http::{Config, Inspector, State};
///
/// let mut inspector = Inspector::new(Arc::new(Config::default()));
/// assert!(inspector.client_bytes(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").is_empty());
/// let done = inspector.server_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
/// assert_eq!(done[0].target, "/hello");
/// assert_eq!(done[0].status, Some(200));
/// assert_eq!(inspector.state(), &State::Http);
/// assert!(inspector.finish().is_empty());
/// ```
pub struct Inspector {
    config: Arc<Config>,
    clock: Box<dyn Clock>,
    state: State,
    /// The clock reading for the chunk being fed; read at most once per chunk, and only when
    /// a message starts or ends in it.
    now: Option<Stamp>,
    /// The client has sent at least one byte.
    client_spoke: bool,
    /// When the request whose head is accumulating began.
    request_started: Option<Stamp>,
    request_head: HeadReader,
    request_phase: RequestPhase,
    response_head: HeadReader,
    /// The body of the response being read, once its head is parsed.
    response_body: Option<BodyDecoder>,
    /// Requests whose exchange is not handed out yet, oldest first. Requests are parsed into
    /// the back; responses are parsed into the oldest one without a final response.
    pending: VecDeque<Pending>,
    /// Server bytes that arrived before the head of the request they answer was complete
    /// (a server may answer a bad head early). At most a head's worth.
    stalled: Vec<u8>,
    /// Client bytes after a request that asked to switch protocols, kept until the response
    /// says whether it did. At most a head's worth.
    held: Vec<u8>,
    /// Exchanges finished by the current call.
    out: Vec<Exchange>,
}

/// What the client's next bytes are.
#[derive(Debug)]
enum RequestPhase {
    /// A request head.
    Head,
    /// The body of the newest pending request.
    Body(BodyDecoder),
    /// Unknown until the server answers a request to switch protocols: held, not parsed.
    Held,
}

/// A request and what has been seen of its response.
#[derive(Debug)]
struct Pending {
    started: Stamp,
    method: String,
    target: String,
    request: Message,
    request_end: Option<Instant>,
    /// The protocol the request asked to switch to, or `CONNECT`.
    switch: Option<String>,
    interim: Vec<u16>,
    /// When the first byte of any response head to this request arrived.
    response_start: Option<Instant>,
    status: Option<u16>,
    reason: Option<String>,
    response: Option<Message>,
    response_end: Option<Instant>,
    upgrade: Option<String>,
}

/// Why the current call stops parsing for good.
enum Halt {
    NotHttp(NotHttp),
    Abandon(Abandon),
    Upgraded(String),
}

// === impl State ===

impl State {
    /// Whether the connection's bytes are no longer parsed (every state after detection but
    /// [`Http`](Self::Http)).
    pub fn is_passthrough(&self) -> bool {
        !matches!(self, Self::Detecting | Self::Http)
    }
}

// === impl Inspector ===

impl Inspector {
    /// An inspector reading the system clocks.
    pub fn new(config: Arc<Config>) -> Self {
        Self::with_clock(config, Box::new(SystemClock))
    }

    /// An inspector reading `clock` (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(config: Arc<Config>, clock: Box<dyn Clock>) -> Self {
        Self {
            config,
            clock,
            state: State::Detecting,
            now: None,
            client_spoke: false,
            request_started: None,
            request_head: HeadReader::default(),
            request_phase: RequestPhase::Head,
            response_head: HeadReader::default(),
            response_body: None,
            pending: VecDeque::new(),
            stalled: Vec::new(),
            held: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Where parsing stands. Once [`State::is_passthrough`] is true it never changes again.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Observes a chunk relayed client→pod. Returns the exchanges it finished (rarely more
    /// than one; usually none, since exchanges end with their responses).
    #[must_use = "finished exchanges are returned, not kept"]
    pub fn client_bytes(&mut self, chunk: &[u8]) -> Vec<Exchange> {
        if !self.state.is_passthrough() && !chunk.is_empty() {
            self.now = None;
            if let Err(halt) = self.feed_client(chunk) {
                self.halt(halt);
            }
        }
        mem::take(&mut self.out)
    }

    /// Observes a chunk relayed pod→client. Returns the exchanges it finished.
    #[must_use = "finished exchanges are returned, not kept"]
    pub fn server_bytes(&mut self, chunk: &[u8]) -> Vec<Exchange> {
        if !self.state.is_passthrough() && !chunk.is_empty() {
            self.now = None;
            if let Err(halt) = self.feed_server(chunk) {
                self.halt(halt);
            }
        }
        mem::take(&mut self.out)
    }

    /// The connection ended. Returns the exchanges that ended with it: a response delimited
    /// by the close, and every request still pending, marked incomplete.
    #[must_use = "finished exchanges are returned, not kept"]
    pub fn finish(mut self) -> Vec<Exchange> {
        self.now = None;
        if matches!(self.response_body, Some(BodyDecoder::UntilClose)) {
            self.response_body = None;
            let end = self.stamp().at;
            if let Some(pending) = self.responding_mut() {
                if let Some(response) = &mut pending.response {
                    response.complete = true;
                }
                pending.response_end = Some(end);
            }
            self.emit_ready();
        }
        let rest: Vec<_> = self.pending.drain(..).collect();
        self.out
            .extend(rest.into_iter().map(|pending| pending.into_exchange(true)));
        self.out
    }

    // --- The client's bytes ---

    fn feed_client(&mut self, chunk: &[u8]) -> Result<(), Halt> {
        self.client_spoke = true;
        let max_head = self.config.max_head();
        let mut pos = 0;
        while pos < chunk.len() {
            let rest = &chunk[pos..];
            match &mut self.request_phase {
                RequestPhase::Held => {
                    if self.held.len() + rest.len() > max_head {
                        return Err(Halt::Abandon(Abandon::UpgradeUnanswered {
                            limit: max_head,
                        }));
                    }
                    self.held.extend_from_slice(rest);
                    return Ok(());
                }
                RequestPhase::Body(decoder) => {
                    let Some(pending) = self.pending.back_mut() else {
                        return Err(malformed_request("a request body with no request"));
                    };
                    let cap = self.config.body_capture();
                    let decoded = decoder.decode(rest, max_head, &mut |bytes| {
                        pending.request.add_payload(bytes, cap)
                    });
                    pending.request.body_size += decoded.consumed as u64;
                    if let Some(error) = decoded.error {
                        return Err(malformed_request(error));
                    }
                    if let Some(section) = decoded.trailers {
                        pending.request.trailers = head::parse_trailers(&section, &self.config)
                            .map_err(malformed_request)?;
                    }
                    pos += decoded.consumed;
                    if decoded.done {
                        pending.request.complete = true;
                        pending.request_end = Some(stamp(&mut self.now, &*self.clock).at);
                        let switching = pending.switch.is_some();
                        self.request_phase = if switching {
                            RequestPhase::Held
                        } else {
                            RequestPhase::Head
                        };
                        self.emit_ready();
                    }
                }
                RequestPhase::Head => {
                    let was_started = self.request_head.started();
                    let scan = self
                        .request_head
                        .feed(rest, max_head)
                        .map_err(|_| Halt::Abandon(Abandon::HeadTooLarge { limit: max_head }))?;
                    if !was_started && self.request_head.started() {
                        self.request_started = Some(stamp(&mut self.now, &*self.clock));
                    }
                    match scan {
                        Scan::More => {
                            if let Some(prefix) = self.request_head.prefix_to_check()
                                && let Err(error) = head::check_request_prefix(prefix)
                            {
                                return Err(bad_request(&self.state, prefix, &error));
                            }
                            return Ok(());
                        }
                        Scan::Complete { start, end } => {
                            let lines = self.request_head.lines();
                            let bytes = self.request_head.head(&rest[start..end]);
                            let parsed = head::parse_request(bytes, lines, &self.config);
                            let size = bytes.len() as u64;
                            let parsed = match parsed {
                                Ok(parsed) => parsed,
                                Err(error) => return Err(bad_request(&self.state, bytes, &error)),
                            };
                            self.request_head.reset();
                            pos += end;
                            self.on_request_head(parsed, size)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn on_request_head(&mut self, head: RequestHead, head_size: u64) -> Result<(), Halt> {
        if self.pending.len() >= MAX_PENDING {
            return Err(Halt::Abandon(Abandon::TooManyPending {
                limit: MAX_PENDING,
            }));
        }
        let decoder = request_body(&head.framing)?;
        self.state = State::Http;
        let now = stamp(&mut self.now, &*self.clock);
        let started = self.request_started.take().unwrap_or(now);
        let switch = if head.method.eq_ignore_ascii_case("CONNECT") {
            Some("CONNECT".to_owned())
        } else {
            head.upgrade
        };
        let mut request = Message {
            version: head.version,
            headers: head.headers,
            head_size,
            ..Message::default()
        };
        let request_end = match &decoder {
            Some(_) => None,
            None => {
                request.complete = true;
                Some(now.at)
            }
        };
        self.request_phase = match decoder {
            Some(decoder) => RequestPhase::Body(decoder),
            None if switch.is_some() => RequestPhase::Held,
            None => RequestPhase::Head,
        };
        self.pending.push_back(Pending {
            started,
            method: head.method,
            target: head.target,
            request,
            request_end,
            switch,
            interim: Vec::new(),
            response_start: None,
            status: None,
            reason: None,
            response: None,
            response_end: None,
            upgrade: None,
        });
        // Server bytes that came early can be parsed now that there is a request to answer.
        if !self.stalled.is_empty() {
            let stalled = mem::take(&mut self.stalled);
            self.feed_server(&stalled)?;
        }
        Ok(())
    }

    // --- The server's bytes ---

    fn feed_server(&mut self, chunk: &[u8]) -> Result<(), Halt> {
        if !self.client_spoke {
            return Err(Halt::NotHttp(NotHttp::ServerFirst));
        }
        let max_head = self.config.max_head();
        let mut pos = 0;
        while pos < chunk.len() {
            let rest = &chunk[pos..];
            if let Some(decoder) = &mut self.response_body {
                let cap = self.config.body_capture();
                let Some(pending) = self.pending.iter_mut().find(|p| p.response_end.is_none())
                else {
                    return Err(malformed_response("a response body with no request"));
                };
                let Some(response) = &mut pending.response else {
                    return Err(malformed_response("a response body with no head"));
                };
                let decoded = decoder.decode(rest, max_head, &mut |bytes| {
                    response.add_payload(bytes, cap)
                });
                response.body_size += decoded.consumed as u64;
                if let Some(error) = decoded.error {
                    return Err(malformed_response(error));
                }
                if let Some(section) = decoded.trailers {
                    response.trailers =
                        head::parse_trailers(&section, &self.config).map_err(malformed_response)?;
                }
                pos += decoded.consumed;
                if decoded.done {
                    response.complete = true;
                    pending.response_end = Some(stamp(&mut self.now, &*self.clock).at);
                    self.response_body = None;
                    self.emit_ready();
                }
                continue;
            }

            let Some(index) = self.pending.iter().position(|p| p.response_end.is_none()) else {
                // No request to answer yet: keep the bytes until one is parsed.
                if self.stalled.len() + rest.len() > max_head {
                    return Err(Halt::Abandon(Abandon::UnexpectedResponse));
                }
                self.stalled.extend_from_slice(rest);
                return Ok(());
            };
            let was_started = self.response_head.started();
            let scan = self
                .response_head
                .feed(rest, max_head)
                .map_err(|_| Halt::Abandon(Abandon::HeadTooLarge { limit: max_head }))?;
            if !was_started && self.response_head.started() {
                let at = stamp(&mut self.now, &*self.clock).at;
                self.pending[index].response_start.get_or_insert(at);
            }
            match scan {
                Scan::More => {
                    if let Some(prefix) = self.response_head.prefix_to_check()
                        && let Err(error) = head::check_response_prefix(prefix)
                    {
                        return Err(malformed_response(error));
                    }
                    return Ok(());
                }
                Scan::Complete { start, end } => {
                    let lines = self.response_head.lines();
                    let bytes = self.response_head.head(&rest[start..end]);
                    let size = bytes.len() as u64;
                    let parsed = head::parse_response(bytes, lines, &self.config)
                        .map_err(malformed_response)?;
                    self.response_head.reset();
                    pos += end;
                    self.on_response_head(index, parsed, size)?;
                }
            }
        }
        Ok(())
    }

    fn on_response_head(
        &mut self,
        index: usize,
        head: ResponseHead,
        head_size: u64,
    ) -> Result<(), Halt> {
        let now = stamp(&mut self.now, &*self.clock);
        let Some(pending) = self.pending.get_mut(index) else {
            return Err(malformed_response("a response with no request"));
        };
        let is_connect = pending.method.eq_ignore_ascii_case("CONNECT");
        let switched = head.status == 101 || (is_connect && (200..300).contains(&head.status));
        if (100..200).contains(&head.status) && !switched {
            if pending.interim.len() < MAX_INTERIM {
                pending.interim.push(head.status);
            }
            return Ok(());
        }
        let has_body = !switched && response_may_have_body(&pending.method, head.status);
        let decoder = if has_body {
            response_body(&head.framing)
        } else {
            None
        };
        let mut response = Message {
            version: head.version,
            headers: head.headers,
            head_size,
            ..Message::default()
        };
        pending.status = Some(head.status);
        pending.reason = Some(head.reason);

        if switched {
            let protocol = if is_connect {
                Some("CONNECT".to_owned())
            } else {
                head.upgrade.or(pending.switch.take())
            };
            let protocol = protocol.unwrap_or_else(|| "unknown".to_owned());
            response.complete = true;
            pending.response = Some(response);
            pending.response_end = Some(now.at);
            pending.request_end.get_or_insert(now.at);
            pending.upgrade = Some(protocol.clone());
            self.emit_ready();
            return Err(Halt::Upgraded(protocol));
        }

        let resume = pending.switch.take().is_some();
        match decoder {
            None => {
                response.complete = true;
                pending.response = Some(response);
                pending.response_end = Some(now.at);
            }
            Some(decoder) => {
                pending.response = Some(response);
                self.response_body = Some(decoder);
            }
        }
        self.emit_ready();
        // The server declined to switch protocols: what the client sent meanwhile is HTTP.
        if resume && matches!(self.request_phase, RequestPhase::Held) {
            self.request_phase = RequestPhase::Head;
            let held = mem::take(&mut self.held);
            self.feed_client(&held)?;
        }
        Ok(())
    }

    // --- Shared ---

    fn stamp(&mut self) -> Stamp {
        stamp(&mut self.now, &*self.clock)
    }

    fn responding_mut(&mut self) -> Option<&mut Pending> {
        self.pending.iter_mut().find(|p| p.response_end.is_none())
    }

    /// Hands out, in order, the exchanges whose request and response have both ended.
    fn emit_ready(&mut self) {
        while self
            .pending
            .front()
            .is_some_and(|p| p.request_end.is_some() && p.response_end.is_some())
        {
            if let Some(pending) = self.pending.pop_front() {
                self.out.push(pending.into_exchange(false));
            }
        }
    }

    /// Stops parsing for good: pending requests are handed out as incomplete and the buffers
    /// are freed.
    fn halt(&mut self, halt: Halt) {
        self.state = match halt {
            Halt::NotHttp(why) => State::NotHttp(why),
            Halt::Abandon(why) => State::Abandoned(why),
            Halt::Upgraded(protocol) => State::Upgraded(protocol),
        };
        let rest: Vec<_> = self.pending.drain(..).collect();
        self.out
            .extend(rest.into_iter().map(|pending| pending.into_exchange(true)));
        self.request_head = HeadReader::default();
        self.request_phase = RequestPhase::Head;
        self.response_head = HeadReader::default();
        self.response_body = None;
        self.stalled = Vec::new();
        self.held = Vec::new();
    }
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("state", &self.state)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

// === impl Pending ===

impl Pending {
    fn into_exchange(self, halted: bool) -> Exchange {
        let incomplete =
            halted || !self.request.complete || !self.response.as_ref().is_some_and(|r| r.complete);
        let (duration_ms, timings) = match self.response_end {
            Some(end) => {
                let (duration, timings) =
                    timings(self.started.at, self.request_end, self.response_start, end);
                (Some(duration), Some(timings))
            }
            None => (None, None),
        };
        Exchange {
            id: 0,
            started_ms: self.started.unix_ms,
            method: self.method,
            target: self.target,
            status: self.status,
            reason: self.reason,
            duration_ms,
            timings,
            request: self.request,
            response: self.response,
            interim: self.interim,
            upgrade: self.upgrade,
            incomplete,
        }
    }
}

/// Splits start→end at the request's end and the response's start, each clamped into the
/// interval so the parts are never negative and add up to the whole (a server may answer
/// before the request has ended).
fn timings(
    start: Instant,
    request_end: Option<Instant>,
    response_start: Option<Instant>,
    end: Instant,
) -> (f64, Timings) {
    let end = end.max(start);
    let sent = request_end.unwrap_or(end).clamp(start, end);
    let answered = response_start.unwrap_or(sent).clamp(sent, end);
    let ms = |from: Instant, to: Instant| to.duration_since(from).as_secs_f64() * 1000.0;
    let timings = Timings {
        send_ms: ms(start, sent),
        wait_ms: ms(sent, answered),
        receive_ms: ms(answered, end),
    };
    (ms(start, end), timings)
}

fn stamp(now: &mut Option<Stamp>, clock: &dyn Clock) -> Stamp {
    *now.get_or_insert_with(|| clock.now())
}

/// How a request's body is delimited (RFC 9112 §6.3): chunked, by length, or absent.
fn request_body(framing: &Framing) -> Result<Option<BodyDecoder>, Halt> {
    match (framing.chunked, framing.length) {
        (Some(true), _) => Ok(Some(BodyDecoder::chunked())),
        (Some(false), _) => Err(malformed_request(
            "a Transfer-Encoding that does not end in chunked",
        )),
        (None, Some(length)) => Ok(BodyDecoder::length(length)),
        (None, None) => Ok(None),
    }
}

/// How a response's body is delimited (RFC 9112 §6.3), once it may have one; `None` for an
/// empty body by length.
fn response_body(framing: &Framing) -> Option<BodyDecoder> {
    match (framing.chunked, framing.length) {
        (Some(true), _) => Some(BodyDecoder::chunked()),
        (Some(false), _) | (None, None) => Some(BodyDecoder::UntilClose),
        (None, Some(length)) => BodyDecoder::length(length),
    }
}

/// Responses to HEAD, and 1xx, 204 and 304 responses, have no body whatever their headers say.
fn response_may_have_body(method: &str, status: u16) -> bool {
    !(method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304)
}

/// Classifies a request head that will never parse: the first one says the connection is not
/// HTTP at all, a later one abandons it.
fn bad_request(state: &State, bytes: &[u8], error: &dyn std::fmt::Display) -> Halt {
    if *state != State::Detecting {
        return malformed_request(error);
    }
    Halt::NotHttp(if bytes.first() == Some(&0x16) {
        NotHttp::Tls
    } else if bytes.starts_with(b"PRI * HTTP/2") {
        NotHttp::Http2Preface
    } else {
        NotHttp::Malformed {
            detail: error.to_string(),
        }
    })
}

fn malformed_request(detail: impl std::fmt::Display) -> Halt {
    Halt::Abandon(Abandon::MalformedRequest {
        detail: detail.to_string(),
    })
}

fn malformed_response(detail: impl std::fmt::Display) -> Halt {
    Halt::Abandon(Abandon::MalformedResponse {
        detail: detail.to_string(),
    })
}

#[cfg(test)]
mod tests;
