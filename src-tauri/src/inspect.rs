//! The HTTP inspector in the window (issue 19): a forward's recorded exchanges, the
//! follower that sends new ones to the window while its HTTP tab is open, and what the
//! tab does with an exchange (replay it through the forward, copy it as curl, export HAR).
//!
//! Turning inspection on, off or changing it is an edit of the forward (`inspect` in the
//! config) through `save_forward`, so it is validated and saved like every other field.
//! The engine keeps the exchanges (in memory only, a bounded ring per forward); this
//! module only reads them.
//!
//! **Ownership:** at most one follower runs, for the forward whose HTTP tab the window
//! shows. It is one of the core's tasks (it ends at shutdown) and also ends when the tab
//! or the window closes ([`Follows::stop`]), when another forward is followed, or when
//! the inspection ends (turned off or changed, or the forward stopped): the window then
//! hears `ended` and asks again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::inspect::Inspection;
use ferry_http::Exchange;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::error::{AppError, ErrorCode};

/// The event that carries new exchanges to the window.
pub const EXCHANGE_EVENT: &str = "ferry://exchange";

/// A follower sends what completed in this long as one event: a burst of a thousand
/// requests is a handful of events, not a thousand.
pub const BATCH_EVERY: Duration = Duration::from_millis(250);
/// At most this many exchanges in one event (more wait for the next).
pub const BATCH_MAX: usize = 200;

/// A replay waits this long for the connection and for the whole answer.
pub const REPLAY_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a replayed answer's body is kept for the window.
pub const REPLAY_BODY_CAP: usize = 64 * 1024;

/// `inspect_exchanges`' answer: the exchanges kept, oldest first, and the note that some
/// traffic was not HTTP.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct Exchanges {
    #[ts(type = "Array<Exchange>")]
    pub exchanges: Vec<Exchange>,
    /// "not HTTP: traffic passed through unparsed (…)", once a connection was not HTTP.
    pub passthrough: Option<String>,
}

/// `ferry://exchange`'s payload: exchanges of the followed forward that completed since
/// the last event.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ExchangeBatch {
    pub forward: String,
    #[ts(type = "Array<Exchange>")]
    pub exchanges: Vec<Exchange>,
    /// Exchanges that completed but are not in any event: the follower fell behind (ask
    /// `inspect_exchanges` again).
    pub missed: u64,
    /// The note that some traffic was not HTTP, once it is known.
    pub passthrough: Option<String>,
    /// The inspection ended (turned off or changed, or the forward stopped): nothing more
    /// comes from this follower.
    pub ended: bool,
}

/// `replay_exchange`'s answer: the request sent again and what came back (recorded by
/// the inspector too, as any request through the forward).
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct Replayed {
    /// The answer as an exchange: status, reason, headers (secrets redacted as the
    /// forward's inspection does), the first [`REPLAY_BODY_CAP`] bytes of the body.
    #[ts(type = "Exchange")]
    pub exchange: Exchange,
}

/// `export_har`'s answer: the HAR 1.2 document, for the window to save.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct HarExport {
    pub text: String,
    /// The name to save it under: `ferry-NAME-YYYYMMDD-HHMMSS.har`.
    pub file_name: String,
    pub entries: usize,
}

/// Where a follower sends its batches (the window, or a test).
pub type Sink = Arc<dyn Fn(ExchangeBatch) + Send + Sync>;

/// The one follower the window has, if any.
#[derive(Default)]
pub struct Follows {
    /// The forward followed and the token that ends its follower; held only to swap.
    current: Mutex<Option<(String, CancellationToken)>>,
}

impl Follows {
    /// Ends the follower, if one runs.
    pub fn stop(&self) {
        if let Some((_, token)) = self.current.lock().take() {
            token.cancel();
        }
    }

    /// Replaces the follower; returns the token of the new one.
    pub(crate) fn replace(&self, forward: &str) -> CancellationToken {
        let token = CancellationToken::new();
        if let Some((_, old)) = self
            .current
            .lock()
            .replace((forward.to_string(), token.clone()))
        {
            old.cancel();
        }
        token
    }

    /// The forward followed now.
    pub fn following(&self) -> Option<String> {
        self.current.lock().as_ref().map(|(f, _)| f.clone())
    }
}

/// The exchanges an inspection keeps, and its pass-through note.
pub fn kept(inspection: &Inspection) -> Exchanges {
    Exchanges {
        exchanges: inspection.recent().iter().map(|e| (**e).clone()).collect(),
        passthrough: inspection.passthrough(),
    }
}

/// Starts following `inspection`: returns what it keeps now, and every later exchange
/// reaches `sink` in batches (none missed in between), until `stop` is cancelled or the
/// inspection ends.
pub fn follow(
    forward: String,
    inspection: Arc<Inspection>,
    sink: Sink,
    stop: CancellationToken,
) -> (
    Exchanges,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (now, mut rx) = inspection.follow();
    let first = Exchanges {
        exchanges: now.iter().map(|e| (**e).clone()).collect(),
        passthrough: inspection.passthrough(),
    };
    let task = async move {
        let mut batch: Vec<Exchange> = Vec::new();
        let mut missed = 0u64;
        let mut said_passthrough = first_passthrough(&inspection);
        let mut tick = tokio::time::interval(BATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let batch_of = |exchanges: Vec<Exchange>, missed: u64, ended: bool| ExchangeBatch {
            forward: forward.clone(),
            exchanges,
            missed,
            passthrough: inspection.passthrough(),
            ended,
        };
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = inspection.ended() => {
                    sink(batch_of(std::mem::take(&mut batch), missed, true));
                    return;
                }
                got = rx.recv(), if batch.len() < BATCH_MAX => match got {
                    Ok(exchange) => batch.push((*exchange).clone()),
                    Err(RecvError::Lagged(n)) => missed += n,
                    Err(RecvError::Closed) => {
                        sink(batch_of(std::mem::take(&mut batch), missed, true));
                        return;
                    }
                },
                _ = tick.tick() => {
                    let note = inspection.passthrough().is_some() && !said_passthrough;
                    if !batch.is_empty() || missed > 0 || note {
                        said_passthrough |= note;
                        sink(batch_of(std::mem::take(&mut batch), missed, false));
                        missed = 0;
                    }
                }
            }
        }
    };
    (first, task)
}

fn first_passthrough(inspection: &Inspection) -> bool {
    inspection.passthrough().is_some()
}

/// Where the forward's clients connect: its local address, with an any-address bind
/// reached on loopback.
pub fn dial_address(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), local.port())
        }
        _ => local,
    }
}

/// `http://127.0.0.1:18080`: the base of curl lines and HAR URLs.
pub fn base_url(local: SocketAddr) -> String {
    format!("http://{}", dial_address(local))
}

/// One exchange the inspection keeps, or `not_found` on `id`.
pub fn exchange(inspection: &Inspection, id: u64) -> Result<Arc<Exchange>, AppError> {
    inspection.get(id).ok_or_else(|| AppError {
        code: ErrorCode::NotFound,
        message: format!("exchange {id} is no longer kept (cleared, or pushed out by newer ones)"),
        field: Some("id".into()),
    })
}

/// The exchange as a `curl` line through the forward's local address.
pub fn curl(exchange: &Exchange, local: SocketAddr) -> Result<String, AppError> {
    exchange
        .curl(&base_url(local))
        .map_err(|e| AppError::invalid("id", e.to_string()))
}

/// The exchanges (all kept, or those of `ids`) as a HAR 1.2 document.
pub fn har(
    forward: &str,
    inspection: &Inspection,
    ids: Option<&[u64]>,
    local: Option<SocketAddr>,
) -> Result<HarExport, AppError> {
    let all = inspection.recent();
    let chosen: Vec<&Exchange> = all
        .iter()
        .map(|e| e.as_ref())
        .filter(|e| ids.is_none_or(|ids| ids.contains(&e.id)))
        .collect();
    let base = local.map_or_else(|| "http://127.0.0.1".to_string(), base_url);
    let doc = ferry_http::har::to_har(chosen.iter().copied(), env!("CARGO_PKG_VERSION"), &base);
    let text = serde_json::to_string_pretty(&doc)
        .map_err(|e| AppError::new(ErrorCode::Engine, format!("the HAR was not written: {e}")))?;
    let stamp = time::OffsetDateTime::now_utc();
    let file_name = format!(
        "ferry-{}-{:04}{:02}{:02}-{:02}{:02}{:02}.har",
        file_safe(forward),
        stamp.year(),
        u8::from(stamp.month()),
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second()
    );
    Ok(HarExport {
        text,
        file_name,
        entries: chosen.len(),
    })
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Sends the exchange's request again through the forward's local address and reads the
/// answer (parsed by an inspector of its own, with the forward's redaction and a body
/// capture of [`REPLAY_BODY_CAP`]).
pub async fn replay(
    inspection: &Inspection,
    exchange: &Exchange,
    local: SocketAddr,
) -> Result<Replayed, AppError> {
    let bytes = exchange
        .replay_request_bytes()
        .map_err(|e| AppError::invalid("id", e.to_string()))?;
    let config = Arc::new(
        inspection
            .spec()
            .http_config()
            .with_body_capture(REPLAY_BODY_CAP),
    );
    let address = dial_address(local);
    let unanswered = |why: String| {
        AppError::new(
            ErrorCode::Cluster,
            format!("the replay through {address} got no answer: {why}"),
        )
    };
    let exchange = tokio::time::timeout(REPLAY_TIMEOUT, async {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| unanswered(format!("could not connect ({e})")))?;
        let mut parser = ferry_http::Inspector::new(config);
        let mut done = parser.client_bytes(&bytes);
        stream
            .write_all(&bytes)
            .await
            .map_err(|e| unanswered(format!("the request could not be sent ({e})")))?;
        let mut buf = vec![0u8; 16 * 1024];
        while done.is_empty() {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| unanswered(e.to_string()))?;
            if n == 0 {
                done = parser.finish();
                break;
            }
            done = parser.server_bytes(&buf[..n]);
        }
        done.into_iter()
            .next()
            .ok_or_else(|| unanswered("the connection closed before an answer".into()))
    })
    .await
    .map_err(|_| unanswered(format!("nothing within {} s", REPLAY_TIMEOUT.as_secs())))??;
    if exchange.response.is_none() {
        return Err(unanswered(
            "the connection closed before an answer".to_string(),
        ));
    }
    Ok(Replayed { exchange })
}
