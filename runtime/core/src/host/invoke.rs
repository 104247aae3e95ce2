//! The one invocation path. [`Host::invoke`] takes every kind of payload (HTTP, event, WebSocket, task)
//! through the same steps:
//!
//! 1. the kind checks its input against its quota (before waiting for anything);
//! 2. admission: a permit from the function's semaphore (a burst queues, then `Overloaded`);
//! 3. an instance: a warm idle one or a fresh store, pointed at this invocation;
//! 4. the kind puts its per-invocation state in the store ([`Step::enter`]);
//! 5. the guest call under both the epoch deadline (guest code) and a timer (host waits);
//! 6. the outcome classified ([`classify`]): trap, memory, deadline, pool exhaustion, or the guest's error;
//! 7. the kind takes its state back ([`Step::leave`]); metering; a sound instance is released;
//! 8. the kind turns what the guest returned into the [`Outcome`] ([`Step::finish`]);
//! 9. telemetry: the invocation's span ends with it (for HTTP, with the response body).
//!
//! What differs per kind is a [`Step`]: [`EventStep`] and [`WebSocketStep`] here, the HTTP step in
//! `http.rs` (its guest keeps streaming after the response head, so the call runs in its own task) and the
//! task step in `tasks.rs` (it commits the run to the task store).

use super::instances::{Idle, Instantiate, Ready, classify};
use super::meter::Meter;
use super::{Function, Host, Pre};
use crate::bindings::{EventFunction, WebsocketFunction, types};
use crate::caps::Grants;
use crate::error::InvokeError;
use crate::invocation::{Event, EventSource, Invocation, Outcome, Payload};
use crate::manifest::{Limits, Reuse};
use crate::state::HostState;
use crate::telemetry::{InvocationRecord, Trigger};
use crate::websocket::{Sender, WsEvent, WsOutcome};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;

/// What one kind of invocation adds to the shared path.
pub(super) trait Step<I>: Send + Sized + 'static {
    /// What the guest's export returns when it succeeds.
    type Value: Send + 'static;

    /// Refuses an input over its quota before the invocation waits for an instance.
    fn check_input(&self, limits: &Limits) -> Result<(), InvokeError>;

    /// What this invocation brings its capabilities (a WebSocket event's sender, a task's run), taken by
    /// their `prepare`.
    fn grants(&mut self) -> Grants {
        Grants::none()
    }

    /// Puts this invocation's input into the store once it is prepared (the WASI HTTP request resources).
    fn enter(&mut self, _state: &mut HostState) -> Result<(), InvokeError> {
        Ok(())
    }

    /// Calls the export. `Err` is a trap or host failure (classified); `Ok(Err)` is the guest's own error
    /// value (the instance is sound).
    fn call<'a>(
        &'a mut self,
        instance: &'a I,
        store: &'a mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Result<Self::Value, types::Error>>> + Send + 'a;

    /// Takes the kind's state back out of the store once the call is over.
    fn leave(&mut self, _state: &mut HostState) {}
}

/// The last step of a kind whose outcome is ready when the guest call returns (all but HTTP, whose response
/// head arrives while the guest still runs).
pub(super) trait Finish<I>: Step<I> {
    /// Turns what the guest returned (or how it failed) into the invocation's outcome.
    fn finish(
        self,
        f: &Function,
        returned: Result<Self::Value, InvokeError>,
    ) -> impl Future<Output = Result<Outcome, InvokeError>> + Send;
}

/// An invocation that has its permit, its instance and its kind's state, ready for the guest call. It owns
/// everything it needs, so HTTP can run it in its own task.
pub(super) struct Admitted<P: Instantiate, S> {
    pub(super) ready: Ready<P::Instance>,
    pub(super) step: S,
    pre: P,
    idle: Idle<P::Instance>,
    inv: Arc<Invocation>,
    meter: Meter,
    reuse: Reuse,
    /// Not to be reused whatever happens (a fault rule changed its limits).
    discard: bool,
    _permit: OwnedSemaphorePermit,
}

impl Host {
    /// Runs one invocation in a fresh instance (or a warm one, for `reuse` functions): the path every
    /// kind of payload takes (see the module docs).
    ///
    /// With telemetry on, the invocation's span is exported when it ends: at
    /// the end of the response body for HTTP (so streaming is covered).
    pub async fn invoke(&self, f: &Function, inv: Invocation, payload: Payload) -> Result<Outcome, InvokeError> {
        let inv = Arc::new(inv);
        let result = self.invoke_laddered(f, inv.clone(), payload).await;
        if let Err(e) = &result {
            self.recent_errors.remember(&f.name, &inv.request_id, e);
        }
        result
    }

    /// [`Host::invoke`]: the degradation ladder's admission, the fault plan's draw, then the path.
    async fn invoke_laddered(
        &self,
        f: &Function,
        inv: Arc<Invocation>,
        payload: Payload,
    ) -> Result<Outcome, InvokeError> {
        if let Some(reason) = self.stopping() {
            return Err(InvokeError::Degraded {
                level: 5,
                reason: reason.to_owned(),
                retry_after: std::time::Duration::from_secs(1),
            });
        }
        // The degradation ladder first: a shed invocation costs no instance and no fault draw, and no span
        // unless its admission changed the level (that span tells why the function began shedding).
        let (_place, transition) = match &f.ladder {
            Some(l) => {
                let crate::degrade::Admission { place, transition } = l.admit(
                    self.faults.forced_level(&f.name),
                    &self.breakers,
                    &self.log_sink,
                    &self.metrics,
                );
                match place {
                    Ok(p) => (Some(p), transition),
                    Err(e) => {
                        if let (Some(t), Some(tr)) = (&self.telemetry, &transition) {
                            let mut record = InvocationRecord::start(t, &inv, trigger_of(&payload), false);
                            record.event(tr.span_event());
                            record.failed(e.error_type());
                        }
                        return Err(e);
                    }
                }
            }
            None => (None, None),
        };
        // The invocation's share of a running fault plan: `None` (the common case) unless a rule applies.
        let faults = self.faults.draw(&inv, &self.log_sink);
        match faults {
            None => self.invoke_drawn(f, inv, payload, None, transition).await,
            Some(fx) => {
                let drawn = self.invoke_drawn(f, inv, payload, Some(fx.clone()), transition);
                crate::faults::scope(Some(fx), drawn).await
            }
        }
    }

    /// [`Host::invoke`] once the fault plan has drawn the invocation's share (which its task carries too);
    /// `transition` is the change of level its admission made, for its span.
    async fn invoke_drawn(
        &self,
        f: &Function,
        inv: Arc<Invocation>,
        payload: Payload,
        faults: Option<Arc<crate::faults::InvocationFaults>>,
        transition: Option<crate::degrade::Transition>,
    ) -> Result<Outcome, InvokeError> {
        // One cold-start flag for the process, read by metrics and spans alike.
        let cold = self.cold.swap(false, Ordering::Relaxed);
        let trigger = trigger_of(&payload);
        let meter = self.meter(f, trigger, cold);
        let record = self.telemetry.as_ref().map(|t| {
            let mut r = InvocationRecord::start(t, &inv, trigger, cold);
            if let Payload::Http(req) = &payload {
                r.http_request(req);
            }
            if let Some(tr) = &transition {
                r.event(tr.span_event());
            }
            r
        });
        // The guest call's own failure, when the kind's outcome still succeeds (a task run that failed is
        // committed as failed): the span records it all the same.
        let early = match &faults {
            Some(fx) => self.invocation_fault(f, fx).await,
            None => None,
        };
        let (result, call_failure) = if let Some(ended) = early {
            meter.finish(&inv, 0, ended.as_ref().err());
            (ended, None)
        } else {
            match (&f.pre, payload) {
                (Pre::Http(pre, idle), Payload::Http(req)) => {
                    (self.invoke_http(f, pre, idle, &inv, req, meter).await, None)
                }
                (Pre::Event(pre, idle), Payload::Event(ev)) => {
                    self.run(f, pre, idle, &inv, meter, EventStep::new(ev)).await
                }
                (Pre::WebSocket(pre, idle), Payload::WebSocket(event, sender)) => {
                    self.run(f, pre, idle, &inv, meter, WebSocketStep { event, sender })
                        .await
                }
                (Pre::Task(pre, idle), Payload::Task(run)) => {
                    self.run(
                        f,
                        pre,
                        idle,
                        &inv,
                        meter,
                        super::tasks::TaskStep::new(run, self.app.clone()),
                    )
                    .await
                }
                (_, payload) => (
                    Err(InvokeError::WrongKind {
                        function: f.name.to_string(),
                        kind: f.kind,
                        payload: payload.kind(),
                    }),
                    None,
                ),
            }
        };
        let Some(mut record) = record else {
            return result;
        };
        if let Some(fx) = &faults {
            crate::faults::annotate(&mut record, &fx.injected());
        }
        match result {
            Ok(Outcome::Http(resp)) => {
                record.http_status(resp.status().as_u16());
                Ok(Outcome::Http(resp.map(|body| {
                    super::http_body::RecordedBody::new(body, record).boxed_unsync()
                })))
            }
            Err(e) => {
                record.failed(e.error_type());
                Err(e)
            }
            Ok(outcome) => {
                if let Some(error_type) = call_failure {
                    record.failed(error_type);
                }
                Ok(outcome)
            }
        }
    }

    /// The shared path for a kind whose outcome is ready when the guest call returns.
    async fn run<P: Instantiate, S: Finish<P::Instance>>(
        &self,
        f: &Function,
        pre: &P,
        idle: &Idle<P::Instance>,
        inv: &Arc<Invocation>,
        meter: Meter,
        step: S,
    ) -> (Result<Outcome, InvokeError>, Option<&'static str>) {
        let admitted = match self.admit(f, pre, idle, inv, meter, step).await {
            Ok(a) => a,
            Err(e) => return (Err(e), None),
        };
        let (returned, step) = admitted.call().await;
        let call_failure = returned.as_ref().err().map(InvokeError::error_type);
        (step.finish(f, returned).await, call_failure)
    }

    /// Steps 1–4 of the path: the input check, admission, an instance, and the kind's state in its store.
    pub(super) async fn admit<P: Instantiate, S: Step<P::Instance>>(
        &self,
        f: &Function,
        pre: &P,
        idle: &Idle<P::Instance>,
        inv: &Arc<Invocation>,
        meter: Meter,
        mut step: S,
    ) -> Result<Admitted<P, S>, InvokeError> {
        step.check_input(&f.limits)?;
        let permit = self.acquire(f, inv).await?;
        let mut grants = step.grants();
        let mut ready = self.ready(f, idle, inv, &mut grants);
        // A fault rule that lowers the memory limit: this instance is not reused with it.
        let lowered = crate::faults::current().and_then(|fx| fx.memory_limit());
        if let Some(bytes) = lowered {
            ready.store.data_mut().limits.lower(bytes);
        }
        step.enter(ready.store.data_mut())?;
        Ok(Admitted {
            ready,
            step,
            pre: pre.clone(),
            idle: idle.clone(),
            inv: inv.clone(),
            meter,
            reuse: f.reuse,
            discard: lowered.is_some(),
            _permit: permit,
        })
    }
}

impl<P: Instantiate, S: Step<P::Instance>> Admitted<P, S> {
    /// Steps 5–7 of the path: the guest call under the deadline, its classification, the kind's state
    /// taken back, metering, and the release of a sound instance (one that returned, even with an error
    /// value). Gives back the step for [`Step::finish`].
    pub(super) async fn call(self) -> (Result<S::Value, InvokeError>, S) {
        let Admitted {
            mut ready,
            mut step,
            pre,
            idle,
            inv,
            meter,
            reuse,
            discard,
            _permit,
        } = self;
        let cause = inv.deadline_cause;
        let result = {
            let call = async {
                let (instance, store) = ready.instance(&pre).await?;
                step.call(instance, store).await
            };
            tokio::time::timeout_at(inv.deadline.into(), call).await
        };
        let (returned, sound) = match result {
            Ok(Ok(value)) => (value.map_err(guest_error), true),
            Ok(Err(e)) => (Err(classify(e, &ready.store.data().limits, cause)), false),
            Err(_) => (Err(InvokeError::Deadline(cause)), false),
        };
        step.leave(ready.store.data_mut());
        meter.finish(&inv, ready.store.data().limits.peak(), returned.as_ref().err());
        if sound && !discard {
            ready.release(reuse, &idle);
        }
        (returned, step)
    }
}

/// The guest's own error value, as the invocation's error.
fn guest_error(e: types::Error) -> InvokeError {
    match e {
        types::Error::InvalidEvent(m) => InvokeError::BadEvent(m),
        types::Error::Failed(m) => InvokeError::Guest(m),
    }
}

/// An event function's invocation: the event in, its output payload out.
struct EventStep(types::Event);

impl EventStep {
    fn new(event: Event) -> EventStep {
        EventStep(types::Event {
            source: event.source.into(),
            payload: event.payload,
        })
    }
}

impl Step<EventFunction> for EventStep {
    type Value = Vec<u8>;

    fn check_input(&self, limits: &Limits) -> Result<(), InvokeError> {
        let size = self.0.payload.len() as u64;
        if size > limits.max_request_body {
            return Err(InvokeError::request_too_large("event", size, limits.max_request_body));
        }
        Ok(())
    }

    async fn call(
        &mut self,
        instance: &EventFunction,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Result<Vec<u8>, types::Error>> {
        instance.nimbus_function_events().call_handle(store, &self.0).await
    }
}

impl Finish<EventFunction> for EventStep {
    async fn finish(self, f: &Function, returned: Result<Vec<u8>, InvokeError>) -> Result<Outcome, InvokeError> {
        let output = returned?;
        let limit = f.limits.max_response_body;
        if output.len() as u64 > limit {
            return Err(InvokeError::response_too_large(
                "response payload",
                output.len() as u64,
                limit,
            ));
        }
        Ok(Outcome::Event(output))
    }
}

/// One lifecycle event of a WebSocket connection: `on-connect`, `on-message` or `on-disconnect`, with the
/// sender its `connections` calls use (`None`: the boot's default).
struct WebSocketStep {
    event: WsEvent,
    sender: Option<Sender>,
}

impl Step<WebsocketFunction> for WebSocketStep {
    type Value = WsOutcome;

    fn check_input(&self, limits: &Limits) -> Result<(), InvokeError> {
        let size = self.event.size() as u64;
        if size > limits.max_request_body {
            return Err(InvokeError::request_too_large(
                "WebSocket message",
                size,
                limits.max_request_body,
            ));
        }
        Ok(())
    }

    fn grants(&mut self) -> Grants {
        Grants {
            connections: self.sender.take(),
            ..Grants::none()
        }
    }

    async fn call(
        &mut self,
        instance: &WebsocketFunction,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Result<WsOutcome, types::Error>> {
        let ws = instance.nimbus_function_websocket();
        Ok(match &self.event {
            WsEvent::Connect(req) => match ws.call_on_connect(store, req).await? {
                Ok(()) => Ok(WsOutcome::Accepted),
                Err(mut rejection) => {
                    if !(400..500).contains(&rejection.status) {
                        rejection.status = 403;
                    }
                    Ok(WsOutcome::Rejected(rejection))
                }
            },
            WsEvent::Message(msg) => ws.call_on_message(store, msg).await?.map(WsOutcome::Handled),
            WsEvent::Disconnect(info) => {
                ws.call_on_disconnect(store, info).await?;
                Ok(WsOutcome::Disconnected)
            }
        })
    }
}

impl Finish<WebsocketFunction> for WebSocketStep {
    async fn finish(self, f: &Function, returned: Result<WsOutcome, InvokeError>) -> Result<Outcome, InvokeError> {
        let outcome = returned?;
        if let WsOutcome::Handled(Some(reply)) = &outcome {
            let size = crate::websocket::message_len(reply) as u64;
            if size > f.limits.max_response_body {
                return Err(InvokeError::response_too_large(
                    "WebSocket reply",
                    size,
                    f.limits.max_response_body,
                ));
            }
        }
        Ok(Outcome::WebSocket(outcome))
    }
}

impl From<EventSource> for types::EventSource {
    fn from(s: EventSource) -> Self {
        match s {
            EventSource::Direct => types::EventSource::Direct,
            EventSource::Sqs => types::EventSource::Sqs,
            EventSource::Sns => types::EventSource::Sns,
            EventSource::S3 => types::EventSource::S3,
            EventSource::EventBridge => types::EventSource::Eventbridge,
            EventSource::Schedule => types::EventSource::Schedule,
            EventSource::DynamoDb => types::EventSource::Dynamodb,
            EventSource::Kinesis => types::EventSource::Kinesis,
            EventSource::Other => types::EventSource::Other,
        }
    }
}

/// The span's trigger for a payload.
fn trigger_of(payload: &Payload) -> Trigger {
    match payload {
        Payload::Http(_) | Payload::WebSocket(..) => Trigger::Http,
        Payload::Event(ev) => Trigger::from(ev.source),
        Payload::Task(_) => Trigger::PubSub,
    }
}
