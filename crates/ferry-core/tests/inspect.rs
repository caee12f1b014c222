//! An inspected forward never changes the bytes it carries, whatever they are: malformed
//! HTTP (mangled request lines, headers, chunk sizes, lengths) sent through a forward to
//! the fake's echo pod comes back byte for byte, and the engine keeps going.

mod common;

use common::*;
use ferry_core::config::{Inspect, PortRef};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Duration, timeout};

/// Pieces of HTTP/1.x, good and bad, that the connections are made of.
const PIECES: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\n",
    b"POST /x?y=1 HTTP/1.1\r\n",
    b"GET  HTTP/1.1\r\n",
    b"G\x00T / HTTP/1.1\r\n",
    b"GET / HTTP/9.9\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"Host: a\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: -1\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"Expect: 100-continue\r\n",
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n",
    b"X: \xff\xfe\r\n",
    b": novalue\r\n",
    b"\r\n",
    b"\n",
    b"5\r\nhello\r\n",
    b"zz\r\n",
    b"0\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_through_an_inspected_forward_comes_back_unchanged() -> anyhow::Result<()> {
    let f = fake("ferry-fake").await?;
    let mut forward = fwd("echo", "service/echo", PortRef::Number(80));
    forward.inspect = Some(Inspect {
        body_kib: 1,
        redact: Vec::new(),
    });
    let engine =
        ferry_core::Engine::start(config(vec![forward]), options(vec![f.kubeconfig.clone()]))?;
    let addr = active(&engine, "echo").await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x19);
    for conn in 0..60 {
        let mut sent = Vec::new();
        for _ in 0..rng.random_range(1..40) {
            let piece = PIECES[rng.random_range(0..PIECES.len())];
            if rng.random_bool(0.1) {
                // A piece with one byte flipped.
                let mut bad = piece.to_vec();
                let i = rng.random_range(0..bad.len());
                bad[i] ^= 1 << rng.random_range(0..8);
                sent.extend_from_slice(&bad);
            } else {
                sent.extend_from_slice(piece);
            }
        }
        let mut s = TcpStream::connect(addr).await?;
        // In chunks of random sizes, as a client's writes arrive.
        let mut rest = &sent[..];
        let mut back = vec![0u8; sent.len()];
        let reading = async {
            let (mut r, mut w) = s.split();
            let write = async {
                while !rest.is_empty() {
                    let n = rng.random_range(1..=rest.len().min(64));
                    w.write_all(&rest[..n]).await?;
                    rest = &rest[n..];
                }
                Ok::<_, std::io::Error>(())
            };
            let read = r.read_exact(&mut back);
            tokio::try_join!(write, read)
        };
        timeout(Duration::from_secs(20), reading)
            .await
            .map_err(|_| anyhow::anyhow!("connection {conn}: no echo within 20 s"))??;
        assert_eq!(back, sent, "connection {conn}: the bytes changed");
    }
    // Still inspecting, and still forwarding.
    let inspection = engine.inspection("echo").await?;
    let _ = inspection.recent();
    assert_eq!(echo_once(addr, b"after").await?, b"after");
    engine.shutdown().await;
    f.fake.shutdown().await;
    Ok(())
}
