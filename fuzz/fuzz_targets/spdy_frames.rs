//! What a server sends on a SPDY/3.1 port-forward session: the byte stream a
//! `ferry_spdy::frame::Decoder` turns into events, header blocks (SYN_STREAM, SYN_REPLY,
//! HEADERS) inflated with the SPDY dictionary in one context for the whole stream.
//!
//! The first byte picks how the rest arrives: 0 as one chunk, else in chunks whose sizes
//! follow a small generator seeded by it (1 byte up to 4 KiB), as reads off a socket
//! would cut it. Decoding stops at the first error, as the session does.
#![no_main]

use bytes::Bytes;
use ferry_fuzz::some_words;
use ferry_spdy::frame::{Control, Decoder, Event, header_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let stream = Bytes::copy_from_slice(rest);
    let mut decoder = Decoder::new();
    let mut state = u32::from(seed) | 0x100;
    let mut at = 0;
    while at < stream.len() {
        let size = if seed == 0 {
            stream.len()
        } else {
            // xorshift32
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            1 + (state as usize) % if seed & 1 == 0 { 16 } else { 4096 }
        };
        let end = (at + size).min(stream.len());
        let mut chunk = stream.slice(at..end);
        at = end;
        loop {
            match some_words(decoder.next(&mut chunk)) {
                Some(Some(event)) => look_at(&event),
                Some(None) => break,
                None => return,
            }
        }
    }
});

/// Uses what the session and the fake cluster use of an event.
fn look_at(event: &Event) {
    match event {
        Event::Data { bytes, .. } => {
            let _ = bytes.first();
        }
        Event::Control(Control::SynStream { headers, .. }) => {
            for name in ["streamtype", "port", "requestid"] {
                let _ = header_value(headers, name);
            }
        }
        _ => {}
    }
}
