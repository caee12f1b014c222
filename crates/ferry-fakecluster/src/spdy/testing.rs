//! A SPDY/3.1 port-forward client for tests: plays kubectl's (or the API server's) part
//! on any byte stream.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{self, Decoder, Deflater, Event};

pub(crate) struct SpdyClient<S> {
    io: S,
    deflater: Deflater,
    decoder: Decoder,
    pending: Bytes,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SpdyClient<S> {
    pub(crate) fn new(io: S) -> Self {
        Self {
            io,
            deflater: Deflater::new().expect("deflater"),
            decoder: Decoder::new(),
            pending: Bytes::new(),
        }
    }

    pub(crate) async fn send(&mut self, frame: Bytes) {
        self.io.write_all(&frame).await.expect("client writes");
    }

    /// Opens stream `id` of type `kind` ("data" or "error") for `port`.
    pub(crate) async fn open(&mut self, id: u32, kind: &str, port: &str, request: &str) {
        let f = frame::syn_stream(
            &mut self.deflater,
            id,
            &[("streamtype", kind), ("port", port), ("requestid", request)],
            false,
        )
        .expect("encodes");
        self.send(f).await;
    }

    /// The next event from the server, or `None` when it closed the connection.
    pub(crate) async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.decoder.next(&mut self.pending).expect("decodes") {
                return Some(ev);
            }
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let n = tokio::time::timeout(Duration::from_secs(5), self.io.read_buf(&mut buf))
                .await
                .expect("the server answers in time")
                .expect("client reads");
            if n == 0 {
                return None;
            }
            self.pending = buf.freeze();
        }
    }

    /// What the server sends within `d`: `Some(Some(event))`, `Some(None)` when the
    /// connection ended (closed or failed), `None` when nothing came in time.
    pub(crate) async fn next_within(&mut self, d: Duration) -> Option<Option<Event>> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(ev) = self.decoder.next(&mut self.pending).expect("decodes") {
                return Some(Some(ev));
            }
            let mut buf = BytesMut::with_capacity(64 * 1024);
            match tokio::time::timeout_at(deadline, self.io.read_buf(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0) | Err(_)) => return Some(None),
                Ok(Ok(_)) => self.pending = buf.freeze(),
            }
        }
    }

    /// Events until the error stream `error` is closed (that Fin included), data pieces
    /// joined per stream.
    pub(crate) async fn until_fin(&mut self, error: u32) -> (Vec<Event>, HashMap<u32, Vec<u8>>) {
        let mut events = Vec::new();
        let mut data: HashMap<u32, Vec<u8>> = HashMap::new();
        loop {
            match self.next().await.expect("connection open") {
                Event::Data { stream, bytes } => {
                    data.entry(stream).or_default().extend_from_slice(&bytes)
                }
                Event::Fin { stream } if stream == error => {
                    events.push(Event::Fin { stream });
                    return (events, data);
                }
                ev => events.push(ev),
            }
        }
    }
}
