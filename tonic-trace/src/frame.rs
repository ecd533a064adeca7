//! An incremental parser of gRPC length-prefixed messages.
//!
//! A gRPC body is a sequence of messages, each a 5-byte prefix (a compressed flag, then a
//! big-endian `u32` length) and that many bytes. Body chunks cut messages anywhere: a prefix
//! may span chunks, a chunk may hold several messages. [`FrameParser`] follows the stream
//! without buffering message bytes (it hands them out as they pass) and never trusts a length
//! further than the bytes that actually arrive: a body that ends inside a message is reported
//! by [`FrameParser::finish`].
//!
//! ```
//! use tonic_trace::frame::{FrameEvent, FrameParser};
//!
//! let mut parser = FrameParser::new();
//! let mut events = Vec::new();
//! // one message of 3 bytes, split across two chunks
//! parser.feed(&[0, 0, 0, 0, 3, b'a'], |e| events.push(format!("{e:?}")));
//! parser.feed(b"bc", |e| events.push(format!("{e:?}")));
//! assert_eq!(events.len(), 4); // start, data "a", data "bc", end
//! assert!(parser.finish().is_ok());
//! ```

use std::fmt;

/// What the parser saw.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    /// A message starts: its compressed flag and its announced length.
    Start {
        /// The compressed flag (byte 0 of the prefix was 1).
        compressed: bool,
        /// The announced length in bytes.
        len: u32,
    },
    /// Bytes of the current message (a message arrives in one or more pieces).
    Data(&'a [u8]),
    /// The current message is complete.
    End,
}

/// The body ended where a message was not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incomplete {
    /// Bytes of the prefix or message that arrived.
    pub received: u64,
    /// Bytes the prefix announced (5 while the prefix itself is incomplete).
    pub expected: u64,
}

impl fmt::Display for Incomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the body ended inside a gRPC message ({} of {} bytes)",
            self.received, self.expected
        )
    }
}

impl std::error::Error for Incomplete {}

#[derive(Clone, Copy, Debug)]
enum State {
    /// Reading a prefix: the bytes so far.
    Prefix { buf: [u8; 5], have: u8 },
    /// Inside a message: bytes still to come, and its length.
    Message { remaining: u32, len: u32 },
}

/// Follows gRPC message boundaries across body chunks (see the module docs).
#[derive(Clone, Debug)]
pub struct FrameParser {
    state: State,
    /// A prefix with a flag other than 0 or 1 was seen: the stream is not gRPC framing.
    invalid: bool,
}

impl Default for FrameParser {
    fn default() -> Self {
        FrameParser::new()
    }
}

impl FrameParser {
    /// A parser at the start of a body.
    pub fn new() -> Self {
        FrameParser {
            state: State::Prefix {
                buf: [0; 5],
                have: 0,
            },
            invalid: false,
        }
    }

    /// Whether a prefix had a compressed flag other than 0 or 1; the parser then ignores the
    /// rest of the body.
    pub fn is_invalid(&self) -> bool {
        self.invalid
    }

    /// Feeds the next chunk of the body, calling `on` for each event, in order.
    pub fn feed(&mut self, mut chunk: &[u8], mut on: impl FnMut(FrameEvent<'_>)) {
        while !chunk.is_empty() && !self.invalid {
            match &mut self.state {
                State::Prefix { buf, have } => {
                    let at = usize::from(*have);
                    let take = (5 - at).min(chunk.len());
                    buf[at..at + take].copy_from_slice(&chunk[..take]);
                    // At most 5.
                    *have += take as u8;
                    chunk = &chunk[take..];
                    if *have < 5 {
                        return;
                    }
                    let compressed = match buf[0] {
                        0 => false,
                        1 => true,
                        _ => {
                            self.invalid = true;
                            return;
                        }
                    };
                    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
                    on(FrameEvent::Start { compressed, len });
                    if len == 0 {
                        on(FrameEvent::End);
                        self.state = State::Prefix {
                            buf: [0; 5],
                            have: 0,
                        };
                    } else {
                        self.state = State::Message {
                            remaining: len,
                            len,
                        };
                    }
                }
                State::Message { remaining, .. } => {
                    let take = chunk.len().min(*remaining as usize);
                    on(FrameEvent::Data(&chunk[..take]));
                    chunk = &chunk[take..];
                    // `take <= remaining`, which is a u32.
                    *remaining -= take as u32;
                    if *remaining == 0 {
                        on(FrameEvent::End);
                        self.state = State::Prefix {
                            buf: [0; 5],
                            have: 0,
                        };
                    }
                }
            }
        }
    }

    /// Checks that the body ended between messages.
    ///
    /// # Errors
    ///
    /// The body ended inside a prefix or a message.
    pub fn finish(&self) -> Result<(), Incomplete> {
        match self.state {
            State::Prefix { have: 0, .. } => Ok(()),
            _ if self.invalid => Ok(()),
            State::Prefix { have, .. } => Err(Incomplete {
                received: u64::from(have),
                expected: 5,
            }),
            State::Message { remaining, len } => Err(Incomplete {
                received: u64::from(len - remaining),
                expected: u64::from(len),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Start(bool, u32),
        Data(Vec<u8>),
        End,
    }

    fn run(chunks: &[&[u8]]) -> (Vec<Owned>, FrameParser) {
        let mut parser = FrameParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |e| {
                out.push(match e {
                    FrameEvent::Start { compressed, len } => Owned::Start(compressed, len),
                    FrameEvent::Data(d) => Owned::Data(d.to_vec()),
                    FrameEvent::End => Owned::End,
                })
            });
        }
        (out, parser)
    }

    fn frame(compressed: bool, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![u8::from(compressed)];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn several_messages_in_one_chunk() {
        let mut body = frame(false, b"hello");
        body.extend(frame(true, b"xy"));
        body.extend(frame(false, b""));
        let (events, parser) = run(&[&body]);
        assert_eq!(
            events,
            [
                Owned::Start(false, 5),
                Owned::Data(b"hello".to_vec()),
                Owned::End,
                Owned::Start(true, 2),
                Owned::Data(b"xy".to_vec()),
                Owned::End,
                Owned::Start(false, 0),
                Owned::End,
            ]
        );
        assert!(parser.finish().is_ok());
    }

    #[test]
    fn byte_by_byte_gives_the_same_messages() {
        let mut body = frame(false, b"hello");
        body.extend(frame(false, b"world!"));
        let chunks: Vec<&[u8]> = body.chunks(1).collect();
        let (events, parser) = run(&chunks);
        let starts: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Owned::Start(..)))
            .collect();
        let data: Vec<u8> = events
            .iter()
            .flat_map(|e| match e {
                Owned::Data(d) => d.clone(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(starts, [&Owned::Start(false, 5), &Owned::Start(false, 6)]);
        assert_eq!(data, b"helloworld!");
        assert!(parser.finish().is_ok());
    }

    #[test]
    fn a_lying_length_is_reported_at_the_end() {
        // Announces 1 GiB, sends 3 bytes.
        let (events, parser) = run(&[&[0, 0x40, 0, 0, 0, 1, 2, 3]]);
        assert_eq!(
            events,
            [Owned::Start(false, 1 << 30), Owned::Data(vec![1, 2, 3])]
        );
        assert_eq!(
            parser.finish(),
            Err(Incomplete {
                received: 3,
                expected: 1 << 30
            })
        );
        let (_, parser) = run(&[&[0, 0, 0]]);
        assert_eq!(
            parser.finish(),
            Err(Incomplete {
                received: 3,
                expected: 5
            })
        );
        assert!(
            parser
                .finish()
                .unwrap_err()
                .to_string()
                .contains("3 of 5 bytes")
        );
    }

    #[test]
    fn a_bad_flag_stops_the_parser() {
        let (events, parser) = run(&[&[7, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0]]);
        assert!(events.is_empty());
        assert!(parser.is_invalid());
        assert!(parser.finish().is_ok());
    }
}
