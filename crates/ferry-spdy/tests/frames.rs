//! Property tests for the SPDY/3 frame codec: random frame sequences survive encoding and
//! decoding whatever the chunking, hostile bytes never panic the decoder nor make it buffer
//! or inflate without bound, and a cut-off stream only makes the decoder wait for more.

use std::fmt;

use bytes::{Bytes, BytesMut};
use ferry_spdy::frame::{self, Control, Decoder, Deflater, Event, FrameError, HEADER_LEN, MAX_LEN};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

/// The largest control frame the decoder buffers (`MAX_CONTROL_LEN` in the codec).
const MAX_CONTROL_LEN: usize = 1 << 20;

/// The largest decompressed header block the decoder accepts (`MAX_HEADER_BLOCK`).
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// A proptest configuration that keeps no regression files next to the tests.
fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// The frames a sender encodes, and what the receiver should see of them.
// ---------------------------------------------------------------------------------------

/// A data payload, generated from a length and a seed so large ones are cheap to make
/// and to shrink, and printed briefly.
#[derive(Clone)]
struct Payload(Vec<u8>);

impl Payload {
    fn new(len: usize, seed: u64) -> Self {
        let mut state = seed;
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            // SplitMix64.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let take = (len - bytes.len()).min(8);
            bytes.extend_from_slice(&z.to_le_bytes()[..take]);
        }
        Self(bytes)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes {:02x?}…",
            self.0.len(),
            &self.0[..self.0.len().min(8)]
        )
    }
}

#[derive(Debug, Clone)]
enum Frame {
    SynStream {
        stream: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    SynReply {
        stream: u32,
        headers: Vec<(String, String)>,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    Ping(u32),
    GoAway {
        last_good: u32,
        status: u32,
    },
    Data {
        stream: u32,
        fin: bool,
        /// Written with `put_data_header` rather than `data`.
        split_header: bool,
        payload: Payload,
    },
}

fn borrowed(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// Encodes `frames` in order with one compression context, as one sender would.
fn encode(frames: &[Frame]) -> Bytes {
    encode_with(frames, Deflater::new().expect("deflater"))
}

/// [`encode`] with the given compression context.
fn encode_with(frames: &[Frame], mut deflater: Deflater) -> Bytes {
    let mut wire = BytesMut::new();
    for f in frames {
        match f {
            Frame::SynStream {
                stream,
                fin,
                headers,
            } => wire.extend_from_slice(
                &frame::syn_stream(&mut deflater, *stream, &borrowed(headers), *fin)
                    .expect("encodes"),
            ),
            Frame::SynReply { stream, headers } => wire.extend_from_slice(
                &frame::syn_reply(&mut deflater, *stream, &borrowed(headers)).expect("encodes"),
            ),
            Frame::RstStream { stream, status } => {
                wire.extend_from_slice(&frame::rst_stream(*stream, *status));
            }
            Frame::Ping(id) => wire.extend_from_slice(&frame::ping(*id)),
            Frame::GoAway { last_good, status } => {
                wire.extend_from_slice(&frame::goaway(*last_good, *status));
            }
            Frame::Data {
                stream,
                fin,
                split_header,
                payload,
            } => {
                if *split_header {
                    let mut head = [0u8; HEADER_LEN];
                    frame::put_data_header(&mut head, *stream, *fin, payload.0.len());
                    wire.extend_from_slice(&head);
                    wire.extend_from_slice(&payload.0);
                } else {
                    wire.extend_from_slice(&frame::data(*stream, *fin, &payload.0));
                }
            }
        }
    }
    wire.freeze()
}

/// An event with consecutive data pieces of one stream joined: how the decoder chunks a
/// payload depends on how the bytes arrived, what the payload is does not.
#[derive(PartialEq, Eq)]
enum Seen {
    Control(Control),
    Data { stream: u32, bytes: Vec<u8> },
    Fin(u32),
}

impl fmt::Debug for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Control(c) => write!(f, "{c:?}"),
            Self::Data { stream, bytes } => {
                write!(f, "Data({stream}, {:?})", Payload(bytes.clone()))
            }
            Self::Fin(stream) => write!(f, "Fin({stream})"),
        }
    }
}

#[derive(Default)]
struct Seens(Vec<Seen>);

impl Seens {
    fn data(&mut self, stream: u32, bytes: &[u8]) {
        if let Some(Seen::Data {
            stream: last,
            bytes: acc,
        }) = self.0.last_mut()
            && *last == stream
        {
            acc.extend_from_slice(bytes);
            return;
        }
        self.0.push(Seen::Data {
            stream,
            bytes: bytes.to_vec(),
        });
    }

    fn push(&mut self, ev: Event) {
        match ev {
            Event::Control(c) => self.0.push(Seen::Control(c)),
            Event::Data { stream, bytes } => self.data(stream, &bytes),
            Event::Fin { stream } => self.0.push(Seen::Fin(stream)),
        }
    }
}

/// What a receiver of `frames` should see.
fn expected(frames: &[Frame]) -> Vec<Seen> {
    let mut out = Seens::default();
    for f in frames {
        match f {
            Frame::SynStream {
                stream,
                fin,
                headers,
            } => out.0.push(Seen::Control(Control::SynStream {
                stream: *stream,
                fin: *fin,
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                    .collect(),
            })),
            Frame::SynReply { stream, .. } => {
                out.0
                    .push(Seen::Control(Control::SynReply { stream: *stream }));
            }
            Frame::RstStream { stream, status } => {
                out.0.push(Seen::Control(Control::RstStream {
                    stream: *stream,
                    status: *status,
                }));
            }
            Frame::Ping(id) => out.0.push(Seen::Control(Control::Ping(*id))),
            Frame::GoAway { last_good, .. } => out.0.push(Seen::Control(Control::GoAway {
                last_good: *last_good,
            })),
            Frame::Data {
                stream,
                fin,
                payload,
                ..
            } => {
                if !payload.0.is_empty() {
                    out.data(*stream, &payload.0);
                }
                if *fin {
                    out.0.push(Seen::Fin(*stream));
                }
            }
        }
    }
    out.0
}

/// Feeds one chunk to `dec`, collecting its events, and checks what `next` promises: data
/// pieces are never empty and are slices of the chunk they arrived in, and `None` means
/// the chunk is used up.
fn feed(dec: &mut Decoder, chunk: Bytes, out: &mut Seens) -> Result<(), FrameError> {
    let start = chunk.as_ptr() as usize;
    let end = start + chunk.len();
    let mut input = chunk;
    while let Some(ev) = dec.next(&mut input)? {
        if let Event::Data { bytes, .. } = &ev {
            assert!(!bytes.is_empty(), "an empty data event");
            let at = bytes.as_ptr() as usize;
            assert!(
                at >= start && at + bytes.len() <= end,
                "a data payload is not a slice of its chunk"
            );
        }
        out.push(ev);
    }
    assert!(
        input.is_empty(),
        "next returned None with {} bytes left",
        input.len()
    );
    Ok(())
}

/// How a byte stream is cut into the chunks the decoder gets.
#[derive(Debug, Clone)]
enum Split {
    /// At these points (empty chunks included when points repeat).
    At(Vec<Index>),
    /// Every so many bytes.
    Every(usize),
}

fn split() -> impl Strategy<Value = Split> {
    prop_oneof![
        4 => vec(any::<Index>(), 0..16).prop_map(Split::At),
        1 => (1..=16usize).prop_map(Split::Every),
        1 => (17..=8192usize).prop_map(Split::Every),
    ]
}

fn chunks(wire: &Bytes, split: &Split) -> Vec<Bytes> {
    let mut cuts: Vec<usize> = match split {
        Split::At(points) => points.iter().map(|i| i.index(wire.len() + 1)).collect(),
        Split::Every(n) => (*n..wire.len()).step_by(*n).collect(),
    };
    cuts.sort_unstable();
    cuts.push(wire.len());
    let mut from = 0;
    cuts.into_iter()
        .map(|to| {
            let c = wire.slice(from..to);
            from = to;
            c
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Strategies for frames.
// ---------------------------------------------------------------------------------------

fn stream_id() -> impl Strategy<Value = u32> {
    prop_oneof![1..8u32, 0..(1u32 << 31)]
}

/// Header names as ASCII letters, digits and dashes (upper case comes out lowered), values
/// as printable ASCII or any printable text.
fn headers(max: usize) -> impl Strategy<Value = Vec<(String, String)>> {
    vec(
        (
            "[a-z][a-z0-9-]{0,23}|[a-zA-Z][a-zA-Z0-9-]{0,23}",
            prop_oneof!["[ -~]{0,80}", "\\PC{0,40}"],
        ),
        0..=max,
    )
}

fn payload(max: usize) -> impl Strategy<Value = Payload> {
    (
        prop_oneof![3 => 0..=max.min(64), 2 => 0..=max.min(4096), 1 => 0..=max],
        any::<u64>(),
    )
        .prop_map(|(len, seed)| Payload::new(len, seed))
}

fn frame(max_headers: usize, max_payload: usize) -> impl Strategy<Value = Frame> {
    prop_oneof![
        1 => (stream_id(), any::<bool>(), headers(max_headers)).prop_map(|(stream, fin, headers)| {
            Frame::SynStream {
                stream,
                fin,
                headers,
            }
        }),
        1 => (stream_id(), headers(max_headers))
            .prop_map(|(stream, headers)| Frame::SynReply { stream, headers }),
        1 => (stream_id(), any::<u32>())
            .prop_map(|(stream, status)| Frame::RstStream { stream, status }),
        1 => any::<u32>().prop_map(Frame::Ping),
        1 => (stream_id(), any::<u32>())
            .prop_map(|(last_good, status)| Frame::GoAway { last_good, status }),
        4 => (stream_id(), any::<bool>(), any::<bool>(), payload(max_payload)).prop_map(
            |(stream, fin, split_header, payload)| Frame::Data {
                stream,
                fin,
                split_header,
                payload,
            }
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Hand-made frames and header blocks, for what the encoders cannot produce.
// ---------------------------------------------------------------------------------------

fn control_frame(version: u16, kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER_LEN + body.len());
    f.extend_from_slice(&(0x8000 | version).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.extend_from_slice(&(u32::from(flags) << 24 | body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// A zlib context with the SPDY/3 dictionary that compresses arbitrary bytes as header
/// blocks, each ending with a sync flush.
struct RawDeflater(Compress);

impl RawDeflater {
    fn new() -> Self {
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(frame::dictionary())
            .expect("set dictionary");
        Self(z)
    }

    /// Compresses `input` into `out`, then, with `sync`, flushes.
    fn run(&mut self, input: &[u8], sync: bool, out: &mut Vec<u8>) {
        let flush = if sync {
            FlushCompress::Sync
        } else {
            FlushCompress::None
        };
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(1024));
            }
            let before = self.0.total_in();
            self.0
                .compress_vec(&input[pos..], out, flush)
                .expect("compresses");
            pos += usize::try_from(self.0.total_in() - before).expect("fits");
            if pos == input.len() && (!sync || out.len() < out.capacity()) {
                return;
            }
        }
    }

    fn block(&mut self, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.run(raw, true, &mut out);
        out
    }

    /// A block of `n` zero bytes, compressed without ever holding them.
    fn zeros(&mut self, n: usize) -> Vec<u8> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut out = Vec::new();
        let mut left = n;
        while left > ZEROS.len() {
            self.run(&ZEROS, false, &mut out);
            left -= ZEROS.len();
        }
        self.run(&ZEROS[..left], true, &mut out);
        out
    }
}

/// A SYN_STREAM for stream 1 carrying `block` as its (already compressed) header block.
fn syn_stream_with_block(block: &[u8]) -> Bytes {
    let mut body = Vec::with_capacity(10 + block.len());
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&[0; 6]);
    body.extend_from_slice(block);
    Bytes::from(control_frame(frame::VERSION, frame::SYN_STREAM, 0, &body))
}

/// A name/value block written field by field, so counts and lengths can lie.
#[derive(Debug, Clone)]
enum Field {
    Num(u32),
    Text(Vec<u8>),
}

fn raw_block(fields: &[Field]) -> Vec<u8> {
    let mut b = Vec::new();
    for f in fields {
        match f {
            Field::Num(n) => b.extend_from_slice(&n.to_be_bytes()),
            Field::Text(t) => b.extend_from_slice(t),
        }
    }
    b
}

/// A count or length in a name/value block: mostly true, sometimes a little or wildly off.
#[derive(Debug, Clone)]
enum Claim {
    Exact,
    Off(i8),
    Any(u32),
}

impl Claim {
    fn of(&self, real: usize) -> u32 {
        match self {
            Self::Exact => u32::try_from(real).expect("fits"),
            Self::Off(d) => u32::try_from((real as i64 + i64::from(*d)).max(0)).expect("fits"),
            Self::Any(n) => *n,
        }
    }
}

fn claim() -> impl Strategy<Value = Claim> {
    prop_oneof![
        6 => Just(Claim::Exact),
        2 => (-3i8..=3).prop_map(Claim::Off),
        1 => any::<u32>().prop_map(Claim::Any),
    ]
}

/// A name/value block whose count and lengths may lie, with names and values of any bytes
/// (upper case and invalid UTF-8 included) and maybe trailing bytes.
#[derive(Debug, Clone)]
struct LyingBlock {
    count: Claim,
    entries: Vec<(Claim, Vec<u8>, Claim, Vec<u8>)>,
    tail: Vec<u8>,
}

impl LyingBlock {
    fn honest(&self) -> bool {
        matches!(self.count, Claim::Exact)
            && self
                .entries
                .iter()
                .all(|(n, _, v, _)| matches!((n, v), (Claim::Exact, Claim::Exact)))
    }

    fn count(&self) -> u32 {
        self.count.of(self.entries.len())
    }

    fn bytes(&self) -> Vec<u8> {
        let mut fields = vec![Field::Num(self.count())];
        for (nc, name, vc, value) in &self.entries {
            fields.push(Field::Num(nc.of(name.len())));
            fields.push(Field::Text(name.clone()));
            fields.push(Field::Num(vc.of(value.len())));
            fields.push(Field::Text(value.clone()));
        }
        fields.push(Field::Text(self.tail.clone()));
        raw_block(&fields)
    }

    /// What the block says when it does not lie.
    fn headers(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(_, n, _, v)| {
                (
                    String::from_utf8_lossy(n).to_ascii_lowercase(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }
}

fn lying_block() -> impl Strategy<Value = LyingBlock> {
    let text = || {
        prop_oneof![
            "[a-zA-Z0-9-]{0,12}".prop_map(String::into_bytes),
            vec(any::<u8>(), 0..12),
        ]
    };
    (
        claim(),
        vec((claim(), text(), claim(), text()), 0..8),
        prop_oneof![3 => Just(vec![]), 1 => vec(any::<u8>(), 1..8)],
    )
        .prop_map(|(count, entries, tail)| LyingBlock {
            count,
            entries,
            tail,
        })
}

/// One piece of a hostile byte stream.
#[derive(Debug, Clone)]
enum Garbage {
    Bytes(Vec<u8>),
    /// A bare frame header claiming anything.
    Head([u8; HEADER_LEN]),
    /// A control frame whose length is that of its body.
    Control {
        version: u16,
        kind: u16,
        flags: u8,
        body: Vec<u8>,
    },
    /// A data frame whose length is that of its payload.
    Data {
        stream: u32,
        flags: u8,
        payload: Vec<u8>,
    },
    /// A version 3 frame of a type with a header block: `ids` (cut to the length the type
    /// wants unless `ids_len` says otherwise), then the block compressed in the stream's
    /// one context.
    Block {
        kind: u16,
        flags: u8,
        ids: [u8; 10],
        ids_len: Option<usize>,
        block: LyingBlock,
    },
}

fn garbage() -> impl Strategy<Value = Garbage> {
    let header_kind = prop_oneof![
        Just(frame::SYN_STREAM),
        Just(frame::SYN_REPLY),
        Just(frame::HEADERS)
    ];
    let other_kind = prop_oneof![
        Just(frame::RST_STREAM),
        Just(frame::SETTINGS),
        Just(frame::PING),
        Just(frame::GOAWAY),
        Just(frame::WINDOW_UPDATE),
        0..12u16,
        any::<u16>(),
    ];
    prop_oneof![
        1 => vec(any::<u8>(), 0..64).prop_map(Garbage::Bytes),
        1 => any::<[u8; HEADER_LEN]>().prop_map(Garbage::Head),
        3 => (
            prop_oneof![6 => Just(frame::VERSION), 1 => 0..0x8000u16],
            other_kind,
            any::<u8>(),
            vec(any::<u8>(), 0..24),
        )
            .prop_map(|(version, kind, flags, body)| Garbage::Control {
                version,
                kind,
                flags,
                body,
            }),
        2 => (0..(1u32 << 31), any::<u8>(), vec(any::<u8>(), 0..64))
            .prop_map(|(stream, flags, payload)| Garbage::Data { stream, flags, payload }),
        4 => (
            header_kind,
            any::<u8>(),
            any::<[u8; 10]>(),
            prop_oneof![4 => Just(None), 1 => (0..=10usize).prop_map(Some)],
            lying_block(),
        )
            .prop_map(|(kind, flags, ids, ids_len, block)| Garbage::Block {
                kind,
                flags,
                ids,
                ids_len,
                block,
            }),
    ]
}

fn encode_garbage(pieces: &[Garbage]) -> Vec<u8> {
    let mut z = RawDeflater::new();
    let mut wire = Vec::new();
    for p in pieces {
        match p {
            Garbage::Bytes(b) => wire.extend_from_slice(b),
            Garbage::Head(h) => wire.extend_from_slice(h),
            Garbage::Control {
                version,
                kind,
                flags,
                body,
            } => wire.extend_from_slice(&control_frame(*version, *kind, *flags, body)),
            Garbage::Data {
                stream,
                flags,
                payload,
            } => {
                let mut head = [0u8; HEADER_LEN];
                frame::put_data_header(&mut head, *stream, false, payload.len());
                head[4] = *flags;
                wire.extend_from_slice(&head);
                wire.extend_from_slice(payload);
            }
            Garbage::Block {
                kind,
                flags,
                ids,
                ids_len,
                block,
            } => {
                let want = if *kind == frame::SYN_STREAM { 10 } else { 4 };
                let mut body = ids[..ids_len.unwrap_or(want)].to_vec();
                body.extend_from_slice(&z.block(&block.bytes()));
                wire.extend_from_slice(&control_frame(frame::VERSION, *kind, *flags, &body));
            }
        }
    }
    wire
}

/// Valid frames with a few bytes flipped.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        vec(frame(6, 2000), 1..=8),
        vec((any::<Index>(), 1..=255u8), 1..=6),
    )
        .prop_map(|(frames, flips)| {
            let mut wire = encode(&frames).to_vec();
            for (at, x) in flips {
                let i = at.index(wire.len());
                wire[i] ^= x;
            }
            wire
        })
}

fn hostile() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..=64),
        vec(any::<u8>(), 0..=64 * 1024),
        vec(garbage(), 0..24).prop_map(|g| encode_garbage(&g)),
        mutated(),
    ]
}

/// The peak resident memory of this process so far, where the system says.
fn peak_rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: usize = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

// ---------------------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    /// Whatever frames a sender encodes, however the bytes are chunked on the way, the
    /// receiver sees the same frames: ids, flags, statuses, header names and values, and
    /// every payload byte followed by FIN where the frame had it. Header blocks are
    /// compressed, or written as stored blocks as Ferry's client writes them.
    #[test]
    fn frames_round_trip_through_any_chunking(
        frames in vec(frame(20, 70_000), 0..=24),
        split in split(),
        stored in any::<bool>(),
    ) {
        let deflater = if stored { Deflater::stored() } else { Deflater::new().expect("deflater") };
        let wire = encode_with(&frames, deflater);
        let mut dec = Decoder::new();
        let mut got = Seens::default();
        for chunk in chunks(&wire, &split) {
            feed(&mut dec, chunk, &mut got).expect("valid frames decode");
        }
        prop_assert_eq!(got.0, expected(&frames));
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Hostile bytes in any chunking make the decoder return events or an error, never
    /// panic; it stops at the first error, as a session does.
    #[test]
    fn hostile_bytes_never_panic(bytes in hostile(), split in split()) {
        let wire = Bytes::from(bytes);
        let mut dec = Decoder::new();
        let mut seen = Seens::default();
        for chunk in chunks(&wire, &split) {
            if feed(&mut dec, chunk, &mut seen).is_err() {
                break;
            }
        }
    }

    /// A control frame claiming more than 1 MiB is refused from its 8-byte header alone,
    /// whatever its version, type and flags: nothing after the header is read or kept.
    #[test]
    fn huge_control_frames_are_refused_from_their_header(
        len in (MAX_CONTROL_LEN + 1)..=MAX_LEN,
        version in 0..0x8000u16,
        kind: u16,
        flags: u8,
    ) {
        let mut head = control_frame(version, kind, flags, &[]);
        head[5..8].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        head.extend_from_slice(&[0x55; 4096]);
        let mut input = Bytes::from(head);
        match Decoder::new().next(&mut input) {
            Err(FrameError::TooLarge { kind: "control", len: l }) => prop_assert_eq!(l, len),
            other => prop_assert!(false, "{other:?}"),
        }
        prop_assert_eq!(input.len(), 4096);
    }

    /// A control frame up to 1 MiB is waited for after its header.
    #[test]
    fn control_frames_up_to_the_limit_are_waited_for(
        len in 1..=MAX_CONTROL_LEN,
        kind: u16,
        flags: u8,
    ) {
        let mut head = control_frame(frame::VERSION, kind, flags, &[]);
        head[5..8].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        let mut input = Bytes::from(head);
        prop_assert!(matches!(Decoder::new().next(&mut input), Ok(None)));
    }

    /// A name/value block is read as written when its count and lengths are true, and
    /// otherwise either read as far as its count says or refused; a count or length larger
    /// than the block never turns into an allocation.
    #[test]
    fn header_blocks_are_read_as_written_or_refused(block in lying_block()) {
        let compressed = RawDeflater::new().block(&block.bytes());
        let mut input = syn_stream_with_block(&compressed);
        match Decoder::new().next(&mut input) {
            Ok(Some(Event::Control(Control::SynStream { stream: 1, fin: false, headers }))) => {
                prop_assert_eq!(headers.len() as u64, u64::from(block.count()));
                if block.honest() {
                    prop_assert_eq!(headers, block.headers());
                }
            }
            Err(FrameError::HeaderBlock(e)) => {
                prop_assert!(!block.honest(), "an honest block is refused: {e}");
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Every prefix of a valid stream decodes without error to a prefix of its events (the
    /// last payload possibly cut short), and the rest, fed afterwards, completes them.
    #[test]
    fn a_cut_off_stream_waits_for_the_rest(frames in vec(frame(4, 300), 0..=8)) {
        let wire = encode(&frames);
        let want = expected(&frames);
        for cut in 0..=wire.len() {
            let mut dec = Decoder::new();
            let mut got = Seens::default();
            feed(&mut dec, wire.slice(..cut), &mut got).expect("a prefix decodes");
            let n = got.0.len();
            prop_assert!(n <= want.len(), "cut at {cut}: {:?}", got.0);
            prop_assert_eq!(&got.0[..n.saturating_sub(1)], &want[..n.saturating_sub(1)]);
            if let Some(last) = got.0.last() {
                let fits = match (last, &want[n - 1]) {
                    (
                        Seen::Data { stream, bytes },
                        Seen::Data { stream: s, bytes: b },
                    ) => stream == s && b.starts_with(bytes),
                    (a, b) => a == b,
                };
                prop_assert!(fits, "cut at {cut}: {last:?} against {:?}", want[n - 1]);
            }
            feed(&mut dec, wire.slice(cut..), &mut got).expect("the rest decodes");
            prop_assert_eq!(&got.0, &want, "cut at {}", cut);
        }
    }
}

#[test]
fn a_control_frame_of_exactly_the_limit_is_read() {
    let frame = Bytes::from(control_frame(
        frame::VERSION,
        0x0100,
        0,
        &vec![7u8; MAX_CONTROL_LEN],
    ));
    let mut dec = Decoder::new();
    let mut got = Seens::default();
    for chunk in chunks(&frame, &Split::Every(64 * 1024)) {
        feed(&mut dec, chunk, &mut got).expect("decodes");
    }
    assert_eq!(got.0, vec![Seen::Control(Control::Unknown(0x0100))]);
}

#[test]
fn data_frames_of_any_length_are_streamed_not_buffered() {
    let mut head = [0u8; HEADER_LEN];
    frame::put_data_header(&mut head, 9, true, MAX_LEN);
    let mut input = BytesMut::from(&head[..]);
    input.extend_from_slice(&[1, 2, 3]);
    let mut input = input.freeze();
    let mut dec = Decoder::new();
    assert_eq!(
        dec.next(&mut input).expect("decodes"),
        Some(Event::Data {
            stream: 9,
            bytes: Bytes::from_static(&[1, 2, 3])
        })
    );
    assert_eq!(dec.next(&mut input).expect("decodes"), None);
}

#[test]
fn hand_made_header_blocks_decode() {
    // The helpers the refusals below rely on make blocks the decoder reads.
    let block = raw_block(&[
        Field::Num(2),
        Field::Num(4),
        Field::Text(b"Port".to_vec()),
        Field::Num(4),
        Field::Text(b"9000".to_vec()),
        Field::Num(10),
        Field::Text(b"streamtype".to_vec()),
        Field::Num(5),
        Field::Text(b"error".to_vec()),
    ]);
    let mut z = RawDeflater::new();
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&syn_stream_with_block(&z.block(&block)));
    wire.extend_from_slice(&syn_stream_with_block(&z.block(&block)));
    let mut dec = Decoder::new();
    let mut got = Seens::default();
    feed(&mut dec, wire.freeze(), &mut got).expect("decodes");
    let want = Control::SynStream {
        stream: 1,
        fin: false,
        headers: vec![
            ("port".into(), "9000".into()),
            ("streamtype".into(), "error".into()),
        ],
    };
    let Seen::Control(first) = &got.0[0] else {
        panic!("{:?}", got.0)
    };
    assert_eq!(first, &want);
    assert_eq!(got.0.len(), 2);
}

#[test]
fn header_blocks_claiming_more_than_they_hold_are_refused() {
    use Field::{Num, Text};
    let name = || Text(b"port".to_vec());
    let cases: Vec<(&str, Vec<Field>)> = vec![
        ("empty block", vec![]),
        ("count cut short", vec![Text(vec![0, 0])]),
        ("u32::MAX headers", vec![Num(u32::MAX)]),
        (
            "millions of headers, one present",
            vec![Num(5_000_000), Num(4), name(), Num(1), Text(b"1".to_vec())],
        ),
        (
            "name of u32::MAX bytes",
            vec![Num(1), Num(u32::MAX), name()],
        ),
        (
            "name of 1 GiB",
            vec![Num(1), Num(1 << 30), Text(vec![b'a'; 100])],
        ),
        (
            "value of u32::MAX bytes",
            vec![
                Num(1),
                Num(4),
                name(),
                Num(u32::MAX),
                Text(b"9000".to_vec()),
            ],
        ),
        ("value length missing", vec![Num(1), Num(4), name()]),
    ];
    for (what, fields) in cases {
        let block = RawDeflater::new().block(&raw_block(&fields));
        let mut input = syn_stream_with_block(&block);
        let res = Decoder::new().next(&mut input);
        assert!(
            matches!(res, Err(FrameError::HeaderBlock(_))),
            "{what}: {res:?}"
        );
    }
}

#[test]
fn header_blocks_inflating_past_256_kib_are_refused() {
    // All zeros is a block with no headers and trailing zeros, which the decoder accepts,
    // so only the size limit can refuse it.
    for (n, ok) in [
        (1024, true),
        (MAX_HEADER_BLOCK, true),
        (MAX_HEADER_BLOCK + 1, false),
        (64 << 20, false),
    ] {
        let block = RawDeflater::new().zeros(n);
        let mut input = syn_stream_with_block(&block);
        let res = Decoder::new().next(&mut input);
        if ok {
            assert!(
                matches!(
                    &res,
                    Ok(Some(Event::Control(Control::SynStream { headers, .. }))) if headers.is_empty()
                ),
                "{n} zeros: {res:?}"
            );
        } else {
            assert!(
                matches!(res, Err(FrameError::HeaderBlock(_))),
                "{n} zeros: {res:?}"
            );
        }
    }
}

#[test]
fn a_maximal_decompression_bomb_is_cut_off() {
    // Deflate output after a sync flush starts a new block, and a stretch that only refers
    // back to zeros inflates to zeros anywhere after 32 KiB of them: repeating one such
    // stretch makes a block of almost 1 MiB that inflates to hundreds of GiB.
    let mut z = RawDeflater::new();
    let mut block = z.zeros(64 * 1024);
    block.extend_from_slice(&z.zeros(64 * 1024));
    let stretch = z.zeros(64 * 1024);
    while block.len() + stretch.len() <= MAX_CONTROL_LEN - 10 {
        block.extend_from_slice(&stretch);
    }

    // Checked with zlib directly, 64 KiB at a time: the first 16 MiB are zeros.
    let mut check = Decompress::new(true);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut pos = 0;
    let mut inflated = 0;
    while inflated < 16 << 20 {
        out.clear();
        let before = (check.total_in(), check.total_out());
        match check.decompress_vec(&block[pos..], &mut out, FlushDecompress::Sync) {
            Ok(_) => {}
            Err(e) if e.needs_dictionary().is_some() => {
                check
                    .set_dictionary(frame::dictionary())
                    .expect("dictionary");
            }
            Err(e) => panic!("the bomb is not valid zlib: {e}"),
        }
        pos += usize::try_from(check.total_in() - before.0).expect("fits");
        assert!(
            check.total_in() != before.0 || check.total_out() != before.1,
            "the bomb ends after {inflated} bytes"
        );
        assert!(out.iter().all(|&b| b == 0));
        inflated += out.len();
    }
    drop(out);

    let frame = syn_stream_with_block(&block);
    assert!(frame.len() <= HEADER_LEN + MAX_CONTROL_LEN);
    let before = peak_rss();
    let mut dec = Decoder::new();
    let mut seen = Seens::default();
    let res = chunks(&frame, &Split::Every(16 * 1024))
        .into_iter()
        .try_for_each(|c| feed(&mut dec, c, &mut seen));
    assert!(matches!(res, Err(FrameError::HeaderBlock(_))), "{res:?}");
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        let grew = after.saturating_sub(before);
        assert!(grew < 32 << 20, "peak memory grew by {grew} bytes");
    }
}

/// A header block too large for a frame's 24-bit length is refused by the encoder, not
/// sent with a length that overflows into the flags byte.
#[test]
fn header_blocks_too_large_for_a_frame_are_refused_by_the_encoder() {
    // Printable but unpredictable text compresses to about 82 %: 22 MiB of it makes a
    // block of about 18 MiB.
    let value: String = Payload::new(22 << 20, 9)
        .0
        .iter()
        .map(|b| char::from(b' ' + b % 95))
        .collect();
    let mut deflater = Deflater::new().expect("deflater");
    let res = frame::syn_stream(&mut deflater, 1, &[("x", &value)], false);
    assert!(
        matches!(res, Err(FrameError::TooLarge { .. })),
        "{:?}",
        res.map(|f| f.len())
    );
}
