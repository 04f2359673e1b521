//! Generates the Salesforce Pub/Sub API types, client and server from `proto/pubsub_api.proto`.
//! `protox` parses the proto in pure Rust, so builds never need a system `protoc`.

use std::error::Error;

const PROTO: &str = "proto/pubsub_api.proto";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile([PROTO], ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
