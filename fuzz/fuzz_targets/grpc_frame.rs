//! `tonic_trace::frame::FrameParser`, the parser behind message events and payload capture,
//! over any body cut into chunks anywhere: it finds the same messages whatever the cuts, hands
//! out every message byte once and nothing else, and reports a body that ends inside a message.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tonic_trace::frame::{FrameEvent, FrameParser};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    body: &'a [u8],
    /// Chunk lengths (the rest of the body is the last chunk).
    cuts: Vec<u16>,
}

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Start(bool, u32),
    Data(Vec<u8>),
    End,
}

/// The events of `chunks`, consecutive data merged, and the parser at the end.
fn run<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Event>, FrameParser) {
    let mut parser = FrameParser::new();
    let mut events: Vec<Event> = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, |event| match event {
            FrameEvent::Start { compressed, len } => events.push(Event::Start(compressed, len)),
            FrameEvent::Data(data) => {
                assert!(!data.is_empty(), "an empty data event");
                match events.last_mut() {
                    Some(Event::Data(previous)) => previous.extend_from_slice(data),
                    _ => events.push(Event::Data(data.to_vec())),
                }
            }
            FrameEvent::End => events.push(Event::End),
        });
    }
    (events, parser)
}

fuzz_target!(|input: Input<'_>| {
    let (whole, whole_parser) = run([input.body]);

    let mut chunks = Vec::new();
    let mut rest = input.body;
    for cut in &input.cuts {
        let (chunk, tail) = rest.split_at(usize::from(*cut).min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks.push(rest);
    let (cut, cut_parser) = run(chunks);
    assert_eq!(
        whole, cut,
        "the events do not depend on where the body is cut"
    );
    assert_eq!(whole_parser.finish(), cut_parser.finish());
    assert_eq!(whole_parser.is_invalid(), cut_parser.is_invalid());

    // Every message is Start, its bytes (exactly as many as announced), End; the data bytes
    // are the body's bytes after each prefix.
    let mut offset = 0usize;
    let mut events = whole.iter().peekable();
    while let Some(event) = events.next() {
        let Event::Start(compressed, len) = *event else {
            panic!("a message does not begin with Start: {whole:?}");
        };
        assert_eq!(input.body[offset], u8::from(compressed));
        assert_eq!(
            &input.body[offset + 1..offset + 5],
            &len.to_be_bytes(),
            "the announced length"
        );
        offset += 5;
        let mut got = 0usize;
        if let Some(Event::Data(data)) = events.peek() {
            assert_eq!(&input.body[offset..offset + data.len()], &data[..]);
            got = data.len();
            offset += got;
            events.next();
        }
        match events.next() {
            Some(Event::End) => assert_eq!(got, len as usize),
            None => {
                // The body ended inside this message.
                let incomplete = whole_parser.finish().expect_err("an incomplete message");
                assert_eq!(incomplete.received, got as u64);
                assert_eq!(incomplete.expected, u64::from(len));
                assert_eq!(offset, input.body.len());
                return;
            }
            Some(other) => panic!("unexpected {other:?} inside a message"),
        }
    }
    if whole_parser.is_invalid() {
        assert!(input.body[offset] > 1, "only a bad flag stops the parser");
        assert!(whole_parser.finish().is_ok());
    } else {
        let left = input.body.len() - offset;
        assert!(left < 5, "an unparsed prefix");
        assert_eq!(whole_parser.finish().is_ok(), left == 0);
    }
});
