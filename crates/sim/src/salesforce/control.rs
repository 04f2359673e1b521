//! Salesforce's side of the standalone simulator's controls, for what tests do in-process:
//!
//! - `POST /__sim/pubsub/break`: ends every open Subscribe stream with `UNAVAILABLE`, as a
//!   server restart does; `?after_events=N` does it once N more events went out;
//! - `POST /__sim/tokens/expire`: every access token issued so far stops working;
//! - `POST /__sim/channel-definitions/{name}/consent-owner` `{"owner": "Partner"}`: the
//!   definition's consent belongs to `owner` (a CCaaS package's definition would).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::SalesforceSim;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__sim/pubsub/break", web::post().to(break_streams))
        .route("/__sim/tokens/expire", web::post().to(expire_tokens))
        .route("/__sim/channel-definitions/{name}/consent-owner", web::post().to(consent_owner));
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentOwner {
    owner: String,
}

async fn consent_owner(
    sim: web::Data<SalesforceSim>,
    name: web::Path<String>,
    body: web::Json<ConsentOwner>,
) -> HttpResponse {
    if !["Partner", "Salesforce"].contains(&body.owner.as_str()) {
        return HttpResponse::BadRequest().json(json!({ "error": "owner must be Partner or Salesforce" }));
    }
    sim.set_consent_owner(&name, &body.owner);
    HttpResponse::Ok().json(json!({ "definition": name.as_str(), "consent_owner": body.owner }))
}
