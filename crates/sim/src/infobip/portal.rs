//! The slice of the Infobip portal an admin uses for the bridge: the account's API base URL
//! and key, its WhatsApp numbers, and a subscription of the WhatsApp events to the bridge's
//! webhooks with HMAC security (a secret key and an algorithm of Infobip's list). Until a
//! subscription exists, the phone's messages go nowhere.
//!
//! How Infobip presents an HMAC signature is not documented; the simulator signs the raw
//! body, hex-encoded, in `X-Infobip-Signature` (the bridge's default), as its `sim infobip`
//! command does.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::InfobipSim;
use super::webhooks::{Encoding, HmacAlgorithm, WebhookAuth, WebhookSender};
use crate::salesforce::escape;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__sim/portal", web::get().to(page)).route("/__sim/portal/subscription", web::post().to(subscribe));
}

/// Infobip's `HmacAlgorithm` enum (MD5 left out: the bridge refuses it).
const ALGORITHMS: &[(&str, HmacAlgorithm)] = &[
    ("HMAC_SHA_1", HmacAlgorithm::HmacSha1),
    ("HMAC_SHA_224", HmacAlgorithm::HmacSha224),
    ("HMAC_SHA_256", HmacAlgorithm::HmacSha256),
    ("HMAC_SHA_384", HmacAlgorithm::HmacSha384),
    ("HMAC_SHA_512", HmacAlgorithm::HmacSha512),
];

#[derive(Deserialize, Default)]
struct SubscriptionForm {
    #[serde(default)]
    inbound_url: String,
    #[serde(default)]
    reports_url: String,
    #[serde(default)]
    notifications_url: String,
    #[serde(default)]
    secret_key: String,
    #[serde(default)]
    algorithm: String,
}

fn valid_url(value: &str) -> bool {
    url::Url::parse(value).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) && value.len() <= 512
}

fn render(sim: &InfobipSim, form: &SubscriptionForm, errors: &[(&str, String)], notice: Option<&str>) -> HttpResponse {
    let state = sim.state();
    let base = sim.base_url();
    let keys: Vec<String> = state.keys.keys().map(|k| format!("<code>{}</code>", escape(k))).collect();
    let numbers: Vec<String> = state.senders.iter().map(|n| format!("<code>{}</code>", escape(n))).collect();
    let current = |w: &Option<WebhookSender>| match w {
        Some(w) => {
            let security = if matches!(w.auth, WebhookAuth::Hmac { .. }) { "HMAC" } else { "none" };
            format!("<code>{}</code> (security: {security})", escape(&w.url))
        }
        None => "none".to_owned(),
    };
    let error = |field: &str| {
        errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, e)| format!("<p class=\"error\">{}</p>", escape(e)))
            .unwrap_or_default()
    };
    let chosen = if form.algorithm.is_empty() { "HMAC_SHA_256" } else { form.algorithm.as_str() };
    let options: String = ALGORITHMS
        .iter()
        .map(|(name, _)| {
            let selected = if *name == chosen { " selected" } else { "" };
            format!("<option value=\"{name}\"{selected}>{name}</option>")
        })
        .collect();
    let banner = match (notice, errors.is_empty()) {
        (_, false) => "<p class=\"problem\" role=\"alert\">Review the errors on this page.</p>".to_owned(),
        (Some(n), true) => format!("<p class=\"notice\" role=\"status\">{}</p>", escape(n)),
        (None, true) => String::new(),
    };
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Infobip portal (simulated)</title><style>
body {{ font: 14px/1.5 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1b1b1b; }}
header {{ background: #fc6423; color: #fff; padding: 12px 16px; font-weight: 600; }}
main {{ max-width: 760px; margin: 0 auto; padding: 16px; }}
section {{ background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 12px 16px; margin-bottom: 16px; }}
h2 {{ font-size: 16px; margin: 0 0 8px; }} code {{ background: #f4f5f7; padding: 0 4px; overflow-wrap: anywhere; }}
label {{ display: block; font-weight: 600; margin-top: 8px; }} input, select {{ width: 100%; box-sizing: border-box; padding: 4px 8px; font: inherit; }}
.error {{ color: #d00; margin: 2px 0 0; }} .notice {{ background: #2e844a; color: #fff; padding: 8px 12px; border-radius: 4px; }}
.problem {{ background: #d00; color: #fff; padding: 8px 12px; border-radius: 4px; }}
button {{ margin-top: 12px; background: #fc6423; color: #fff; border: 0; border-radius: 4px; padding: 6px 16px; font: inherit; }}
</style></head><body><header>Infobip portal · simulated account</header><main>{banner}
<section id="account"><h2>API</h2><p>Base URL: <code>{base}</code></p><p>API keys: {keys}</p><p>WhatsApp numbers: {numbers}</p></section>
<section id="subscriptions"><h2>Subscriptions (WHATSAPP)</h2>
<p>Inbound messages (INBOUND_MESSAGE): {inbound}</p><p>Delivery and seen reports (DELIVERY, SEEN): {reports}</p><p>Identity changes (IDENTITY_CHANGE): {notifications}</p>
<h2>New subscription, with a security profile</h2>
<form method="post" action="/__sim/portal/subscription">
<label for="inbound_url">Inbound messages: notify URL</label><input id="inbound_url" name="inbound_url" value="{inbound_value}">{inbound_error}
<label for="reports_url">Delivery and seen reports: notify URL (optional)</label><input id="reports_url" name="reports_url" value="{reports_value}">{reports_error}
<label for="notifications_url">Identity changes: notify URL (optional)</label><input id="notifications_url" name="notifications_url" value="{notifications_value}">{notifications_error}
<label for="secret_key">Security: HMAC secret key</label><input id="secret_key" name="secret_key" type="password">{secret_error}
<label for="algorithm">Algorithm</label><select id="algorithm" name="algorithm">{options}</select>
<button type="submit">Save subscription</button></form></section></main></body></html>"#,
        keys = keys.join(", "),
        numbers = numbers.join(", "),
        inbound = current(&state.webhook),
        reports = current(&state.report_webhook),
        notifications = current(&state.notification_webhook),
        notifications_value = escape(&form.notifications_url),
        notifications_error = error("notifications_url"),
        inbound_value = escape(&form.inbound_url),
        reports_value = escape(&form.reports_url),
        inbound_error = error("inbound_url"),
        reports_error = error("reports_url"),
        secret_error = error("secret_key"),
    );
    let status = if errors.is_empty() { 200 } else { 400 };
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .content_type("text/html; charset=utf-8")
        .body(html)
}

#[derive(Deserialize)]
struct Notice {
    saved: Option<String>,
}

async fn page(sim: web::Data<InfobipSim>, query: web::Query<Notice>) -> HttpResponse {
    let notice = query.saved.as_ref().map(|_| "Subscription saved: WhatsApp events now go to its notify URLs.");
    render(&sim, &SubscriptionForm::default(), &[], notice)
}

async fn subscribe(sim: web::Data<InfobipSim>, form: web::Form<SubscriptionForm>) -> HttpResponse {
    let form = form.into_inner();
    let (inbound, reports, notifications) =
        (form.inbound_url.trim(), form.reports_url.trim(), form.notifications_url.trim());
    let mut errors = Vec::new();
    if !valid_url(inbound) {
        errors.push(("inbound_url", "notifyUrl: must be an http(s) URL of at most 512 characters".to_owned()));
    }
    for (field, url) in [("reports_url", reports), ("notifications_url", notifications)] {
        if !url.is_empty() && !valid_url(url) {
            errors.push((field, "notifyUrl: must be an http(s) URL of at most 512 characters".to_owned()));
        }
    }
    let secret = form.secret_key.trim();
    if secret.is_empty() || secret.chars().count() > 255 {
        errors.push(("secret_key", "secretKey: 1 to 255 characters".to_owned()));
    }
    let algorithm = ALGORITHMS.iter().find(|(name, _)| *name == form.algorithm).map(|(_, a)| *a);
    let Some(algorithm) = algorithm.filter(|_| errors.is_empty()) else {
        if errors.is_empty() {
            errors.push(("algorithm", "algorithm: not one of Infobip's".to_owned()));
        }
        return render(&sim, &form, &errors, None);
    };
    let auth = WebhookAuth::Hmac {
        algorithm,
        secret: secret.to_owned(),
        header: "X-Infobip-Signature".into(),
        encoding: Encoding::Hex,
        prefix: false,
    };
    sim.set_webhook(WebhookSender::new(inbound, auth.clone()));
    if !reports.is_empty() {
        sim.set_report_webhook(WebhookSender::new(reports, auth.clone()));
    }
    if !notifications.is_empty() {
        sim.set_notification_webhook(WebhookSender::new(notifications, auth));
    }
    HttpResponse::SeeOther().insert_header(("Location", "/__sim/portal?saved=1")).finish()
}
