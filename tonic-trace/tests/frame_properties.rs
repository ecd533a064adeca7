//! Property tests of `tonic_trace::frame::FrameParser`, the parser behind message events and
//! payload capture: the stable-toolchain counterpart of the `grpc_frame` fuzz target
//! (`fuzz/`, nightly). The renderer of captured payloads has its own next to its code
//! (`payload`).

use proptest::prelude::*;
use tonic_trace::frame::{FrameEvent, FrameParser, Incomplete};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Start(bool, u32),
    Data(Vec<u8>),
    End,
}

/// The events of a body (consecutive data merged), what `finish` said, and whether the parser
/// gave up on the framing.
type Run = (Vec<Event>, Result<(), Incomplete>, bool);

/// The events of `chunks` (consecutive data merged), and what `finish` says.
fn run<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Run, TestCaseError> {
    let mut parser = FrameParser::new();
    let mut events: Vec<Event> = Vec::new();
    let mut empty_data = false;
    for chunk in chunks {
        parser.feed(chunk, |event| match event {
            FrameEvent::Start { compressed, len } => events.push(Event::Start(compressed, len)),
            FrameEvent::Data(data) => {
                empty_data |= data.is_empty();
                match events.last_mut() {
                    Some(Event::Data(previous)) => previous.extend_from_slice(data),
                    _ => events.push(Event::Data(data.to_vec())),
                }
            }
            FrameEvent::End => events.push(Event::End),
        });
    }
    prop_assert!(!empty_data, "an empty data event");
    Ok((events, parser.finish(), parser.is_invalid()))
}

/// `body` cut after each of `cuts` bytes (the rest is the last chunk).
fn chunks<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    for cut in cuts {
        let (chunk, tail) = rest.split_at((*cut).min(rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out.push(rest);
    out
}

fn frame(compressed: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::from(compressed)];
    v.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Bodies that are mostly gRPC framing, with lies: lengths larger than what follows, flags
/// other than 0 and 1, bodies that end anywhere.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => (any::<bool>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(compressed, payload)| frame(compressed, &payload)),
        1 => (0u8..4, any::<u32>(), prop::collection::vec(any::<u8>(), 0..8)).prop_map(
            |(flag, len, bytes)| {
                let mut v = vec![flag];
                v.extend_from_slice(&len.to_be_bytes());
                v.extend(bytes);
                v
            }
        ),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn the_cuts_change_nothing(
        body in hostile_body(),
        cuts in prop::collection::vec(0usize..24, 0..16),
    ) {
        let whole = run([body.as_slice()])?;
        let cut = run(chunks(&body, &cuts))?;
        prop_assert_eq!(whole, cut);
    }

    #[test]
    fn every_message_comes_out_whole_and_once(
        messages in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..64)), 0..8),
        cuts in prop::collection::vec(0usize..32, 0..12),
    ) {
        let body: Vec<u8> = messages.iter().flat_map(|(c, p)| frame(*c, p)).collect();
        let (events, finish, invalid) = run(chunks(&body, &cuts))?;
        let mut expected = Vec::new();
        for (compressed, payload) in &messages {
            expected.push(Event::Start(*compressed, u32::try_from(payload.len()).unwrap()));
            if !payload.is_empty() {
                expected.push(Event::Data(payload.clone()));
            }
            expected.push(Event::End);
        }
        prop_assert_eq!(events, expected);
        prop_assert!(finish.is_ok());
        prop_assert!(!invalid);
    }

    /// A body that stops anywhere inside a message, whatever its prefix announced, is
    /// reported with what arrived and what was announced, and never waits for the rest.
    #[test]
    fn a_body_that_ends_inside_a_message_is_reported(
        payload in prop::collection::vec(any::<u8>(), 1..64),
        announced_extra in prop_oneof![Just(0u32), 1u32..16, Just(u32::MAX / 2)],
        keep in any::<prop::sample::Index>(),
    ) {
        let announced = u32::try_from(payload.len()).unwrap().saturating_add(announced_extra);
        let mut body = vec![0];
        body.extend_from_slice(&announced.to_be_bytes());
        body.extend_from_slice(&payload);
        // Any strict prefix of a complete message, or the whole of a lying one.
        let end = if announced_extra == 0 { keep.index(body.len() - 1) + 1 } else { body.len() };
        prop_assume!(end < body.len() || announced_extra > 0);
        let (events, finish, _) = run([&body[..end]])?;
        let incomplete = finish.expect_err("the body ended inside a message");
        if end < 5 {
            prop_assert!(events.is_empty());
            prop_assert_eq!((incomplete.received, incomplete.expected), (end as u64, 5));
        } else {
            prop_assert_eq!(&events[0], &Event::Start(false, announced));
            prop_assert!(!events.contains(&Event::End));
            prop_assert_eq!(
                (incomplete.received, incomplete.expected),
                ((end - 5) as u64, u64::from(announced))
            );
        }
    }

    #[test]
    fn a_flag_other_than_0_or_1_stops_the_parser(
        before in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 0..3),
        flag in 2u8..,
        after in prop::collection::vec(any::<u8>(), 4..64),
    ) {
        let mut body: Vec<u8> = before.iter().flat_map(|p| frame(false, p)).collect();
        let starts = before.len();
        body.push(flag);
        body.extend(after);
        let (events, finish, invalid) = run([body.as_slice()])?;
        prop_assert!(invalid);
        prop_assert!(finish.is_ok());
        let count = events.iter().filter(|e| matches!(e, Event::Start(..))).count();
        prop_assert_eq!(count, starts);
    }
}
