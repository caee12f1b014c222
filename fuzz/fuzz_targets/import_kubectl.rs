//! Pasted `kubectl port-forward` command lines (`import::kubectl_lines`, which reads each
//! line with `import::kubectl_line`).
#![no_main]

use ferry_core::config::import;
use ferry_fuzz::some_words;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    some_words(import::kubectl_lines(text));
});
