//! The pages' own static files, compiled into the binary (one binary, nothing to deploy
//! beside it) and cached by browsers for an hour.

use actix_web::{HttpResponse, get};

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(format!("{content_type}; charset=utf-8"))
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(body)
}

/// The status page's look.
#[get("/static/style.css")]
pub async fn style() -> HttpResponse {
    asset("text/css", include_str!("../../static/style.css"))
}

/// The setup wizard's and the panel's look (Lightning-like).
#[get("/static/setup.css")]
pub async fn setup_style() -> HttpResponse {
    asset("text/css", include_str!("../../static/setup.css"))
}

/// The wizard's progressive enhancements (the pages work without it).
#[get("/static/setup.js")]
pub async fn setup_script() -> HttpResponse {
    asset("text/javascript", include_str!("../../static/setup.js"))
}

/// The panel's live preview and value picker (the panel works without it).
#[get("/static/panel.js")]
pub async fn panel_script() -> HttpResponse {
    asset("text/javascript", include_str!("../../static/panel.js"))
}
