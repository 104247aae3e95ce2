//! What only `bootstrap` reads: which function, the deadline margin, and the AWS resources the
//! capabilities use there (WebSocket sends, `wasi:keyvalue`, the durable-task store).

use super::SettingsError;
use super::vars::Vars;
use std::borrow::Cow;
use std::time::Duration;

/// `bootstrap`'s settings; `None`: unset (see each field for what that means).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LambdaSettings {
    /// `NIMBUS_FUNCTION`: which function to serve when the manifest has several.
    pub function: Option<String>,
    /// `NIMBUS_DEADLINE_MARGIN_MS`: how long before Lambda's deadline the guest is stopped (default 100 ms).
    pub deadline_margin: Option<Duration>,
    /// `NIMBUS_WEBSOCKET_ENDPOINT`: the API Gateway Management API every invocation sends to (an `http://` or
    /// `https://` URL); `None`: a WebSocket invocation sends to the API its event came from, others cannot.
    pub websocket_endpoint: Option<String>,
    /// `NIMBUS_KV_TABLE`: the DynamoDB table behind `wasi:keyvalue`; `None`: `open` answers `no-such-store`.
    pub kv_table: Option<String>,
    /// The durable-task store of a task function.
    pub task_store: TaskStoreSettings,
}

/// The AWS resources of a task function's store; a task function needs all three.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskStoreSettings {
    /// `NIMBUS_STATE_BUCKET`: the S3 bucket of checkpoints.
    pub state_bucket: Option<String>,
    /// `NIMBUS_TASK_TABLE`: the DynamoDB table of task records.
    pub task_table: Option<String>,
    /// `NIMBUS_TASK_QUEUE_URL`: the SQS queue of continuations (its URL names it: [`queue_name`]).
    pub task_queue_url: Option<String>,
}

/// The names of the task store's variables, for messages.
pub const TASK_STORE_VARIABLES: [&str; 3] = ["NIMBUS_STATE_BUCKET", "NIMBUS_TASK_TABLE", "NIMBUS_TASK_QUEUE_URL"];

/// The queue a queue URL names: its last path segment (`https://sqs.{region}.amazonaws.com/{account}/{name}`).
pub fn queue_name(url: &str) -> Option<String> {
    let url = url::Url::parse(url.trim()).ok()?;
    url.path_segments()?.rfind(|s| !s.is_empty()).map(str::to_owned)
}

/// An `http://` or `https://` URL with a host, as `parse_with` wants it.
pub(super) fn web_url(value: &str, what: &'static str) -> Result<String, Cow<'static, str>> {
    let value = value.trim();
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty()) => {
            Ok(value.to_owned())
        }
        _ => Err(Cow::Borrowed(what)),
    }
}

/// `None` for a blank value (unset, as these variables always treated it), else what `parse` makes of it
/// trimmed.
pub(super) fn blank_or<T>(
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, Cow<'static, str>>,
) -> Result<Option<T>, Cow<'static, str>> {
    match value.trim() {
        "" => Ok(None),
        v => parse(v).map(Some),
    }
}

impl LambdaSettings {
    pub(super) fn read(vars: &Vars) -> Result<LambdaSettings, SettingsError> {
        const ENDPOINT: &str = "an https:// URL such as https://{api id}.execute-api.{region}.amazonaws.com/{stage}";
        const QUEUE: &str = "an SQS queue URL such as https://sqs.{region}.amazonaws.com/{account}/{queue}";
        const NAME: &str = "a name";
        let non_blank = |v: &str| blank_or(v, |v| Ok(v.to_owned()));
        Ok(LambdaSettings {
            function: vars.text("NIMBUS_FUNCTION", "a function of the manifest")?,
            deadline_margin: vars
                .parse::<u64>("NIMBUS_DEADLINE_MARGIN_MS", "milliseconds, e.g. 100")?
                .map(Duration::from_millis),
            websocket_endpoint: vars
                .parse_with("NIMBUS_WEBSOCKET_ENDPOINT", ENDPOINT, |v| {
                    blank_or(v, |v| web_url(v, ENDPOINT))
                })?
                .flatten(),
            kv_table: vars.parse_with("NIMBUS_KV_TABLE", NAME, non_blank)?.flatten(),
            task_store: TaskStoreSettings {
                state_bucket: vars.parse_with("NIMBUS_STATE_BUCKET", NAME, non_blank)?.flatten(),
                task_table: vars.parse_with("NIMBUS_TASK_TABLE", NAME, non_blank)?.flatten(),
                task_queue_url: vars
                    .parse_with("NIMBUS_TASK_QUEUE_URL", QUEUE, |v| {
                        blank_or(v, |v| {
                            let url = web_url(v, QUEUE)?;
                            queue_name(&url).ok_or(Cow::Borrowed(QUEUE))?;
                            Ok(url)
                        })
                    })?
                    .flatten(),
            },
        })
    }
}
