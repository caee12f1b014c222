//! Following a message body to its end without keeping it: by length, by chunks, or until the
//! connection closes. Payload bytes are handed to a callback as slices of the chunk fed in.

use std::mem;

use crate::head::EndScanner;

/// A chunk-size line (size and extensions) longer than this is refused.
const MAX_CHUNK_LINE: usize = 4 << 10;

/// Where a body stands.
#[derive(Debug)]
pub(crate) enum BodyDecoder {
    /// This many bytes are still to come.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// Everything until the connection closes (a response without a length).
    UntilClose,
}

/// Where a chunked body stands.
#[derive(Debug)]
pub(crate) enum Chunked {
    /// Reading a chunk-size line; holds its start when it spans chunks.
    Size(Vec<u8>),
    /// This much chunk data is still to come.
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd { cr: bool },
    /// The trailer section after the last chunk; holds its start when it spans chunks.
    Trailers { buf: Vec<u8>, scanner: EndScanner },
}

/// What one call to [`BodyDecoder::decode`] did.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// Bytes of the input that belonged to the body.
    pub(crate) consumed: usize,
    /// The body ended.
    pub(crate) done: bool,
    /// The trailer section, when a chunked body ended with one.
    pub(crate) trailers: Option<Vec<u8>>,
    /// The body broke off at `consumed`: the bytes before the offending one count as the
    /// body's, whatever the chunking, so sizes do not depend on how the bytes arrived.
    pub(crate) error: Option<BodyError>,
}

impl Decoded {
    fn more(consumed: usize) -> Self {
        Self {
            consumed,
            done: false,
            trailers: None,
            error: None,
        }
    }

    fn failed(consumed: usize, error: BodyError) -> Self {
        Self {
            consumed,
            done: false,
            trailers: None,
            error: Some(error),
        }
    }
}

/// Why a body could not be followed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("invalid chunk size line")]
    ChunkSize,
    #[error("chunk size line longer than {MAX_CHUNK_LINE} bytes")]
    ChunkLineTooLong,
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("trailer section larger than {0} bytes")]
    TrailersTooLarge(usize),
}

impl BodyDecoder {
    /// A decoder for a body of `length` bytes, or none if it is empty.
    pub(crate) fn length(length: u64) -> Option<Self> {
        (length > 0).then_some(Self::Length(length))
    }

    /// A decoder for a chunked body.
    pub(crate) fn chunked() -> Self {
        Self::Chunked(Chunked::Size(Vec::new()))
    }

    /// Follows the body through `data`, passing payload bytes to `payload`. Stops at the
    /// body's end (bytes after it are not consumed) or at the first byte that breaks it.
    pub(crate) fn decode(
        &mut self,
        data: &[u8],
        max_trailers: usize,
        payload: &mut impl FnMut(&[u8]),
    ) -> Decoded {
        match self {
            Self::Length(remaining) => {
                let take = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                payload(&data[..take]);
                *remaining -= take as u64;
                Decoded {
                    done: *remaining == 0,
                    ..Decoded::more(take)
                }
            }
            Self::UntilClose => {
                payload(data);
                Decoded::more(data.len())
            }
            Self::Chunked(chunked) => chunked.decode(data, max_trailers, payload),
        }
    }
}

impl Chunked {
    fn decode(
        &mut self,
        data: &[u8],
        max_trailers: usize,
        payload: &mut impl FnMut(&[u8]),
    ) -> Decoded {
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            match self {
                Self::Size(line) => {
                    let room = MAX_CHUNK_LINE - line.len();
                    let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > room {
                            return Decoded::failed(pos + room, BodyError::ChunkLineTooLong);
                        }
                        line.extend_from_slice(rest);
                        pos = data.len();
                        break;
                    };
                    let part = &rest[..=newline];
                    if part.len() > room {
                        return Decoded::failed(pos + room, BodyError::ChunkLineTooLong);
                    }
                    let whole = if line.is_empty() {
                        part
                    } else {
                        line.extend_from_slice(part);
                        line.as_slice()
                    };
                    let size = match httparse::parse_chunk_size(whole) {
                        Ok(httparse::Status::Complete((_, size))) => size,
                        _ => return Decoded::failed(pos + newline, BodyError::ChunkSize),
                    };
                    pos += part.len();
                    *self = if size == 0 {
                        Self::Trailers {
                            buf: Vec::new(),
                            scanner: EndScanner::at_line_start(),
                        }
                    } else {
                        Self::Data(size)
                    };
                }
                Self::Data(remaining) => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    payload(&rest[..take]);
                    *remaining -= take as u64;
                    pos += take;
                    if *remaining == 0 {
                        *self = Self::DataEnd { cr: false };
                    }
                }
                Self::DataEnd { cr } => {
                    match (rest[0], *cr) {
                        (b'\r', false) => *cr = true,
                        (b'\n', _) => *self = Self::Size(Vec::new()),
                        _ => return Decoded::failed(pos, BodyError::ChunkEnd),
                    }
                    pos += 1;
                }
                Self::Trailers { buf, scanner } => {
                    let room = max_trailers.saturating_sub(buf.len());
                    let Some(end) = scanner.scan(rest) else {
                        if rest.len() > room {
                            return Decoded::failed(
                                pos + room,
                                BodyError::TrailersTooLarge(max_trailers),
                            );
                        }
                        buf.extend_from_slice(rest);
                        pos = data.len();
                        break;
                    };
                    if end > room {
                        return Decoded::failed(
                            pos + room,
                            BodyError::TrailersTooLarge(max_trailers),
                        );
                    }
                    buf.extend_from_slice(&rest[..end]);
                    let section = mem::take(buf);
                    // A bare empty line is no trailer section at all.
                    let trailers = (section.len() > 2).then_some(section);
                    return Decoded {
                        done: true,
                        trailers,
                        ..Decoded::more(pos + end)
                    };
                }
            }
        }
        Decoded::more(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(
        decoder: &mut BodyDecoder,
        wire: &[u8],
        piece: usize,
    ) -> (Vec<u8>, usize, bool) {
        let mut payload = Vec::new();
        let mut consumed = 0;
        for chunk in wire.chunks(piece) {
            let decoded = decoder.decode(chunk, 1024, &mut |b| payload.extend_from_slice(b));
            assert!(decoded.error.is_none(), "{decoded:?}");
            consumed += decoded.consumed;
            if decoded.done {
                return (payload, consumed, true);
            }
        }
        (payload, consumed, false)
    }

    #[test]
    fn chunked_bodies_decode_the_same_in_any_pieces() {
        let wire =
            b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for piece in 1..wire.len() {
            let (payload, consumed, done) =
                decode_in_pieces(&mut BodyDecoder::chunked(), wire, piece);
            assert!(done, "piece {piece}");
            assert_eq!(payload, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(consumed, wire.len() - 4);
        }
    }

    #[test]
    fn bad_chunks_are_errors_where_they_break() {
        for (wire, at) in [
            (&b"zz\r\n"[..], 3),
            (b"4\r\nWikiX", 7),
            (b"FFFFFFFFFFFFFFFFF\r\n", 18),
        ] {
            for piece in 1..=wire.len() {
                let mut decoder = BodyDecoder::chunked();
                let mut consumed = 0;
                let error = wire.chunks(piece).find_map(|chunk| {
                    let decoded = decoder.decode(chunk, 1024, &mut |_| {});
                    consumed += decoded.consumed;
                    decoded.error
                });
                assert!(error.is_some(), "{wire:?}");
                assert_eq!(consumed, at, "{wire:?} in pieces of {piece}");
            }
        }
    }
}
