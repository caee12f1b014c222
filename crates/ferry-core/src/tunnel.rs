//! A byte stream to one pod port through the API server's `pods/portforward` subresource,
//! with no local socket: a [`TunnelStream`] is either a connection on a multiplexed SPDY
//! session ([`crate::sessions`]) or, where the server speaks no SPDY, a WebSocket of its
//! own ([`ChannelStream`]).
//!
//! The channel stream speaks the WebSocket channel protocol (`v4.channel.k8s.io`) itself, on the
//! upgraded connection, with no task, queue or pipe in between: a read takes the next
//! data message's payload straight from the WebSocket, a write sends one message. (kube's
//! `Portforwarder` relays through a task, a one-slot queue and an in-memory pipe, and
//! sends what it reads from that pipe in 4 KiB messages.)
//!
//! The error channel of the port-forward protocol surfaces as an I/O error on the stream:
//! a pod port that refuses makes the first read fail with kubelet's message, instead of
//! looking like a clean end of stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{Sink, Stream};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// The most bytes one write puts in a WebSocket message.
const MAX_MESSAGE: usize = 256 * 1024;

/// Data channel of the (only) port; its error channel is `DATA + 1`.
const DATA: u8 = 0;
const ERROR: u8 = 1;

/// Why a tunnel could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    /// The API server refused the upgrade (pod not found, forbidden, server trouble).
    #[error("opening a tunnel to {namespace}/{pod}:{port} failed: {message}")]
    Upgrade {
        namespace: String,
        pod: String,
        port: u16,
        /// The HTTP status of the refusal, when the server sent one.
        code: Option<u16>,
        message: String,
    },
}

impl TunnelError {
    /// The HTTP status code the API server answered with, if any.
    pub fn code(&self) -> Option<u16> {
        match self {
            TunnelError::Upgrade { code, .. } => *code,
        }
    }

    /// The same refusal, for a connection to `port`.
    pub(crate) fn for_port(mut self, to: u16) -> Self {
        match &mut self {
            TunnelError::Upgrade { port, .. } => *port = to,
        }
        self
    }
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A connected byte stream to a pod port over a WebSocket of its own (the channel
/// protocol). Dropping it closes the tunnel.
pub struct ChannelStream {
    ws: Ws,
    port: u16,
    /// Whether the first message of each channel (the port number) has been seen.
    data_init: bool,
    error_init: bool,
    /// Received data not yet read.
    pending: Bytes,
    /// A message from the error channel, returned by the next read.
    failed: Option<String>,
    /// The server closed the WebSocket (or the connection ended).
    eof: bool,
    /// Messages were queued and not yet flushed.
    unflushed: bool,
    /// A close frame was sent.
    closing: bool,
}

impl std::fmt::Debug for ChannelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelStream")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Opens a WebSocket channel tunnel to `namespace/pod:port`.
pub async fn dial_channel(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    port: u16,
) -> Result<ChannelStream, TunnelError> {
    let fail = |code: Option<u16>, message: String| TunnelError::Upgrade {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        port,
        code,
        message,
    };
    let request = kube::core::Request::new(<Pod as kube::Resource>::url_path(&(), Some(namespace)))
        .portforward(pod, &[port])
        .map_err(|e| fail(None, e.to_string()))?;
    let connection = client.connect(request).await.map_err(|e| match e {
        kube::Error::Api(status) => fail(
            Some(status.code),
            crate::sessions::explain_refusal(status.code, &status.message, namespace),
        ),
        other => fail(None, crate::cluster::error_chain(&other)),
    })?;
    Ok(ChannelStream {
        ws: connection.into_stream(),
        port,
        data_init: false,
        error_init: false,
        pending: Bytes::new(),
        failed: None,
        eof: false,
        unflushed: false,
        closing: false,
    })
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(e) => e,
        E::ConnectionClosed | E::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "the tunnel is closed")
        }
        other => io::Error::other(other),
    }
}

impl ChannelStream {
    /// Pushes queued messages out, without waiting; remembers whether some are left.
    fn drive_flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.unflushed {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(ws_error(e)),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Takes the next message off the WebSocket into `pending`, `failed` or `eof`.
    /// `Ready` means the state changed (or the stream ended).
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let msg = match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                None => {
                    self.eof = true;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(e)) => {
                    self.eof = true;
                    return Poll::Ready(Err(ws_error(e)));
                }
                Some(Ok(m)) => m,
            };
            let mut data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => {
                    self.eof = true;
                    return Poll::Ready(Ok(()));
                }
                // Pings are answered by the WebSocket layer; nothing else is expected.
                _ => continue,
            };
            if data.is_empty() {
                continue;
            }
            let channel = data[0];
            data = data.slice(1..);
            match channel {
                DATA if !self.data_init => {
                    self.data_init = true;
                    self.check_port(&data)?;
                }
                ERROR if !self.error_init => {
                    self.error_init = true;
                    self.check_port(&data)?;
                }
                DATA if !data.is_empty() => {
                    self.pending = data;
                    return Poll::Ready(Ok(()));
                }
                ERROR if !data.is_empty() => {
                    if self.failed.is_none() {
                        self.failed = Some(String::from_utf8_lossy(&data).into_owned());
                    }
                    return Poll::Ready(Ok(()));
                }
                DATA | ERROR => {}
                other => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the port-forward sent a message on unknown channel {other}"),
                    )));
                }
            }
        }
    }

    fn check_port(&self, prefix: &[u8]) -> io::Result<()> {
        match prefix {
            [lo, hi] if u16::from_le_bytes([*lo, *hi]) == self.port => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the port-forward's first message names another port than {}",
                    self.port
                ),
            )),
        }
    }

    /// Whether the tunnel is still usable, without waiting: false once the server closed it
    /// or reported an error. Data that arrived meanwhile is kept for the next read.
    pub fn is_open(&mut self) -> bool {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        while self.pending.is_empty() && self.failed.is_none() && !self.eof {
            match self.poll_message(&mut cx) {
                Poll::Pending => break,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return false,
            }
        }
        self.failed.is_none() && (!self.eof || !self.pending.is_empty())
    }
}

impl AsyncRead for ChannelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Writes that could not be flushed at once go out as the stream is read.
        this.drive_flush(cx)?;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if let Some(msg) = this.failed.take() {
                this.eof = true;
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionRefused, msg)));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            ready!(this.poll_message(cx))?;
        }
    }
}

impl AsyncWrite for ChannelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.closing {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the tunnel was shut down",
            )));
        }
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(ws_error)?;
        let n = buf.len().min(MAX_MESSAGE);
        let mut frame = BytesMut::with_capacity(n + 1);
        frame.put_u8(DATA);
        frame.put_slice(&buf[..n]);
        Pin::new(&mut this.ws)
            .start_send(Message::Binary(frame.freeze()))
            .map_err(ws_error)?;
        this.unflushed = true;
        // Callers of a byte stream rarely flush: push the message out now if the socket
        // takes it, and otherwise on the next read, write or flush.
        this.drive_flush(cx)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.ws).poll_flush(cx)).map_err(ws_error)?;
        this.unflushed = false;
        Poll::Ready(Ok(()))
    }

    /// Ends the tunnel: the WebSocket protocol cannot close one direction only, so this
    /// sends a close frame, as kube's port-forwarder does when a port's writer shuts down.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(ws_error)?;
            Pin::new(&mut this.ws)
                .start_send(Message::Close(None))
                .map_err(ws_error)?;
            this.closing = true;
        }
        match ready!(Pin::new(&mut this.ws).poll_flush(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(ws_error(e))),
        }
    }
}

/// A byte stream to a pod port: a connection on a shared SPDY session, or a WebSocket
/// channel tunnel of its own.
#[derive(Debug)]
pub enum TunnelStream {
    Spdy(ferry_spdy::client::Stream),
    /// Boxed: the WebSocket's state is several times a SPDY stream's.
    Channel(Box<ChannelStream>),
}

impl TunnelStream {
    /// Whether the tunnel is still usable, without waiting.
    pub fn is_open(&mut self) -> bool {
        match self {
            TunnelStream::Spdy(s) => s.is_open(),
            TunnelStream::Channel(c) => c.is_open(),
        }
    }

    /// Whether shutting down writing reaches the pod as a half-close. The WebSocket
    /// channel protocol cannot carry one: there, shutting down ends the whole tunnel.
    pub fn carries_half_close(&self) -> bool {
        matches!(self, TunnelStream::Spdy(_))
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TunnelStream::Spdy(s) => Pin::new(s).poll_read(cx, buf),
            TunnelStream::Channel(c) => Pin::new(c).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TunnelStream::Spdy(s) => Pin::new(s).poll_write(cx, buf),
            TunnelStream::Channel(c) => Pin::new(c).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TunnelStream::Spdy(s) => Pin::new(s).poll_flush(cx),
            TunnelStream::Channel(c) => Pin::new(c).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TunnelStream::Spdy(s) => Pin::new(s).poll_shutdown(cx),
            TunnelStream::Channel(c) => Pin::new(c).poll_shutdown(cx),
        }
    }
}
