//! The control endpoints shared by the standalone simulators, so that a person can reproduce
//! any test against `byoc-bridge sim …` processes: the fault plan of `crate::faults`.
//!
//! - `GET /__sim/faults`: the faults still scripted and how many were injected;
//! - `POST /__sim/faults` `{"path": "/whatsapp/1/message", "fault": "throttle:5", "times": 2}`:
//!   the next `times` requests under `path` get `fault` (see [`Fault`]'s spelling);
//! - `PUT /__sim/faults/rates` `{"rates": ["drop=0.05"], "seed": 7, "path": "/api"}`: random
//!   faults, reproducible from the seed;
//! - `DELETE /__sim/faults`: no more faults.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::faults::{Fault, FaultRates, Faults};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__sim/faults", web::get().to(show))
        .route("/__sim/faults", web::post().to(script))
        .route("/__sim/faults", web::delete().to(clear))
        .route("/__sim/faults/rates", web::put().to(rates));
}

/// A 400 naming what was wrong, in the shape of the simulators' other answers.
pub(crate) fn bad_request(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": message }))
}

async fn show(faults: web::Data<Faults>) -> HttpResponse {
    let scripted: Vec<_> =
        faults.scripted().into_iter().map(|(path, fault)| json!({ "path": path, "fault": describe(&fault) })).collect();
    HttpResponse::Ok().json(json!({ "scripted": scripted, "injected": faults.injected() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptRequest {
    path: String,
    fault: String,
    times: Option<u32>,
}

async fn script(faults: web::Data<Faults>, body: web::Json<ScriptRequest>) -> HttpResponse {
    let fault: Fault = match body.fault.parse() {
        Ok(f) => f,
        Err(e) => return bad_request(&e),
    };
    if !body.path.starts_with('/') {
        return bad_request("path must start with /");
    }
    for _ in 0..body.times.unwrap_or(1) {
        faults.script(&body.path, fault.clone());
    }
    show(faults).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatesRequest {
    rates: Vec<String>,
    seed: Option<u64>,
    path: Option<String>,
    retry_after_secs: Option<u64>,
    slow_ms: Option<u64>,
}

async fn rates(faults: web::Data<Faults>, body: web::Json<RatesRequest>) -> HttpResponse {
    let body = body.into_inner();
    let mut rates = FaultRates {
        path_prefix: body.path.unwrap_or_default(),
        retry_after_secs: body.retry_after_secs.unwrap_or(1),
        slow_by: std::time::Duration::from_millis(body.slow_ms.unwrap_or(2000)),
        ..FaultRates::default()
    };
    for spec in &body.rates {
        if let Err(e) = rates.set(spec) {
            return bad_request(&e);
        }
    }
    faults.set_rates(rates, body.seed.unwrap_or(1));
    show(faults).await
}

async fn clear(faults: web::Data<Faults>) -> HttpResponse {
    faults.clear();
    show(faults).await
}

/// A fault in the spelling `Fault::from_str` reads.
pub fn describe(fault: &Fault) -> String {
    match fault {
        Fault::ServerError => "server_error".into(),
        Fault::Throttle { retry_after_secs } => format!("throttle:{retry_after_secs}"),
        Fault::Slow(by) => format!("slow:{}", by.as_millis()),
        Fault::Drop => "drop".into(),
        Fault::Pass => "pass".into(),
        Fault::Late(by) => format!("late:{}", by.as_millis()),
        Fault::RefuseQuoting => "refuse_quoting".into(),
    }
}
