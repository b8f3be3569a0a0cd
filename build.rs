//! Generates the Protobuf types from `proto/` with protox (pure Rust; no system protoc needed).
fn main() {
    let proto = "proto/leadscore/v1/events.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"]).unwrap_or_else(|e| panic!("{proto}: {e}"));
    prost_build::Config::new()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("prost-build on {proto}: {e}"));
}
