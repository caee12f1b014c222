//! Finding where a message head ends, across chunks, and parsing it with httparse.
//!
//! A head may arrive one byte at a time. Re-running httparse on every chunk would cost
//! O(n²) for such a head, so [`HeadReader`] scans each byte once for the empty line that ends
//! the head and calls httparse on the whole head once. Until the start line is complete it
//! also lets httparse look at the short prefix it has, so a client speaking TLS or binary is
//! recognised on its first bytes rather than after 64 KiB.

use crate::config::Config;
use crate::exchange::{Header, Version};

/// A start line this long with no line end yet is left to the full parse.
const PREFIX_CHECK_MAX: usize = 2 << 10;

/// The most header fields a head may carry; a head past this is refused.
const MAX_FIELDS: usize = 2048;

/// Finds the empty line that ends a head (or a trailer section), one byte at a time, accepting
/// CRLF and bare LF line ends as httparse does.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EndScanner {
    /// Where in a line the last byte left the scan.
    at: LinePos,
    /// Line ends seen so far.
    newlines: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum LinePos {
    /// Inside a line (or before the first byte of a head).
    #[default]
    Inside,
    /// Just after a line end.
    Start,
    /// After a line end and a CR.
    StartCr,
}

impl EndScanner {
    /// A scanner for a trailer section, which may be empty (its first line the empty line).
    pub(crate) fn at_line_start() -> Self {
        Self {
            at: LinePos::Start,
            newlines: 0,
        }
    }

    /// The index just past the empty line, if `data` holds it.
    pub(crate) fn scan(&mut self, data: &[u8]) -> Option<usize> {
        for (i, &byte) in data.iter().enumerate() {
            match byte {
                b'\n' => {
                    self.newlines += 1;
                    if self.at == LinePos::Inside {
                        self.at = LinePos::Start;
                    } else {
                        self.at = LinePos::Inside;
                        return Some(i + 1);
                    }
                }
                b'\r' if self.at == LinePos::Start => self.at = LinePos::StartCr,
                b'\r' if self.at == LinePos::Inside => {}
                _ => self.at = LinePos::Inside,
            }
        }
        None
    }
}

/// The head of the next message in one direction, as it accumulates.
#[derive(Debug, Default)]
pub(crate) struct HeadReader {
    /// The head's bytes so far, when it spans chunks. Empty while a head sits in one chunk.
    buf: Vec<u8>,
    scanner: EndScanner,
    /// The head's first byte has arrived (empty lines between messages are skipped).
    started: bool,
    /// How far the start line has been checked.
    line_check: LineCheck,
}

/// How far an incomplete head's start line has been checked. What is checked depends only on
/// the bytes, never on how they were chunked: the first [`PREFIX_CHECK_MAX`] bytes as they
/// arrive, then the whole start line once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum LineCheck {
    /// Checked as far as it has arrived.
    #[default]
    Growing,
    /// Its first [`PREFIX_CHECK_MAX`] bytes were checked; the rest waits for the line end.
    Capped,
    /// Checked whole.
    Done,
}

/// What feeding a chunk to a [`HeadReader`] found.
pub(crate) enum Scan {
    /// The whole chunk was taken; the head goes on.
    More,
    /// The head ends inside the chunk: it is the buffered prefix followed by
    /// `chunk[start..end]`, and the chunk's bytes from `end` on are the next part's.
    Complete { start: usize, end: usize },
}

/// The head grew past the configured limit.
#[derive(Debug)]
pub(crate) struct TooLarge;

impl HeadReader {
    /// Whether the head's first byte has arrived.
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// Takes a chunk, up to the end of the head if the head ends in it.
    pub(crate) fn feed(&mut self, chunk: &[u8], max: usize) -> Result<Scan, TooLarge> {
        let mut start = 0;
        if !self.started {
            start = chunk
                .iter()
                .position(|b| !matches!(b, b'\r' | b'\n'))
                .unwrap_or(chunk.len());
            if start == chunk.len() {
                return Ok(Scan::More);
            }
            self.started = true;
        }
        match self.scanner.scan(&chunk[start..]) {
            Some(len) if self.buf.len() + len <= max => Ok(Scan::Complete {
                start,
                end: start + len,
            }),
            None if self.buf.len() + chunk.len() - start <= max => {
                self.buf.extend_from_slice(&chunk[start..]);
                Ok(Scan::More)
            }
            _ => Err(TooLarge),
        }
    }

    /// The complete head, given the tail that [`Scan::Complete`] pointed at.
    pub(crate) fn head<'a>(&'a mut self, tail: &'a [u8]) -> &'a [u8] {
        if self.buf.is_empty() {
            tail
        } else {
            self.buf.extend_from_slice(tail);
            &self.buf
        }
    }

    /// The line ends seen in the head so far: an upper bound on its header fields.
    pub(crate) fn lines(&self) -> usize {
        self.scanner.newlines
    }

    /// The part of the incomplete head's start line to check now, if any: the line so far
    /// while it is short, its first [`PREFIX_CHECK_MAX`] bytes once, and the whole line once
    /// it has ended. (httparse fails on the first bad byte it reads, so checking a prefix
    /// finds what checking the whole would, as far as the prefix goes.)
    pub(crate) fn prefix_to_check(&mut self) -> Option<&[u8]> {
        if self.scanner.newlines > 0 {
            if self.line_check == LineCheck::Done {
                return None;
            }
            self.line_check = LineCheck::Done;
            let end = self
                .buf
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.buf.len(), |i| i + 1);
            return Some(&self.buf[..end]);
        }
        if self.buf.len() <= PREFIX_CHECK_MAX {
            return Some(&self.buf);
        }
        if self.line_check == LineCheck::Growing {
            self.line_check = LineCheck::Capped;
            return Some(&self.buf[..PREFIX_CHECK_MAX]);
        }
        None
    }

    /// Forgets the head, ready for the next one.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > 8 << 10 {
            self.buf = Vec::new();
        }
        self.scanner = EndScanner::default();
        self.started = false;
        self.line_check = LineCheck::Growing;
    }
}

/// Why a head did not parse.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// httparse refused it.
    Syntax(httparse::Error),
    /// httparse wanted more bytes after the empty line.
    Unterminated,
    /// The head parsed but its message framing is unusable.
    Framing(&'static str),
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Syntax(error) => write!(f, "{error}"),
            Self::Unterminated => f.write_str("the head did not end where its empty line is"),
            Self::Framing(what) => f.write_str(what),
        }
    }
}

/// How a message says its body is delimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Framing {
    /// The Content-Length, when present (repeated equal values are one value).
    pub(crate) length: Option<u64>,
    /// When Transfer-Encoding is present: whether its final coding is chunked.
    pub(crate) chunked: Option<bool>,
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) version: Version,
    pub(crate) headers: Vec<Header>,
    pub(crate) framing: Framing,
    /// The request's Upgrade header, when it asks to switch protocols.
    pub(crate) upgrade: Option<String>,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) version: Version,
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) headers: Vec<Header>,
    pub(crate) framing: Framing,
    /// The response's Upgrade header.
    pub(crate) upgrade: Option<String>,
}

/// Passive parsing accepts what clients commonly accept from servers.
fn parser_config() -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    config
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true);
    config
}

fn field_slots(lines: usize) -> Vec<httparse::Header<'static>> {
    vec![httparse::EMPTY_HEADER; lines.clamp(1, MAX_FIELDS)]
}

/// Checks the start of a request line: an error means no head starting so is valid.
pub(crate) fn check_request_prefix(bytes: &[u8]) -> Result<(), httparse::Error> {
    let mut slots = field_slots(1);
    let mut request = httparse::Request::new(&mut slots);
    parser_config().parse_request(&mut request, bytes).map(drop)
}

/// Checks the start of a status line: an error means no head starting so is valid.
pub(crate) fn check_response_prefix(bytes: &[u8]) -> Result<(), httparse::Error> {
    let mut slots = field_slots(1);
    let mut response = httparse::Response::new(&mut slots);
    parser_config()
        .parse_response(&mut response, bytes)
        .map(drop)
}

/// Parses a complete request head (ending with its empty line).
pub(crate) fn parse_request(
    bytes: &[u8],
    lines: usize,
    config: &Config,
) -> Result<RequestHead, HeadError> {
    let mut slots = field_slots(lines);
    let mut request = httparse::Request::new(&mut slots);
    match parser_config().parse_request(&mut request, bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Unterminated),
        Err(error) => return Err(HeadError::Syntax(error)),
    }
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(HeadError::Unterminated);
    };
    Ok(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version: version_of(version),
        framing: framing(request.headers)?,
        upgrade: value_of(request.headers, "upgrade"),
        headers: own_fields(request.headers, config),
    })
}

/// Parses a complete response head (ending with its empty line).
pub(crate) fn parse_response(
    bytes: &[u8],
    lines: usize,
    config: &Config,
) -> Result<ResponseHead, HeadError> {
    let mut slots = field_slots(lines);
    let mut response = httparse::Response::new(&mut slots);
    match parser_config().parse_response(&mut response, bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Unterminated),
        Err(error) => return Err(HeadError::Syntax(error)),
    }
    let (Some(version), Some(status)) = (response.version, response.code) else {
        return Err(HeadError::Unterminated);
    };
    Ok(ResponseHead {
        version: version_of(version),
        status,
        reason: response.reason.unwrap_or_default().to_owned(),
        framing: framing(response.headers)?,
        upgrade: value_of(response.headers, "upgrade"),
        headers: own_fields(response.headers, config),
    })
}

/// Parses a trailer section (ending with its empty line).
pub(crate) fn parse_trailers(bytes: &[u8], config: &Config) -> Result<Vec<Header>, HeadError> {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    let mut slots = field_slots(lines);
    match httparse::parse_headers(bytes, &mut slots) {
        Ok(httparse::Status::Complete((_, fields))) => Ok(own_fields(fields, config)),
        Ok(httparse::Status::Partial) => Err(HeadError::Unterminated),
        Err(error) => Err(HeadError::Syntax(error)),
    }
}

fn version_of(minor: u8) -> Version {
    if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    }
}

fn own_fields(fields: &[httparse::Header<'_>], config: &Config) -> Vec<Header> {
    fields
        .iter()
        .map(|field| {
            if config.is_redacted(field.name) {
                Header::redacted(field.name)
            } else {
                Header::new(field.name, String::from_utf8_lossy(field.value))
            }
        })
        .collect()
}

fn value_of(fields: &[httparse::Header<'_>], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|field| field.name.eq_ignore_ascii_case(name))
        .map(|field| String::from_utf8_lossy(field.value).trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Reads Content-Length and Transfer-Encoding, before any redaction could hide them.
fn framing(fields: &[httparse::Header<'_>]) -> Result<Framing, HeadError> {
    let mut framing = Framing::default();
    for field in fields {
        if field.name.eq_ignore_ascii_case("content-length") {
            for part in field.value.split(|&b| b == b',') {
                let length = decimal(part.trim_ascii())
                    .ok_or(HeadError::Framing("invalid Content-Length"))?;
                if framing.length.is_some_and(|seen| seen != length) {
                    return Err(HeadError::Framing("conflicting Content-Length values"));
                }
                framing.length = Some(length);
            }
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding of the last Transfer-Encoding field is the one that frames the body.
            let last = field
                .value
                .rsplit(|&b| b == b',')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            framing.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        }
    }
    Ok(framing)
}

fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_the_empty_line_across_chunks() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        for split in 0..head.len() {
            let mut scanner = EndScanner::default();
            let found = match scanner.scan(&head[..split]) {
                Some(end) => Some(end),
                None => scanner.scan(&head[split..]).map(|end| end + split),
            };
            assert_eq!(found, Some(head.len() - 4), "split at {split}");
        }
        assert_eq!(
            EndScanner::default().scan(b"GET / HTTP/1.1\nHost: a\n\nX"),
            Some(24)
        );
        assert_eq!(EndScanner::at_line_start().scan(b"\r\nrest"), Some(2));
        assert_eq!(
            EndScanner::default().scan(b"GET / HTTP/1.1\r\nA: b\r\n"),
            None
        );
    }

    #[test]
    fn framing_reads_length_and_chunked() {
        let parse = |head: &[u8]| parse_request(head, 8, &Config::default()).map(|h| h.framing);
        let framing = parse(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n").unwrap();
        assert_eq!(
            framing,
            Framing {
                length: Some(5),
                chunked: None
            }
        );
        let framing =
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n").unwrap();
        assert_eq!(framing.chunked, Some(true));
        assert!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").is_err()
        );
        assert!(parse(b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n").is_err());
    }
}
