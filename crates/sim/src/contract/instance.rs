//! Small valid instances of a document's schemas, for tests that probe a contract: build a
//! value the schema accepts, optionally one that contains a given component, then break it
//! there and check that the contract refuses it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::normalise::DISPATCH;

const SCHEMAS: &str = "#/components/schemas/";
/// Deep enough for every shape the vendors' documents nest.
const MAX_DEPTH: usize = 64;

/// An instance, and where in it the wanted component's value sits (a JSON pointer).
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub value: Value,
    pub target: Option<String>,
}

/// Builds instances of one (normalised) document's schemas.
pub struct Generator<'a> {
    doc: &'a Value,
    /// Per target component: how many references away from it each component is.
    distances: RefCell<HashMap<String, BTreeMap<String, usize>>>,
}

/// The components a schema refers to (without following the references).
fn refs_in(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix(SCHEMAS)) {
                out.push(name.to_owned());
            }
            map.values().for_each(|v| refs_in(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

fn base_of(name: &str) -> &str {
    name.strip_suffix(DISPATCH).unwrap_or(name)
}

fn pointer_escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

impl<'a> Generator<'a> {
    pub fn new(doc: &'a Value) -> Self {
        Self { doc, distances: RefCell::default() }
    }

    fn component(&self, name: &str) -> Option<&'a Value> {
        self.doc.get("components")?.get("schemas")?.get(name)
    }

    fn resolve<'s>(&'s self, schema: &'s Value) -> Option<(&'s Value, Option<&'s str>)>
    where
        'a: 's,
    {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.strip_prefix(SCHEMAS)?;
                Some((self.component(name)?, Some(name)))
            }
            None => Some((schema, None)),
        }
    }

    /// Whether an instance of `schema` can contain the component `target`.
    pub fn reaches(&self, schema: &Value, target: &str) -> bool {
        self.distance(schema, target).is_some()
    }

    /// How many references lie between `schema` and the component `target` at the fewest.
    /// Instances follow the shortest way, so recursive schemas do not send them in circles.
    fn distance(&self, schema: &Value, target: &str) -> Option<usize> {
        let mut cache = self.distances.borrow_mut();
        let distances = cache.entry(target.to_owned()).or_insert_with(|| self.distances_to(target));
        let mut refs = Vec::new();
        refs_in(schema, &mut refs);
        refs.iter().filter_map(|r| if base_of(r) == target { Some(0) } else { distances.get(r).copied() }).min()
    }

    fn distances_to(&self, target: &str) -> BTreeMap<String, usize> {
        let components: Vec<(String, Vec<String>)> = self
            .doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(name, schema)| {
                let mut refs = Vec::new();
                refs_in(schema, &mut refs);
                (name.clone(), refs)
            })
            .collect();
        let mut distances: BTreeMap<String, usize> = BTreeMap::new();
        loop {
            let mut changed = false;
            for (name, refs) in &components {
                let best = refs
                    .iter()
                    .filter_map(|r| if base_of(r) == target { Some(1) } else { distances.get(r).map(|d| d + 1) })
                    .min();
                if let Some(d) = best
                    && distances.get(name).is_none_or(|&old| d < old)
                {
                    distances.insert(name.clone(), d);
                    changed = true;
                }
            }
            if !changed {
                return distances;
            }
        }
    }

    /// Of `candidates`, the one nearest to `target`.
    fn nearest<'s>(&self, candidates: impl Iterator<Item = &'s Value>, target: &str) -> Option<&'s Value> {
        candidates.filter_map(|c| self.distance(c, target).map(|d| (d, c))).min_by_key(|(d, _)| *d).map(|(_, c)| c)
    }

    /// A small instance of `schema`; with `target`, one containing that component.
    pub fn instance(&self, schema: &Value, target: Option<&str>) -> Option<Instance> {
        self.build(schema, target, 0)
    }

    fn build(&self, schema: &Value, target: Option<&str>, depth: usize) -> Option<Instance> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (resolved, name) = self.resolve(schema)?;
        let base_name = name.map(|n| n.strip_suffix(DISPATCH).unwrap_or(n));
        if target.is_some() && base_name == target {
            // Here it is: any instance of it will do.
            let inner = self.build(resolved, None, depth + 1)?;
            return Some(Instance { value: inner.value, target: Some(String::new()) });
        }
        let target = target.filter(|t| self.reaches(resolved, t));
        if let Some(parts) = resolved.get("allOf").and_then(Value::as_array) {
            return self.all_of(resolved, parts, target, depth);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = resolved.get(key).and_then(Value::as_array) {
                let pick = target.and_then(|t| self.nearest(branches.iter(), t)).or(branches.first())?;
                return self.build(pick, target, depth + 1);
            }
        }
        self.plain(resolved, target, depth)
    }

    /// `allOf`: a dispatch (base + one subtype by its discriminator), or parts to merge.
    fn all_of(&self, schema: &Value, parts: &[Value], target: Option<&str>, depth: usize) -> Option<Instance> {
        let branches: Vec<&Value> = parts.iter().filter(|p| p.get("if").is_some()).collect();
        if !branches.is_empty() {
            let pick = target
                .and_then(|t| {
                    let best = self.nearest(branches.iter().map(|b| &b["then"]), t)?;
                    branches.iter().find(|b| std::ptr::eq(&b["then"], best))
                })
                .or(branches.first())?;
            let mut built = self.build(&pick["then"], target, depth + 1)?;
            if let (Some(obj), Some(condition)) = (built.value.as_object_mut(), pick["if"]["properties"].as_object()) {
                for (property, rule) in condition {
                    obj.insert(property.clone(), rule["const"].clone());
                }
            }
            return Some(built);
        }
        let mut merged = Map::new();
        let mut found = None;
        let mut target_left = target;
        for part in parts {
            let wanted = target_left.filter(|t| self.reaches(part, t));
            let built = self.build(part, wanted, depth + 1)?;
            if built.target.is_some() {
                found = built.target;
                target_left = None;
            }
            match built.value {
                Value::Object(m) => merged.extend(m),
                other if parts.len() == 1 => return Some(Instance { value: other, target: found }),
                _ => {}
            }
        }
        let mut value = Value::Object(merged);
        // The schema itself may add properties beside its `allOf`.
        if schema.get("properties").is_some() {
            let own = self.plain(schema, target_left, depth)?;
            if let (Some(m), Value::Object(extra)) = (value.as_object_mut(), own.value) {
                m.extend(extra);
            }
            found = found.or(own.target);
        }
        Some(Instance { value, target: found })
    }

    fn plain(&self, schema: &Value, target: Option<&str>, depth: usize) -> Option<Instance> {
        if let Some(c) = schema.get("const") {
            return Some(Instance { value: c.clone(), target: None });
        }
        if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
            return Some(Instance { value: first.clone(), target: None });
        }
        let kind = match schema.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(types)) => {
                types.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null")
            }
            _ if schema.get("properties").is_some() => "object",
            _ => "object",
        };
        let value = match kind {
            "object" => return self.object(schema, target, depth),
            "array" => return self.array(schema, target, depth),
            "string" => Value::String(string_for(schema)),
            "integer" => json!(schema.get("minimum").and_then(Value::as_i64).unwrap_or(1).max(0)),
            "number" => json!(schema.get("minimum").and_then(Value::as_f64).unwrap_or(1.0)),
            "boolean" => Value::Bool(true),
            _ => Value::Null,
        };
        Some(Instance { value, target: None })
    }

    fn object(&self, schema: &Value, target: Option<&str>, depth: usize) -> Option<Instance> {
        let properties = schema.get("properties").and_then(Value::as_object);
        let required: Vec<&str> =
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let mut out = Map::new();
        let mut found = None;
        // The property that leads to the target by the shortest way.
        let via = target.and_then(|t| {
            properties
                .into_iter()
                .flatten()
                .filter_map(|(k, s)| self.distance(s, t).map(|d| (d, k)))
                .min_by_key(|(d, _)| *d)
                .map(|(_, k)| k.clone())
        });
        let names: Vec<String> = required.iter().map(|s| (*s).to_owned()).chain(via.clone()).collect();
        for name in names {
            if out.contains_key(&name) {
                continue;
            }
            let property = properties.and_then(|p| p.get(&name)).cloned().unwrap_or(json!({ "type": "string" }));
            let wanted = if via.as_deref() == Some(name.as_str()) { target } else { None };
            let built = self.build(&property, wanted, depth + 1)?;
            if let Some(inner) = built.target {
                found = Some(format!("/{}{inner}", pointer_escape(&name)));
            }
            out.insert(name, built.value);
        }
        if found.is_none()
            && let (Some(t), Some(values)) = (target, schema.get("additionalProperties").filter(|v| v.is_object()))
        {
            let built = self.build(values, Some(t), depth + 1)?;
            found = built.target.map(|inner| format!("/key{inner}"));
            out.insert("key".into(), built.value);
        }
        Some(Instance { value: Value::Object(out), target: found })
    }

    fn array(&self, schema: &Value, target: Option<&str>, depth: usize) -> Option<Instance> {
        let items = schema.get("items").cloned().unwrap_or(json!({}));
        let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
        let count = if target.is_some() { min.max(1) } else { min };
        let mut values = Vec::new();
        let mut found = None;
        for i in 0..count {
            let built = self.build(&items, if i == 0 { target } else { None }, depth + 1)?;
            if let Some(inner) = built.target {
                found = Some(format!("/{i}{inner}"));
            }
            values.push(built.value);
        }
        Some(Instance { value: Value::Array(values), target: found })
    }
}

/// A string the schema accepts: of its format, at least its minimum length.
fn string_for(schema: &Value) -> String {
    let base = match schema.get("format").and_then(Value::as_str) {
        Some("date-time") => "2026-01-01T00:00:00Z".to_owned(),
        Some("date") => "2026-01-01".to_owned(),
        Some("uuid") => "00000000-0000-4000-8000-000000000000".to_owned(),
        Some("uri" | "url") => "https://example.com/x".to_owned(),
        Some("email") => "a@example.com".to_owned(),
        _ => "x".to_owned(),
    };
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    if base.chars().count() >= min { base } else { format!("{base}{}", "x".repeat(min - base.chars().count())) }
}
