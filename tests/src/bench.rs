//! What the cost examples (`tests/examples/*_cost.rs`) invoke: the manifest's `hello` (`PROXY_HELLO`) and
//! `check` (`EVENT_CHECK`) functions once, checking the answer.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use nimbus_core::{Event, EventSource, Host, Outcome, Payload, TraceContext};

/// Boots `hello` and `check` with the environment's engine settings (`NIMBUS_KEEP_RESIDENT`,
/// `NIMBUS_POOL_INSTANCES`, ...), as `serve` would.
pub async fn boot() -> std::sync::Arc<Host> {
    let settings = nimbus_core::settings::Settings::from_env().expect("NIMBUS_* settings");
    let opts = nimbus_core::BootOptions {
        engine: settings.engine.apply(nimbus_core::engine::EngineOptions::default()),
        ..nimbus_core::BootOptions::default()
    };
    let text = "manifest_version = 1\n[function.check]\ncomponent = \"{EVENT_CHECK}\"\n\
                [function.hello]\ncomponent = \"{PROXY_HELLO}\"\nroutes = [\"GET /\"]\n";
    crate::boot_with(text, opts).await.0
}

/// Invokes `check` with `{"n": 2}` and checks it doubled.
pub async fn event_once(host: &Host) {
    let f = host.function("check").unwrap();
    let inv = host.new_invocation(f, None, TraceContext::new_root());
    let ev = Event {
        source: EventSource::Direct,
        payload: br#"{"n": 2}"#.to_vec(),
    };
    match host.invoke(f, inv, Payload::Event(ev)).await {
        Ok(Outcome::Event(out)) => assert_eq!(out, br#"{"doubled":4}"#),
        other => panic!("{other:?}"),
    }
}

/// Invokes `hello` with `GET /` and checks its greeting.
pub async fn http_once(host: &Host) {
    let f = host.function("hello").unwrap();
    let inv = host.new_invocation(f, None, TraceContext::new_root());
    let body = Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync();
    let req = http::Request::get("http://localhost/")
        .header("host", "localhost")
        .body(body)
        .unwrap();
    match host.invoke(f, inv, Payload::Http(req)).await {
        Ok(Outcome::Http(resp)) => {
            let b = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&b[..], b"Hello, world!\n");
        }
        other => panic!("{other:?}"),
    }
}
