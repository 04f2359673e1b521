//! Turning an API description into schemas a JSON Schema validator applies in full.
//!
//! Two things stand between the vendors' files and a validator: the Salesforce file's OpenAPI
//! 3.0 quirks (`int`/`float`/`double` types, `nullable`), and OpenAPI's `discriminator`, which
//! JSON Schema ignores. Without the second, a value below a polymorphic schema (an interaction's
//! `payload`, a message's `choicesResponse`, a template card's buttons) is checked against the
//! base schema only, so its subtype's rules, `additionalProperties: false` among them, never
//! apply. Each polymorphic base `B` therefore gets a dispatch schema `B__dispatch` that applies
//! the subtype its discriminator names, and every reference to `B` points there, except a
//! subtype's own `allOf` reference to its base (which would otherwise recurse).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The suffix of the dispatch schema of a polymorphic base.
pub const DISPATCH: &str = "__dispatch";

const SCHEMAS: &str = "#/components/schemas/";

/// Maps OpenAPI 3.0 vocabulary onto JSON Schema: the non-standard `int`, `float` and `double`
/// types, and `nullable: true`.
pub fn openapi_30(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(t)) = map.get_mut("type") {
                match t.as_str() {
                    "int" | "long" => *t = "integer".into(),
                    "float" | "double" => *t = "number".into(),
                    _ => {}
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = map.get("type").cloned()
            {
                map.insert("type".into(), json!([t, "null"]));
            }
            for v in map.values_mut() {
                openapi_30(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(openapi_30),
        _ => {}
    }
}

/// A polymorphic base: its discriminating property and the subtype of each value.
struct Polymorphic {
    property: String,
    subtypes: BTreeMap<String, String>,
}

/// The component a `$ref` names, if it names one.
fn component_of(reference: &Value) -> Option<&str> {
    reference.get("$ref")?.as_str()?.strip_prefix(SCHEMAS)
}

/// Every discriminated component: explicit `mapping` entries, and (as OpenAPI says for a
/// value without one) the components that extend the base through `allOf`, under their name.
fn polymorphic_bases(schemas: &Map<String, Value>) -> BTreeMap<String, Polymorphic> {
    let mut bases = BTreeMap::new();
    for (name, schema) in schemas {
        let Some(discriminator) = schema.get("discriminator") else { continue };
        let Some(property) = discriminator.get("propertyName").and_then(Value::as_str) else { continue };
        let mut subtypes: BTreeMap<String, String> = discriminator
            .get("mapping")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(value, target)| Some((value.clone(), target.as_str()?.strip_prefix(SCHEMAS)?.to_owned())))
            .collect();
        for (candidate, s) in schemas {
            let extends = s
                .get("allOf")
                .and_then(Value::as_array)
                .is_some_and(|parts| parts.iter().any(|p| component_of(p) == Some(name.as_str())));
            if extends && !subtypes.values().any(|t| t == candidate) {
                subtypes.insert(candidate.clone(), candidate.clone());
            }
        }
        if !subtypes.is_empty() {
            bases.insert(name.clone(), Polymorphic { property: property.to_owned(), subtypes });
        }
    }
    bases
}

/// Adds the dispatch schemas and points the references at them.
pub fn dispatch_discriminators(doc: &mut Value) {
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else { return };
    let bases = polymorphic_bases(schemas);
    if bases.is_empty() {
        return;
    }
    // Redirect first, so the dispatch schemas added below keep their references to the bases.
    for (name, schema) in schemas.iter_mut() {
        redirect_component(name, schema, &bases);
    }
    for (name, base) in &bases {
        let mut parts = vec![json!({ "$ref": format!("{SCHEMAS}{name}") })];
        for (value, subtype) in &base.subtypes {
            parts.push(json!({
                "if": { "properties": { base.property.as_str(): { "const": value } }, "required": [base.property] },
                "then": { "$ref": format!("{SCHEMAS}{subtype}") }
            }));
        }
        schemas.insert(format!("{name}{DISPATCH}"), json!({ "allOf": parts }));
    }
    // References outside the components (operations, webhooks, messages) go to the dispatch too.
    for key in ["paths", "webhooks", "messages", "topics"] {
        if let Some(part) = doc.get_mut(key) {
            redirect(part, &bases);
        }
    }
}

/// Redirects the references of one component, keeping a subtype's `allOf` reference to its
/// own base.
fn redirect_component(name: &str, schema: &mut Value, bases: &BTreeMap<String, Polymorphic>) {
    let Some(map) = schema.as_object_mut() else { return };
    for (key, value) in map.iter_mut() {
        if key == "allOf" {
            for part in value.as_array_mut().into_iter().flatten() {
                let own_base = component_of(part)
                    .and_then(|b| bases.get(b))
                    .is_some_and(|base| base.subtypes.values().any(|s| s == name));
                if !own_base {
                    redirect(part, bases);
                }
            }
        } else {
            redirect(value, bases);
        }
    }
}

fn redirect(value: &mut Value, bases: &BTreeMap<String, Polymorphic>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref")
                && let Some(name) = reference.strip_prefix(SCHEMAS).filter(|n| bases.contains_key(*n))
            {
                *reference = format!("{SCHEMAS}{name}{DISPATCH}");
            }
            for v in map.values_mut() {
                redirect(v, bases);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redirect(v, bases)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_to_a_base_checks_the_subtype_its_discriminator_names() {
        let mut doc = json!({ "components": { "schemas": {
            "Holder": { "type": "object", "properties": { "item": { "$ref": "#/components/schemas/Base" } } },
            "Base": { "type": "object", "properties": { "kind": { "type": "string" } }, "required": ["kind"],
                      "discriminator": { "propertyName": "kind", "mapping": { "a": "#/components/schemas/A" } } },
            "A": { "allOf": [ { "$ref": "#/components/schemas/Base" },
                              { "type": "object", "properties": { "x": { "$ref": "#/components/schemas/Strict" } } } ] },
            "Strict": { "type": "object", "additionalProperties": false, "properties": { "y": { "type": "string" } } }
        } } });
        dispatch_discriminators(&mut doc);
        assert_eq!(
            doc.pointer("/components/schemas/Holder/properties/item/$ref"),
            Some(&json!("#/components/schemas/Base__dispatch"))
        );
        assert_eq!(doc.pointer("/components/schemas/A/allOf/0/$ref"), Some(&json!("#/components/schemas/Base")));
        let validator = |instance: Value| {
            let mut root = json!({ "$ref": "#/components/schemas/Holder" });
            root["components"] = doc["components"].clone();
            jsonschema::draft202012::new(&root).unwrap().is_valid(&instance)
        };
        assert!(validator(json!({ "item": { "kind": "a", "x": { "y": "ok" } } })));
        assert!(
            !validator(json!({ "item": { "kind": "a", "x": { "y": "ok", "z": 1 } } })),
            "the subtype's rules apply"
        );
    }
}
