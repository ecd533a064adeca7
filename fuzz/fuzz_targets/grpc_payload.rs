//! `tonic_trace::payload::PayloadRenderer::render`, the renderer of captured messages, over
//! any bytes, any declared length, any method, with and without a descriptor set (whose
//! message type is recursive, with every kind of field): it never panics and its output stays
//! within `4 × captured + 128` bytes.

#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto,
    FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto,
};
use tonic_trace::payload::{Direction, PayloadRenderer};

const METHODS: [&str; 6] = [
    "/fuzz.Tree/Walk",
    "/fuzz.Tree/Missing",
    "/other.Service/Walk",
    "/fuzz.Tree",
    "",
    "fuzz.Tree/Walk",
];

fn field(
    name: &str,
    number: i32,
    ty: Type,
    label: Label,
    type_name: Option<&str>,
) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.to_owned()),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(ty as i32),
        type_name: type_name.map(str::to_owned),
        json_name: Some(name.to_owned()),
        ..Default::default()
    }
}

/// `fuzz.Tree/Walk(Node) returns (Node)`, `Node` holding scalars of each wire type, bytes, an
/// enum, packed numbers and repeated `Node` children.
static RENDERERS: LazyLock<[PayloadRenderer; 2]> = LazyLock::new(|| {
    use Label::{Optional, Repeated};
    let node = DescriptorProto {
        name: Some("Node".to_owned()),
        field: vec![
            field("name", 1, Type::String, Optional, None),
            field("id", 2, Type::Int64, Optional, None),
            field("children", 3, Type::Message, Repeated, Some(".fuzz.Node")),
            field("blob", 4, Type::Bytes, Optional, None),
            field("ratio", 5, Type::Double, Optional, None),
            field("flag", 6, Type::Bool, Optional, None),
            field("kind", 7, Type::Enum, Optional, Some(".fuzz.Kind")),
            field("scores", 8, Type::Sint32, Repeated, None),
            field("stamp", 9, Type::Fixed64, Optional, None),
            field("weight", 10, Type::Float, Optional, None),
        ],
        ..Default::default()
    };
    let kind = EnumDescriptorProto {
        name: Some("Kind".to_owned()),
        value: ["KIND_UNSPECIFIED", "KIND_LEAF"]
            .iter()
            .zip(0..)
            .map(|(name, number)| EnumValueDescriptorProto {
                name: Some((*name).to_owned()),
                number: Some(number),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let tree = ServiceDescriptorProto {
        name: Some("Tree".to_owned()),
        method: vec![MethodDescriptorProto {
            name: Some("Walk".to_owned()),
            input_type: Some(".fuzz.Node".to_owned()),
            output_type: Some(".fuzz.Node".to_owned()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let set = FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("fuzz.proto".to_owned()),
            package: Some("fuzz".to_owned()),
            syntax: Some("proto3".to_owned()),
            message_type: vec![node],
            enum_type: vec![kind],
            service: vec![tree],
            ..Default::default()
        }],
    };
    let described = PayloadRenderer::with_file_descriptor_set(&set.encode_to_vec())
        .expect("a valid descriptor set");
    [PayloadRenderer::new(), described]
});

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    renderer: bool,
    method: u8,
    response: bool,
    message: &'a [u8],
    /// How much longer than the capture the message was.
    missing: u32,
}

fuzz_target!(|input: Input<'_>| {
    let renderer = &RENDERERS[usize::from(input.renderer)];
    let method = METHODS[usize::from(input.method) % METHODS.len()];
    let direction = if input.response {
        Direction::Response
    } else {
        Direction::Request
    };
    let total = input.message.len() + input.missing as usize;
    let text = renderer.render(method, direction, input.message, total);
    assert!(
        text.len() <= 4 * input.message.len() + 128,
        "{} bytes rendered from {}: {text}",
        text.len(),
        input.message.len()
    );
    if total > input.message.len() {
        assert!(text.ends_with(&format!("({total} bytes total)")), "{text}");
    }
});
