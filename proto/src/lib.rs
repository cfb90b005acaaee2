//! Wire types only: the generated `peage.v1` messages and services, and the descriptor set
//! served by gRPC reflection. Conversions to domain types live in the node and client crates.

pub mod v1 {
    tonic::include_proto!("peage.v1");
}

/// The encoded `FileDescriptorSet` of every peage.v1 file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("peage_descriptor");
