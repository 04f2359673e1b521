//! Salesforce's side of the standalone simulator's controls, for what tests do in-process:
//!
//! - `POST /__sim/pubsub/break`: ends every open Subscribe stream with `UNAVAILABLE`, as a
//!   server restart does; `?after_events=N` does it once N more events went out;
//! - `POST /__sim/tokens/expire`: every access token issued so far stops working.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::SalesforceSim;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__sim/pubsub/break", web::post().to(break_streams))
        .route("/__sim/tokens/expire", web::post().to(expire_tokens));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakQuery {
    after_events: Option<u64>,
}

async fn break_streams(sim: web::Data<SalesforceSim>, query: web::Query<BreakQuery>) -> HttpResponse {
    match query.after_events {
        Some(n) => sim.pubsub.break_streams_after_events(n),
        None => sim.pubsub.break_streams(),
    }
    HttpResponse::Ok().json(json!({ "open_streams": sim.pubsub.open_streams() }))
}

async fn expire_tokens(sim: web::Data<SalesforceSim>) -> HttpResponse {
    sim.expire_all_tokens();
    HttpResponse::Ok().json(json!({ "tokens_issued": sim.tokens_issued() }))
}
