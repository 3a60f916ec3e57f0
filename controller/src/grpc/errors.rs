//! gRPC status codes: for API server errors, and for requests that lack a field.

use rollgate_proto::v1;
use tonic::Status;

/// The status for an API server error while doing `what`: the HTTP code decides the gRPC code,
/// and the API server's message is kept.
pub fn kube_status(error: kube::Error, what: &str) -> Status {
    let kube::Error::Api(status) = error else {
        return Status::unavailable(format!("{what}: the API server failed: {error}"));
    };
    let message = format!("{what}: {}", status.message);
    match status.code {
        400 | 422 => Status::invalid_argument(message),
        401 => Status::unauthenticated(message),
        403 => Status::permission_denied(message),
        404 => Status::not_found(message),
        409 => Status::aborted(message),
        429 | 500..=599 => Status::unavailable(message),
        _ => Status::internal(message),
    }
}

/// The namespace and name of a required rollout reference; `INVALID_ARGUMENT` naming the
/// missing field.
pub fn rollout_ref(rollout: Option<&v1::RolloutRef>) -> Result<(&str, &str), Status> {
    let rollout = rollout
        .ok_or_else(|| Status::invalid_argument("rollout: required (namespace and name)"))?;
    let namespace = required("rollout.namespace", &rollout.namespace)?;
    let name = required("rollout.name", &rollout.name)?;
    Ok((namespace, name))
}

/// `value` when it is not blank; `INVALID_ARGUMENT` naming `field` when it is.
pub fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.trim().is_empty() {
        Err(Status::invalid_argument(format!("{field}: required")))
    } else {
        Ok(value)
    }
}

/// `NOT_FOUND` for the Rollout `name` in `namespace`.
pub fn rollout_not_found(namespace: &str, name: &str) -> Status {
    Status::not_found(format!(
        "rollout {name:?} not found in namespace {namespace:?}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: "refused".into(),
            ..Default::default()
        }))
    }

    #[test]
    fn http_codes_map_to_grpc_codes() {
        let cases = [
            (400, Code::InvalidArgument),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::NotFound),
            (409, Code::Aborted),
            (422, Code::InvalidArgument),
            (429, Code::Unavailable),
            (503, Code::Unavailable),
            (418, Code::Internal),
        ];
        for (http, grpc) in cases {
            let status = kube_status(api_error(http), "create the Approval");
            assert_eq!(status.code(), grpc, "{http}");
            assert_eq!(status.message(), "create the Approval: refused");
        }
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            rollout_ref(None).unwrap_err().message(),
            "rollout: required (namespace and name)"
        );
        let unnamed = v1::RolloutRef {
            namespace: "shop".into(),
            name: " ".into(),
        };
        let status = rollout_ref(Some(&unnamed)).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "rollout.name: required");
        let named = v1::RolloutRef {
            namespace: "shop".into(),
            name: "web".into(),
        };
        assert_eq!(rollout_ref(Some(&named)).unwrap(), ("shop", "web"));
    }
}
