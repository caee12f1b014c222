//! Helpers shared by the unit tests: scripted connections fed in any chunking.

use std::sync::Arc;
use std::time::Duration;

use crate::{Config, Exchange, Inspector, ManualClock, State};

/// One step of a scripted connection.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step<'a> {
    /// Bytes from the client.
    C(&'a [u8]),
    /// Bytes from the server.
    S(&'a [u8]),
    /// Time passes.
    Wait(u64),
}

/// The wall-clock time every scripted connection starts at: 2024-01-02T03:04:05.678Z.
pub(crate) const START_MS: u64 = 1_704_164_645_678;

/// What a scripted connection produced.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) exchanges: Vec<Exchange>,
    /// The state before `finish`.
    pub(crate) state: State,
}

/// Feeds the steps in chunks of at most `piece` bytes (0: each step whole), then finishes.
pub(crate) fn run_in_pieces(config: Config, steps: &[Step<'_>], piece: usize) -> Run {
    let clock = ManualClock::new(START_MS);
    let mut inspector = Inspector::with_clock(Arc::new(config), Box::new(clock.clone()));
    let mut exchanges = Vec::new();
    for step in steps {
        let (bytes, client) = match *step {
            Step::C(bytes) => (bytes, true),
            Step::S(bytes) => (bytes, false),
            Step::Wait(ms) => {
                clock.advance(Duration::from_millis(ms));
                continue;
            }
        };
        let size = if piece == 0 {
            bytes.len().max(1)
        } else {
            piece
        };
        for chunk in bytes.chunks(size) {
            if client {
                exchanges.extend(inspector.client_bytes(chunk));
            } else {
                exchanges.extend(inspector.server_bytes(chunk));
            }
        }
    }
    let state = inspector.state().clone();
    exchanges.extend(inspector.finish());
    Run { exchanges, state }
}

/// Feeds each step whole.
pub(crate) fn run(config: Config, steps: &[Step<'_>]) -> Run {
    run_in_pieces(config, steps, 0)
}

/// The single exchange of a request and its response, each fed whole, 5 ms apart.
pub(crate) fn one(config: Config, request: &[u8], response: &[u8]) -> Exchange {
    let mut run = run(
        config,
        &[Step::C(request), Step::Wait(5), Step::S(response)],
    );
    assert_eq!(run.exchanges.len(), 1, "{run:?}");
    run.exchanges.remove(0)
}
