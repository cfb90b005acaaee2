//! Compiles proto/peage/v1/*.proto with protox, so no system `protoc` is needed, and
//! writes the descriptor set that the admin service publishes through gRPC reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "peage/v1/command.proto",
        "peage/v1/tracking.proto",
        "peage/v1/admin.proto",
        "peage/v1/peer.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // compile_fds takes the descriptors as given, so the set for reflection is written here.
    std::fs::write(out.join("peage_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
