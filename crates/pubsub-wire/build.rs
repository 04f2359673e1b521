//! Generates the Salesforce Pub/Sub API types and client (and, with the `server` feature, the
//! server) from `proto/pubsub_api.proto`. `protox` parses the proto in pure Rust, so builds
//! never need a system `protoc`.

use std::error::Error;

const PROTO: &str = "proto/pubsub_api.proto";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-changed=build.rs");
    let server = std::env::var_os("CARGO_FEATURE_SERVER").is_some();
    let fds = protox::compile([PROTO], ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(server).compile_fds(fds)?;
    Ok(())
}
