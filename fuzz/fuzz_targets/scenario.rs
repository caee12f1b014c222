//! A fake cluster scenario file (`ferry_fakecluster::scenario::Scenario::from_yaml`:
//! parsing, then validation).
#![no_main]

use ferry_fakecluster::scenario::Scenario;
use ferry_fuzz::some_words;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    some_words(Scenario::from_yaml(text));
});
