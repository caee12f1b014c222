//! SPDY/3 frames as the Go side (moby/spdystream, vendored by client-go and kubelet) writes
//! and reads them.
//!
//! Every frame starts with 8 bytes. A control frame: the control bit, a 15-bit version (3),
//! a 16-bit type, then 8 bits of flags and a 24-bit length. A data frame: a 0 bit and a
//! 31-bit stream id, then 8 bits of flags (FIN = 1) and a 24-bit length. All numbers are
//! big-endian. Header blocks (in SYN_STREAM, SYN_REPLY and HEADERS) are a u32 count, then
//! for each header a u32 name length, the lowercase name, a u32 value length and the value
//! (several values joined by NUL); the block is zlib-compressed with the SPDY/3 dictionary,
//! one compression context per direction for the whole connection, each block ending with
//! a sync flush.
//!
//! The decoder hands out data payloads as slices of the buffers they arrived in, so bytes
//! going to a pod are never copied here.

use std::sync::LazyLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

pub const VERSION: u16 = 3;

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const SETTINGS: u16 = 4;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;
pub const WINDOW_UPDATE: u16 = 9;

/// FIN on a data frame, SYN_STREAM, SYN_REPLY or HEADERS.
pub const FLAG_FIN: u8 = 0x01;

/// The length of every frame header.
pub const HEADER_LEN: usize = 8;

/// The largest payload a frame's 24-bit length can carry.
pub const MAX_LEN: usize = (1 << 24) - 1;

/// Control frames here are tiny; anything bigger is refused rather than buffered.
const MAX_CONTROL_LEN: usize = 1 << 20;

/// A decompressed header block larger than this is refused.
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// RST_STREAM status codes.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
}

/// GOAWAY status: a normal close.
pub const GOAWAY_OK: u32 = 0;

/// The SPDY/3 header compression dictionary: length-prefixed header names and values,
/// then a run of common status lines, dates and content types (1423 bytes).
const DICTIONARY_WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,",
    "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

pub fn dictionary() -> &'static [u8] {
    static DICT: LazyLock<Vec<u8>> = LazyLock::new(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICTIONARY_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    });
    &DICT
}

/// The Adler-32 of [`dictionary`]: the id a zlib stream that uses it names.
pub const DICTIONARY_ID: u32 = 0xe3c6_a7c2;

/// Why the byte stream is not SPDY/3 as this decoder reads it.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("a {kind} frame of {len} bytes is too large")]
    TooLarge { kind: &'static str, len: usize },
    #[error("a control frame of type {0} is truncated")]
    Truncated(u16),
    #[error("header block: {0}")]
    HeaderBlock(String),
}

/// One compression context: header blocks this side sends.
///
/// [`Deflater::new`] compresses as the Go side does. [`Deflater::stored`] writes the same
/// zlib stream (header, dictionary id, one sync-flushed block per header block) with
/// stored, uncompressed deflate blocks: any inflater reads it, and it needs no compression
/// state. A deflate state costs about 380 KB (zlib-rs, 32 KiB window), held for the life
/// of the session; a client's header blocks are a few dozen bytes, so that cost buys
/// nothing and would make up most of an idle session's memory.
pub struct Deflater(Mode);

enum Mode {
    Zlib(Box<Compress>),
    /// Whether the zlib header and dictionary id were written.
    Stored {
        started: bool,
    },
}

/// A zlib header: deflate with a 32 KiB window (`0x78`), fastest level, a preset
/// dictionary follows (FDICT); `0x7820` is a multiple of 31, as the check bits require.
const STORED_HEADER: [u8; 2] = [0x78, 0x20];

/// The longest stored deflate block.
const MAX_STORED: usize = 0xffff;

impl Deflater {
    /// A compressing context (zlib level 9 with the SPDY/3 dictionary).
    pub fn new() -> Result<Self, FrameError> {
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(dictionary())
            .map_err(|e| FrameError::HeaderBlock(e.to_string()))?;
        Ok(Self(Mode::Zlib(Box::new(z))))
    }

    /// A context that writes stored blocks (see the type's note).
    pub fn stored() -> Self {
        Self(Mode::Stored { started: false })
    }

    /// Compresses one header block, ending it with a sync flush.
    fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, FrameError> {
        let z = match &mut self.0 {
            Mode::Zlib(z) => z,
            Mode::Stored { started } => {
                let blocks = block.len() / MAX_STORED + 1;
                let mut out = Vec::with_capacity(6 + 5 * blocks + block.len());
                if !*started {
                    out.extend_from_slice(&STORED_HEADER);
                    out.extend_from_slice(&DICTIONARY_ID.to_be_bytes());
                    *started = true;
                }
                // Not final, type 00 (stored), padded to the byte: a zero byte; then
                // LEN and its complement, little-endian. The block ends on a byte
                // boundary, as a sync flush leaves the stream. An empty header block
                // still gets one (empty) block.
                let mut chunks = block.chunks(MAX_STORED).peekable();
                if chunks.peek().is_none() {
                    out.extend_from_slice(&[0, 0, 0, 0xff, 0xff]);
                }
                for chunk in chunks {
                    let len = chunk.len() as u16;
                    out.push(0);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(&(!len).to_le_bytes());
                    out.extend_from_slice(chunk);
                }
                return Ok(out);
            }
        };
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut pos = 0;
        loop {
            let before = z.total_in();
            z.compress_vec(&block[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| FrameError::HeaderBlock(e.to_string()))?;
            pos += (z.total_in() - before) as usize;
            if pos >= block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(256);
        }
    }
}

/// The other compression context: header blocks the peer sends.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Self {
        Self(Decompress::new(true))
    }

    fn decompress(&mut self, block: &[u8]) -> Result<Vec<u8>, FrameError> {
        let bad = |e: String| FrameError::HeaderBlock(e);
        let mut out = Vec::with_capacity((block.len() * 4 + 64).min(MAX_HEADER_BLOCK + 1));
        let mut pos = 0;
        loop {
            let (in_before, out_before) = (self.0.total_in(), self.0.total_out());
            let res = self
                .0
                .decompress_vec(&block[pos..], &mut out, FlushDecompress::Sync);
            pos += (self.0.total_in() - in_before) as usize;
            let progressed = self.0.total_in() != in_before || self.0.total_out() != out_before;
            match res {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(dictionary())
                        .map_err(|e| bad(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(bad(e.to_string())),
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(bad(format!("more than {MAX_HEADER_BLOCK} bytes")));
            }
            if pos >= block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if out.len() == out.capacity() {
                out.reserve(1024);
            } else if !progressed {
                return Err(bad("compressed data is truncated".into()));
            }
        }
    }
}

/// Headers as `(lowercase name, value)`; several values of one name stay NUL-joined.
pub type HeaderList = Vec<(String, String)>;

pub fn header_value<'a>(headers: &'a HeaderList, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.split('\0').next().unwrap_or_default())
}

fn encode_header_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        b.extend_from_slice(&(name.len() as u32).to_be_bytes());
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(&(value.len() as u32).to_be_bytes());
        b.extend_from_slice(value.as_bytes());
    }
    b
}

fn parse_header_block(mut b: &[u8]) -> Result<HeaderList, FrameError> {
    let bad = || FrameError::HeaderBlock("malformed name/value block".into());
    let take = |b: &mut &[u8]| -> Result<String, FrameError> {
        if b.len() < 4 {
            return Err(bad());
        }
        let n = b.get_u32() as usize;
        if b.len() < n {
            return Err(bad());
        }
        let s = String::from_utf8_lossy(&b[..n]).into_owned();
        b.advance(n);
        Ok(s)
    };
    if b.len() < 4 {
        return Err(bad());
    }
    let count = b.get_u32() as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = take(&mut b)?.to_ascii_lowercase();
        let value = take(&mut b)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// A control frame the peer sent, with what either side uses of it.
#[derive(Debug, PartialEq, Eq)]
pub enum Control {
    SynStream {
        stream: u32,
        fin: bool,
        headers: HeaderList,
    },
    SynReply {
        stream: u32,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    Settings,
    Ping(u32),
    GoAway {
        last_good: u32,
    },
    Headers {
        stream: u32,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    /// A type this decoder does not know; SPDY says to ignore it.
    Unknown(u16),
}

/// What the decoder found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Control(Control),
    /// Part of a data frame's payload (never empty).
    Data {
        stream: u32,
        bytes: Bytes,
    },
    /// A data frame with the FIN flag ended: the peer sends nothing more on `stream`.
    Fin {
        stream: u32,
    },
}

enum State {
    Head,
    Control {
        version: u16,
        kind: u16,
        flags: u8,
        len: usize,
    },
    Data {
        stream: u32,
        fin: bool,
        left: usize,
    },
    Fin(u32),
}

/// Turns the peer's byte stream, in chunks of any size, into events.
pub struct Decoder {
    inflater: Inflater,
    head: BytesMut,
    body: BytesMut,
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            inflater: Inflater::new(),
            head: BytesMut::with_capacity(HEADER_LEN),
            body: BytesMut::new(),
            state: State::Head,
        }
    }

    /// The next event from `input` (consuming what it uses), or `None` when `input` is
    /// used up before one is complete.
    pub fn next(&mut self, input: &mut Bytes) -> Result<Option<Event>, FrameError> {
        loop {
            match self.state {
                State::Head => {
                    let take = (HEADER_LEN - self.head.len()).min(input.len());
                    self.head.extend_from_slice(&input[..take]);
                    input.advance(take);
                    if self.head.len() < HEADER_LEN {
                        return Ok(None);
                    }
                    let first = self.head.get_u32();
                    let second = self.head.get_u32();
                    self.head.clear();
                    let flags = (second >> 24) as u8;
                    let len = (second & 0x00ff_ffff) as usize;
                    if first & 0x8000_0000 != 0 {
                        if len > MAX_CONTROL_LEN {
                            return Err(FrameError::TooLarge {
                                kind: "control",
                                len,
                            });
                        }
                        self.body.clear();
                        self.state = State::Control {
                            version: ((first >> 16) & 0x7fff) as u16,
                            kind: (first & 0xffff) as u16,
                            flags,
                            len,
                        };
                    } else {
                        let stream = first & 0x7fff_ffff;
                        let fin = flags & FLAG_FIN != 0;
                        self.state = match (len, fin) {
                            (0, true) => State::Fin(stream),
                            (0, false) => State::Head,
                            _ => State::Data {
                                stream,
                                fin,
                                left: len,
                            },
                        };
                    }
                }
                State::Control {
                    version,
                    kind,
                    flags,
                    len,
                } => {
                    let take = (len - self.body.len()).min(input.len());
                    self.body.extend_from_slice(&input[..take]);
                    input.advance(take);
                    if self.body.len() < len {
                        return Ok(None);
                    }
                    self.state = State::Head;
                    if version != VERSION {
                        return Err(FrameError::Version(version));
                    }
                    let body = self.body.split().freeze();
                    return self
                        .control(kind, flags, body)
                        .map(|c| Some(Event::Control(c)));
                }
                State::Data { stream, fin, left } => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let take = left.min(input.len());
                    let bytes = input.split_to(take);
                    self.state = match (left - take, fin) {
                        (0, true) => State::Fin(stream),
                        (0, false) => State::Head,
                        (left, _) => State::Data { stream, fin, left },
                    };
                    return Ok(Some(Event::Data { stream, bytes }));
                }
                State::Fin(stream) => {
                    self.state = State::Head;
                    return Ok(Some(Event::Fin { stream }));
                }
            }
        }
    }

    fn control(&mut self, kind: u16, flags: u8, mut b: Bytes) -> Result<Control, FrameError> {
        let need = |b: &Bytes, n: usize| {
            if b.len() < n {
                Err(FrameError::Truncated(kind))
            } else {
                Ok(())
            }
        };
        Ok(match kind {
            SYN_STREAM => {
                need(&b, 10)?;
                let stream = b.get_u32() & 0x7fff_ffff;
                b.advance(6); // associated stream id, priority, slot
                let headers = parse_header_block(&self.inflater.decompress(&b)?)?;
                Control::SynStream {
                    stream,
                    fin: flags & FLAG_FIN != 0,
                    headers,
                }
            }
            SYN_REPLY | HEADERS => {
                need(&b, 4)?;
                let stream = b.get_u32() & 0x7fff_ffff;
                // Decompressed even though unused: the context must see every block.
                parse_header_block(&self.inflater.decompress(&b)?)?;
                if kind == SYN_REPLY {
                    Control::SynReply { stream }
                } else {
                    Control::Headers { stream }
                }
            }
            RST_STREAM => {
                need(&b, 8)?;
                Control::RstStream {
                    stream: b.get_u32() & 0x7fff_ffff,
                    status: b.get_u32(),
                }
            }
            SETTINGS => Control::Settings,
            PING => {
                need(&b, 4)?;
                Control::Ping(b.get_u32())
            }
            GOAWAY => {
                need(&b, 4)?;
                Control::GoAway {
                    last_good: b.get_u32() & 0x7fff_ffff,
                }
            }
            WINDOW_UPDATE => {
                need(&b, 8)?;
                Control::WindowUpdate {
                    stream: b.get_u32() & 0x7fff_ffff,
                    delta: b.get_u32() & 0x7fff_ffff,
                }
            }
            other => Control::Unknown(other),
        })
    }
}

fn control_frame(kind: u16, flags: u8, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + body.len());
    b.put_u16(0x8000 | VERSION);
    b.put_u16(kind);
    b.put_u32(u32::from(flags) << 24 | body.len() as u32);
    b.put_slice(body);
    b.freeze()
}

/// SYN_REPLY for `stream` with `headers`, compressed in the sender's context.
pub fn syn_reply(
    deflater: &mut Deflater,
    stream: u32,
    headers: &[(&str, &str)],
) -> Result<Bytes, FrameError> {
    let block = deflater.compress(&encode_header_block(headers))?;
    fits(4 + block.len())?;
    let mut body = Vec::with_capacity(4 + block.len());
    body.extend_from_slice(&stream.to_be_bytes());
    body.extend_from_slice(&block);
    Ok(control_frame(SYN_REPLY, 0, &body))
}

/// Refuses a control frame body larger than a peer (this decoder included) accepts; its
/// length would not even fit the frame's 24 bits beyond 16 MiB.
fn fits(len: usize) -> Result<(), FrameError> {
    if len > MAX_CONTROL_LEN {
        return Err(FrameError::TooLarge {
            kind: "control",
            len,
        });
    }
    Ok(())
}

/// SYN_STREAM, as a client opens a stream.
pub fn syn_stream(
    deflater: &mut Deflater,
    stream: u32,
    headers: &[(&str, &str)],
    fin: bool,
) -> Result<Bytes, FrameError> {
    let block = deflater.compress(&encode_header_block(headers))?;
    fits(10 + block.len())?;
    let mut body = Vec::with_capacity(10 + block.len());
    body.extend_from_slice(&stream.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&block);
    Ok(control_frame(
        SYN_STREAM,
        if fin { FLAG_FIN } else { 0 },
        &body,
    ))
}

pub fn rst_stream(stream: u32, status: u32) -> Bytes {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&stream.to_be_bytes());
    body[4..].copy_from_slice(&status.to_be_bytes());
    control_frame(RST_STREAM, 0, &body)
}

pub fn ping(id: u32) -> Bytes {
    control_frame(PING, 0, &id.to_be_bytes())
}

pub fn goaway(last_good: u32, status: u32) -> Bytes {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&last_good.to_be_bytes());
    body[4..].copy_from_slice(&status.to_be_bytes());
    control_frame(GOAWAY, 0, &body)
}

/// Writes a data frame header into `head` (the first [`HEADER_LEN`] bytes of a frame).
/// Callers cut payloads to [`MAX_LEN`]: a longer one does not fit the 24-bit length.
pub fn put_data_header(head: &mut [u8], stream: u32, fin: bool, len: usize) {
    debug_assert!(len <= MAX_LEN);
    head[..4].copy_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    let flags = if fin { FLAG_FIN } else { 0 };
    head[4..8].copy_from_slice(&(u32::from(flags) << 24 | len as u32).to_be_bytes());
}

/// A whole data frame carrying a small `payload` (error messages, FIN).
pub fn data(stream: u32, fin: bool, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::zeroed(HEADER_LEN + payload.len());
    put_data_header(&mut b[..HEADER_LEN], stream, fin, payload.len());
    b[HEADER_LEN..].copy_from_slice(payload);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_spdy3_one() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // Its Adler-32 is the dictionary id Go's zlib reader checks.
        let id = Compress::new(Compression::best(), true)
            .set_dictionary(d)
            .expect("set dictionary");
        assert_eq!(id, DICTIONARY_ID);
    }

    /// Stored header blocks are a zlib stream a real inflater reads, with the dictionary
    /// it asks for: one block, then more (with an empty and a 70,000-byte one) on the same
    /// context. The stream costs no more than 5 bytes per 64 KiB, plus 6 once.
    #[test]
    fn stored_header_blocks_inflate_with_the_dictionary() {
        let mut d = Deflater::stored();
        let mut z = Inflater::new();
        let long = vec![b'x'; 70_000];
        let blocks: [&[u8]; 4] = [b"streamtype\0data", b"", &long, b"port"];
        for (i, block) in blocks.into_iter().enumerate() {
            let wire = d.compress(block).expect("stored");
            let overhead = if i == 0 { 6 } else { 0 } + 5 * (block.len() / 0xffff + 1);
            assert_eq!(wire.len(), block.len() + overhead, "block {i}");
            assert_eq!(z.decompress(&wire).expect("inflates"), block, "block {i}");
        }
    }

    fn decode_all(dec: &mut Decoder, mut input: Bytes) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(ev) = dec.next(&mut input).expect("decodes") {
            out.push(ev);
        }
        assert!(input.is_empty());
        out
    }

    #[test]
    fn header_blocks_share_one_context_per_direction() {
        let mut client = Deflater::new().expect("deflater");
        let mut wire = BytesMut::new();
        for (id, kind) in [(1, "error"), (3, "data"), (5, "error")] {
            let rid = id.to_string();
            wire.extend_from_slice(
                &syn_stream(
                    &mut client,
                    id,
                    &[("streamType", kind), ("port", "9000"), ("requestID", &rid)],
                    false,
                )
                .expect("encodes"),
            );
        }
        // Fed one byte at a time, the decoder still finds the three streams.
        let mut dec = Decoder::new();
        let mut events = Vec::new();
        for b in wire.freeze() {
            events.extend(decode_all(&mut dec, Bytes::copy_from_slice(&[b])));
        }
        assert_eq!(events.len(), 3);
        let Event::Control(Control::SynStream {
            stream, headers, ..
        }) = &events[2]
        else {
            panic!("{events:?}");
        };
        assert_eq!(*stream, 5);
        assert_eq!(header_value(headers, "streamtype"), Some("error"));
        assert_eq!(header_value(headers, "port"), Some("9000"));
        assert_eq!(header_value(headers, "requestid"), Some("5"));

        // And what the server compresses, a client context reads back.
        let mut server = Deflater::new().expect("deflater");
        let mut dec = Decoder::new();
        for id in [1, 3] {
            let reply = syn_reply(&mut server, id, &[]).expect("encodes");
            assert_eq!(
                decode_all(&mut dec, reply),
                vec![Event::Control(Control::SynReply { stream: id })]
            );
        }
    }

    #[test]
    fn data_payloads_are_sliced_not_copied_and_fin_follows_them() {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&data(3, false, b"hello "));
        wire.extend_from_slice(&data(3, true, b"world"));
        wire.extend_from_slice(&data(5, true, b""));
        wire.extend_from_slice(&ping(7));
        let wire = wire.freeze();
        let base = wire.as_ptr() as usize;
        let mut dec = Decoder::new();
        let events = decode_all(&mut dec, wire.clone());
        assert_eq!(
            events,
            vec![
                Event::Data {
                    stream: 3,
                    bytes: Bytes::from_static(b"hello ")
                },
                Event::Data {
                    stream: 3,
                    bytes: Bytes::from_static(b"world")
                },
                Event::Fin { stream: 3 },
                Event::Fin { stream: 5 },
                Event::Control(Control::Ping(7)),
            ]
        );
        let Event::Data { bytes, .. } = &events[0] else {
            unreachable!()
        };
        assert_eq!(bytes.as_ptr() as usize, base + HEADER_LEN);
    }

    #[test]
    fn a_frame_split_across_chunks_comes_out_in_pieces() {
        let frame = data(1, false, &[7u8; 100]);
        let mut dec = Decoder::new();
        let mut got = 0;
        for part in [frame.slice(..5), frame.slice(5..50), frame.slice(50..)] {
            for ev in decode_all(&mut dec, part) {
                let Event::Data { stream: 1, bytes } = ev else {
                    panic!("{ev:?}")
                };
                got += bytes.len();
            }
        }
        assert_eq!(got, 100);
    }

    #[test]
    fn other_versions_and_huge_control_frames_are_refused() {
        let mut v2 = BytesMut::from(&ping(1)[..]);
        v2[1] = 2;
        assert!(matches!(
            Decoder::new().next(&mut v2.freeze()),
            Err(FrameError::Version(2))
        ));
        let mut huge = Bytes::from_static(&[0x80, 3, 0, 4, 0, 0xff, 0xff, 0xff]);
        assert!(matches!(
            Decoder::new().next(&mut huge),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
