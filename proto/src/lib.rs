//! rollgate's gRPC API, `rollgate.v1`: the RolloutService (served by the controller) and the
//! AnalysisService (served by the analysis service).
//!
//! The code is generated at build time from `proto/rollgate/v1/*.proto` by protox, a pure-Rust
//! protobuf compiler, and tonic-prost-build: building needs no system `protoc`.

/// Messages and services of the `rollgate.v1` package.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("rollgate.v1");
}

pub mod resume;

/// The encoded `FileDescriptorSet` of every rollgate proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("rollgate_descriptor");

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::FileDescriptorSet;

    use super::*;

    fn service_methods(name: &str) -> Vec<String> {
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
        set.file
            .iter()
            .flat_map(|file| &file.service)
            .find(|service| service.name() == name)
            .map(|service| service.method.iter().map(|m| m.name().to_owned()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn descriptor_set_describes_both_services() {
        assert_eq!(
            service_methods("RolloutService"),
            [
                "ListRollouts",
                "GetRollout",
                "WatchRollouts",
                "Approve",
                "Reject",
                "Promote",
                "Abort",
                "Retry",
                "ListAuditRecords",
                "VerifyAuditChain"
            ]
        );
        assert_eq!(service_methods("AnalysisService"), ["Evaluate", "Compare"]);
    }

    #[test]
    fn messages_round_trip_through_the_wire_format() {
        let rollout = v1::Rollout {
            id: Some(v1::RolloutRef {
                namespace: "shop".into(),
                name: "checkout".into(),
            }),
            phase: v1::Phase::AwaitingApproval as i32,
            canary_weight: 20,
            gate: Some(v1::Gate {
                revision: "98a182ab10".into(),
                required: 2,
                received: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let decoded = v1::Rollout::decode(rollout.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(decoded, rollout);
        assert_eq!(decoded.phase(), v1::Phase::AwaitingApproval);
    }
}
