//! A config file's text, read as YAML and as JSON (`Config::from_yaml`, `Config::from_json`:
//! parsing, then validation with line numbers).
#![no_main]

use ferry_core::config::Config;
use ferry_fuzz::some_words;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    some_words(Config::from_yaml(text));
    some_words(Config::from_json(text));
});
