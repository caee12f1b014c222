//! What a SPDY session reads from and writes to: a plain upgraded byte stream (any
//! `AsyncRead + AsyncWrite`), or a WebSocket whose binary messages carry the byte stream
//! (`SPDY/3.1+portforward.k8s.io`, kubectl ≥ 1.31). Bytes come out as shared chunks and
//! go in as whole frames, so neither direction copies payload on its way through.

use std::future::Future;
use std::io;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where the peer's bytes come from.
pub(crate) trait ChunkSource: Send + 'static {
    /// The next bytes the peer sent, or `None` once it has closed.
    fn next_chunk(&mut self) -> impl Future<Output = io::Result<Option<Bytes>>> + Send;
}

/// Where frames for the peer go.
pub(crate) trait FrameSink: Send + 'static {
    /// Queues one frame; it may be buffered until [`FrameSink::flush`].
    fn send(&mut self, frame: Bytes) -> impl Future<Output = io::Result<()>> + Send;
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// Ends the connection in an orderly way.
    fn close(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// Bytes read per chunk from a plain stream.
const READ_CHUNK: usize = 64 * 1024;

/// The read half of a plain byte stream.
pub(crate) struct IoSource<R> {
    r: R,
    buf: BytesMut,
}

impl<R> IoSource<R> {
    pub(crate) fn new(r: R) -> Self {
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
pub(crate) struct IoSink<W>(pub(crate) W);

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

/// Binary messages of a WebSocket, as one byte stream.
pub(crate) struct WsSource(pub(crate) SplitStream<WebSocket>);

impl ChunkSource for WsSource {
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
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
    }
}

/// Each frame as one binary WebSocket message.
pub(crate) struct WsSink(pub(crate) SplitSink<WebSocket, Message>);

impl FrameSink for WsSink {
    async fn send(&mut self, frame: Bytes) -> io::Result<()> {
        self.0
            .feed(Message::Binary(frame))
            .await
            .map_err(io::Error::other)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush().await.map_err(io::Error::other)
    }

    async fn close(&mut self) -> io::Result<()> {
        let close = Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        }));
        self.0.send(close).await.map_err(io::Error::other)?;
        self.0.close().await.map_err(io::Error::other)
    }
}
