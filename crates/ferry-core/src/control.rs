//! The local control endpoint: the process that runs a config's forwards (`ferry up`, or
//! the app for the store's) answers on a Unix socket of its own, so that other Ferry
//! commands can ask what runs right now, follow its events, and see that the forwards
//! already run.
//!
//! - One endpoint per config: its path comes from the config's path (the store, a config
//!   file, or `demo`), so `ferry up` on the same config twice finds the first one and says
//!   so instead of running the forwards twice.
//! - The socket lives in `$XDG_RUNTIME_DIR/ferry` (else `~/.cache/ferry/run`), a directory
//!   only its owner may enter; the socket itself is owner-only too (on Windows: a named
//!   pipe, below). Nothing listens on the network.
//! - The protocol: one JSON object per line. A request `{"id": 1, "method": "hello"}`
//!   gets `{"id": 1, "result": …}` or `{"id": 1, "error": {"message": …}}`. Methods:
//!   `hello` (who runs: [`Runner`]), `status` (the [`Snapshot`]), `subscribe` (the
//!   snapshot, then every [`Event`] as `{"event": …}` lines until the client hangs up),
//!   `inspect` with `"forward": NAME` (the HTTP exchanges kept for an inspected forward as
//!   [`Inspected`], then each new one as `{"exchange": …}` until the client hangs up; a
//!   follower that fell behind gets `{"missed": N}`), `show` (the app brings its window
//!   up: how a second launch of the app hands over to the running one; other processes
//!   answer that they have no window).
//!
//! On Windows the endpoint is a named pipe, `\\.\pipe\ferry-control-…` (one per user and
//! config): remote clients are refused, and a second process cannot create the same pipe
//! while the first serves it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[cfg(any(unix, windows))]
use crate::events::Event;

/// Who runs the forwards behind an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    pub pid: u32,
    /// What it is, as a person would name it: "`ferry up`", "the Ferry app".
    pub kind: String,
    pub version: String,
    /// The config it runs: a file's path, or `demo`.
    pub source: String,
    /// When it started (milliseconds since the Unix epoch).
    pub started_ms: u64,
}

impl Runner {
    /// This process, as `kind`, running `source`.
    pub fn this_process(kind: &str, source: &str) -> Runner {
        Runner {
            pid: std::process::id(),
            kind: kind.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            source: source.to_string(),
            started_ms: crate::clock::now_ms(),
        }
    }
}

impl std::fmt::Display for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {})", self.kind, self.pid)
    }
}

/// The answer to `inspect`: what an inspected forward kept so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inspected {
    pub forward: String,
    /// Set once a connection was passed through unparsed because it was not HTTP.
    pub passthrough: Option<String>,
    /// Oldest first.
    pub exchanges: Vec<ferry_http::Exchange>,
}

/// How an endpoint finds a forward's inspection: [`crate::engine::Engine::inspector`].
pub type InspectionOf = std::sync::Arc<
    dyn Fn(
            String,
        ) -> futures::future::BoxFuture<
            'static,
            Result<std::sync::Arc<crate::inspect::Inspection>, String>,
        > + Send
        + Sync,
>;

/// Why the endpoint could not be served or asked.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another process serves this config's endpoint: it runs these forwards.
    #[error("{0} already runs the forwards of {src}", src = .0.source)]
    AlreadyRunning(Box<Runner>),
    #[error("the control endpoint {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The other side said something that is not the protocol, or an error.
    #[error("the control endpoint answered: {0}")]
    Protocol(String),
    #[error("the control endpoint is not available on this system yet")]
    Unsupported,
}

/// The name a config is known by: its canonical path, or `demo`.
pub fn source_name(config: Option<&Path>) -> String {
    match config {
        None => "demo".to_string(),
        Some(p) => std::fs::canonicalize(p)
            .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
            .display()
            .to_string(),
    }
}

/// The directory that holds the endpoints: `$XDG_RUNTIME_DIR/ferry`, else
/// `~/.cache/ferry/run`.
pub fn endpoint_dir() -> PathBuf {
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(run).join("ferry");
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("ferry")
        .join("run")
}

/// The endpoint of the config known as `source` (see [`source_name`]): short enough for
/// a Unix socket's path, the same for every process that names the config alike.
pub fn endpoint_path(source: &str) -> PathBuf {
    #[cfg(not(windows))]
    {
        endpoint_dir().join(format!("control-{:016x}.sock", fnv(source)))
    }
    // A pipe's name is machine-wide: the user's name goes into the hash.
    #[cfg(windows)]
    {
        let user = std::env::var("USERNAME").unwrap_or_default();
        PathBuf::from(format!(
            r"\\.\pipe\ferry-control-{:016x}",
            fnv(&format!("{user}\n{source}"))
        ))
    }
}

/// FNV-1a: a stable hash of a name (std's hasher may change between releases).
fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One request line.
#[cfg(any(unix, windows))]
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    id: u64,
    method: String,
    /// The forward a per-forward method (`inspect`) is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    forward: Option<String>,
}

/// One answer line: a result, an error, or (after `subscribe`) an event.
#[cfg(any(unix, windows))]
#[derive(Debug, Default, Serialize, Deserialize)]
struct Answer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<Event>,
    /// After `inspect`: one new exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exchange: Option<Box<ferry_http::Exchange>>,
    /// After `inspect`: how many exchanges a slow follower missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    missed: Option<u64>,
}

#[cfg(any(unix, windows))]
#[derive(Debug, Serialize, Deserialize)]
struct ErrorBody {
    message: String,
}

#[cfg(any(unix, windows))]
pub use served::{ControlClient, ControlServer, Exchanged, Following, Inspecting, Subscribed};

/// The endpoint's protocol, over whichever transport the system has ([`transport`]).
#[cfg(any(unix, windows))]
mod served {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
    use tokio::task::JoinSet;
    use tokio_util::sync::CancellationToken;
    use tracing::{Instrument as _, debug};

    use super::transport::{self, BoxRead, BoxWrite};
    use super::{Answer, ControlError, ErrorBody, Inspected, InspectionOf, Request, Runner};
    use crate::events::{Snapshot, Subscription, Update};

    type Lines = BufReader<BoxRead>;

    /// The most a request line may be; a longer one ends the connection.
    const MAX_LINE: usize = 64 * 1024;

    pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ControlError + '_ {
        move |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Serves a config's endpoint while alive: dropping it stops serving and removes the
    /// socket.
    pub struct ControlServer {
        path: PathBuf,
        token: CancellationToken,
        /// What `show` does, once the process has a window to show.
        show: Arc<std::sync::OnceLock<ShowWindow>>,
        /// The accept loop, which owns the connections' tasks.
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for ControlServer {
        fn drop(&mut self) {
            self.token.cancel();
            self.task.abort();
            transport::unlink(&self.path);
        }
    }

    impl ControlServer {
        /// Serves `runner` and what `subscribe` gives at `path`. Another live process on
        /// the same path is [`ControlError::AlreadyRunning`]; a socket left by one that
        /// died is replaced. Must be called within a Tokio runtime.
        pub async fn start(
            path: PathBuf,
            runner: Runner,
            subscribe: impl Fn() -> Subscription + Send + Sync + 'static,
        ) -> Result<ControlServer, ControlError> {
            let none: InspectionOf = Arc::new(|name: String| {
                Box::pin(
                    async move { Err(format!("this process does not inspect forwards ({name})")) },
                )
            });
            Self::start_with(path, runner, subscribe, none).await
        }

        /// [`ControlServer::start`], also answering `inspect` through `inspection`.
        pub async fn start_with(
            path: PathBuf,
            runner: Runner,
            subscribe: impl Fn() -> Subscription + Send + Sync + 'static,
            inspection: InspectionOf,
        ) -> Result<ControlServer, ControlError> {
            if let Some(client) = ControlClient::connect(&path).await? {
                return Err(match client.hello().await {
                    Ok(other) => ControlError::AlreadyRunning(Box::new(other)),
                    Err(e) => e,
                });
            }
            let listener = transport::listen(&path)?;
            let token = CancellationToken::new();
            let show = Arc::new(std::sync::OnceLock::new());
            let handlers = Handlers {
                runner,
                subscribe: Box::new(subscribe),
                inspection,
                show: show.clone(),
            };
            let serving = serve(listener, Arc::new(handlers), token.clone());
            let task = tokio::spawn(
                serving.instrument(tracing::debug_span!("control", path = %path.display())),
            );
            Ok(ControlServer {
                path,
                token,
                show,
                task,
            })
        }

        pub fn path(&self) -> &Path {
            &self.path
        }

        /// Answers `show` with `show` from now on (the first one given stays).
        pub fn answer_show(&self, show: impl Fn() + Send + Sync + 'static) {
            let _ = self.show.set(Arc::new(show));
        }
    }

    /// What `show` runs: brings the process's window up.
    type ShowWindow = Arc<dyn Fn() + Send + Sync>;

    /// What the endpoint answers with.
    struct Handlers {
        runner: Runner,
        subscribe: Box<dyn Fn() -> Subscription + Send + Sync>,
        inspection: InspectionOf,
        show: Arc<std::sync::OnceLock<ShowWindow>>,
    }

    /// Accepts until cancelled; the connections live in a JoinSet owned here, so they end
    /// with it.
    async fn serve(
        mut listener: transport::Listener,
        handlers: Arc<Handlers>,
        token: CancellationToken,
    ) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                Some(_) = connections.join_next() => {}
                accepted = listener.accept() => match accepted {
                    Ok((r, w)) => {
                        let handlers = handlers.clone();
                        connections.spawn(async move {
                            if let Err(e) = answer(r, w, &handlers).await {
                                debug!(error = %e, "control connection ended");
                            }
                        }.in_current_span());
                    }
                    Err(e) => {
                        debug!(error = %e, "accepting a control connection failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
            }
        }
        connections.shutdown().await;
    }

    async fn send(w: &mut BoxWrite, answer: &Answer) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
        line.push(b'\n');
        w.write_all(&line).await
    }

    fn result(id: u64, value: impl serde::Serialize) -> Answer {
        Answer {
            id: Some(id),
            result: Some(serde_json::to_value(value).unwrap_or_default()),
            ..Answer::default()
        }
    }

    /// Reads request lines and answers them; `subscribe` turns the connection into a
    /// stream of events until the client hangs up.
    async fn answer(r: BoxRead, mut w: BoxWrite, handlers: &Handlers) -> std::io::Result<()> {
        let Handlers {
            runner,
            subscribe,
            inspection,
            show,
        } = handlers;
        let mut lines = BufReader::new(r);
        let mut line = String::new();
        loop {
            line.clear();
            let n = (&mut lines)
                .take(MAX_LINE as u64)
                .read_line(&mut line)
                .await?;
            if n == 0 {
                return Ok(());
            }
            if !line.ends_with('\n') && n >= MAX_LINE {
                return Err(std::io::Error::other("request line too long"));
            }
            let request: Request = match serde_json::from_str(line.trim()) {
                Ok(r) => r,
                Err(e) => {
                    let error = ErrorBody {
                        message: format!("not a request: {e}"),
                    };
                    send(
                        &mut w,
                        &Answer {
                            error: Some(error),
                            ..Answer::default()
                        },
                    )
                    .await?;
                    continue;
                }
            };
            let id = request.id;
            match request.method.as_str() {
                "hello" => send(&mut w, &result(id, runner)).await?,
                "status" => {
                    let snapshot = subscribe().snapshot.borrow().clone();
                    send(&mut w, &result(id, &*snapshot)).await?;
                }
                "subscribe" => return follow(lines, w, id, subscribe()).await,
                "inspect" => {
                    let Some(forward) = request.forward else {
                        send(&mut w, &failure(id, "inspect: give `forward`".into())).await?;
                        continue;
                    };
                    match inspection(forward.clone()).await {
                        Ok(found) => return follow_exchanges(lines, w, id, forward, &found).await,
                        Err(e) => send(&mut w, &failure(id, e)).await?,
                    }
                }
                "show" => match show.get() {
                    Some(show) => {
                        show();
                        send(&mut w, &result(id, true)).await?;
                    }
                    None => {
                        let message = format!("{runner} has no window to show");
                        send(&mut w, &failure(id, message)).await?;
                    }
                },
                other => {
                    let error = ErrorBody {
                        message: format!(
                            "unknown method `{other}`: hello, status, subscribe, inspect and show are served"
                        ),
                    };
                    let answer = Answer {
                        id: Some(id),
                        error: Some(error),
                        ..Answer::default()
                    };
                    send(&mut w, &answer).await?;
                }
            }
        }
    }

    fn failure(id: u64, message: String) -> Answer {
        Answer {
            id: Some(id),
            error: Some(ErrorBody { message }),
            ..Answer::default()
        }
    }

    /// The exchanges kept, then each new one, until the client hangs up or the inspection
    /// ends (turned off or changed, or the forward stopped).
    async fn follow_exchanges(
        mut lines: Lines,
        mut w: BoxWrite,
        id: u64,
        forward: String,
        inspection: &crate::inspect::Inspection,
    ) -> std::io::Result<()> {
        let (kept, mut next) = inspection.follow();
        let first = super::Inspected {
            forward,
            passthrough: inspection.passthrough(),
            exchanges: kept.iter().map(|e| (**e).clone()).collect(),
        };
        drop(kept);
        send(&mut w, &result(id, &first)).await?;
        let mut ignored = [0u8; 1024];
        loop {
            tokio::select! {
                read = lines.read(&mut ignored) => {
                    if read? == 0 {
                        return Ok(());
                    }
                }
                () = inspection.ended() => return Ok(()),
                got = next.recv() => match got {
                    Ok(exchange) => {
                        let exchange = Some(Box::new((*exchange).clone()));
                        send(&mut w, &Answer { exchange, ..Answer::default() }).await?;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        send(&mut w, &Answer { missed: Some(n), ..Answer::default() }).await?;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }

    /// The snapshot, then every event (a fresh snapshot after a lag), until the client
    /// hangs up or the engine ends.
    async fn follow(
        mut lines: Lines,
        mut w: BoxWrite,
        id: u64,
        mut sub: Subscription,
    ) -> std::io::Result<()> {
        let first = sub.snapshot.borrow_and_update().clone();
        send(&mut w, &result(id, &*first)).await?;
        let mut ignored = [0u8; 1024];
        loop {
            tokio::select! {
                // Anything more from the client is read and dropped; its end ends the stream.
                read = lines.read(&mut ignored) => {
                    if read? == 0 {
                        return Ok(());
                    }
                }
                update = sub.next() => match update {
                    Some(Update::Event(event)) => {
                        send(&mut w, &Answer { event: Some(event), ..Answer::default() }).await?;
                    }
                    Some(Update::Resync(snapshot)) => {
                        send(&mut w, &result(id, &*snapshot)).await?;
                    }
                    None => return Ok(()),
                },
            }
        }
    }

    /// A connection to a running Ferry's endpoint.
    pub struct ControlClient {
        path: PathBuf,
        lines: Lines,
        w: BoxWrite,
        next_id: u64,
    }

    /// What a subscription yields.
    #[derive(Debug)]
    pub enum Following {
        /// The complete state (first, and after the server fell behind).
        Snapshot(Snapshot),
        Event(crate::events::Event),
    }

    impl ControlClient {
        /// Connects to the endpoint at `path`; `None` when nothing serves it (no socket,
        /// or one left by a process that died).
        pub async fn connect(path: &Path) -> Result<Option<ControlClient>, ControlError> {
            Ok(transport::connect(path)
                .await
                .map_err(io(path))?
                .map(|(r, w)| ControlClient {
                    path: path.to_path_buf(),
                    lines: BufReader::new(r),
                    w,
                    next_id: 1,
                }))
        }

        async fn call(&mut self, method: &str) -> Result<serde_json::Value, ControlError> {
            self.call_about(method, None).await
        }

        async fn call_about(
            &mut self,
            method: &str,
            forward: Option<&str>,
        ) -> Result<serde_json::Value, ControlError> {
            let id = self.next_id;
            self.next_id += 1;
            let mut line = serde_json::to_vec(&Request {
                id,
                method: method.to_string(),
                forward: forward.map(str::to_string),
            })
            .map_err(|e| ControlError::Protocol(e.to_string()))?;
            line.push(b'\n');
            self.w.write_all(&line).await.map_err(io(&self.path))?;
            match self.read().await? {
                Answer { error: Some(e), .. } => Err(ControlError::Protocol(e.message)),
                Answer {
                    result: Some(v),
                    id: Some(got),
                    ..
                } if got == id => Ok(v),
                other => Err(ControlError::Protocol(format!(
                    "unexpected answer {other:?}"
                ))),
            }
        }

        async fn read(&mut self) -> Result<Answer, ControlError> {
            let mut line = String::new();
            let n = self
                .lines
                .read_line(&mut line)
                .await
                .map_err(io(&self.path))?;
            if n == 0 {
                return Err(ControlError::Protocol(
                    "the endpoint closed the connection".into(),
                ));
            }
            serde_json::from_str(&line).map_err(|e| ControlError::Protocol(e.to_string()))
        }

        /// Who runs the forwards.
        pub async fn hello(mut self) -> Result<Runner, ControlError> {
            let v = self.call("hello").await?;
            serde_json::from_value(v).map_err(|e| ControlError::Protocol(e.to_string()))
        }

        /// Asks the process to bring its window up (the app; others refuse: they have none).
        pub async fn show(mut self) -> Result<(), ControlError> {
            self.call("show").await.map(drop)
        }

        /// Who runs the forwards and their state now.
        pub async fn status(mut self) -> Result<(Runner, Snapshot), ControlError> {
            let runner = serde_json::from_value(self.call("hello").await?)
                .map_err(|e| ControlError::Protocol(e.to_string()))?;
            let snapshot = serde_json::from_value(self.call("status").await?)
                .map_err(|e| ControlError::Protocol(e.to_string()))?;
            Ok((runner, snapshot))
        }

        /// Follows the state: the snapshot first, then events; `next` yields them.
        pub async fn subscribe(mut self) -> Result<Subscribed, ControlError> {
            let first = self.call("subscribe").await?;
            let snapshot =
                serde_json::from_value(first).map_err(|e| ControlError::Protocol(e.to_string()))?;
            Ok(Subscribed {
                client: self,
                first: Some(snapshot),
            })
        }
    }

    impl ControlClient {
        /// Follows a forward's HTTP exchanges: what it kept, then each new one with
        /// [`Inspecting::next`]. An error says why not (not inspected, disabled, unknown).
        pub async fn inspect(
            mut self,
            forward: &str,
        ) -> Result<(Inspected, Inspecting), ControlError> {
            let first = self.call_about("inspect", Some(forward)).await?;
            let kept =
                serde_json::from_value(first).map_err(|e| ControlError::Protocol(e.to_string()))?;
            Ok((kept, Inspecting { client: self }))
        }
    }

    /// What following a forward's exchanges yields.
    #[derive(Debug)]
    pub enum Exchanged {
        Exchange(Box<ferry_http::Exchange>),
        /// This many exchanges went by while the follower was behind.
        Missed(u64),
    }

    /// Following a forward's exchanges through the endpoint.
    pub struct Inspecting {
        client: ControlClient,
    }

    impl Inspecting {
        /// The next exchange; `None` when the inspection or the endpoint ended.
        pub async fn next(&mut self) -> Option<Exchanged> {
            match self.client.read().await.ok()? {
                Answer {
                    exchange: Some(e), ..
                } => Some(Exchanged::Exchange(e)),
                Answer {
                    missed: Some(n), ..
                } => Some(Exchanged::Missed(n)),
                _ => None,
            }
        }
    }

    /// A subscription through the endpoint.
    pub struct Subscribed {
        client: ControlClient,
        first: Option<Snapshot>,
    }

    impl Subscribed {
        /// The next snapshot or event; `None` when the endpoint went away.
        pub async fn next(&mut self) -> Option<Following> {
            if let Some(s) = self.first.take() {
                return Some(Following::Snapshot(s));
            }
            match self.client.read().await.ok()? {
                Answer { event: Some(e), .. } => Some(Following::Event(e)),
                Answer {
                    result: Some(v), ..
                } => serde_json::from_value(v).ok().map(Following::Snapshot),
                _ => None,
            }
        }
    }
}

/// A Unix socket: in a directory only its owner may enter, owner-only itself.
#[cfg(unix)]
mod transport {
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::Path;

    use tokio::net::{UnixListener, UnixStream};
    use tracing::debug;

    use super::ControlError;
    use super::served::io;

    pub(super) type BoxRead = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
    pub(super) type BoxWrite = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

    pub(super) struct Listener(UnixListener);

    impl Listener {
        pub(super) async fn accept(&mut self) -> std::io::Result<(BoxRead, BoxWrite)> {
            let (stream, _) = self.0.accept().await?;
            let (r, w) = stream.into_split();
            Ok((Box::new(r), Box::new(w)))
        }
    }

    /// Binds the socket at `path` (replacing one a dead process left).
    pub(super) fn listen(path: &Path) -> Result<Listener, ControlError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(dir))?;
        }
        match std::fs::remove_file(path) {
            Ok(()) => debug!(path = %path.display(), "removed a stale control socket"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(path)(e)),
        }
        let listener = UnixListener::bind(path).map_err(io(path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
        Ok(Listener(listener))
    }

    pub(super) fn unlink(path: &Path) {
        let _ = std::fs::remove_file(path);
    }

    /// `None` when nothing serves `path` (no socket, or one left by a process that died).
    pub(super) async fn connect(path: &Path) -> std::io::Result<Option<(BoxRead, BoxWrite)>> {
        match UnixStream::connect(path).await {
            Ok(stream) => {
                let (r, w) = stream.into_split();
                Ok(Some((Box::new(r), Box::new(w))))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// A named pipe: created as the first instance of its name (so another process cannot
/// hold the name first, and a second Ferry on the same config fails to create it), local
/// clients only. A pipe goes with its process: nothing is left to clean up.
#[cfg(windows)]
mod transport {
    use std::ffi::OsString;
    use std::path::Path;
    use std::time::Duration;

    use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeServer, ServerOptions};

    use super::ControlError;
    use super::served::io;

    pub(super) type BoxRead = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
    pub(super) type BoxWrite = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

    /// `ERROR_PIPE_BUSY`: every instance of the pipe is connected; a client waits and
    /// tries again.
    const ERROR_PIPE_BUSY: i32 = 231;

    pub(super) struct Listener {
        name: OsString,
        /// The instance the next client connects to.
        next: NamedPipeServer,
    }

    impl Listener {
        pub(super) async fn accept(&mut self) -> std::io::Result<(BoxRead, BoxWrite)> {
            self.next.connect().await?;
            let fresh = ServerOptions::new()
                .reject_remote_clients(true)
                .create(&self.name)?;
            let connected = std::mem::replace(&mut self.next, fresh);
            let (r, w) = tokio::io::split(connected);
            Ok((Box::new(r), Box::new(w)))
        }
    }

    pub(super) fn listen(path: &Path) -> Result<Listener, ControlError> {
        let name = path.as_os_str().to_owned();
        let next = ServerOptions::new()
            .first_pipe_instance(true)
            .reject_remote_clients(true)
            .create(&name)
            .map_err(io(path))?;
        Ok(Listener { name, next })
    }

    pub(super) fn unlink(_path: &Path) {}

    /// `None` when nothing serves `path`.
    pub(super) async fn connect(path: &Path) -> std::io::Result<Option<(BoxRead, BoxWrite)>> {
        for _ in 0..100 {
            match ClientOptions::new().open(path.as_os_str()) {
                Ok(client) => {
                    let (r, w) = tokio::io::split(client);
                    return Ok(Some((Box::new(r), Box::new(w))));
                }
                Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(
            "the control endpoint stayed busy for 2 s",
        ))
    }
}

/// On systems without the endpoint: never served, never found.
#[cfg(not(any(unix, windows)))]
pub struct ControlServer;

#[cfg(not(any(unix, windows)))]
impl ControlServer {
    pub async fn start(
        _path: PathBuf,
        _runner: Runner,
        _subscribe: impl Fn() -> crate::events::Subscription + Send + Sync + 'static,
    ) -> Result<ControlServer, ControlError> {
        Err(ControlError::Unsupported)
    }

    pub async fn start_with(
        _path: PathBuf,
        _runner: Runner,
        _subscribe: impl Fn() -> crate::events::Subscription + Send + Sync + 'static,
        _inspection: InspectionOf,
    ) -> Result<ControlServer, ControlError> {
        Err(ControlError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_config_has_one_endpoint_and_others_another() {
        let a = endpoint_path("/home/me/.config/ferry/store.json");
        assert_eq!(a, endpoint_path("/home/me/.config/ferry/store.json"));
        assert_ne!(a, endpoint_path("/home/me/other.yaml"));
        assert_ne!(a, endpoint_path("demo"));
        #[cfg(not(windows))]
        {
            let name = a.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            assert!(
                name.starts_with("control-") && name.ends_with(".sock"),
                "{name}"
            );
            // Unix sockets' paths are limited to 108 bytes; the name takes 29 of them.
            assert_eq!(name.len(), 29);
        }
        #[cfg(windows)]
        assert!(
            a.to_string_lossy().starts_with(r"\\.\pipe\ferry-control-"),
            "{}",
            a.display()
        );
    }

    /// The endpoint as the system has it (a Unix socket, or a Windows named pipe): found
    /// while served, gone after; a second server on it is refused, naming the first.
    #[cfg(any(unix, windows))]
    #[tokio::test]
    async fn a_client_finds_the_server_and_a_second_one_is_refused() {
        #[cfg(unix)]
        let dir = tempfile::tempdir().expect("tempdir");
        #[cfg(unix)]
        let path = dir.path().join("run").join("control-test.sock");
        #[cfg(windows)]
        let path = PathBuf::from(format!(
            r"\\.\pipe\ferry-control-test-{}-{}",
            std::process::id(),
            crate::clock::now_ms()
        ));
        let bus = std::sync::Arc::new(crate::events::Bus::new());
        let serve = |kind: &str| {
            let bus = bus.clone();
            ControlServer::start(
                path.clone(),
                Runner::this_process(kind, "demo"),
                move || bus.subscribe(),
            )
        };
        let first = serve("first").await.expect("served");
        let client = ControlClient::connect(&path)
            .await
            .expect("connects")
            .expect("found");
        let (runner, snapshot) = client.status().await.expect("status");
        assert_eq!(runner.kind, "first");
        assert!(snapshot.forwards.is_empty());
        // `show` is refused until the process has a window, then runs what it was given.
        let connect = || async {
            ControlClient::connect(&path)
                .await
                .expect("connects")
                .expect("found")
        };
        let refused = connect().await.show().await.expect_err("no window yet");
        assert!(
            refused.to_string().contains("has no window to show"),
            "{refused}"
        );
        let shown = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = shown.clone();
        first.answer_show(move || {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        connect().await.show().await.expect("shown");
        assert_eq!(shown.load(std::sync::atomic::Ordering::SeqCst), 1);
        let second = serve("second").await;
        match second {
            Err(ControlError::AlreadyRunning(r)) => assert_eq!(r.kind, "first"),
            Err(e) => panic!("refused for another reason: {e}"),
            Ok(_) => panic!("a second server on the same endpoint"),
        }
        drop(first);
        // Gone with its server (the accept loop ends as the server is dropped).
        let mut gone = false;
        for _ in 0..50 {
            if ControlClient::connect(&path).await.expect("asks").is_none() {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(gone, "the endpoint outlived its server");
    }

    #[cfg(any(unix, windows))]
    #[test]
    fn the_answer_lines_round_trip() {
        let line = r#"{"id":3,"result":{"pid":1}}"#;
        let a: Answer = serde_json::from_str(line).expect("an answer");
        assert_eq!(a.id, Some(3));
        assert!(a.event.is_none() && a.error.is_none());
    }
}
