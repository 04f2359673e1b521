//! Fault injection shared by the simulators: scripted faults for deterministic tests, and
//! random rates (seeded) for soak runs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

/// Paths the fault plan never touches: the simulators' own controls and inspection.
const CONTROL_PATHS: &[&str] = &["/__sim/faults", "/__sim/state", "/__sim/pubsub", "/__sim/tokens", "/__sim/webhooks"];

/// What a faulty request gets instead of a real answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A 5xx with the vendor's error body.
    ServerError,
    /// 429 with `Retry-After: secs`.
    Throttle { retry_after_secs: u64 },
    /// The answer comes, but only after this delay (clients with a shorter timeout give up).
    Slow(Duration),
    /// The connection is cut while the response is being written.
    Drop,
    /// No fault: the request is answered as usual (to script "the second call fails").
    Pass,
    /// The request is carried out at once, but its answer comes only after this delay: a client
    /// that gives up first does not know that the vendor already acted.
    Late(Duration),
    /// 400 with the vendor's validation error, quoting the request as vendors do (a customer's
    /// words, a phone number): what a client must not copy into its logs.
    RefuseQuoting,
}

impl std::str::FromStr for Fault {
    type Err = String;

    /// `server_error`, `throttle[:retry-after secs]`, `slow:<millis>`, `drop`, `pass`,
    /// `late:<millis>` or `refuse_quoting`: the
    /// spelling of the `sim` commands' `--fault` flag and of `POST /__sim/faults`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, arg) = s.split_once(':').map_or((s, None), |(k, a)| (k, Some(a)));
        let number = |what: &str| -> Result<u64, String> {
            arg.ok_or_else(|| format!("{kind} needs {what}, as in {kind}:{what}"))?
                .parse()
                .map_err(|_| format!("{kind}: {what} must be a whole number"))
        };
        match kind {
            "server_error" => Ok(Self::ServerError),
            "throttle" => Ok(Self::Throttle { retry_after_secs: if arg.is_some() { number("secs")? } else { 1 } }),
            "slow" => Ok(Self::Slow(Duration::from_millis(number("millis")?))),
            "drop" => Ok(Self::Drop),
            "pass" => Ok(Self::Pass),
            "late" => Ok(Self::Late(Duration::from_millis(number("millis")?))),
            "refuse_quoting" => Ok(Self::RefuseQuoting),
            other => Err(format!(
                "unknown fault {other:?}: use server_error, throttle[:secs], slow:millis, drop, pass, late:millis \
                 or refuse_quoting"
            )),
        }
    }
}

impl FaultRates {
    /// Sets one rate from `kind=rate` (`server_error`, `throttle`, `slow`, `drop`).
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (kind, rate) = spec.split_once('=').ok_or_else(|| format!("{spec:?}: use kind=rate, as in drop=0.05"))?;
        let rate: f64 = rate.parse().map_err(|_| format!("{spec:?}: the rate must be a number"))?;
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("{spec:?}: the rate must be between 0 and 1"));
        }
        match kind {
            "server_error" => self.server_error = rate,
            "throttle" => self.throttle = rate,
            "slow" => self.slow = rate,
            "drop" => self.drop = rate,
            other => return Err(format!("unknown fault {other:?}: use server_error, throttle, slow or drop")),
        }
        Ok(())
    }
}

/// Random fault rates, each between 0 and 1, applied to requests under `path_prefix`.
#[derive(Debug, Clone, Default)]
pub struct FaultRates {
    pub server_error: f64,
    pub throttle: f64,
    pub retry_after_secs: u64,
    pub slow: f64,
    pub slow_by: Duration,
    pub drop: f64,
    /// Only requests whose path starts with this are affected (empty: all).
    pub path_prefix: String,
}

#[derive(Debug, Default)]
struct State {
    scripted: VecDeque<(String, Fault)>,
    rates: FaultRates,
    rng: Option<fastrand::Rng>,
    injected: u64,
}

/// Shared, runtime-adjustable fault plan.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

impl Faults {
    /// The next request under `path_prefix` gets `fault`; several calls queue in order.
    pub fn script(&self, path_prefix: &str, fault: Fault) {
        if let Ok(mut s) = self.state.lock() {
            s.scripted.push_back((path_prefix.to_owned(), fault));
        }
    }

    /// Random faults at these rates, reproducible from `seed`.
    pub fn set_rates(&self, rates: FaultRates, seed: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.rates = rates;
            s.rng = Some(fastrand::Rng::with_seed(seed));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut s) = self.state.lock() {
            *s = State::default();
        }
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().map(|s| s.injected).unwrap_or_default()
    }

    /// The scripted faults not yet used: (path prefix, fault).
    pub fn scripted(&self) -> Vec<(String, Fault)> {
        self.state.lock().map(|s| s.scripted.iter().cloned().collect()).unwrap_or_default()
    }

    fn pick(&self, path: &str) -> Option<Fault> {
        // The simulators' own control and inspection endpoints are never faulty (their file
        // and media links may be: the bridge downloads those).
        if CONTROL_PATHS.iter().any(|p| path.starts_with(p)) {
            return None;
        }
        let mut s = self.state.lock().ok()?;
        if let Some(i) = s.scripted.iter().position(|(prefix, _)| path.starts_with(prefix.as_str())) {
            s.injected += 1;
            return s.scripted.remove(i).map(|(_, f)| f);
        }
        if !path.starts_with(s.rates.path_prefix.as_str()) {
            return None;
        }
        let rates = s.rates.clone();
        let rng = s.rng.as_mut()?;
        let roll = rng.f64();
        let fault = if roll < rates.server_error {
            Fault::ServerError
        } else if roll < rates.server_error + rates.throttle {
            Fault::Throttle { retry_after_secs: rates.retry_after_secs }
        } else if roll < rates.server_error + rates.throttle + rates.slow {
            Fault::Slow(rates.slow_by)
        } else if roll < rates.server_error + rates.throttle + rates.slow + rates.drop {
            Fault::Drop
        } else {
            return None;
        };
        s.injected += 1;
        Some(fault)
    }
}

/// The vendor-specific bodies of a 5xx, a 429 and a validation error quoting the request.
#[derive(Clone)]
pub struct FaultBodies {
    pub server_error: serde_json::Value,
    pub throttle: serde_json::Value,
    pub refusal: fn(&str) -> serde_json::Value,
}

/// Middleware applying the plan in `web::Data<Faults>` with bodies from `web::Data<FaultBodies>`.
pub async fn inject(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let fault = req.app_data::<web::Data<Faults>>().and_then(|f| f.pick(req.path()));
    let bodies = req.app_data::<web::Data<FaultBodies>>().cloned();
    let Some(fault) = fault.filter(|f| *f != Fault::Pass) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let bodies = bodies.map(|b| b.get_ref().clone());
    let (server_error, throttle, refusal) = match bodies {
        Some(b) => (b.server_error, b.throttle, b.refusal),
        None => (serde_json::json!({}), serde_json::json!({}), (|_: &str| serde_json::json!({})) as fn(&str) -> _),
    };
    match fault {
        Fault::ServerError => Ok(req.into_response(HttpResponse::ServiceUnavailable().json(server_error))),
        Fault::Throttle { retry_after_secs } => Ok(req.into_response(
            HttpResponse::TooManyRequests().insert_header(("Retry-After", retry_after_secs.to_string())).json(throttle),
        )),
        Fault::Slow(by) => {
            tokio::time::sleep(by).await;
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Fault::Pass => Ok(next.call(req).await?.map_into_boxed_body()),
        Fault::Late(by) => {
            let response = next.call(req).await?;
            tokio::time::sleep(by).await;
            Ok(response.map_into_boxed_body())
        }
        Fault::RefuseQuoting => {
            let mut req = req;
            let body = req.extract::<web::Bytes>().await.unwrap_or_default();
            let quoted: String = String::from_utf8_lossy(&body).chars().take(2000).collect();
            Ok(req.into_response(HttpResponse::BadRequest().json(refusal(&quoted))))
        }
        Fault::Drop => {
            // A body stream that fails after the headers: the server aborts the connection.
            let failing = futures_util::stream::once(async {
                Err::<actix_web::web::Bytes, std::io::Error>(std::io::Error::other(
                    "connection dropped by fault injection",
                ))
            });
            Ok(req.into_response(HttpResponse::Ok().streaming(failing)))
        }
    }
}
