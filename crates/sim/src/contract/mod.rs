//! The vendors' own API descriptions as executable contracts.
//!
//! Loads an OpenAPI or AsyncAPI document (JSON or YAML), normalises it ([`normalise`]: the
//! Salesforce file's OpenAPI 3.0 quirks, and discriminators made to apply at every depth), and
//! validates request and response bodies against the schema the document names for an
//! operation. The simulators refuse what does not validate; tests use the same checks on
//! what the bridge sends.

pub mod extract;
pub mod instance;
pub mod normalise;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Schema(String),
}

/// One violation: where in the document (dotted path, Infobip style) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// A loaded OpenAPI document with compiled validators cached per schema.
///
/// Every schema is compiled as JSON Schema 2020-12: OpenAPI 3.1 is that dialect, and the 3.0
/// documents (once [`normalise::openapi_30`] has mapped their quirks) use nothing whose meaning
/// differs from it, while the discriminator dispatch needs its `if`/`then`/`const`.
pub struct OpenApi {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl std::fmt::Debug for OpenApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApi").finish_non_exhaustive()
    }
}

impl OpenApi {
    pub fn load(path: &Path) -> Result<Self, ContractError> {
        Ok(Self::from_value(read_document(path)?))
    }

    pub fn from_value(mut doc: Value) -> Self {
        // OpenAPI 3.0 and AsyncAPI 1.x both use the 3.0 schema vocabulary.
        let is_30 = match doc.get("openapi").and_then(Value::as_str) {
            Some(v) => v.starts_with("3.0"),
            None => doc.get("asyncapi").is_some(),
        };
        if is_30 {
            normalise::openapi_30(&mut doc);
        }
        normalise::dispatch_discriminators(&mut doc);
        Self { doc, validators: Mutex::new(HashMap::new()) }
    }

    pub fn document(&self) -> &Value {
        &self.doc
    }

    /// The operation object for a method and a path template (`/whatsapp/1/message/text`).
    pub fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        self.doc.get("paths")?.get(path)?.get(method.to_ascii_lowercase())
    }

    /// Validates a request body against the operation's schema for `content_type`.
    pub fn validate_request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &Value,
    ) -> Result<(), Vec<Violation>> {
        let schema = self
            .operation(method, path)
            .and_then(|op| op.pointer(&format!("/requestBody/content/{}/schema", escape(content_type))))
            .cloned()
            .ok_or_else(|| vec![violation("", format!("no request schema for {method} {path} ({content_type})"))])?;
        self.validate_schema(&schema, body)
    }

    /// Validates a response body against the schema the operation declares for `status`.
    pub fn validate_response(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), Vec<Violation>> {
        let op =
            self.operation(method, path).ok_or_else(|| vec![violation("", format!("no operation {method} {path}"))])?;
        let mut response = op
            .pointer(&format!("/responses/{status}"))
            .or_else(|| op.pointer("/responses/default"))
            .ok_or_else(|| vec![violation("", format!("{method} {path} declares no response {status}"))])?;
        // Responses may themselves be references to components.responses.
        if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
            response = self.resolve(reference).ok_or_else(|| vec![violation("", format!("dangling {reference}"))])?;
        }
        // Media types vary (`application/json;charset=UTF-8`, `*/*`): take the JSON-capable one.
        let schema = response
            .get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.iter().find(|(media, _)| media.contains("json") || media.as_str() == "*/*"))
            .and_then(|(_, media)| media.get("schema"))
            .cloned()
            .ok_or_else(|| vec![violation("", format!("{method} {path} {status} has no JSON schema"))])?;
        self.validate_schema(&schema, body)
    }

    /// Validates against `#/components/schemas/<name>` (with its subtypes, when it is
    /// polymorphic).
    pub fn validate_component(&self, name: &str, value: &Value) -> Result<(), Vec<Violation>> {
        let dispatch = format!("{name}{}", normalise::DISPATCH);
        let target = if self.doc.pointer(&format!("/components/schemas/{}", escape(&dispatch))).is_some() {
            dispatch
        } else {
            name.to_owned()
        };
        let schema = serde_json::json!({ "$ref": format!("#/components/schemas/{target}") });
        self.validate_schema(&schema, value)
    }

    /// Validates against a polymorphic component and the subtype its discriminator names; the
    /// same as [`OpenApi::validate_component`], which follows discriminators at every depth.
    pub fn validate_discriminated(&self, base: &str, value: &Value) -> Result<(), Vec<Violation>> {
        self.validate_component(base, value)
    }

    /// Names of the components whose name ends with `suffix` (Infobip prefixes every
    /// component with a content hash: `f30d….TextMessage`).
    pub fn component_named(&self, suffix: &str) -> Option<String> {
        let schemas = self.doc.pointer("/components/schemas")?.as_object()?;
        schemas.keys().find(|k| *k == suffix || k.ends_with(&format!(".{suffix}"))).cloned()
    }

    /// The `x-scopes` an operation accepts (Infobip).
    pub fn scopes(&self, method: &str, path: &str) -> Vec<String> {
        self.operation(method, path)
            .and_then(|op| op.get("x-scopes"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// Validates a webhook body (OpenAPI 3.1 `webhooks`) against its declared schema.
    pub fn validate_webhook(&self, webhook: &str, body: &Value) -> Result<(), Vec<Violation>> {
        let schema = self
            .doc
            .pointer(&format!("/webhooks/{}/post/requestBody/content/application~1json/schema", escape(webhook)))
            .cloned()
            .ok_or_else(|| vec![violation("", format!("no webhook {webhook}"))])?;
        self.validate_schema(&schema, body)
    }

    /// Every request body schema of the document: (method, path, media type, schema).
    pub fn request_schemas(&self) -> Vec<(String, String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in self.doc.get("paths").and_then(Value::as_object).into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                for (media, content) in
                    op.pointer("/requestBody/content").and_then(Value::as_object).into_iter().flatten()
                {
                    if let Some(schema) = content.get("schema") {
                        out.push((method.clone(), path.clone(), media.clone(), schema.clone()));
                    }
                }
            }
        }
        out
    }

    /// Every named example of a request body, for contract tests.
    pub fn request_examples(&self, method: &str, path: &str) -> Vec<(String, Value)> {
        let Some(content) = self.operation(method, path).and_then(|op| op.pointer("/requestBody/content")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for media in content.as_object().into_iter().flat_map(|m| m.values()) {
            if let Some(examples) = media.get("examples").and_then(Value::as_object) {
                for (name, ex) in examples {
                    if let Some(value) = ex.get("value") {
                        out.push((name.clone(), value.clone()));
                    }
                }
            }
            if let Some(example) = media.get("example") {
                out.push(("example".to_owned(), example.clone()));
            }
        }
        out
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        self.doc.pointer(reference.strip_prefix('#')?)
    }

    fn validate_schema(&self, schema: &Value, value: &Value) -> Result<(), Vec<Violation>> {
        let validator = self.validator(schema).map_err(|e| vec![violation("", e.to_string())])?;
        let errors: Vec<Violation> = validator
            .iter_errors(value)
            .map(|e| violation(&pointer_to_dotted(&e.instance_path.to_string()), e.to_string()))
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    fn validator(&self, schema: &Value) -> Result<Arc<jsonschema::Validator>, ContractError> {
        let key = schema.to_string();
        let mut cache = self.validators.lock().map_err(|_| ContractError::Schema("validator cache poisoned".into()))?;
        if let Some(v) = cache.get(&key) {
            return Ok(v.clone());
        }
        // The schema is compiled with the document's components beside it, so its
        // `#/components/...` references resolve within the same root.
        let mut root = match schema {
            Value::Object(map) => map.clone(),
            other => {
                let mut m = Map::new();
                m.insert("allOf".into(), Value::Array(vec![other.clone()]));
                m
            }
        };
        if let Some(components) = self.doc.get("components") {
            root.insert("components".into(), components.clone());
        }
        let root = Value::Object(root);
        let compiled = jsonschema::draft202012::new(&root).map_err(|e| ContractError::Schema(e.to_string()))?;
        let compiled = Arc::new(compiled);
        cache.insert(key, compiled.clone());
        Ok(compiled)
    }
}

/// Reads a JSON or YAML document as JSON.
pub fn read_document(path: &Path) -> Result<Value, ContractError> {
    let text = std::fs::read_to_string(path).map_err(|source| ContractError::Read { path: path.to_owned(), source })?;
    let parse = |message: String| ContractError::Parse { path: path.to_owned(), message };
    if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).map_err(|e| parse(e.to_string()))?;
        Ok(yaml_to_json(yaml))
    } else {
        serde_json::from_str(&text).map_err(|e| parse(e.to_string()))
    }
}

fn violation(path: &str, message: impl Into<String>) -> Violation {
    Violation { path: path.to_owned(), message: message.into() }
}

/// `/content/text` → `content.text`; array indexes become `[i]`.
fn pointer_to_dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').filter(|s| !s.is_empty()) {
        if segment.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn yaml_to_json(value: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map_or(Value::Null, Value::from)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        // Keys are stringified: the Salesforce file writes response codes as integers (`202:`).
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_yaml_ng::to_string(&other).unwrap_or_default().trim().to_owned(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

/// The vendor specification files the simulators and contract tests use.
#[derive(Debug)]
pub struct Specs {
    pub dir: PathBuf,
    pub whatsapp: OpenApi,
    pub conversations: OpenApi,
    pub numbers: OpenApi,
    pub account: OpenApi,
    pub interaction: OpenApi,
    /// The AsyncAPI document of the platform event's `Payload` (`InteractionEvent`).
    pub events: OpenApi,
}

impl Specs {
    /// Where the contract is: `BYOC_SPECS_DIR` if set (the repository's `contract/`, or the
    /// vendors' own files), else the repository's `contract/` folder.
    pub fn discover() -> Option<PathBuf> {
        if let Ok(dir) = std::env::var("BYOC_SPECS_DIR") {
            return Some(PathBuf::from(dir));
        }
        Self::find_upwards("contract")
    }

    /// The vendors' own files (`shared/specs` beside the repository), where they are present:
    /// the input of the extract in `contract/`.
    pub fn vendor_files() -> Option<PathBuf> {
        Self::find_upwards("shared/specs")
    }

    /// `<ancestor>/<folder>` of the source tree or the working directory, holding the files.
    fn find_upwards(folder: &str) -> Option<PathBuf> {
        let starts = [Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))), std::env::current_dir().ok()];
        starts
            .into_iter()
            .flatten()
            .flat_map(|start| start.ancestors().map(|a| a.join(folder)).collect::<Vec<_>>())
            .find(|d| d.join("infobip/whatsapp.json").is_file())
    }

    /// Loads the contract from `dir`: the extract (`.json` throughout) or the vendors' files
    /// (the Salesforce ones in YAML).
    pub fn load(dir: &Path) -> Result<Self, ContractError> {
        let either = |name: &str| {
            let json = dir.join(format!("{name}.json"));
            if json.is_file() { json } else { dir.join(format!("{name}.yaml")) }
        };
        Ok(Self {
            dir: dir.to_owned(),
            whatsapp: OpenApi::load(&dir.join("infobip/whatsapp.json"))?,
            conversations: OpenApi::load(&dir.join("infobip/conversations.json"))?,
            numbers: OpenApi::load(&dir.join("infobip/numbers.json"))?,
            account: OpenApi::load(&dir.join("infobip/account.json"))?,
            interaction: OpenApi::load(&either("salesforce/inbound-interaction-api"))?,
            events: OpenApi::load(&either("salesforce/outbound-custom-event-payload"))?,
        })
    }

    /// Every document, by name.
    pub fn documents(&self) -> [(&'static str, &OpenApi); 6] {
        [
            ("whatsapp", &self.whatsapp),
            ("conversations", &self.conversations),
            ("numbers", &self.numbers),
            ("account", &self.account),
            ("interaction", &self.interaction),
            ("events", &self.events),
        ]
    }

    /// The vendor's example payloads whose file name starts with `prefix`
    /// (`whatsapp-inbound.`, `whatsapp-dlr.`, …), by file name.
    pub fn infobip_examples(&self, prefix: &str) -> Result<Vec<(String, Value)>, ContractError> {
        let dir = self.dir.join("infobip/examples");
        let entries = std::fs::read_dir(&dir).map_err(|source| ContractError::Read { path: dir.clone(), source })?;
        let mut examples = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && name.ends_with(".json") {
                let path = entry.path();
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| ContractError::Read { path: path.clone(), source })?;
                let value =
                    serde_json::from_str(&text).map_err(|e| ContractError::Parse { path, message: e.to_string() })?;
                examples.push((name, value));
            }
        }
        examples.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(examples)
    }

    /// Loads the discovered specs once per process (they are large; tests share them).
    pub fn shared() -> Option<Arc<Specs>> {
        static SPECS: std::sync::OnceLock<Option<Arc<Specs>>> = std::sync::OnceLock::new();
        SPECS
            .get_or_init(|| {
                let dir = Self::discover()?;
                match Self::load(&dir) {
                    Ok(specs) => Some(Arc::new(specs)),
                    Err(e) => {
                        tracing::warn!(error = %e, "vendor specs found but unreadable; contract validation is off");
                        None
                    }
                }
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths() {
        assert_eq!(pointer_to_dotted("/content/text"), "content.text");
        assert_eq!(pointer_to_dotted("/messages/0/to"), "messages[0].to");
        assert_eq!(pointer_to_dotted(""), "");
    }

    #[test]
    fn openapi_30_quirks_are_normalised() {
        let doc = serde_json::json!({
            "openapi": "3.0.0",
            "components": { "schemas": {
                "E": { "type": "object", "required": ["code"], "properties": {
                    "code": { "type": "int" }, "ratio": { "type": "double", "nullable": true } } }
            }}
        });
        let api = OpenApi::from_value(doc);
        assert!(api.validate_component("E", &serde_json::json!({ "code": 10016, "ratio": null })).is_ok());
        let errors = api.validate_component("E", &serde_json::json!({ "code": "x" })).unwrap_err();
        assert_eq!(errors[0].path, "code");
        assert!(api.validate_component("E", &serde_json::json!({})).is_err());
    }
}
