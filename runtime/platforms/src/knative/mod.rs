//! Cloud Run / Knative Serving: an HTTP server on `0.0.0.0:$PORT` that serves the one function. An HTTP
//! function gets each request as it arrived; an event function gets CloudEvents (binary, structured or
//! batched), Pub/Sub push bodies and plain bodies ([`decode`]).

pub mod decode;
