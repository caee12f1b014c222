use proptest::prelude::*;

use super::*;
use crate::testing::{START_MS, Step, run, run_in_pieces};
use crate::{Header, Version};

use Step::{C, S, Wait};

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: svc.local\r\nAccept: */*\r\n\r\n").into_bytes()
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn targets(exchanges: &[Exchange]) -> Vec<&str> {
    exchanges.iter().map(|e| e.target.as_str()).collect()
}

#[test]
fn a_request_and_its_response_make_an_exchange() {
    let run = run(
        Config::default(),
        &[
            C(&get("/users?id=7")),
            Wait(3),
            S(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"),
            Wait(2),
            S(b"\r\nhello"),
        ],
    );
    assert_eq!(run.state, State::Http);
    let [exchange] = run.exchanges.as_slice() else {
        panic!("{run:?}")
    };
    assert_eq!(exchange.started_ms, START_MS);
    assert_eq!(
        (exchange.method.as_str(), exchange.target.as_str()),
        ("GET", "/users?id=7")
    );
    assert_eq!(
        (exchange.status, exchange.reason.as_deref()),
        (Some(200), Some("OK"))
    );
    assert_eq!(exchange.request.version, Version::Http11);
    assert_eq!(exchange.request.head_size, get("/users?id=7").len() as u64);
    assert_eq!(
        exchange.request.headers[0],
        Header::new("Host", "svc.local")
    );
    let response = exchange.response.as_ref().unwrap();
    assert_eq!(
        (
            response.head_size,
            response.body_size,
            response.content_size
        ),
        (38, 5, 5)
    );
    assert!(
        response.body.is_empty() && response.truncated,
        "capture is off by default"
    );
    assert!(!exchange.incomplete && response.complete && exchange.request.complete);
    assert_eq!(exchange.duration_ms, Some(5.0));
    assert_eq!(
        exchange.timings,
        Some(Timings {
            send_ms: 0.0,
            wait_ms: 3.0,
            receive_ms: 2.0
        })
    );
}

#[test]
fn keep_alive_carries_a_hundred_exchanges() {
    let mut steps = Vec::new();
    let wire: Vec<(Vec<u8>, Vec<u8>)> = (0..100)
        .map(|i| (get(&format!("/r{i}")), ok(&"x".repeat(i))))
        .collect();
    for (request, response) in &wire {
        steps.extend([C(request), Wait(1), S(response)]);
    }
    let run = run(Config::default().with_body_capture(128), &steps);
    assert_eq!(run.exchanges.len(), 100);
    for (i, exchange) in run.exchanges.iter().enumerate() {
        assert_eq!(exchange.target, format!("/r{i}"));
        let response = exchange.response.as_ref().unwrap();
        assert_eq!(response.body, "x".repeat(i).as_bytes());
        assert_eq!(exchange.started_ms, START_MS + i as u64);
        assert_eq!(exchange.duration_ms, Some(1.0));
    }
}

#[test]
fn pipelined_requests_pair_with_responses_in_order() {
    let requests = [
        get("/a"),
        b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        get("/c"),
    ]
    .concat();
    let responses = [
        ok("first"),
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ok("third"),
    ]
    .concat();
    let run = run(
        Config::default().with_body_capture(16),
        &[C(&requests), Wait(4), S(&responses)],
    );
    assert_eq!(targets(&run.exchanges), ["/a", "/b", "/c"]);
    let statuses: Vec<_> = run.exchanges.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [Some(200), Some(201), Some(200)]);
    assert_eq!(run.exchanges[1].request.body, b"abc");
    assert_eq!(run.exchanges[2].response.as_ref().unwrap().body, b"third");
}

#[test]
fn chunked_bodies_are_dechunked_with_their_trailers() {
    let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
        5\r\nhello\r\n7;note=x\r\n, world\r\n0\r\nX-Checksum: abc\r\nSet-Cookie: s=1\r\n\r\n";
    let exchange = crate::testing::one(
        Config::default().with_body_capture(1024),
        &get("/"),
        response,
    );
    let message = exchange.response.unwrap();
    assert_eq!(message.body, b"hello, world");
    assert!(!message.truncated && message.complete);
    assert_eq!(message.content_size, 12);
    let head =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n".len();
    assert_eq!(message.body_size, (response.len() - head) as u64);
    assert_eq!(
        message.trailers,
        [
            Header::new("X-Checksum", "abc"),
            Header::redacted("Set-Cookie")
        ]
    );
}

#[test]
fn chunked_requests_are_followed_too() {
    let request = b"PUT /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let run = run(
        Config::default().with_body_capture(8),
        &[C(request), C(&get("/next")), S(&ok("1")), S(&ok("2"))],
    );
    assert_eq!(targets(&run.exchanges), ["/up", "/next"]);
    assert_eq!(run.exchanges[0].request.body, b"abc");
    assert!(run.exchanges[0].request.trailers.is_empty());
}

#[test]
fn body_capture_stops_at_the_cap_and_counts_the_rest() {
    let body = "b".repeat(10_000);
    let request = format!("POST /big HTTP/1.1\r\nContent-Length: 10000\r\n\r\n{body}");
    let exchange = crate::testing::one(
        Config::default().with_body_capture(1024),
        request.as_bytes(),
        &ok(&body),
    );
    for message in [&exchange.request, exchange.response.as_ref().unwrap()] {
        assert_eq!(message.body.len(), 1024);
        assert!(message.truncated && message.complete && !message.body_is_whole());
        assert_eq!((message.body_size, message.content_size), (10_000, 10_000));
    }
    let capped = Config::default().with_body_capture(usize::MAX);
    assert_eq!(capped.body_capture(), crate::MAX_BODY_CAPTURE);
}

#[test]
fn head_204_and_304_responses_have_no_body() {
    let requests = [
        b"HEAD /h HTTP/1.1\r\n\r\n".to_vec(),
        get("/no-content"),
        get("/cached"),
        get("/after"),
    ]
    .concat();
    let responses = [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"[..],
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: \"x\"\r\n\r\n",
        &ok("done"),
    ]
    .concat();
    let run = run(
        Config::default().with_body_capture(64),
        &[C(&requests), S(&responses)],
    );
    assert_eq!(
        targets(&run.exchanges),
        ["/h", "/no-content", "/cached", "/after"]
    );
    for exchange in &run.exchanges[..3] {
        let response = exchange.response.as_ref().unwrap();
        assert_eq!(
            (response.body_size, response.complete, exchange.incomplete),
            (0, true, false)
        );
    }
    assert_eq!(run.exchanges[3].response.as_ref().unwrap().body, b"done");
}

#[test]
fn expect_100_continue_keeps_the_final_status() {
    let head = b"POST /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    let run = run(
        Config::default().with_body_capture(16),
        &[
            C(head),
            Wait(1),
            S(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Wait(1),
            C(b"data"),
            Wait(1),
            S(&ok("stored")),
        ],
    );
    let [exchange] = run.exchanges.as_slice() else {
        panic!("{run:?}")
    };
    assert_eq!(exchange.status, Some(200));
    assert_eq!(exchange.interim, [100]);
    assert_eq!(exchange.request.body, b"data");
    assert_eq!(exchange.duration_ms, Some(3.0));
    // The 100 is the response's first byte: waiting ends there, though the body followed.
    assert_eq!(
        exchange.timings,
        Some(Timings {
            send_ms: 2.0,
            wait_ms: 0.0,
            receive_ms: 1.0
        })
    );
}

#[test]
fn a_websocket_upgrade_is_recorded_then_passed_through() {
    let request = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello";
    let mut noise = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..10_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        noise.push(seed as u8);
    }
    let frames = [
        &b"\x81\x85\x00\x00\x00\x00hello"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        &noise,
    ]
    .concat();
    let run = run(
        Config::default(),
        &[
            C(request),
            S(response),
            C(&frames),
            S(&noise),
            C(&get("/")),
            S(&ok("x")),
        ],
    );
    assert_eq!(run.state, State::Upgraded("websocket".into()));
    let [exchange] = run.exchanges.as_slice() else {
        panic!("{run:?}")
    };
    assert_eq!(
        (exchange.status, exchange.upgrade.as_deref()),
        (Some(101), Some("websocket"))
    );
    assert!(!exchange.incomplete);
}

#[test]
fn a_declined_upgrade_goes_on_as_http() {
    let request =
        b"GET /ws HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n";
    let run = run(
        Config::default(),
        &[
            C(request),
            C(&get("/next")),
            S(&ok("no upgrade")),
            S(&ok("next")),
        ],
    );
    assert_eq!(run.state, State::Http);
    assert_eq!(targets(&run.exchanges), ["/ws", "/next"]);
    assert!(
        run.exchanges
            .iter()
            .all(|e| e.upgrade.is_none() && !e.incomplete)
    );
}

#[test]
fn connect_tunnels_are_passed_through() {
    let run = run(
        Config::default(),
        &[
            C(b"CONNECT db:5432 HTTP/1.1\r\n\r\n"),
            S(b"HTTP/1.1 200 Connection Established\r\n\r\n"),
            C(b"\x00\x01binary"),
        ],
    );
    assert_eq!(run.state, State::Upgraded("CONNECT".into()));
    assert_eq!(run.exchanges[0].target, "db:5432");
}

#[test]
fn tls_is_not_http() {
    // The start of a TLS 1.2/1.3 ClientHello record.
    let hello =
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8a\x1e\x00\x20GET / HTTP/1.1\r\n\r\n";
    for piece in [0, 1] {
        let run = run_in_pieces(
            Config::default(),
            &[C(hello), S(b"\x16\x03\x03\x00\x7a\x02"), C(&get("/"))],
            piece,
        );
        assert_eq!(run.state, State::NotHttp(NotHttp::Tls));
        assert!(run.exchanges.is_empty());
    }
}

#[test]
fn the_http2_preface_is_not_http1() {
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00";
    for piece in [0, 1, 3] {
        let run = run_in_pieces(
            Config::default(),
            &[C(preface), S(b"\x00\x00\x00\x04\x01")],
            piece,
        );
        assert_eq!(
            run.state,
            State::NotHttp(NotHttp::Http2Preface),
            "piece {piece}"
        );
    }
}

#[test]
fn other_protocols_are_not_http() {
    // A Redis command and a PostgreSQL startup message, both sent by the client first.
    for first in [
        &b"*1\r\n$4\r\nPING\r\n"[..],
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
    ] {
        let run = run(Config::default(), &[C(first)]);
        assert!(
            matches!(run.state, State::NotHttp(NotHttp::Malformed { .. })),
            "{first:?}: {:?}",
            run.state
        );
    }
    // MySQL's server greets first.
    let run = run(Config::default(), &[S(b"J\x00\x00\x00\x0a8.0.36\x00")]);
    assert_eq!(run.state, State::NotHttp(NotHttp::ServerFirst));
    assert!(run.state.is_passthrough());
}

#[test]
fn a_response_without_length_ends_with_the_connection() {
    let run = run(
        Config::default().with_body_capture(64),
        &[
            C(b"GET /old HTTP/1.0\r\n\r\n"),
            Wait(2),
            S(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>"),
            Wait(3),
            S(b"</html>"),
        ],
    );
    let [exchange] = run.exchanges.as_slice() else {
        panic!("{run:?}")
    };
    let response = exchange.response.as_ref().unwrap();
    assert_eq!(response.body, b"<html></html>");
    assert_eq!(response.version, Version::Http10);
    assert!(response.complete && !exchange.incomplete);
    assert_eq!(exchange.duration_ms, Some(5.0));
}

#[test]
fn requests_without_responses_end_incomplete() {
    let run = run(
        Config::default(),
        &[
            C(&get("/done")),
            S(&ok("ok")),
            C(&get("/hangs")),
            C(b"POST /partial HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
        ],
    );
    assert_eq!(targets(&run.exchanges), ["/done", "/hangs", "/partial"]);
    for exchange in &run.exchanges[1..] {
        assert!(exchange.incomplete);
        assert_eq!((exchange.status, exchange.duration_ms), (None, None));
        assert!(exchange.response.is_none());
    }
    assert!(!run.exchanges[2].request.complete);
}

#[test]
fn a_parse_error_later_abandons_the_connection() {
    let early = run(
        Config::default(),
        &[
            C(&get("/fine")),
            S(&ok("ok")),
            C(&get("/waiting")),
            S(b"garbage\x00\r\n\r\n"),
            S(&ok("ignored")),
        ],
    );
    assert!(
        matches!(
            early.state,
            State::Abandoned(Abandon::MalformedResponse { .. })
        ),
        "{:?}",
        early.state
    );
    assert_eq!(targets(&early.exchanges), ["/fine", "/waiting"]);
    assert!(early.exchanges[1].incomplete);

    let later = run(
        Config::default(),
        &[C(&get("/fine")), S(&ok("ok")), C(b"\x16\x03\x01")],
    );
    assert!(
        matches!(
            later.state,
            State::Abandoned(Abandon::MalformedRequest { .. })
        ),
        "{:?}",
        later.state
    );
}

#[test]
fn heads_past_the_limit_abandon() {
    let config = Config::default().with_max_head(4096);
    let huge = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(5000));
    for piece in [0, 1000] {
        let run = run_in_pieces(config.clone(), &[C(huge.as_bytes())], piece);
        assert_eq!(
            run.state,
            State::Abandoned(Abandon::HeadTooLarge { limit: 4096 })
        );
    }
}

#[test]
fn conflicting_framing_abandons() {
    let request = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
    let run = run(Config::default(), &[C(&get("/")), S(&ok("")), C(request)]);
    assert!(matches!(
        run.state,
        State::Abandoned(Abandon::MalformedRequest { .. })
    ));
}

#[test]
fn secrets_are_redacted_by_default_and_on_request() {
    let request = b"GET / HTTP/1.1\r\nAuthorization: Bearer s3cret\r\ncookie: a=b\r\nProxy-Authorization: Basic x\r\nX-Api-Key: k\r\nX-Trace: t\r\n\r\n";
    let response = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=s3cret\r\nX-Api-Key: k2\r\nContent-Length: 0\r\n\r\n";
    let exchange = crate::testing::one(Config::default(), request, response);
    let names: Vec<_> = exchange
        .request
        .headers
        .iter()
        .filter(|h| h.redacted)
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names, ["Authorization", "cookie", "Proxy-Authorization"]);
    assert_eq!(exchange.request_header("x-api-key"), Some("k"));
    assert_eq!(
        exchange.response_header("set-cookie"),
        Some(crate::REDACTED)
    );

    let exchange = crate::testing::one(
        Config::default().with_redacted(["x-API-key"]),
        request,
        response,
    );
    assert_eq!(exchange.request_header("X-Api-Key"), Some(crate::REDACTED));
    assert_eq!(exchange.response_header("X-Api-Key"), Some(crate::REDACTED));
    assert_eq!(exchange.request_header("X-Trace"), Some("t"));
    let json = serde_json::to_string(&exchange).unwrap();
    assert!(
        !json.contains("s3cret") && !json.contains("Bearer"),
        "{json}"
    );
}

#[test]
fn exchanges_round_trip_through_camel_case_json() {
    let request = b"POST /p?q=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\n\xff\x00a";
    let exchange = crate::testing::one(Config::default().with_body_capture(8), request, &ok("hi"));
    let json = serde_json::to_value(&exchange).unwrap();
    for field in [
        "id",
        "startedMs",
        "method",
        "target",
        "status",
        "reason",
        "durationMs",
        "timings",
        "request",
        "response",
        "interim",
        "upgrade",
        "incomplete",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }
    assert_eq!(json["request"]["bodyBase64"], "/wBh");
    assert_eq!(json["request"]["version"], "HTTP/1.1");
    assert_eq!(json["timings"]["waitMs"], 5.0);
    let back: Exchange = serde_json::from_value(json).unwrap();
    assert_eq!(back, exchange);
}

/// A connection with every kind of framing, to compare chunkings against each other.
fn mixed_connection() -> Vec<Step<'static>> {
    vec![
        C(b"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\nT: 1\r\n\r\n"),
        Wait(1),
        S(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
        C(b"PUT /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
        S(b"HTTP/1.1 100 Continue\r\n\r\n"),
        C(b"hiHEAD /d HTTP/1.1\n\n"),
        S(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\nContent-Length: 50\n\n"),
        C(b"GET /e HTTP/1.0\r\n\r\n"),
        S(b"HTTP/1.0 200 OK\r\n\r\nuntil the end"),
    ]
}

#[test]
fn any_chunking_parses_the_same() {
    let config = Config::default().with_body_capture(8);
    let whole = run(config.clone(), &mixed_connection());
    assert_eq!(targets(&whole.exchanges), ["/a", "/b", "/c", "/d", "/e"]);
    assert!(whole.exchanges.iter().all(|e| !e.incomplete), "{whole:?}");
    for piece in 1..=9 {
        let pieces = run_in_pieces(config.clone(), &mixed_connection(), piece);
        assert_eq!(pieces.exchanges, whole.exchanges, "piece {piece}");
        assert_eq!(pieces.state, whole.state);
    }
}

#[test]
fn a_finished_inspector_hands_out_each_exchange_once() {
    let mut inspector = Inspector::new(Arc::new(Config::default()));
    assert_eq!(inspector.state(), &State::Detecting);
    assert!(inspector.client_bytes(b"").is_empty());
    assert!(inspector.client_bytes(&get("/")).is_empty());
    assert_eq!(inspector.state(), &State::Http);
    assert_eq!(inspector.server_bytes(&ok("x")).len(), 1);
    assert!(inspector.server_bytes(b"").is_empty());
    assert!(inspector.finish().is_empty());
}

/// Bytes that look like HTTP traffic, with damage: the inputs the fuzz tests mutate.
fn corpus() -> Vec<Vec<u8>> {
    mixed_connection()
        .into_iter()
        .filter_map(|step| match step {
            C(bytes) | S(bytes) => Some(bytes.to_vec()),
            Wait(_) => None,
        })
        .chain([
            get("/x?y=z"),
            ok("hello"),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n".to_vec(),
        ])
        .collect()
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, kind, byte) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let at = at % bytes.len();
        match kind % 4 {
            0 => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            2 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, [b'\r', b'\n', b':', b' ', b'0'][usize::from(byte) % 5]),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random bytes, in random chunks, in either direction, never panic.
    #[test]
    fn random_bytes_never_panic(
        steps in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..200)), 0..12),
        piece in 0usize..16,
    ) {
        let steps: Vec<Step<'_>> = steps.iter().map(|(client, bytes)| if *client { C(bytes) } else { S(bytes) }).collect();
        let _ = run_in_pieces(Config::default().with_body_capture(16), &steps, piece);
    }

    /// Damaged HTTP never panics, and how it is chunked never changes what it parses to.
    #[test]
    fn damaged_http_parses_the_same_in_any_chunks(
        picks in prop::collection::vec((0usize..64, any::<bool>()), 1..10),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6),
        piece in 1usize..12,
    ) {
        let corpus = corpus();
        let mut wire: Vec<(bool, Vec<u8>)> = picks.iter().map(|&(i, client)| (client, corpus[i % corpus.len()].clone())).collect();
        let steps_count = wire.len();
        for edit in &edits {
            // Each edit damages one step, chosen by the edit's position.
            let step = &mut wire[edit.0 % steps_count].1;
            *step = mutate(std::mem::take(step), std::slice::from_ref(edit));
        }
        let steps: Vec<Step<'_>> = wire.iter().map(|(client, bytes)| if *client { C(bytes) } else { S(bytes) }).collect();
        let config = Config::default().with_body_capture(16).with_max_head(1024);
        let whole = run(config.clone(), &steps);
        let pieces = run_in_pieces(config, &steps, piece);
        prop_assert_eq!(pieces.exchanges, whole.exchanges);
        prop_assert_eq!(pieces.state, whole.state);
    }
}

#[test]
fn feeding_costs_time_in_proportion_to_bytes() {
    // A 60 KiB head one byte at a time, then a 32 MiB body in 16 KiB chunks: a quadratic
    // step anywhere would make this take minutes rather than well under a second.
    let head = format!(
        "POST /bulk HTTP/1.1\r\nX-Filler: {}\r\nContent-Length: {}\r\n\r\n",
        "f".repeat(60_000),
        32 << 20
    );
    let chunk = vec![b'z'; 16 << 10];
    let mut inspector = Inspector::new(Arc::new(Config::default().with_body_capture(usize::MAX)));
    for byte in head.as_bytes() {
        assert!(
            inspector
                .client_bytes(std::slice::from_ref(byte))
                .is_empty()
        );
    }
    for _ in 0..2048 {
        assert!(inspector.client_bytes(&chunk).is_empty());
    }
    let exchanges = inspector.server_bytes(b"HTTP/1.1 204 No Content\r\n\r\n");
    let [exchange] = exchanges.as_slice() else {
        panic!("{exchanges:?}")
    };
    assert_eq!(exchange.request.content_size, 32 << 20);
    assert_eq!(exchange.request.body.len(), crate::MAX_BODY_CAPTURE);
}

#[test]
fn inspectors_can_move_between_threads() {
    fn is_send<T: Send + Sync>() {}
    is_send::<Inspector>();
    is_send::<crate::Ring>();
}

#[test]
fn an_answer_to_an_unfinished_head_waits_for_it() {
    let run = run(
        Config::default(),
        &[
            C(b"GET /slow HTTP/1.1\r\nX-Partial: "),
            S(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            C(b"late\r\n\r\n"),
        ],
    );
    let [exchange] = run.exchanges.as_slice() else {
        panic!("{run:?}")
    };
    assert_eq!(
        (exchange.target.as_str(), exchange.status),
        ("/slow", Some(408))
    );

    let config = Config::default().with_max_head(1024);
    let flood = vec![b'x'; 2048];
    let run = run_in_pieces(config, &[C(b"GET / HTTP/1.1\r\n"), S(&flood)], 100);
    assert_eq!(run.state, State::Abandoned(Abandon::UnexpectedResponse));
}

#[test]
fn a_client_that_does_not_wait_for_its_upgrade_is_abandoned() {
    let config = Config::default().with_max_head(1024);
    let run = run(
        config,
        &[
            C(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            C(&[0x82; 2000]),
        ],
    );
    assert_eq!(
        run.state,
        State::Abandoned(Abandon::UpgradeUnanswered { limit: 1024 })
    );
    let [exchange] = run.exchanges.as_slice() else {
        panic!("{run:?}")
    };
    assert!(exchange.incomplete && exchange.status.is_none());
}
