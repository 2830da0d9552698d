//! Errors of `cloud::aws`, and how EC2 error codes map onto [`CloudError`] classes.

use super::sdk::ApiError;
use crate::cloud::CloudError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to call {operation}: {source}")]
    Api { operation: &'static str, source: ApiError },
    #[error(
        "failed to launch for claim {claim}: it names no NodeTemplate (set the Provisioner's providerRef)"
    )]
    NoNodeTemplate { claim: String },
    #[error("failed to find NodeTemplate {0}")]
    UnknownNodeTemplate(String),
    #[error("failed to resolve NodeTemplate {template} field {field}: {reason}")]
    Template { template: String, field: &'static str, reason: String },
    #[error("failed to parse provider id {0:?}: expected aws:///<zone>/<instance-id>")]
    ProviderId(String),
    #[error("failed to launch for claim {claim}: {reason}")]
    Unlaunchable { claim: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Error codes meaning "this offering has no capacity now": the offering goes into the unavailable cache and the
/// launch moves on to the remaining offerings (Karpenter's `UnfulfillableCapacityErrorCodes`).
const CAPACITY_CODES: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientFreeAddressesInSubnet",
    "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow",
    "UnfulfillableCapacity",
    "Unsupported",
    "VcpuLimitExceeded",
];

const THROTTLE_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
];

const AUTH_CODES: &[&str] = &[
    "UnauthorizedOperation",
    "AuthFailure",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "OptInRequired",
    "Blocked",
];

pub fn is_capacity_code(code: &str) -> bool {
    CAPACITY_CODES.contains(&code)
}

pub fn is_not_found_code(code: &str) -> bool {
    code.ends_with(".NotFound") || code.ends_with("NotFoundException") || code == "ParameterNotFound"
}

/// The class of an EC2 error code; `None` (no service answer) is transient.
pub fn classify(code: Option<&str>, message: String) -> CloudError {
    let Some(code) = code else { return CloudError::Transient(message.into()) };
    let text = format!("{code}: {message}");
    if THROTTLE_CODES.contains(&code) {
        CloudError::Throttled(text)
    } else if AUTH_CODES.contains(&code) {
        CloudError::Unauthorized(text)
    } else if is_not_found_code(code) {
        CloudError::NotFound(text)
    } else if code.starts_with("Invalid") || code == "MissingParameter" || code == "ValidationError" {
        CloudError::InvalidConfig(text)
    } else {
        CloudError::Transient(text.into())
    }
}

impl From<Error> for CloudError {
    fn from(err: Error) -> Self {
        match err {
            Error::Api { operation, source } => {
                classify(source.code.as_deref(), format!("{operation}: {}", source.message))
            }
            Error::NoNodeTemplate { .. }
            | Error::UnknownNodeTemplate(_)
            | Error::Template { .. }
            | Error::Unlaunchable { .. } => CloudError::InvalidConfig(err.to_string()),
            Error::ProviderId(_) => CloudError::NotFound(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: &str) -> &'static str {
        classify(Some(code), "m".into()).metric_label()
    }

    #[test]
    fn codes_map_to_classes() {
        assert_eq!(class("InvalidInstanceID.NotFound"), "not_found");
        assert_eq!(class("InvalidLaunchTemplateName.NotFoundException"), "not_found");
        assert_eq!(class("RequestLimitExceeded"), "throttled");
        assert_eq!(class("UnauthorizedOperation"), "unauthorized");
        assert_eq!(class("InvalidParameterValue"), "invalid_config");
        assert_eq!(class("InternalError"), "transient");
        assert_eq!(classify(None, "timeout".into()).metric_label(), "transient");
        assert!(is_capacity_code("InsufficientInstanceCapacity"));
        assert!(is_capacity_code("VcpuLimitExceeded"));
        assert!(!is_capacity_code("InvalidParameterValue"));
    }

    #[test]
    fn template_errors_are_invalid_config_naming_the_field() {
        let err: CloudError = Error::Template {
            template: "default".into(),
            field: "spec.subnetSelector",
            reason: "no subnet matches".into(),
        }
        .into();
        assert_eq!(err.metric_label(), "invalid_config");
        assert!(err.to_string().contains("NodeTemplate default field spec.subnetSelector"), "{err}");
    }
}
