//! What `ferry import` and the app's import do with a file: guess its format from the text
//! and a file name (`import::detect`), then read it as that (`import::read`). The first
//! byte picks the file name; the rest is the text.
#![no_main]

use ferry_core::config::import;
use ferry_fuzz::some_words;
use libfuzzer_sys::fuzz_target;

const NAMES: [Option<&str>; 6] = [
    None,
    Some("forwards.json"),
    Some("ferry.yaml"),
    Some(".kportal.yaml"),
    Some("kftray.json"),
    Some("pasted.txt"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let format = import::detect(text, name);
    some_words(import::read(text, format));
});
