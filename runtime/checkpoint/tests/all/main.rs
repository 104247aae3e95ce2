//! Integration tests of the durable-task protocol on the embedded backend (one binary, several modules).

#[cfg(feature = "aws")]
mod aws;
mod embedded;
mod protocol;
mod support;
