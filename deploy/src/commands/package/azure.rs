//! `--target azure`: an Azure Functions custom-handler app per function.
//!
//! In `<out>/azure-x86_64/`: `<function>/`, the app — `host.json` naming `bootstrap` as the custom handler,
//! `<function>/function.json` with its trigger, and `bootstrap`, `nimbus.toml`, the component and its
//! artifact at the root — and `<function>.zip`, the same for `az functionapp deployment source config-zip`.
//!
//! HTTP functions are proxied (`enableProxyingHttpRequest`): the host forwards the request as it came —
//! method, path, query, every header, the body's bytes — and streams the response back, so the guest sees
//! the same request as under `nimbus serve`; payload mode (`Data.req`) would carry the body as a string.
//! `routePrefix` is empty so paths are the manifest's, not under `/api`. An event function gets a queue
//! trigger on the Storage queue named after it (connection `AzureWebJobsStorage`); change the binding in
//! `function.json` for another trigger.

use super::bundle::Bundle;
use super::files::{Entry, Staging, write_tree, write_zip};
use super::{Package, route_methods};
use nimbus_core::Kind;
use serde_json::{Value, json};

/// The extension bundle the app loads its bindings from (Functions runtime 4.x).
const EXTENSION_BUNDLE: &str = "[4.*, 5.0.0)";

/// Writes each function's app folder and its zip.
pub fn write(package: &Package, bundles: &[Bundle<'_>], staging: &Staging) -> anyhow::Result<()> {
    for b in bundles {
        let mut files = b.with_bootstrap(package);
        files.push(Entry::file("host.json", pretty(&host_json(b.kind))?));
        files.push(Entry::file(
            format!("{}/function.json", b.name()),
            pretty(&function_json(b))?,
        ));
        write_tree(&staging.path(b.name()), &files)?;
        write_zip(&staging.path(&format!("{}.zip", b.name())), &files)?;
    }
    Ok(())
}

fn pretty(v: &Value) -> anyhow::Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(v)?;
    text.push(b'\n');
    Ok(text)
}

/// The app's `host.json`: `bootstrap` as the custom handler (started in the app's root, where it finds
/// `nimbus.toml` beside itself), proxying for an HTTP function.
fn host_json(kind: Kind) -> Value {
    let mut host = json!({
        "version": "2.0",
        "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": EXTENSION_BUNDLE},
        "customHandler": {"description": {"defaultExecutablePath": "bootstrap"}},
    });
    if kind == Kind::Http {
        host["customHandler"]["enableProxyingHttpRequest"] = json!(true);
        host["extensions"] = json!({"http": {"routePrefix": ""}});
    }
    host
}

/// The function's bindings: an HTTP trigger and output for an HTTP function, else a queue trigger.
fn function_json(b: &Bundle<'_>) -> Value {
    if b.kind != Kind::Http {
        return json!({"bindings": [{
            "type": "queueTrigger", "direction": "in", "name": "event",
            "queueName": b.name(), "connection": "AzureWebJobsStorage"
        }]});
    }
    let mut trigger = json!({"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous"});
    if let Some(methods) = route_methods(b.spec) {
        trigger["methods"] = json!(methods.iter().map(|m| m.to_lowercase()).collect::<Vec<_>>());
    }
    trigger["route"] = json!(route(b));
    json!({"bindings": [trigger, {"type": "http", "direction": "out", "name": "res"}]})
}

/// The trigger's route: the manifest's one route (Azure's templates are the manifest's, `{id}` and
/// `{*rest}`, without the leading `/`), else a catch-all: Nimbus routes within the function.
fn route(b: &Bundle<'_>) -> String {
    match b.spec.routes.as_slice() {
        [one] if one.path != "/" => one.path.trim_start_matches('/').to_owned(),
        _ => "{*path}".to_owned(),
    }
}
