//! `nimbus invoke`: run one function once, the way the cloud would.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use nimbus_core::logs::LogSink;
use nimbus_core::telemetry::Platform;
use nimbus_core::{BootOptions, Event, EventSource, Host, Kind, Outcome, Payload, Settings, TraceContext};
use std::io::{Read, Write};
use std::path::PathBuf;

/// `nimbus invoke` options.
#[derive(clap::Args)]
pub struct Args {
    /// The function to invoke (its name in the manifest).
    function: String,
    /// The manifest [default: nimbus.toml] [env: NIMBUS_MANIFEST].
    #[arg(long, short)]
    manifest: Option<PathBuf>,
    /// Read the event (or request body) from this file; `-` reads stdin.
    #[arg(long, short, conflicts_with = "data")]
    event: Option<PathBuf>,
    /// The event (or request body) inline.
    #[arg(long, short)]
    data: Option<String>,
    /// Event source kind handed to the guest.
    #[arg(long, default_value = "direct", value_parser = ["direct", "sqs", "sns", "s3", "eventbridge", "schedule", "dynamodb", "kinesis", "other"])]
    source: String,
    /// HTTP functions: request method (default GET, or POST when a body is given).
    #[arg(long, short = 'X')]
    method: Option<String>,
    /// HTTP functions: request path and query (default: the first route's path).
    #[arg(long)]
    path: Option<String>,
    /// HTTP functions: extra request header `name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Invoke as part of this W3C trace (`00-<trace id>-<parent id>-<flags>`)
    /// instead of a new one.
    #[arg(long, value_name = "TRACEPARENT")]
    traceparent: Option<String>,
    #[command(flatten)]
    env: super::local_env::LocalEnv,
}

/// Loads the environment file (before the runtime starts: see [`super::local_env::LocalEnv::load_env_file`]).
pub fn load_env_file(args: &Args) -> anyhow::Result<Option<PathBuf>> {
    args.env.load_env_file()
}

/// Boots only the named function, invokes it once, prints the result on
/// stdout (guest logs go to stderr) and fails with the error type otherwise.
pub async fn run(args: Args, settings: &Settings) -> anyhow::Result<()> {
    let manifest_path = super::manifest_path(args.manifest.as_deref(), settings);
    let manifest = super::load_manifest(&manifest_path);
    // Before a manifest error, so that a misspelt NIMBUS_MANIFEST is named.
    settings.warn(manifest.as_ref().ok());
    let manifest = manifest?;
    let ssm = args.env.ssm_provider(&manifest, settings)?;
    let oos = args.env.oos_provider(&manifest, settings)?;
    let Some(spec) = manifest.function(&args.function) else {
        let names: Vec<&str> = manifest.functions.iter().map(|f| f.name.as_str()).collect();
        bail!(
            "no function `{}` in {} (functions: {})",
            args.function,
            manifest_path.display(),
            names.join(", ")
        );
    };
    let first_route = spec.routes.first().map(|r| r.path.clone());
    let body = read_payload(&args)?;
    let platform = Platform::Local {
        service: super::service_name(&manifest_path),
        app: manifest.app_name.clone(),
    };
    let mut opts = BootOptions {
        only: Some(vec![args.function.clone()]),
        log_sink: LogSink::Stderr,
        ssm,
        ..settings.boot_options(&platform)?
    };
    if let Some(oos) = oos {
        opts.oos = oos;
    }
    let host = Host::boot(manifest.clone(), opts).await?;
    let result = invoke(&host, &args, first_route, body).await;
    // The process ends here: export what the invocation recorded.
    host.shutdown_telemetry(std::time::Duration::from_secs(5)).await;
    result
}

/// Builds the payload, invokes once and prints the outcome.
async fn invoke(host: &Host, args: &Args, first_route: Option<String>, body: Option<Vec<u8>>) -> anyhow::Result<()> {
    let f = host.function(&args.function).context("function did not boot")?;
    let trace = match &args.traceparent {
        Some(tp) => {
            if nimbus_core::caps::trace::propagate::parse_traceparent(tp).is_none() {
                bail!("--traceparent {tp:?} is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)");
            }
            TraceContext::from_w3c(Some(tp), None)
        }
        None => TraceContext::new_root(),
    };
    let inv = host.new_invocation(f, None, trace);
    let request_id = inv.request_id.clone();

    let payload = match f.kind {
        Kind::Task => bail!(
            "`{}` is a task function: start it with `nimbus task start {}` (or POST /tasks/{} to `nimbus serve`)",
            args.function,
            args.function,
            args.function
        ),
        Kind::WebSocket => bail!(
            "`{}` is a WebSocket function: connect to it with a WebSocket client through `nimbus serve`",
            args.function
        ),
        Kind::Event => {
            let Some(body) = body else {
                bail!(
                    "`{}` is an event function: give the event with --event FILE or --data JSON",
                    args.function
                );
            };
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
                bail!("the event is not valid JSON: {e}");
            }
            Payload::Event(Event {
                source: parse_source(&args.source),
                payload: body,
            })
        }
        Kind::Http => {
            let method = args
                .method
                .clone()
                .unwrap_or_else(|| if body.is_some() { "POST".into() } else { "GET".into() });
            let path = args
                .path
                .clone()
                .or(first_route.map(|p| literal_prefix(&p)))
                .unwrap_or_else(|| "/".into());
            let mut req = http::Request::builder()
                .method(method.as_str())
                .uri(format!("http://localhost{path}"))
                .header("host", "localhost");
            for h in &args.headers {
                let Some((k, v)) = h.split_once(':') else {
                    bail!("bad --header {h:?}: expected `name: value`")
                };
                req = req.header(k.trim(), v.trim());
            }
            let body = Full::new(Bytes::from(body.unwrap_or_default()))
                .map_err(|never| match never {})
                .boxed_unsync();
            Payload::Http(
                req.body(body)
                    .context("invalid request (check --method, --path and --header)")?,
            )
        }
    };

    match host.invoke(f, inv, payload).await {
        Ok(other @ (Outcome::WebSocket(_) | Outcome::Task(_))) => bail!("unexpected outcome {other:?}"),
        Ok(Outcome::Event(out)) => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&out)?;
            if !out.ends_with(b"\n") {
                stdout.write_all(b"\n")?;
            }
            Ok(())
        }
        Ok(Outcome::Http(resp)) => {
            let (parts, body) = resp.into_parts();
            eprintln!("HTTP {} (request id {request_id})", parts.status);
            for (k, v) in &parts.headers {
                eprintln!("{k}: {}", v.to_str().unwrap_or("<binary>"));
            }
            let bytes = body
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("response body failed: {e}"))?
                .to_bytes();
            std::io::stdout().lock().write_all(&bytes)?;
            Ok(())
        }
        Err(e) => bail!("{} (request id {request_id}): {e}", e.error_type()),
    }
}

fn read_payload(args: &Args) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(d) = &args.data {
        return Ok(Some(d.clone().into_bytes()));
    }
    match &args.event {
        None => Ok(None),
        Some(p) if p.as_os_str() == "-" => {
            let mut v = Vec::new();
            std::io::stdin()
                .read_to_end(&mut v)
                .context("reading the event from stdin")?;
            Ok(Some(v))
        }
        Some(p) => std::fs::read(p)
            .map(Some)
            .with_context(|| format!("cannot read event file {}", p.display())),
    }
}

fn parse_source(s: &str) -> EventSource {
    match s {
        "sqs" => EventSource::Sqs,
        "sns" => EventSource::Sns,
        "s3" => EventSource::S3,
        "eventbridge" => EventSource::EventBridge,
        "schedule" => EventSource::Schedule,
        "dynamodb" => EventSource::DynamoDb,
        "kinesis" => EventSource::Kinesis,
        "other" => EventSource::Other,
        _ => EventSource::Direct,
    }
}

/// `/users/{id}` → `/users/`: the part of a route usable as a concrete path.
fn literal_prefix(route: &str) -> String {
    match route.find('{') {
        Some(i) => route[..i].to_string(),
        None => route.to_string(),
    }
}
