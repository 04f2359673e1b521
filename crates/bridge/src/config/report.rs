//! What `check-config` prints: every effective setting under the name it is set by, where
//! its value came from, secrets hidden, and what a value of "automatic" resolves to.

use figment::Figment;
use figment::value::{Dict, Value};

use super::{ConfigError, DatabaseLocation, Settings};

/// One line per key, in the order of the defaults file's sections (alphabetical within).
pub fn report(figment: &Figment, settings: &Settings) -> Result<String, ConfigError> {
    let merged: Dict = figment.extract().map_err(super::from_figment)?;
    let mut rows = Vec::new();
    flatten(&merged, "", &mut rows);
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        let shown = shown(settings, &key, value);
        let source = match figment.find_metadata(&key).map(|m| m.name.as_ref()) {
            Some("TOML source string") | None => "default".to_owned(),
            Some(name) => name.to_owned(),
        };
        out.push_str(&format!("{key:<width$} = {shown}  # {source}\n"));
    }
    Ok(out)
}

fn flatten(dict: &Dict, prefix: &str, rows: &mut Vec<(String, Value)>) {
    for (name, value) in dict {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match value {
            Value::Dict(_, inner) => flatten(inner, &key, rows),
            other => rows.push((key, other.clone())),
        }
    }
}

/// The value as TOML would write it; secrets as set or not; automatic values with what they
/// amount to.
fn shown(settings: &Settings, key: &str, value: Value) -> String {
    match key {
        "security.master_key" => match value.as_str() {
            Some("") | None => {
                format!("(not set: kept in {})", settings.security.data_dir.join("master.key").display())
            }
            Some(_) => "(set, hidden)".to_owned(),
        },
        "database.url" => match settings.database_location() {
            Ok(DatabaseLocation::Postgres(url)) => format!("{:?}", hide_password(&url)),
            _ => toml(&value),
        },
        "database.max_connections" if settings.database.max_connections == 0 => {
            format!("0  (automatic: {} connections)", settings.database_pool_size())
        }
        "server.workers" if settings.server.workers == 0 => {
            format!("0  (automatic: {} threads, one per core)", settings.http_workers())
        }
        "server.public_base_url" if settings.server.public_base_url.is_empty() => {
            format!("\"\"  (links use {})", settings.public_base_url(settings.server.port))
        }
        _ => toml(&value),
    }
}

/// A PostgreSQL URL without its password or query (which may hold one).
fn hide_password(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else { return "(hidden: not a valid URL)".to_owned() };
    let had_query = parsed.query().is_some();
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("hidden"));
    }
    parsed.set_query(None);
    let mut shown = parsed.to_string();
    if had_query {
        shown.push_str("?(options hidden)");
    }
    shown
}

fn toml(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => {
            let whole = n.to_u128().map(|u| u.to_string()).or_else(|| n.to_i128().map(|i| i.to_string()));
            whole.unwrap_or_else(|| n.to_f64().map(|f| f.to_string()).unwrap_or_default())
        }
        Value::Empty(..) => "\"\"".to_owned(),
        Value::Array(_, items) => format!("[{}]", items.iter().map(toml).collect::<Vec<_>>().join(", ")),
        Value::Dict(_, dict) => {
            let inner: Vec<String> = dict.iter().map(|(k, v)| format!("{k} = {}", toml(v))).collect();
            format!("{{ {} }}", inner.join(", "))
        }
    }
}
