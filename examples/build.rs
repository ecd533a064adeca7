//! Generates the gRPC code of the examples (`helloworld`, and the demo's `shop`) without a system
//! `protoc`: `protox` compiles the proto files into a `FileDescriptorSet`, which
//! `tonic-prost-build` turns into Rust. The encoded set is also written to
//! `$OUT_DIR/helloworld_descriptor.bin` (see `FILE_DESCRIPTOR_SET`).

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler
        .include_imports(true)
        .include_source_info(true)
        .open_files(["helloworld.proto", "shop.proto"])?;
    for file in compiler.files() {
        // Files of the include paths have a path; the well-known types built into protox don't.
        if let Some(path) = file.path() {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }

    std::fs::write(
        out_dir.join("helloworld_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure().compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
