//! What every fuzz target shares: the one property they check (an error says something)
//! and a scratch file for the parsers that read from disk.

use std::path::PathBuf;
use std::sync::OnceLock;

/// A value, or an error whose message is not blank. A panic anywhere is the finding.
pub fn some_words<T, E: std::fmt::Display>(r: Result<T, E>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(!e.to_string().trim().is_empty(), "an error says something");
            None
        }
    }
}

/// A file of this process's own in the temporary directory, holding `bytes`: the store and
/// kubeconfig readers take a path. One per process, so parallel jobs do not share it.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ferry-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    });
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("the scratch file is written");
    path
}
