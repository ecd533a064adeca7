//! Rendering of captured gRPC message bytes for span events.
//!
//! Payload capture is off by default (it is otgrpc's `LogPayloads`). When it is on, each
//! message's bytes, up to a byte cap, are recorded on the span's message event; this
//! module turns those bytes into text that a person can read in a trace viewer.
//!
//! A [`PayloadRenderer`] made with [`PayloadRenderer::new`] needs no `.proto`: it prints a
//! protobuf wire-format dump in which each field shows its number and a value read from
//! its wire type. One made with [`PayloadRenderer::with_file_descriptor_set`] decodes the
//! messages of the methods it knows to JSON with the real field names, and falls back to
//! the wire-format dump for everything else.
//!
//! # Example
//!
//! ```
//! use tonic_trace::payload::{Direction, PayloadRenderer};
//!
//! // `CreateUserRequest { name: "Alice", age: 42 }`, encoded by the client.
//! let message = b"\x0a\x05Alice\x10\x2a";
//!
//! let renderer = PayloadRenderer::new();
//! let text = renderer.render("/demo.v1.Users/Create", Direction::Request, message, message.len());
//! assert_eq!(text, r#"{1: "Alice", 2: 42}"#);
//!
//! // Only the first 8 of the message's 9 bytes were captured.
//! let text = renderer.render("/demo.v1.Users/Create", Direction::Request, &message[..8], 9);
//! assert_eq!(text, r#"{1: "Alice", …} … (9 bytes total)"#);
//! ```
//!
//! With the service's descriptor set (as written by `tonic-prost-build`'s
//! `file_descriptor_set_path`, or by `protox`), the same request would render as
//! `{"name":"Alice","age":42}`:
//!
//! ```
//! use tonic_trace::payload::{PayloadError, PayloadRenderer};
//!
//! fn renderer(file_descriptor_set: &[u8]) -> Result<PayloadRenderer, PayloadError> {
//!     PayloadRenderer::with_file_descriptor_set(file_descriptor_set)
//! }
//! # assert!(renderer(b"\xff").is_err());
//! ```
//!
//! # The wire-format dump
//!
//! `{1: "Alice", 2: 42, 3: {1: 1.5f32}, 4: <bytes 0a0b>}` reads as follows.
//!
//! - A varint is printed as an unsigned integer. Negative `int32`/`int64` values and
//!   zigzag-encoded `sint32`/`sint64` values are not guessed at: `-1` as an `int64` shows
//!   as `18446744073709551615`, and `-2` as an `sint32` shows as `3`.
//! - A 32-bit or 64-bit fixed-width value is printed as a `float`/`double` (`1.5f32`,
//!   `2.5f64`) when its bits read as zero or as a finite number whose magnitude is in
//!   `[1e-6, 1e15)`, and otherwise as hexadecimal (`0x0000002a`, `0x000000000000002a`).
//!   Small `fixed32`/`fixed64` integers read as subnormal floats, so they come out in hex.
//! - A length-delimited value is shown as an embedded message if it parses completely as
//!   one (and nesting is at most 16 deep), else as a quoted string if it is UTF-8 without
//!   control characters other than tab, CR and LF, else as `<bytes …>` with at most the
//!   first 32 bytes in hex. An empty one shows as `""`.
//! - A group (the deprecated wire types 3 and 4) is skipped and shown as `<group>`.
//! - Repeated fields appear once per entry, as they do on the wire; packed repeated
//!   fields are a single length-delimited value.
//!
//! A capture shorter than the message ends with `… (N bytes total)`, and a `…` inside the
//! dump marks where the capture ends: after the last complete field, or after the captured
//! part of a value cut off there (a string, bytes or an embedded message). Bytes that are
//! not valid wire format stop the dump, which then ends with `<malformed at byte K>`, `K`
//! being the offset of the field that could not be read.
//!
//! The output of [`PayloadRenderer::render`] is at most `4 × message.len() + 128` bytes;
//! longer renderings are cut and marked with `…`.

use std::error::Error;
use std::fmt::{self, Write as _};

use prost_reflect::{
    DescriptorError, DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions,
};

/// Deepest nesting of embedded messages shown (and of groups skipped) in a wire-format dump.
const MAX_DEPTH: usize = 16;

/// Bytes of a length-delimited value shown in hex when it is neither a message nor text.
const MAX_HEX_BYTES: usize = 32;

/// A rendering is at most `OUTPUT_FACTOR × captured + OUTPUT_SLACK` bytes. The slack holds
/// the notes about truncation and malformed input, which are at most 80 bytes together.
const OUTPUT_FACTOR: usize = 4;
const OUTPUT_SLACK: usize = 128;

/// Largest valid field number.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// Which message of a call a capture holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A message sent by the client: the method's input type.
    Request,
    /// A message sent by the server: the method's output type.
    Response,
}

/// How captured message bytes are rendered.
///
/// Cloning is cheap: the descriptor pool, if any, is shared.
#[derive(Clone, Default)]
pub struct PayloadRenderer {
    pool: Option<DescriptorPool>,
}

impl PayloadRenderer {
    /// A renderer that prints the protobuf wire-format dump described in the
    /// [module documentation](self).
    pub fn new() -> Self {
        Self::default()
    }

    /// A renderer that decodes the messages of the methods described by `bytes`, an encoded
    /// `google.protobuf.FileDescriptorSet`, to JSON with the field names of the `.proto`.
    ///
    /// `bytes` is what `tonic-prost-build`'s `file_descriptor_set_path`, `protox` or
    /// `protoc --descriptor_set_out` write; it must include the files that the services'
    /// message types come from (`--include_imports`).
    ///
    /// # Errors
    ///
    /// If `bytes` is not an encoded `FileDescriptorSet`, or the descriptors in it are
    /// inconsistent (for example a type that refers to a file that is not in the set).
    pub fn with_file_descriptor_set(bytes: &[u8]) -> Result<Self, PayloadError> {
        let pool = DescriptorPool::decode(bytes).map_err(|source| PayloadError { source })?;
        Ok(Self { pool: Some(pool) })
    }

    /// Renders one captured message as text.
    ///
    /// `message` is the captured prefix of the message and `total_len` the length of the
    /// whole message (equal to `message.len()` when nothing was cut off). `method` is the
    /// gRPC path, `/package.Service/Method`, and `direction` tells whether the message is
    /// the method's request or its response; together they pick the message type from the
    /// descriptor set, if the renderer has one.
    ///
    /// The result is JSON when the message type is known and the bytes decode as that type;
    /// a capture that was cut off is then decoded up to its last complete top-level field
    /// and ends with `… (N bytes total)`. Otherwise (no descriptor set, unknown method or
    /// type, bytes that do not decode) it is the wire-format dump. Fields that are not in
    /// the descriptor are left out of the JSON.
    ///
    /// The result is at most `4 × message.len() + 128` bytes long. This never panics,
    /// whatever the bytes.
    pub fn render(
        &self,
        method: &str,
        direction: Direction,
        message: &[u8],
        total_len: usize,
    ) -> String {
        let total_len = total_len.max(message.len());
        self.message_type(method, direction)
            .and_then(|desc| render_json(desc, message, total_len))
            .unwrap_or_else(|| render_wire(message, total_len))
    }

    /// The descriptor of the message type that `method` takes (or returns) in `direction`.
    fn message_type(&self, method: &str, direction: Direction) -> Option<MessageDescriptor> {
        let pool = self.pool.as_ref()?;
        let (service, method) = method.strip_prefix('/')?.split_once('/')?;
        let method = pool
            .get_service_by_name(service)?
            .methods()
            .find(|candidate| candidate.name() == method)?;
        Some(match direction {
            Direction::Request => method.input(),
            Direction::Response => method.output(),
        })
    }
}

impl fmt::Debug for PayloadRenderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = self.pool.as_ref().map_or(0, |pool| pool.files().len());
        f.debug_struct("PayloadRenderer")
            .field("descriptor_files", &files)
            .finish()
    }
}

/// The error returned by [`PayloadRenderer::with_file_descriptor_set`].
#[derive(Debug)]
pub struct PayloadError {
    source: DescriptorError,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid protobuf file descriptor set: {}", self.source)
    }
}

impl Error for PayloadError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// Decodes `message` as `desc` and prints it as JSON, or returns `None` if it does not decode.
fn render_json(desc: MessageDescriptor, message: &[u8], total_len: usize) -> Option<String> {
    let truncated = message.len() < total_len;
    let complete = if truncated {
        // Decode the complete top-level fields; the wire-format dump shows more of a capture
        // that was cut off inside its first field.
        match complete_prefix_len(message, total_len)? {
            0 => return None,
            len => message.get(..len)?,
        }
    } else {
        message
    };
    let decoded = DynamicMessage::decode(desc, complete).ok()?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false);
    let mut serializer = serde_json::Serializer::new(Vec::new());
    decoded
        .serialize_with_options(&mut serializer, &options)
        .ok()?;
    let json = String::from_utf8(serializer.into_inner()).ok()?;
    let mut suffix = String::new();
    if truncated {
        push_total_note(&mut suffix, total_len);
    }
    Some(bounded(json, &suffix, output_limit(message.len())))
}

/// Length of the longest prefix of `message` that ends after a complete top-level field, or
/// `None` if `message` is malformed.
fn complete_prefix_len(message: &[u8], total_len: usize) -> Option<usize> {
    let mut reader = Reader::new(message, total_len);
    let mut complete = 0;
    while let Some(field) = reader.next_field() {
        match field {
            Ok(_) => complete = reader.pos,
            Err(stop) if stop.malformed => return None,
            Err(_) => break,
        }
    }
    Some(complete)
}

/// The wire-format dump of `message`, whose full length is `total_len`.
fn render_wire(message: &[u8], total_len: usize) -> String {
    let limit = output_limit(message.len());
    let mut out = String::new();
    let ending = render_message(message, total_len, 0, &mut out, limit);
    let mut suffix = String::new();
    if let Ending::Malformed { at } = ending {
        // Writing to a `String` cannot fail.
        let _ = write!(suffix, " <malformed at byte {at}>");
    }
    if message.len() < total_len {
        push_total_note(&mut suffix, total_len);
    }
    bounded(out, &suffix, limit)
}

fn push_total_note(out: &mut String, total_len: usize) {
    let _ = write!(out, " … ({total_len} bytes total)");
}

fn output_limit(captured: usize) -> usize {
    captured
        .saturating_mul(OUTPUT_FACTOR)
        .saturating_add(OUTPUT_SLACK)
}

/// `body` followed by `suffix`, with `body` cut and marked with `…` to fit in `limit` bytes.
fn bounded(mut body: String, suffix: &str, limit: usize) -> String {
    if body.len() + suffix.len() > limit {
        let mut keep = limit.saturating_sub(suffix.len() + '…'.len_utf8());
        while !body.is_char_boundary(keep) {
            keep -= 1;
        }
        body.truncate(keep);
        body.push('…');
    }
    body.push_str(suffix);
    body
}

/// How the fields of a message in a wire-format dump came to an end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// After the last field.
    Complete,
    /// The capture ends before the message does.
    Cut,
    /// The field at byte `at` is not valid wire format.
    Malformed { at: usize },
    /// The output reached its size limit.
    Full,
}

/// Prints `{field, field, …}` for the fields in `buf`, the first `buf.len()` bytes of a
/// message that is `declared_len` bytes long, nested `depth` messages deep.
fn render_message(
    buf: &[u8],
    declared_len: usize,
    depth: usize,
    out: &mut String,
    limit: usize,
) -> Ending {
    let mut reader = Reader::new(buf, declared_len);
    let mut separator = "";
    out.push('{');
    let ending = loop {
        if out.len() > limit {
            break Ending::Full;
        }
        let field = match reader.next_field() {
            None if buf.len() == reader.declared_len => break Ending::Complete,
            // The capture ends between two fields.
            None => {
                out.push_str(separator);
                out.push('…');
                break Ending::Cut;
            }
            Some(Ok(field)) => field,
            Some(Err(stop)) if stop.malformed => break Ending::Malformed { at: stop.at },
            Some(Err(stop)) => {
                out.push_str(separator);
                if let Some(partial) = stop.partial {
                    let _ = write!(out, "{}: ", partial.number);
                    render_partial(partial, depth, out, limit);
                }
                out.push('…');
                break Ending::Cut;
            }
        };
        out.push_str(separator);
        separator = ", ";
        let _ = write!(out, "{}: ", field.number);
        match field.value {
            Value::Varint(value) => {
                let _ = write!(out, "{value}");
            }
            Value::Fixed64(bits) => push_fixed64(out, bits),
            Value::Fixed32(bits) => push_fixed32(out, bits),
            Value::LengthDelimited(bytes) => render_length_delimited(bytes, depth, out, limit),
            Value::Group => out.push_str("<group>"),
        }
    };
    out.push('}');
    ending
}

/// Prints a complete length-delimited value: an embedded message, text or bytes.
fn render_length_delimited(bytes: &[u8], depth: usize, out: &mut String, limit: usize) {
    if bytes.is_empty() {
        out.push_str("\"\"");
    } else if depth < MAX_DEPTH && is_message(bytes) {
        render_message(bytes, bytes.len(), depth + 1, out, limit);
    } else if let Some(text) = as_text(bytes) {
        push_quoted(out, text);
    } else {
        push_hex(out, bytes);
    }
}

/// Prints the captured part of a length-delimited value that the capture cuts off.
///
/// Text is tried first: a prefix of an embedded message is much less certain to be one than
/// a whole message, and a cut-off value is most often a long string or blob.
fn render_partial(partial: Partial<'_>, depth: usize, out: &mut String, limit: usize) {
    let valid = match std::str::from_utf8(partial.bytes) {
        Ok(text) => Some(text),
        // A character cut in half by the end of the capture.
        Err(error) if error.error_len().is_none() => partial
            .bytes
            .get(..error.valid_up_to())
            .and_then(|bytes| std::str::from_utf8(bytes).ok()),
        Err(_) => None,
    };
    if let Some(text) = valid.filter(|text| is_printable(text)) {
        push_quoted(out, text);
        return;
    }
    if depth < MAX_DEPTH && is_partial_message(partial.bytes, partial.declared_len) {
        render_message(partial.bytes, partial.declared_len, depth + 1, out, limit);
    } else {
        push_hex(out, partial.bytes);
    }
}

/// Whether `bytes` parses completely as a message with valid field numbers.
fn is_message(bytes: &[u8]) -> bool {
    let mut reader = Reader::new(bytes, bytes.len());
    std::iter::from_fn(|| reader.next_field()).all(|field| field.is_ok())
}

/// Whether `bytes`, the captured part of a value `declared_len` bytes long, starts with at
/// least one complete field and reads as a message up to where it is cut.
fn is_partial_message(bytes: &[u8], declared_len: usize) -> bool {
    let mut reader = Reader::new(bytes, declared_len);
    let mut fields = 0usize;
    while let Some(field) = reader.next_field() {
        match field {
            Ok(_) => fields += 1,
            Err(stop) => return !stop.malformed && fields > 0,
        }
    }
    fields > 0
}

fn as_text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|text| is_printable(text))
}

fn is_printable(text: &str) -> bool {
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
}

fn push_quoted(out: &mut String, text: &str) {
    let _ = write!(out, "{text:?}");
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.push_str("<bytes ");
    for byte in bytes.iter().take(MAX_HEX_BYTES) {
        let _ = write!(out, "{byte:02x}");
    }
    if bytes.len() > MAX_HEX_BYTES {
        out.push('…');
    }
    out.push('>');
}

fn push_fixed32(out: &mut String, bits: u32) {
    let value = f32::from_bits(bits);
    if looks_like_float(f64::from(value)) {
        let _ = write!(out, "{value}f32");
    } else {
        let _ = write!(out, "0x{bits:08x}");
    }
}

fn push_fixed64(out: &mut String, bits: u64) {
    let value = f64::from_bits(bits);
    if looks_like_float(value) {
        let _ = write!(out, "{value}f64");
    } else {
        let _ = write!(out, "0x{bits:016x}");
    }
}

fn looks_like_float(value: f64) -> bool {
    value == 0.0 || (1e-6..1e15).contains(&value.abs())
}

/// A field read from the wire.
#[derive(Clone, Copy, Debug)]
struct Field<'a> {
    number: u32,
    value: Value<'a>,
}

/// A field's value, by wire type.
#[derive(Clone, Copy, Debug)]
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    LengthDelimited(&'a [u8]),
    /// A group, skipped up to and including its end tag.
    Group,
    Fixed32(u32),
}

/// Why a field could not be read.
#[derive(Clone, Copy, Debug)]
struct Stop<'a> {
    /// Offset of the field's tag.
    at: usize,
    /// The bytes are not valid wire format; otherwise the capture ends inside the field.
    malformed: bool,
    /// The captured part of a length-delimited value cut off by the end of the capture.
    partial: Option<Partial<'a>>,
}

#[derive(Clone, Copy, Debug)]
struct Partial<'a> {
    number: u32,
    bytes: &'a [u8],
    declared_len: usize,
}

/// Why a value could not be read, before the field's offset is known.
enum ReadError<'a> {
    Cut(Option<Partial<'a>>),
    Malformed,
}

/// Reads the fields of `buf`, the captured part of a message `declared_len` bytes long.
///
/// Running out of bytes inside a field is a cut if the field ends within `declared_len`, and
/// malformed input otherwise. After the first error, no more fields are returned.
struct Reader<'a> {
    buf: &'a [u8],
    declared_len: usize,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], declared_len: usize) -> Self {
        Self {
            buf,
            declared_len: declared_len.max(buf.len()),
            pos: 0,
        }
    }

    fn next_field(&mut self) -> Option<Result<Field<'a>, Stop<'a>>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let at = self.pos;
        Some(self.read_field().map_err(|error| {
            self.pos = self.buf.len();
            match error {
                ReadError::Cut(partial) => Stop {
                    at,
                    malformed: false,
                    partial,
                },
                ReadError::Malformed => Stop {
                    at,
                    malformed: true,
                    partial: None,
                },
            }
        }))
    }

    fn read_field(&mut self) -> Result<Field<'a>, ReadError<'a>> {
        let (number, wire_type) = self.read_tag()?;
        let value = match wire_type {
            0 => Value::Varint(self.read_varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.read_array()?)),
            2 => Value::LengthDelimited(self.read_length_delimited(number)?),
            3 => {
                self.skip_group(number, 1)?;
                Value::Group
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.read_array()?)),
            // 4 is an end-group tag without a start; 6 and 7 are not wire types.
            _ => return Err(ReadError::Malformed),
        };
        Ok(Field { number, value })
    }

    fn read_tag(&mut self) -> Result<(u32, u8), ReadError<'a>> {
        let key = self.read_varint()?;
        let number = key >> 3;
        if !(1..=MAX_FIELD_NUMBER).contains(&number) {
            return Err(ReadError::Malformed);
        }
        let number = u32::try_from(number).map_err(|_| ReadError::Malformed)?;
        // The low three bits.
        let wire_type = (key & 0b111) as u8;
        Ok((number, wire_type))
    }

    fn read_varint(&mut self) -> Result<u64, ReadError<'a>> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.end_of_capture(1));
            };
            self.pos += 1;
            // The tenth byte holds only the top bit of a 64-bit value.
            if shift == 63 && byte > 1 {
                return Err(ReadError::Malformed);
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ReadError::Malformed)
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], ReadError<'a>> {
        let bytes = self.take(N).ok_or_else(|| self.end_of_capture(N))?;
        bytes.try_into().map_err(|_| ReadError::Malformed)
    }

    fn read_length_delimited(&mut self, number: u32) -> Result<&'a [u8], ReadError<'a>> {
        let len = self.read_varint()?;
        let len = usize::try_from(len).map_err(|_| ReadError::Malformed)?;
        if let Some(bytes) = self.take(len) {
            return Ok(bytes);
        }
        match self.end_of_capture(len) {
            ReadError::Cut(_) => Err(ReadError::Cut(Some(Partial {
                number,
                bytes: self.buf.get(self.pos..).unwrap_or_default(),
                declared_len: len,
            }))),
            malformed => Err(malformed),
        }
    }

    /// Skips the rest of a group started by field `number`, nested `depth` groups deep.
    fn skip_group(&mut self, number: u32, depth: usize) -> Result<(), ReadError<'a>> {
        if depth > MAX_DEPTH {
            return Err(ReadError::Malformed);
        }
        loop {
            let (inner, wire_type) = self.read_tag().map_err(without_partial)?;
            match wire_type {
                0 => {
                    self.read_varint()?;
                }
                1 => {
                    self.read_array::<8>()?;
                }
                2 => {
                    self.read_length_delimited(inner).map_err(without_partial)?;
                }
                3 => self.skip_group(inner, depth + 1)?,
                4 if inner == number => return Ok(()),
                5 => {
                    self.read_array::<4>()?;
                }
                _ => return Err(ReadError::Malformed),
            }
        }
    }

    /// The next `len` bytes, if they were captured.
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    /// The error for `len` more bytes needed at the current position than were captured.
    fn end_of_capture(&self, len: usize) -> ReadError<'a> {
        match self.pos.checked_add(len) {
            Some(end) if end <= self.declared_len => ReadError::Cut(None),
            _ => ReadError::Malformed,
        }
    }
}

/// A cut inside a group shows no partial value.
fn without_partial(error: ReadError<'_>) -> ReadError<'_> {
    match error {
        ReadError::Cut(_) => ReadError::Cut(None),
        malformed => malformed,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;

    #[derive(Clone, PartialEq, Message)]
    struct Inner {
        #[prost(float, tag = "1")]
        ratio: f32,
    }

    #[derive(Clone, PartialEq, Message)]
    struct Person {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(uint64, tag = "2")]
        age: u64,
        #[prost(message, optional, tag = "3")]
        inner: Option<Inner>,
        #[prost(bytes = "vec", tag = "4")]
        blob: Vec<u8>,
        #[prost(string, repeated, tag = "5")]
        tags: Vec<String>,
        #[prost(double, tag = "6")]
        score: f64,
        #[prost(fixed64, tag = "7")]
        id: u64,
        #[prost(sint32, tag = "8")]
        delta: i32,
        #[prost(int64, tag = "9")]
        balance: i64,
        #[prost(fixed32, tag = "10")]
        small: u32,
        #[prost(message, repeated, tag = "11")]
        children: Vec<Inner>,
        #[prost(int32, repeated, tag = "12")]
        packed: Vec<i32>,
    }

    fn dump(message: &[u8]) -> String {
        PayloadRenderer::new().render(
            "/demo.v1.People/Get",
            Direction::Request,
            message,
            message.len(),
        )
    }

    fn dump_truncated(message: &[u8], captured: usize) -> String {
        let prefix = message.get(..captured).expect("capture within the message");
        PayloadRenderer::new().render(
            "/demo.v1.People/Get",
            Direction::Request,
            prefix,
            message.len(),
        )
    }

    #[test]
    fn dumps_every_wire_type() {
        let person = Person {
            name: "Alice".into(),
            age: 42,
            inner: Some(Inner { ratio: 1.5 }),
            blob: vec![0x00, 0xff, 0x10],
            tags: vec!["a".into(), "b \"c\"\n".into()],
            score: 2.5,
            id: 7,
            delta: -2,
            balance: -1,
            small: 42,
            children: vec![Inner { ratio: -0.25 }, Inner { ratio: 1e6 }],
            packed: vec![1, 2, 3],
        };
        assert_eq!(
            dump(&person.encode_to_vec()),
            concat!(
                r#"{1: "Alice", 2: 42, 3: {1: 1.5f32}, 4: <bytes 00ff10>, 5: "a", 5: "b \"c\"\n", "#,
                "6: 2.5f64, 7: 0x0000000000000007, 8: 3, 9: 18446744073709551615, 10: 0x0000002a, ",
                "11: {1: -0.25f32}, 11: {1: 1000000f32}, 12: <bytes 010203>}",
            )
        );
    }

    #[test]
    fn empty_message_and_empty_values() {
        assert_eq!(dump(&[]), "{}");
        // An empty length-delimited value could be a string, bytes or a message.
        assert_eq!(dump(&[0x0a, 0x00]), r#"{1: ""}"#);
        // A nested message whose only field is empty.
        assert_eq!(dump(&[0x1a, 0x02, 0x0a, 0x00]), r#"{3: {1: ""}}"#);
    }

    #[test]
    fn caps_hex_of_long_bytes() {
        let person = Person {
            blob: (0..=255).collect(),
            ..Person::default()
        };
        assert_eq!(
            dump(&person.encode_to_vec()),
            "{4: <bytes 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f…>}"
        );
    }

    #[test]
    fn shows_groups_and_skips_them() {
        // 1: start group, {2: 5, 3: start group, {}, 3: end group}, 1: end group, then 4: 1.
        let message = [0x0b, 0x10, 0x05, 0x1b, 0x1c, 0x0c, 0x20, 0x01];
        assert_eq!(dump(&message), "{1: <group>, 4: 1}");
    }

    #[test]
    fn truncated_string_shows_captured_part() {
        let person = Person {
            name: "Alice".into(),
            tags: vec!["lorem ipsum".into()],
            age: 7,
            ..Person::default()
        };
        let bytes = person.encode_to_vec();
        // name (7 bytes), age (2 bytes), then tag, length and "lor".
        assert_eq!(
            dump_truncated(&bytes, 14),
            r#"{1: "Alice", 2: 7, 5: "lor"…} … (22 bytes total)"#
        );
    }

    #[test]
    fn truncated_inside_a_tag_or_number() {
        let person = Person {
            name: "Alice".into(),
            age: 300,
            ..Person::default()
        };
        let bytes = person.encode_to_vec();
        assert_eq!(bytes.len(), 10);
        // Cut between the fields, after the age's tag, then inside its two-byte varint.
        assert_eq!(
            dump_truncated(&bytes, 7),
            r#"{1: "Alice", …} … (10 bytes total)"#
        );
        assert_eq!(
            dump_truncated(&bytes, 8),
            r#"{1: "Alice", …} … (10 bytes total)"#
        );
        assert_eq!(
            dump_truncated(&bytes, 9),
            r#"{1: "Alice", …} … (10 bytes total)"#
        );
        assert_eq!(dump_truncated(&bytes, 0), "{…} … (10 bytes total)");
    }

    #[test]
    fn truncated_nested_message_and_bytes() {
        let person = Person {
            children: vec![Inner { ratio: 1.5 }],
            tags: vec!["x".into()],
            ..Person::default()
        };
        let bytes = person.encode_to_vec();
        assert_eq!(
            bytes,
            [0x2a, 0x01, b'x', 0x5a, 0x05, 0x0d, 0x00, 0x00, 0xc0, 0x3f]
        );
        // Two bytes of the child's field: not text, not a field yet.
        assert_eq!(
            dump_truncated(&bytes, 8),
            r#"{5: "x", 11: <bytes 0d0000>…} … (10 bytes total)"#
        );

        // A child of 10 bytes (field 1 twice) with one complete field, cut in its second one.
        let message = [
            0x5a, 0x0a, 0x0d, 0x00, 0x00, 0xc0, 0x3f, 0x0d, 0x00, 0x00, 0x00, 0x3f,
        ];
        assert_eq!(
            dump_truncated(&message, 8),
            "{11: {1: 1.5f32, …}…} … (12 bytes total)"
        );
    }

    #[test]
    fn truncated_string_keeps_whole_characters() {
        // Field 1: "héllo", 6 bytes, cut inside the two bytes of "é".
        let message = b"\x0a\x06h\xc3\xa9llo";
        assert_eq!(
            PayloadRenderer::new().render("/p.S/M", Direction::Request, &message[..4], 8),
            r#"{1: "h"…} … (8 bytes total)"#
        );
    }

    #[test]
    fn malformed_inputs() {
        let cases: &[(&[u8], &str)] = &[
            // A varint field without its value.
            (&[0x08], "{} <malformed at byte 0>"),
            // Wire types 6 and 7 do not exist.
            (&[0x08, 0x01, 0x0e], "{1: 1} <malformed at byte 2>"),
            (
                &[0x08, 0x01, 0x0f, 0x08, 0x02],
                "{1: 1} <malformed at byte 2>",
            ),
            // Field number 0.
            (&[0x00, 0x00], "{} <malformed at byte 0>"),
            // Field number 2^29 is one too large.
            (
                &[0x80, 0x80, 0x80, 0x80, 0x10, 0x00],
                "{} <malformed at byte 0>",
            ),
            // A tag that does not fit in 32 bits.
            (
                &[0x88, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00],
                "{} <malformed at byte 0>",
            ),
            // A varint longer than ten bytes, and a tenth byte above 1.
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                "{} <malformed at byte 0>",
            ),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
                "{} <malformed at byte 0>",
            ),
            // The largest varint is fine.
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                "{1: 18446744073709551615}",
            ),
            // Lengths past the end, including one that does not fit in `usize`.
            (&[0x0a, 0x05, b'a'], "{} <malformed at byte 0>"),
            (
                &[
                    0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                "{} <malformed at byte 0>",
            ),
            // Fixed-width values past the end.
            (&[0x08, 0x01, 0x09, 0x00], "{1: 1} <malformed at byte 2>"),
            (&[0x0d, 0x00, 0x00], "{} <malformed at byte 0>"),
            // An end group without a start, a start without an end, mismatched ends.
            (&[0x0c], "{} <malformed at byte 0>"),
            (
                &[0x08, 0x01, 0x0b, 0x08, 0x01],
                "{1: 1} <malformed at byte 2>",
            ),
            (&[0x0b, 0x14], "{} <malformed at byte 0>"),
        ];
        for &(message, expected) in cases {
            assert_eq!(dump(message), expected, "input {message:02x?}");
        }
    }

    #[test]
    fn length_past_the_declared_end_of_a_truncated_message_is_malformed() {
        // Claims 100 bytes of a message that is 10 bytes long.
        let message = [0x0a, 0x64, b'a', b'b'];
        assert_eq!(
            PayloadRenderer::new().render("/p.S/M", Direction::Request, &message, 10),
            "{} <malformed at byte 0> … (10 bytes total)"
        );
        // The same within the declared length is a cut.
        assert_eq!(
            PayloadRenderer::new().render("/p.S/M", Direction::Request, &message, 102),
            r#"{1: "ab"…} … (102 bytes total)"#
        );
    }

    #[test]
    fn bad_bytes_inside_a_value_make_it_bytes_not_malformed() {
        // Field 1 holds `08` (a varint tag without its value): not a message, not text.
        assert_eq!(
            dump(&[0x0a, 0x01, 0x08, 0x10, 0x01]),
            "{1: <bytes 08>, 2: 1}"
        );
        // Field 1 holds `78 00`, which reads as field 15 with value 0.
        assert_eq!(dump(&[0x0a, 0x02, 0x78, 0x00]), "{1: {15: 0}}");
    }

    /// Wraps `inner` in field 1 of a message `levels` times.
    fn nest(inner: Vec<u8>, levels: usize) -> Vec<u8> {
        (0..levels).fold(inner, |message, _| {
            let mut outer = vec![0x0a];
            prost::encoding::encode_varint(message.len() as u64, &mut outer);
            outer.extend(message);
            outer
        })
    }

    #[test]
    fn nesting_depth_is_bounded() {
        // 40 levels around `08 01` ({1: 1}).
        let message = nest(vec![0x08, 0x01], 40);
        let text = dump(&message);
        assert_eq!(text.matches('{').count(), MAX_DEPTH + 1, "{text}");
        assert!(text.starts_with(&"{1: ".repeat(MAX_DEPTH + 1)), "{text}");
        // The 17th level is shown as bytes.
        assert!(text.contains("{1: <bytes 0a"), "{text}");

        // 16 levels below the top are still messages.
        let message = nest(vec![0x08, 0x01], MAX_DEPTH);
        let expected = format!(
            "{}{{1: 1}}{}",
            "{1: ".repeat(MAX_DEPTH),
            "}".repeat(MAX_DEPTH)
        );
        assert_eq!(dump(&message), expected);
    }

    #[test]
    fn group_nesting_depth_is_bounded() {
        let nested = |levels: usize| {
            let mut message = vec![0x0b; levels];
            message.extend(std::iter::repeat_n(0x0c, levels));
            message
        };
        assert_eq!(dump(&nested(MAX_DEPTH)), "{1: <group>}");
        assert_eq!(dump(&nested(MAX_DEPTH + 1)), "{} <malformed at byte 0>");
        assert_eq!(dump(&nested(10_000)), "{} <malformed at byte 0>");
    }

    #[test]
    fn output_is_bounded() {
        // `1: <bytes ff>, ` is 15 characters for 3 bytes of input.
        let message = [0x0a, 0x01, 0xff].repeat(1000);
        let text = dump(&message);
        assert_eq!(text.len(), output_limit(message.len()));
        assert!(text.starts_with("{1: <bytes ff>, 1: <bytes ff>"), "{text}");
        assert!(text.ends_with('…'), "{text}");

        // The notes are kept when the body is cut.
        let text = PayloadRenderer::new().render("/p.S/M", Direction::Request, &message, 5000);
        assert!(text.len() <= output_limit(message.len()));
        assert!(text.ends_with("… … (5000 bytes total)"), "{text}");
    }

    #[test]
    fn float_or_hex() {
        let mut out = String::new();
        push_fixed32(&mut out, 0);
        push_fixed32(&mut out, 0x3fc0_0000);
        push_fixed32(&mut out, 1);
        push_fixed32(&mut out, f32::NAN.to_bits());
        push_fixed32(&mut out, 1e-7_f32.to_bits());
        assert_eq!(out, "0f321.5f320x000000010x7fc000000x33d6bf95");
        out.clear();
        push_fixed64(&mut out, (-2.5_f64).to_bits());
        push_fixed64(&mut out, 1e15_f64.to_bits());
        push_fixed64(&mut out, 123_456_789.5_f64.to_bits());
        assert_eq!(out, "-2.5f640x430c6bf526340000123456789.5f64");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(
            message in proptest::collection::vec(any::<u8>(), 0..512),
            extra in 0usize..64,
        ) {
            let renderer = PayloadRenderer::new();
            for total_len in [message.len(), message.len() + extra] {
                let text = renderer.render("/p.S/M", Direction::Request, &message, total_len);
                prop_assert!(text.len() <= output_limit(message.len()));
                prop_assert!(text.starts_with('{'), "{}", text);
            }
        }

        #[test]
        fn every_prefix_of_a_message_renders(cut in 0usize..200) {
            let person = Person {
                name: "Alice".into(),
                inner: Some(Inner { ratio: 1.5 }),
                tags: vec!["x".repeat(30), "y".into()],
                children: vec![Inner { ratio: 2.0 }; 3],
                packed: vec![1, 300, 70_000],
                ..Person::default()
            };
            let bytes = person.encode_to_vec();
            let cut = cut.min(bytes.len());
            let text = dump_truncated(&bytes, cut);
            prop_assert!(text.len() <= output_limit(cut));
            prop_assert!(!text.contains("malformed"), "{}", text);
            if cut < bytes.len() {
                let note = format!(" … ({} bytes total)", bytes.len());
                prop_assert!(text.ends_with(&note), "{}", text);
            }
        }
    }

    const DEMO_PROTO: &str = r#"
        syntax = "proto3";
        package demo.v1;

        message HelloRequest {
            string user_name = 1;
            int64 visit_count = 2;
            repeated Tag tags = 3;
        }

        message Tag {
            string tag_key = 1;
        }

        message HelloReply {
            string greeting_text = 1;
        }

        service Greeter {
            rpc SayHello(HelloRequest) returns (HelloReply);
        }
    "#;

    #[derive(Clone, PartialEq, Message)]
    struct HelloRequest {
        #[prost(string, tag = "1")]
        user_name: String,
        #[prost(int64, tag = "2")]
        visit_count: i64,
        #[prost(message, repeated, tag = "3")]
        tags: Vec<Tag>,
    }

    #[derive(Clone, PartialEq, Message)]
    struct Tag {
        #[prost(string, tag = "1")]
        tag_key: String,
    }

    #[derive(Clone, PartialEq, Message)]
    struct HelloReply {
        #[prost(string, tag = "1")]
        greeting_text: String,
    }

    struct InlineProto;

    impl protox::file::FileResolver for InlineProto {
        fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
            match name {
                "demo.proto" => protox::file::File::from_source(name, DEMO_PROTO),
                _ => Err(protox::Error::file_not_found(name)),
            }
        }
    }

    fn demo_renderer() -> PayloadRenderer {
        let mut compiler = protox::Compiler::with_file_resolver(InlineProto);
        compiler
            .open_file("demo.proto")
            .expect("demo.proto compiles");
        PayloadRenderer::with_file_descriptor_set(&compiler.encode_file_descriptor_set())
            .expect("protox writes a valid descriptor set")
    }

    fn hello_request() -> Vec<u8> {
        HelloRequest {
            user_name: "Alice".into(),
            visit_count: -3,
            tags: vec![
                Tag {
                    tag_key: "a".into(),
                },
                Tag {
                    tag_key: "b".into(),
                },
            ],
        }
        .encode_to_vec()
    }

    const SAY_HELLO: &str = "/demo.v1.Greeter/SayHello";

    #[test]
    fn descriptor_gives_json_with_field_names() {
        let renderer = demo_renderer();
        let request = hello_request();
        assert_eq!(
            renderer.render(SAY_HELLO, Direction::Request, &request, request.len()),
            r#"{"user_name":"Alice","visit_count":-3,"tags":[{"tag_key":"a"},{"tag_key":"b"}]}"#
        );
        let reply = HelloReply {
            greeting_text: "hi".into(),
        }
        .encode_to_vec();
        assert_eq!(
            renderer.render(SAY_HELLO, Direction::Response, &reply, reply.len()),
            r#"{"greeting_text":"hi"}"#
        );
    }

    #[test]
    fn descriptor_truncated_capture_decodes_complete_fields() {
        let renderer = demo_renderer();
        let request = hello_request();
        // user_name (7 bytes), visit_count (11 bytes), then 3 bytes of the first tag.
        let text = renderer.render(SAY_HELLO, Direction::Request, &request[..21], request.len());
        assert_eq!(
            text,
            format!(
                r#"{{"user_name":"Alice","visit_count":-3}} … ({} bytes total)"#,
                request.len()
            )
        );
        // Cut inside the first field: the wire-format dump shows the captured part.
        let text = renderer.render(SAY_HELLO, Direction::Request, &request[..4], request.len());
        assert_eq!(
            text,
            format!(r#"{{1: "Al"…}} … ({} bytes total)"#, request.len())
        );
    }

    #[test]
    fn descriptor_falls_back_to_the_wire_dump() {
        let renderer = demo_renderer();
        let request = hello_request();
        let wire = concat!(
            r#"{1: "Alice", 2: 18446744073709551613, "#,
            r#"3: {1: "a"}, 3: {1: "b"}}"#
        );
        for method in [
            "/demo.v1.Greeter/SayGoodbye",
            "/demo.v1.Unknown/SayHello",
            "/Greeter/SayHello",
            "demo.v1.Greeter/SayHello",
            "",
        ] {
            assert_eq!(
                renderer.render(method, Direction::Request, &request, request.len()),
                wire,
                "method {method:?}"
            );
        }
        // Bytes that are not a `HelloRequest`: field 2 is an int64, not a string.
        let wrong_type = [0x12, 0x01, b'x'];
        assert_eq!(
            renderer.render(SAY_HELLO, Direction::Request, &wrong_type, wrong_type.len()),
            r#"{2: "x"}"#
        );
        // Malformed bytes.
        assert_eq!(
            renderer.render(SAY_HELLO, Direction::Request, &[0x0a, 0x05], 2),
            "{} <malformed at byte 0>"
        );
    }

    #[test]
    fn invalid_descriptor_set_is_an_error() {
        let error =
            PayloadRenderer::with_file_descriptor_set(b"\x0a\x12\x0a\x01x\x1a\x0dmissing.proto")
                .expect_err("a file whose import is missing is rejected");
        let message = error.to_string();
        assert!(
            message.starts_with("invalid protobuf file descriptor set: "),
            "{message}"
        );
        assert!(error.source().is_some());

        let error = PayloadRenderer::with_file_descriptor_set(b"\xff\xff")
            .expect_err("not a descriptor set");
        assert!(
            error
                .to_string()
                .starts_with("invalid protobuf file descriptor set: ")
        );
    }

    #[test]
    fn debug_shows_descriptor_file_count() {
        assert_eq!(
            format!("{:?}", PayloadRenderer::new()),
            "PayloadRenderer { descriptor_files: 0 }"
        );
        assert_eq!(
            format!("{:?}", demo_renderer()),
            "PayloadRenderer { descriptor_files: 1 }"
        );
    }
}
