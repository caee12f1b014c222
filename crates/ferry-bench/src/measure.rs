//! The client side of every measurement: plain TCP clients that do not know which path
//! they go through, the counting sink behind uploads, and small statistics helpers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use ferry_core::sessions::Tunnels;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

/// Bytes per write or read of a transfer.
const IO_CHUNK: usize = 256 * 1024;

/// A payload block for uploads.
static PAYLOAD: [u8; IO_CHUNK] = [b'u'; IO_CHUNK];

async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let sock = timeout(Duration::from_secs(30), TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to {addr} timed out"))?
        .with_context(|| format!("connecting to {addr}"))?;
    sock.set_nodelay(true)?;
    Ok(sock)
}

/// Where a transfer goes: a local address, or an in-process tunnel through the fake API
/// server (the tunnel's own ceiling, with no forwarder and no local socket).
#[derive(Clone)]
pub enum Via {
    Tcp(SocketAddr),
    /// A fresh WebSocket (`v4.channel.k8s.io`) per connection.
    Tunnel {
        client: kube::Client,
        namespace: String,
        pod: String,
        port: u16,
    },
    /// A stream pair per connection on the pod's multiplexed session(s), as Ferry's
    /// forwards do it.
    Session {
        tunnels: Arc<Tunnels>,
        namespace: String,
        pod: String,
        port: u16,
    },
}

/// A connected byte stream of either kind.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

impl Via {
    async fn open(&self) -> anyhow::Result<Box<dyn Conn>> {
        Ok(match self {
            Via::Tcp(addr) => Box::new(connect(*addr).await?),
            Via::Tunnel {
                client,
                namespace,
                pod,
                port,
            } => Box::new(ferry_core::tunnel::dial_channel(client, namespace, pod, *port).await?),
            Via::Session {
                tunnels,
                namespace,
                pod,
                port,
            } => Box::new(tunnels.open(namespace, pod, *port).await?),
        })
    }
}

/// Downloads `n` bytes from the `http` behaviour's `/bytes?n=` and returns the time from
/// the request to the last byte; a transfer that takes longer than `limit` fails.
pub async fn download(via: &Via, n: u64, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let work = async {
        let mut sock = via.open().await?;
        let req = format!("GET /bytes?n={n} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
        sock.write_all(req.as_bytes()).await?;
        let mut buf = vec![0u8; IO_CHUNK];
        let mut head = Vec::new();
        // The status line and headers.
        let mut body = loop {
            let got = sock.read(&mut buf).await?;
            ensure!(got > 0, "the connection closed before the response headers");
            head.extend_from_slice(&buf[..got]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let status = String::from_utf8_lossy(&head[..head.len().min(12)]).to_string();
                ensure!(
                    status.starts_with("HTTP/1.1 200"),
                    "unexpected response: {status}"
                );
                break (head.len() - end - 4) as u64;
            }
            ensure!(head.len() < 64 * 1024, "response headers too long");
        };
        while body < n {
            let got = sock.read(&mut buf).await?;
            ensure!(got > 0, "the connection closed after {body} of {n} bytes");
            body += got as u64;
        }
        ensure!(body == n, "received {body} bytes, expected {n}");
        Ok(started.elapsed())
    };
    timeout(limit, work)
        .await
        .with_context(|| format!("the download took over {limit:?}"))?
}

/// Uploads `n` bytes to the counting sink (through whatever path `addr` is) and returns
/// the time from the first byte sent to the sink's acknowledgement that all `n` arrived;
/// a transfer that takes longer than `limit` fails.
pub async fn upload(via: &Via, n: u64, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let work = async {
        let sock = via.open().await?;
        let (mut r, mut w) = tokio::io::split(sock);
        let send = async {
            w.write_all(&n.to_be_bytes()).await?;
            let mut left = n;
            while left > 0 {
                let take = left.min(IO_CHUNK as u64) as usize;
                w.write_all(&PAYLOAD[..take]).await?;
                left -= take as u64;
            }
            w.flush().await?;
            Ok::<_, anyhow::Error>(())
        };
        let ack = async {
            let mut b = [0u8; 1];
            r.read_exact(&mut b)
                .await
                .context("no acknowledgement from the sink")?;
            ensure!(b[0] == b'k', "unexpected acknowledgement {:?}", b[0]);
            Ok(())
        };
        tokio::try_join!(send, ack)?;
        Ok(started.elapsed())
    };
    timeout(limit, work)
        .await
        .with_context(|| format!("the upload took over {limit:?}"))?
}

/// Runs `k` transfers of `n / k` bytes each at once; returns the wall time of them all.
pub async fn parallel(
    via: &Via,
    n: u64,
    k: usize,
    upload_dir: bool,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let each = n / k as u64;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..k {
        let via = via.clone();
        tasks.spawn(async move {
            if upload_dir {
                upload(&via, each, limit).await
            } else {
                download(&via, each, limit).await
            }
        });
    }
    while let Some(res) = tasks.join_next().await {
        res.context("a transfer task panicked")??;
    }
    Ok(started.elapsed())
}

/// One connection's setup: connect, send one byte to the echo, wait for it to come back.
pub async fn first_byte(addr: SocketAddr) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let work = async {
        let mut sock = connect(addr).await?;
        sock.write_all(b"x").await?;
        let mut b = [0u8; 1];
        sock.read_exact(&mut b).await?;
        ensure!(&b == b"x", "the echo answered {:?}", b[0]);
        Ok(started.elapsed())
    };
    timeout(Duration::from_secs(30), work)
        .await
        .context("no first byte within 30 s")?
}

/// One HTTP request's setup: connect, send `GET /healthz`, wait for the first byte of the
/// answer; the connection is then dropped.
pub async fn http_first_byte(addr: SocketAddr) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let work = async {
        let mut sock = connect(addr).await?;
        sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut b = [0u8; 1];
        sock.read_exact(&mut b).await?;
        let first = started.elapsed();
        ensure!(&b == b"H", "the server answered {:?}", b[0]);
        Ok(first)
    };
    timeout(Duration::from_secs(30), work)
        .await
        .context("no answer within 30 s")?
}

/// One connection doing `rounds` request/response rounds of 64 bytes on the echo.
/// Returns the whole connection's time.
pub async fn echo_rounds(
    addr: SocketAddr,
    rounds: usize,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let work = async {
        let mut sock = connect(addr).await?;
        let msg = [b'r'; 64];
        let mut back = [0u8; 64];
        for _ in 0..rounds {
            sock.write_all(&msg).await?;
            sock.read_exact(&mut back).await?;
            ensure!(back == msg, "the echo answered other bytes");
        }
        Ok(started.elapsed())
    };
    timeout(limit, work)
        .await
        .with_context(|| format!("not done within {limit:?}"))?
}

/// What a burst of simultaneous connections gave.
#[derive(Debug, Default)]
pub struct Burst {
    /// Each successful connection's whole time.
    pub ok: Vec<Duration>,
    pub failed: usize,
    /// The first failure, in words.
    pub first_error: Option<String>,
}

/// `n` connections opened at once (behind a barrier), each doing `rounds` echo rounds
/// (see [`echo_rounds`]) within `limit`.
pub async fn burst(addr: SocketAddr, n: usize, rounds: usize, limit: Duration) -> Burst {
    let gate = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let gate = gate.clone();
        tasks.spawn(async move {
            gate.wait().await;
            echo_rounds(addr, rounds, limit).await
        });
    }
    let mut out = Burst {
        ok: Vec::with_capacity(n),
        ..Burst::default()
    };
    while let Some(r) = tasks.join_next().await {
        let err = match r {
            Ok(Ok(d)) => {
                out.ok.push(d);
                continue;
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) => e.to_string(),
        };
        out.failed += 1;
        out.first_error.get_or_insert(err);
    }
    out
}

/// One short echo exchange, as the heal probes and readiness checks do it.
pub async fn ping(addr: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let work = async {
        let mut sock = connect(addr).await?;
        sock.write_all(b"ping").await?;
        let mut b = [0u8; 4];
        sock.read_exact(&mut b).await?;
        ensure!(&b == b"ping", "the echo answered other bytes");
        Ok(())
    };
    timeout(limit, work)
        .await
        .with_context(|| format!("no echo from {addr} within {limit:?}"))?
}

/// The far end of uploads: each message is an 8-byte big-endian length and that many
/// bytes, acknowledged with one byte `k` once all have arrived.
pub struct CountingSink {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CountingSink {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let _ = sock.set_nodelay(true);
                tokio::spawn(async move {
                    let _ = sink_conn(sock).await;
                });
            }
        });
        Ok(Self { addr, task })
    }
}

async fn sink_conn(mut sock: TcpStream) -> anyhow::Result<()> {
    let mut buf = vec![0u8; IO_CHUNK];
    loop {
        let mut len = [0u8; 8];
        if sock.read_exact(&mut len).await.is_err() {
            return Ok(());
        }
        let mut left = u64::from_be_bytes(len);
        while left > 0 {
            let take = left.min(buf.len() as u64) as usize;
            let got = sock.read(&mut buf[..take]).await?;
            if got == 0 {
                bail!("the upload ended {left} bytes early");
            }
            left -= got as u64;
        }
        sock.write_all(b"k").await?;
    }
}

/// Nearest-rank percentile of `samples` (`p` in 0..=100), in milliseconds.
pub fn percentile_ms(samples: &[Duration], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank.min(v.len()) - 1].as_secs_f64() * 1000.0)
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64().max(1e-9)
}

/// Locks a std mutex, ignoring poisoning (a panicking probe leaves consistent data).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
