//! EC2 (CreateFleet), pricing, SSM and SQS behind the `aws` feature: the only module that depends on the AWS SDK.
