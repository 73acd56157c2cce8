//! The echo service's generated gRPC types and stubs (`proto/testapp.proto`).

tonic::include_proto!("strait.testapp.v1");
