//! A byte stream to one pod port through the API server's `pods/portforward` subresource,
//! with no local socket.
//!
//! The error channel of the port-forward protocol surfaces as an I/O error on the stream:
//! a pod port that refuses makes the first read fail with kubelet's message, instead of
//! looking like a clean end of stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::Portforwarder;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

/// Why a tunnel could not be opened.
#[derive(Debug, thiserror::Error)]
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
}

/// A connected byte stream to a pod port. Dropping it closes the tunnel.
pub struct TunnelStream {
    stream: DuplexStream,
    /// Resolves with the error channel's message, or `None` when the channel closed clean.
    error: Option<BoxFuture<'static, Option<String>>>,
    /// A message already taken from the error channel, returned by the next read.
    failed: Option<String>,
    forwarder: Portforwarder,
}

impl Drop for TunnelStream {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

impl std::fmt::Debug for TunnelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelStream").finish_non_exhaustive()
    }
}

/// Opens a tunnel to `namespace/pod:port`.
pub async fn dial(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    port: u16,
) -> Result<TunnelStream, TunnelError> {
    let fail = |code: Option<u16>, message: String| TunnelError::Upgrade {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        port,
        code,
        message,
    };
    let mut forwarder = Api::<Pod>::namespaced(client.clone(), namespace)
        .portforward(pod, &[port])
        .await
        .map_err(|e| match e {
            kube::Error::Api(status) => fail(Some(status.code), status.message),
            other => fail(None, crate::cluster::error_chain(&other)),
        })?;
    let (Some(stream), Some(error)) = (forwarder.take_stream(port), forwarder.take_error(port))
    else {
        return Err(fail(None, "the port-forward returned no stream".into()));
    };
    Ok(TunnelStream {
        stream,
        error: Some(error.boxed()),
        failed: None,
        forwarder,
    })
}

impl TunnelStream {
    /// Polls the error channel without blocking; remembers a message for the next read.
    fn poll_error(&mut self, cx: &mut Context<'_>) {
        if let Some(fut) = self.error.as_mut()
            && let Poll::Ready(msg) = fut.as_mut().poll(cx)
        {
            self.error = None;
            self.failed = msg;
        }
    }

    fn take_failure(&mut self) -> Option<io::Error> {
        self.failed
            .take()
            .map(|msg| io::Error::new(io::ErrorKind::ConnectionRefused, msg))
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.poll_error(cx);
        if let Some(e) = this.take_failure() {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before => {
                // End of stream: if the pod side reported an error, say so instead.
                this.poll_error(cx);
                match this.take_failure() {
                    Some(e) => Poll::Ready(Err(e)),
                    None => Poll::Ready(Ok(())),
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
