//! The contract the repository keeps: what the checks need from the vendors' API files, as
//! data, without their prose.
//!
//! From each OpenAPI or AsyncAPI file it keeps the operations, webhooks and components with
//! everything a validator reads (types, formats, lengths, patterns, required fields, enums,
//! `additionalProperties`, references, discriminators, `x-scopes`) and the request examples,
//! and drops descriptions, summaries, titles, external docs, tags, servers and other vendor
//! extensions. The vendors' example payloads and the Interaction API error table are data
//! already and are kept as they are. The result is written to `contract/` by
//! `cargo run -p byoc-sim --example extract-contract`, and a test compares it with the
//! vendors' files wherever those are present.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{ContractError, read_document};

/// The API files kept, by their place under the specs directory, and the name they get.
pub const DOCUMENTS: &[(&str, &str)] = &[
    ("infobip/whatsapp.json", "infobip/whatsapp.json"),
    ("infobip/conversations.json", "infobip/conversations.json"),
    ("infobip/numbers.json", "infobip/numbers.json"),
    ("infobip/account.json", "infobip/account.json"),
    ("salesforce/inbound-interaction-api.yaml", "salesforce/inbound-interaction-api.json"),
    ("salesforce/outbound-custom-event-payload.yaml", "salesforce/outbound-custom-event-payload.json"),
];

/// Data files kept as they are (pretty-printed).
const DATA: &[&str] = &["salesforce/interaction-error-codes.json"];

/// Folders of example payloads kept as they are.
const EXAMPLES: &[&str] = &["infobip/examples", "salesforce/examples"];

/// Keywords that are prose: what people read, never what a validator checks.
const PROSE: &[&str] = &["description", "summary", "title", "externalDocs", "tags", "servers", "contact", "license"];

/// Vendor extensions the checks use.
const KEPT_EXTENSIONS: &[&str] = &["x-scopes"];

/// Maps whose keys are names (of properties, schemas, paths, media types…), not keywords:
/// their keys are kept whatever they are, their values are read as schemas again.
const NAMED: &[&str] = &[
    "properties",
    "patternProperties",
    "schemas",
    "responses",
    "parameters",
    "requestBodies",
    "headers",
    "securitySchemes",
    "paths",
    "webhooks",
    "content",
    "encoding",
    "topics",
    "messages",
    "mapping",
    "definitions",
];

/// Every file of the contract, by its path under `contract/`, with its text.
pub fn extract(specs: &Path) -> Result<BTreeMap<PathBuf, String>, ContractError> {
    let mut files = BTreeMap::new();
    for (source, target) in DOCUMENTS {
        let doc = read_document(&specs.join(source))?;
        files.insert(PathBuf::from(target), pretty(&strip_document(doc)));
    }
    for data in DATA {
        files.insert(PathBuf::from(data), pretty(&read_document(&specs.join(data))?));
    }
    for folder in EXAMPLES {
        let dir = specs.join(folder);
        let entries = std::fs::read_dir(&dir).map_err(|source| ContractError::Read { path: dir.clone(), source })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                files.insert(Path::new(folder).join(&name), pretty(&read_document(&entry.path())?));
            }
        }
    }
    Ok(files)
}

fn pretty(value: &Value) -> String {
    // serde_json's maps are ordered, so the output is the same for the same input.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// A whole document: its version, operations, webhooks and components, without prose.
fn strip_document(doc: Value) -> Value {
    let Value::Object(map) = doc else { return doc };
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "openapi" | "asyncapi" => {
                out.insert(key, value);
            }
            "info" => {
                if let Some(version) = value.get("version") {
                    out.insert(key, serde_json::json!({ "version": version }));
                }
            }
            "paths" | "webhooks" | "components" | "topics" => {
                out.insert(key, strip(value));
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// A schema or any part of a document: prose keywords dropped, names and examples kept.
fn strip(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                if PROSE.contains(&key.as_str()) && !value.is_object() || key == "externalDocs" {
                    continue;
                }
                if key.starts_with("x-") && !KEPT_EXTENSIONS.contains(&key.as_str()) {
                    continue;
                }
                let kept = match key.as_str() {
                    // Examples are data: kept whole (the names of named examples too).
                    "example" | "examples" => strip_examples(value),
                    // Values, not schemas.
                    "default" | "const" | "enum" => value,
                    k if NAMED.contains(&k) => match value {
                        Value::Object(named) => Value::Object(named.into_iter().map(|(n, v)| (n, strip(v))).collect()),
                        other => strip(other),
                    },
                    _ => strip(value),
                };
                out.insert(key, kept);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(strip).collect()),
        other => other,
    }
}

/// Named examples keep their `value`s and lose their summaries.
fn strip_examples(value: Value) -> Value {
    match value {
        Value::Object(map) if map.values().all(|v| v.get("value").is_some()) && !map.is_empty() => Value::Object(
            map.into_iter()
                .map(|(name, example)| {
                    let value = example.get("value").cloned().unwrap_or(Value::Null);
                    (name, serde_json::json!({ "value": value }))
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prose_goes_and_what_validators_read_stays() {
        let doc = json!({ "openapi": "3.1.0", "info": { "title": "X", "version": "1", "description": "long" },
            "tags": [{ "name": "t" }],
            "components": { "schemas": { "Item": {
                "type": "object", "description": "An item.", "title": "Item", "x-internal": true,
                "additionalProperties": false, "required": ["title"],
                "properties": { "title": { "type": "string", "description": "its title", "maxLength": 5 },
                                "description": { "type": "string" } },
                "discriminator": { "propertyName": "title", "mapping": { "description": "#/components/schemas/Item" } }
            } } },
            "paths": { "/x": { "post": { "summary": "Post", "x-scopes": ["a"], "requestBody": { "content": {
                "application/json": { "examples": { "One": { "summary": "s", "value": { "title": "t", "description": "kept" } } } } } } } } } });
        let stripped = strip_document(doc);
        assert_eq!(
            stripped,
            json!({ "openapi": "3.1.0", "info": { "version": "1" },
                "components": { "schemas": { "Item": {
                    "type": "object", "additionalProperties": false, "required": ["title"],
                    "properties": { "title": { "type": "string", "maxLength": 5 }, "description": { "type": "string" } },
                    "discriminator": { "propertyName": "title", "mapping": { "description": "#/components/schemas/Item" } }
                } } },
                "paths": { "/x": { "post": { "x-scopes": ["a"], "requestBody": { "content": {
                    "application/json": { "examples": { "One": { "value": { "title": "t", "description": "kept" } } } } } } } } } })
        );
    }
}
