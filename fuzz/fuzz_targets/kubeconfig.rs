//! A kubeconfig file, any bytes, as Ferry reads it: `KubeconfigSource::load` (the client
//! library's YAML reading, multi-document merging), `ClientPool::contexts`, and then, on a
//! current-thread Tokio runtime, `ClientPool::client` for the current context and for
//! `kind`, which turns the entry into a client (server URL, certificates and keys in the
//! file or named by it, tokens, proxy URL).
//!
//! Building is skipped for a kubeconfig with any `exec` or `auth-provider` user: those
//! run the commands they name (a credential plugin, gcp's `cmd-path`), and a fuzzer must
//! not run whatever it writes.
#![no_main]

use std::sync::OnceLock;

use ferry_core::cluster::{ClientPool, KubeconfigSource};
use ferry_fuzz::{scratch_file, some_words};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("config", data);
    let source = KubeconfigSource::from_paths(vec![path]);
    let Some(kubeconfig) = some_words(source.load()) else {
        return;
    };
    let pool = ClientPool::new(source);
    some_words(pool.contexts());
    let runs_commands = kubeconfig.auth_infos.iter().any(|a| {
        a.auth_info
            .as_ref()
            .is_some_and(|i| i.exec.is_some() || i.auth_provider.is_some())
    });
    if runs_commands {
        return;
    }
    runtime().block_on(async {
        some_words(pool.client(None).await);
        some_words(pool.client(Some("kind")).await);
    });
});
