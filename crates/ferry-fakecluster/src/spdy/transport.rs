//! The server's side of SPDY tunnelled through a WebSocket: axum's WebSocket as a
//! [`ChunkSource`] and a [`FrameSink`]. The traits and the plain byte-stream halves are
//! ferry-spdy's, shared with Ferry's client.

use std::io;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};

pub(crate) use ferry_spdy::transport::{ChunkSource, FrameSink, IoSink, IoSource};

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
