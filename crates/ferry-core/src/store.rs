//! The store: the one JSON file the desktop app and the `ferry` CLI share by default.
//!
//! ```json
//! {"version": 1, "config": {"version": 1, "forwards": [...], "profiles": [...]},
//!  "settings": {...}}
//! ```
//!
//! `config` is a [`Config`]; `settings` belongs to the app and is kept as it is by
//! everyone else. Every change goes through [`Store::modify`]: take an exclusive lock on
//! `<file>.lock`, read the file afresh, change, validate, write atomically (a temporary
//! file in the same directory, flushed, renamed over the file), unlock. So the CLI and a
//! running app take turns and never lose or tear each other's writes.
//!
//! A store that cannot be read or parsed is never overwritten: [`Store::load_or_recover`]
//! renames it to `<file>.corrupt-<ms>` and starts from an empty store, saying where the
//! backup is.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, ConfigError};
use crate::events::now_ms;

/// The store format version this build reads and writes.
pub const STORE_VERSION: u32 = 1;

/// The whole store file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreDoc {
    /// Must be [`STORE_VERSION`].
    pub version: u32,
    /// The forwards and profiles.
    pub config: Config,
    /// The app's settings, opaque here and kept as they are.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub settings: Value,
}

impl Default for StoreDoc {
    fn default() -> Self {
        StoreDoc {
            version: STORE_VERSION,
            config: Config::default(),
            settings: Value::Null,
        }
    }
}

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be read, locked or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not a store this build understands.
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// The change would leave an invalid config; nothing was written.
    #[error("{0}")]
    Invalid(#[source] ConfigError),
}

/// Where a store that could not be read was moved, and why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub backup: PathBuf,
    pub reason: String,
}

/// A store file (which need not exist yet).
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The store at `path`; a symlink is followed so that writes and the lock go to its
    /// target.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Store {
            path: resolve_link(&path.into()),
        }
    }

    /// The default store: `$FERRY_STORE`, else `%APPDATA%\ferry\store.json` on Windows,
    /// else `$XDG_CONFIG_HOME/ferry/store.json`, else `~/.config/ferry/store.json` (macOS
    /// too, so that the CLI and the app agree without configuration).
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("FERRY_STORE").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let windows = cfg!(windows)
            .then(|| std::env::var_os("APPDATA"))
            .flatten()
            .map(PathBuf::from);
        windows
            .or_else(|| std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from))
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(std::env::temp_dir)
            .join("ferry")
            .join("store.json")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the store; a missing file is an empty store.
    pub fn load(&self) -> Result<StoreDoc, StoreError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StoreDoc::default()),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        parse(&text).map_err(|message| StoreError::Corrupt {
            path: self.path.clone(),
            message,
        })
    }

    /// Reads the store; one that cannot be read or parsed is moved aside to
    /// `<file>.corrupt-<ms>` (under the lock) and an empty store is returned with where it
    /// went.
    pub fn load_or_recover(&self) -> Result<(StoreDoc, Option<Recovered>), StoreError> {
        match self.load() {
            Ok(doc) => Ok((doc, None)),
            Err(StoreError::Io { source, .. }) => self.recover(source.to_string()),
            Err(StoreError::Corrupt { message, .. }) => self.recover(message),
            Err(e) => Err(e),
        }
    }

    fn recover(&self, reason: String) -> Result<(StoreDoc, Option<Recovered>), StoreError> {
        let _lock = FileLock::take(&self.path)?;
        // Another writer may have repaired the file meanwhile.
        if let Ok(doc) = self.load() {
            return Ok((doc, None));
        }
        // Never replace an earlier backup.
        let stamp = now_ms();
        let backup = (0..)
            .map(|n| {
                let suffix = if n == 0 {
                    String::new()
                } else {
                    format!("-{n}")
                };
                self.path
                    .with_file_name(format!("{}.corrupt-{stamp}{suffix}", file_name(&self.path)))
            })
            .find(|p| !p.exists())
            .unwrap_or_else(|| self.path.with_extension("corrupt"));
        std::fs::rename(&self.path, &backup).map_err(|source| StoreError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok((StoreDoc::default(), Some(Recovered { backup, reason })))
    }

    /// Reads the store afresh under the lock, lets `change` change it, validates the
    /// config and writes the result atomically. Nothing is written when `change` or the
    /// validation fails, or when nothing changed. Returns what `change` returned and the
    /// store as written.
    pub fn modify<T, E>(
        &self,
        change: impl FnOnce(&mut StoreDoc) -> Result<T, E>,
    ) -> Result<(T, StoreDoc), E>
    where
        E: From<StoreError>,
    {
        self.modify_then(change, StoreDoc::clone)
    }

    /// [`Store::modify`], then `then` with the store as written, still under the lock: a
    /// writer that keeps a copy (and numbers it) does so in the order the writes happened.
    pub fn modify_then<T, E, R>(
        &self,
        change: impl FnOnce(&mut StoreDoc) -> Result<T, E>,
        then: impl FnOnce(&StoreDoc) -> R,
    ) -> Result<(T, R), E>
    where
        E: From<StoreError>,
    {
        let _lock = FileLock::take(&self.path)?;
        let before = std::fs::read_to_string(&self.path).ok();
        let mut doc = self.load()?;
        let out = change(&mut doc)?;
        doc.config.validate().map_err(StoreError::Invalid)?;
        let text = render(&doc).map_err(|message| StoreError::Corrupt {
            path: self.path.clone(),
            message,
        })?;
        // Unchanged stores are not rewritten; older layouts are, by the first change.
        if before.as_deref() != Some(text.as_str()) {
            write_atomic(&self.path, text.as_bytes()).map_err(|source| StoreError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok((out, then(&doc)))
    }

    /// Reads the store under the writers' lock and gives it to `then` before the lock is
    /// released, so that no write lands between the two.
    pub fn load_then<R>(&self, then: impl FnOnce(StoreDoc) -> R) -> Result<R, StoreError> {
        let _lock = FileLock::take(&self.path)?;
        Ok(then(self.load()?))
    }
}

/// The store as written: pretty JSON with a final newline.
fn render(doc: &StoreDoc) -> Result<String, String> {
    serde_json::to_string_pretty(doc)
        .map(|t| format!("{t}\n"))
        .map_err(|e| e.to_string())
}

/// Parses a store, migrating older layouts: a bare config document (`{"version": 1,
/// "forwards": [...]}`, what the CLI wrote before the store existed) becomes a store with
/// that config and no settings.
fn parse(text: &str) -> Result<StoreDoc, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = &value else {
        return Err("not a JSON object".into());
    };
    if !map.contains_key("config") && (map.contains_key("forwards") || map.contains_key("profiles"))
    {
        let config = Config::from_json(text).map_err(|e| e.to_string())?;
        return Ok(StoreDoc {
            version: STORE_VERSION,
            config,
            settings: Value::Null,
        });
    }
    match map.get("version").and_then(Value::as_u64) {
        Some(v) if v == u64::from(STORE_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "store version {v} is not supported (this build reads version {STORE_VERSION}); it was written by a newer Ferry"
            ));
        }
        None => return Err("`version` is missing".into()),
    }
    let mut doc: StoreDoc =
        serde_json::from_value(value).map_err(|e| format!("not a Ferry store: {e}"))?;
    // Parse the config through its own reader too, so its checks (versions, ports, durations)
    // are the config file's, then validate.
    let config_text = serde_json::to_string(&doc.config).map_err(|e| e.to_string())?;
    doc.config = Config::from_json(&config_text).map_err(|e| format!("config: {e}"))?;
    doc.config
        .validate()
        .map_err(|e| format!("config is not valid: {e}"))?;
    Ok(doc)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into())
}

/// The file a symlinked path points at, or the path itself.
pub fn resolve_link(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

/// An exclusive lock on `<file>.lock`, held while alive. Writers of the same file (the
/// CLI, the app) take it around read-change-write.
#[derive(Debug)]
pub struct FileLock(File);

impl FileLock {
    /// Blocks until the lock on `path`'s lock file is ours, creating its directory.
    pub fn take(path: &Path) -> Result<Self, StoreError> {
        let lock_path = path.with_file_name(format!("{}.lock", file_name(path)));
        let io_err = |source| StoreError::Io {
            path: lock_path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err)?;
        file.lock().map_err(io_err)?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed to disk, then
/// renamed over it. The file keeps its permissions; a new file is private (0600 on Unix).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_file_name(format!(".{}.tmp-{}", file_name(path), std::process::id()));
    let write = || -> io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Forward, PortRef, Target};

    fn forward(name: &str, port: u16) -> Forward {
        Forward::new(
            name,
            Target::Service("echo".into()),
            PortRef::Number(80),
            port,
        )
    }

    #[test]
    fn missing_store_is_empty_and_first_modify_creates_it_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("sub/store.json"));
        assert_eq!(store.load().unwrap(), StoreDoc::default());
        store
            .modify(|doc| {
                doc.config.forwards.push(forward("a", 18080));
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let doc = store.load().unwrap();
        assert_eq!(doc.config.forwards.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn invalid_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("store.json"));
        store
            .modify(|doc| {
                doc.config.forwards.push(forward("a", 18080));
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let before = std::fs::read(store.path()).unwrap();
        let err = store
            .modify(|doc| {
                doc.config.forwards.push(forward("b", 18080));
                Ok::<_, StoreError>(())
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("local_port"), "{err}");
        assert_eq!(std::fs::read(store.path()).unwrap(), before);
    }

    #[test]
    fn settings_are_kept_by_config_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("store.json"));
        store
            .modify(|doc| {
                doc.settings = serde_json::json!({"theme": "dark"});
                Ok::<_, StoreError>(())
            })
            .unwrap();
        store
            .modify(|doc| {
                doc.config.forwards.push(forward("a", 18080));
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let doc = store.load().unwrap();
        assert_eq!(doc.settings["theme"], "dark");
        assert_eq!(doc.config.forwards[0].name, "a");
    }

    #[test]
    fn corrupt_store_is_kept_as_backup_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.json");
        for bad in [
            "{not json",
            "[]",
            r#"{"version": 9, "config": {"version": 1}}"#,
            r#"{"version": 1, "config": {"version": 1, "forwards": [{"name": "a"}]}}"#,
            r#"{"version": 1, "config": {"version": 1, "forwards": [
                {"name": "a", "target": "svc/x", "port": 80, "local_port": 1},
                {"name": "a", "target": "svc/x", "port": 80, "local_port": 2}]}}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let store = Store::new(&path);
            let (doc, recovered) = store.load_or_recover().unwrap();
            assert_eq!(doc, StoreDoc::default(), "{bad}");
            let recovered = recovered.expect("a recovery");
            assert_eq!(std::fs::read_to_string(&recovered.backup).unwrap(), bad);
            assert!(!path.exists(), "the corrupt file was moved, not copied");
            assert!(!recovered.reason.is_empty());
        }
        let version = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("corrupt")
            })
            .count();
        assert_eq!(version, 5, "every bad file kept");
    }

    #[test]
    fn a_bare_config_document_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.json");
        std::fs::write(
            &path,
            r#"{"version": 1, "forwards": [{"name": "a", "target": "svc/x", "port": 80, "local_port": 18080}]}"#,
        )
        .unwrap();
        let store = Store::new(&path);
        let (doc, recovered) = store.load_or_recover().unwrap();
        assert!(recovered.is_none());
        assert_eq!(doc.config.forwards[0].name, "a");
        // The next write writes the current layout.
        store.modify(|_| Ok::<_, StoreError>(())).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"config\""), "{text}");
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.json");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let store = Store::new(&path);
                    for i in 0..10 {
                        store
                            .modify(|doc| {
                                let n = t * 10 + i;
                                doc.config
                                    .forwards
                                    .push(forward(&format!("f{n}"), 20000 + n as u16));
                                Ok::<_, StoreError>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let doc = Store::new(&path).load().unwrap();
        assert_eq!(doc.config.forwards.len(), 80);
    }
}
