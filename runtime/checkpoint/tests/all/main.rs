//! Integration tests of the durable-task protocol on the embedded backend (one binary, several modules).

mod embedded;
mod protocol;
mod support;
