//! The shared store file as found on disk, any bytes (`Store::load`).
#![no_main]

use ferry_core::store::Store;
use ferry_fuzz::{scratch_file, some_words};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("store.json", data);
    some_words(Store::new(path).load());
});
