//! Compiles the config stream's and the identity service's `.proto` files
//! with protox (a pure-Rust protobuf compiler), so building needs no system
//! `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/strait/config/v1/config.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        // Objects as `Bytes`: one copy shared by every stream that sends it.
        .bytes(".strait.config.v1.Resource.json")
        // Small, short-lived encode buffers (see `codec.rs`).
        .codec_path("crate::codec::StreamCodec")
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    let identity = "proto/strait/identity/v1/identity.proto";
    println!("cargo:rerun-if-changed={identity}");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(protox::compile([identity], ["proto"])?)?;
    Ok(())
}
