//! What a SPDY session reads from and writes to: a plain upgraded byte stream (any
//! `AsyncRead + AsyncWrite`), or a WebSocket whose binary messages carry the byte stream
//! (`SPDY/3.1+portforward.k8s.io`, Kubernetes ≥ 1.30). Bytes come out as shared chunks and
//! go in as whole frames, so neither direction copies payload on its way through.

use std::future::Future;
use std::io;

use bytes::{Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Where the peer's bytes come from.
pub trait ChunkSource: Send + 'static {
    /// The next bytes the peer sent, or `None` once it has closed.
    fn next_chunk(&mut self) -> impl Future<Output = io::Result<Option<Bytes>>> + Send;
}

/// Where frames for the peer go.
pub trait FrameSink: Send + 'static {
    /// Queues one frame; it may be buffered until [`FrameSink::flush`].
    fn send(&mut self, frame: Bytes) -> impl Future<Output = io::Result<()>> + Send;
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// Ends the connection in an orderly way.
    fn close(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// Bytes read per chunk from a plain stream.
const READ_CHUNK: usize = 64 * 1024;

/// The read half of a plain byte stream.
pub struct IoSource<R> {
    r: R,
    buf: BytesMut,
}

impl<R> IoSource<R> {
    pub fn new(r: R) -> Self {
        Self {
            r,
            buf: BytesMut::new(),
        }
    }
}

impl<R: AsyncRead + Unpin + Send + 'static> ChunkSource for IoSource<R> {
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if self.buf.capacity() < 4096 {
            // Chunks handed out earlier keep their part of the old buffer alive.
            self.buf = BytesMut::with_capacity(READ_CHUNK);
        }
        match self.r.read_buf(&mut self.buf).await? {
            0 => Ok(None),
            _ => Ok(Some(self.buf.split().freeze())),
        }
    }
}

/// The write half of a plain byte stream.
pub struct IoSink<W>(pub W);

impl<W: AsyncWrite + Unpin + Send + 'static> FrameSink for IoSink<W> {
    async fn send(&mut self, frame: Bytes) -> io::Result<()> {
        self.0.write_all(&frame).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush().await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.0.shutdown().await
    }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(e) => e,
        E::ConnectionClosed | E::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "the WebSocket is closed")
        }
        other => io::Error::other(other),
    }
}

/// Binary messages of a (tungstenite) WebSocket, as one byte stream.
pub struct WsSource<S>(pub SplitStream<WebSocketStream<S>>);

impl<S> ChunkSource for WsSource<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match self.0.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(Some(b)),
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(Message::Text(_))) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text message in a SPDY tunnel",
                    ));
                }
                // Pings are answered by the WebSocket layer.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ws_error(e)),
            }
        }
    }
}

/// Each frame as one binary message of a (tungstenite) WebSocket.
pub struct WsSink<S>(pub SplitSink<WebSocketStream<S>, Message>);

impl<S> FrameSink for WsSink<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn send(&mut self, frame: Bytes) -> io::Result<()> {
        self.0.feed(Message::Binary(frame)).await.map_err(ws_error)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush().await.map_err(ws_error)
    }

    async fn close(&mut self) -> io::Result<()> {
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }));
        self.0.send(close).await.map_err(ws_error)?;
        self.0.close().await.map_err(ws_error)
    }
}

/// Splits a WebSocket into the two halves a session uses.
pub fn websocket<S>(ws: WebSocketStream<S>) -> (WsSource<S>, WsSink<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, source) = ws.split();
    (WsSource(source), WsSink(sink))
}

/// The write half of a plain stream as a session writes it: small frames (replies, pings,
/// stream openings) are gathered until the session flushes, large ones go straight out.
pub type PlainSink<IO> = IoSink<tokio::io::BufWriter<tokio::io::WriteHalf<IO>>>;

/// Splits a plain upgraded byte stream into the two halves a session uses.
pub fn plain<IO>(io: IO) -> (IoSource<tokio::io::ReadHalf<IO>>, PlainSink<IO>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(io);
    (
        IoSource::new(r),
        IoSink(tokio::io::BufWriter::with_capacity(16 * 1024, w)),
    )
}
