//! The vendor specification files themselves load and validate their own examples, so the
//! simulators' contract checks stand on solid ground.

use byoc_sim::contract::Specs;
use serde_json::json;

pub fn specs() -> std::sync::Arc<Specs> {
    Specs::shared().expect("the contract: contract/ in the repository, or the directory in BYOC_SPECS_DIR")
}

#[test]
fn infobip_send_examples_validate_against_their_own_schemas() {
    let specs = specs();
    let api = &specs.whatsapp;
    // Examples that contradict their own schema: the schema wins, the simulator refuses them.
    // "Flow button…" gives `data` string values where the schema wants objects.
    const INCONSISTENT: &[&str] = &["Flow button with flow token and data template message"];
    let mut checked = 0;
    for path in [
        "/whatsapp/1/message/text",
        "/whatsapp/1/message/image",
        "/whatsapp/1/message/document",
        "/whatsapp/1/message/audio",
        "/whatsapp/1/message/video",
        "/whatsapp/1/message/location",
        "/whatsapp/1/message/template",
        "/whatsapp/1/message/interactive/buttons",
        "/whatsapp/1/message/interactive/list",
    ] {
        for (name, example) in api.request_examples("post", path) {
            if INCONSISTENT.contains(&name.as_str()) {
                assert!(api.validate_request("post", path, "application/json", &example).is_err(), "{name}");
                continue;
            }
            api.validate_request("post", path, "application/json", &example)
                .unwrap_or_else(|e| panic!("{path} example {name:?}: {e:?}"));
            checked += 1;
        }
    }
    assert!(checked >= 9, "examples found: {checked}");
}

#[test]
fn infobip_schemas_refuse_what_infobip_refuses() {
    let specs = specs();
    let api = &specs.whatsapp;
    let ok = json!({ "from": "441134960000", "to": "441134960001", "content": { "text": "hello" } });
    assert!(api.validate_request("post", "/whatsapp/1/message/text", "application/json", &ok).is_ok());
    let no_text = json!({ "from": "441134960000", "to": "441134960001", "content": {} });
    let errors = api.validate_request("post", "/whatsapp/1/message/text", "application/json", &no_text).unwrap_err();
    assert!(errors.iter().any(|e| e.path == "content"), "{errors:?}");
    let too_long = json!({ "from": "441134960000", "to": "441134960001", "content": { "text": "x".repeat(4097) } });
    let errors = api.validate_request("post", "/whatsapp/1/message/text", "application/json", &too_long).unwrap_err();
    assert!(errors.iter().any(|e| e.path == "content.text"), "{errors:?}");
}

#[test]
fn salesforce_interaction_schemas_load_and_check_bodies() {
    let specs = specs();
    let api = &specs.interaction;
    let message = json!({
        "to": "7c0c7f4e-1b1a-4c3f-9a7e-2f4b7a1d5e6f",
        "from": "447700900001",
        "interactions": [{
            "timestamp": 1_700_000_000_000_i64,
            "interactionType": "EntryInteraction",
            "payload": {
                "id": "3b7cbb0c-4c1d-4c5e-9d7e-1c9a5f0b2a11",
                "entryType": "Message",
                "abstractMessage": {
                    "messageType": "StaticContentMessage",
                    "id": "3b7cbb0c-4c1d-4c5e-9d7e-1c9a5f0b2a11",
                    "staticContent": { "formatType": "Text", "text": "Hello" }
                }
            }
        }]
    });
    api.validate_component("InteractionRequestJson", &message).unwrap();
    let mut missing_to = message.clone();
    missing_to.as_object_mut().unwrap().remove("to");
    assert!(api.validate_component("InteractionRequestJson", &missing_to).is_err());

    let error = json!({ "message": "Enter a valid header.", "code": 10016 });
    api.validate_response("post", "/interactions", 400, &error).unwrap();
    api.validate_response(
        "post",
        "/interactions",
        202,
        &json!({
            "conversationIdentifier": "b2f6c9a8-0000-0000-0000-000000000000",
            "workItemIds": ["0Mw000000000001"],
            "success": true
        }),
    )
    .unwrap();
}

#[test]
fn the_typing_indicator_request_matches_infobips_contract() {
    let specs = specs();
    let body = json!({ "events": [{ "sender": "447860099299", "destinations": [{ "to": "447700900600" }], "content": { "type": "TYPING_INDICATOR" } }] });
    specs.whatsapp.validate_request("post", "/whatsapp/1/events", "application/json", &body).unwrap();
}

/// Where the vendor forbids unknown properties (`additionalProperties: false`), the contract
/// refuses one: on the component itself, and inside every request that can carry it, however
/// deep and whatever polymorphic schemas lie on the way. (A choice's `SelectedOption` with a
/// `title` went through, because nested discriminators were not followed.)
#[test]
fn an_unknown_property_is_refused_wherever_the_spec_forbids_one() {
    use byoc_sim::contract::instance::Generator;
    let specs = specs();
    let (mut strict_components, mut contexts) = (0, Vec::new());
    for (label, api) in specs.documents() {
        let doc = api.document();
        let generator = Generator::new(doc);
        let strict: Vec<String> = doc
            .pointer("/components/schemas")
            .and_then(serde_json::Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(_, s)| s.get("additionalProperties") == Some(&json!(false)))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &strict {
            strict_components += 1;
            let alone = generator
                .instance(&json!({ "$ref": format!("#/components/schemas/{name}") }), None)
                .unwrap_or_else(|| panic!("{label} {name}: no instance"));
            api.validate_component(name, &alone.value)
                .unwrap_or_else(|e| panic!("{label} {name} {}: {e:?}", alone.value));
            let mut broken = alone.value.clone();
            broken.as_object_mut().unwrap().insert("unknownProperty".into(), json!("x"));
            assert!(api.validate_component(name, &broken).is_err(), "{label} {name} took an unknown property");

            for (method, path, media, schema) in api.request_schemas() {
                if !generator.reaches(&schema, name) {
                    continue;
                }
                let built = generator
                    .instance(&schema, Some(name))
                    .unwrap_or_else(|| panic!("{path}: no instance with {name}"));
                let at = built.target.clone().unwrap_or_else(|| panic!("{method} {path}: {name} not placed"));
                api.validate_request(&method, &path, &media, &built.value)
                    .unwrap_or_else(|e| panic!("{method} {path} with {name}: {e:?}\n{}", built.value));
                let mut broken = built.value.clone();
                broken
                    .pointer_mut(&at)
                    .and_then(|v| v.as_object_mut())
                    .unwrap()
                    .insert("unknownProperty".into(), json!(1));
                let errors = api
                    .validate_request(&method, &path, &media, &broken)
                    .expect_err(&format!("{method} {path} took an unknown property in {name} at {at}"));
                assert!(!errors.is_empty());
                contexts.push(format!("{method} {path} → {name}"));
            }
        }
    }
    eprintln!("{strict_components} strict components, probed in {} request contexts", contexts.len());
    assert!(strict_components >= 8, "{strict_components}");
    assert!(contexts.iter().any(|c| c == "post /interactions → SelectedOption"), "{contexts:#?}");
    assert!(contexts.len() >= 20, "{contexts:#?}");
}

/// The contract the repository keeps is the extract of the vendors' files, where those are
/// present beside the repository (a fresh clone has only the extract, and nothing to compare).
#[test]
fn the_contract_in_the_repository_is_the_extract_of_the_vendors_files() {
    let Some(vendor) = Specs::vendor_files() else {
        eprintln!("SKIPPED the contract freshness check: no vendor files (shared/specs) beside the repository");
        return;
    };
    let contract = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contract");
    let files = byoc_sim::contract::extract::extract(&vendor).unwrap();
    let refresh = "run `cargo run -p byoc-sim --example extract-contract` and commit contract/";
    for (path, text) in &files {
        let kept = std::fs::read_to_string(contract.join(path)).unwrap_or_default();
        assert!(kept == *text, "contract/{} is stale against {}: {refresh}", path.display(), vendor.display());
    }
    for dir in ["infobip", "salesforce"] {
        for entry in walk(&contract.join(dir)) {
            let relative = entry.strip_prefix(&contract).unwrap().to_owned();
            assert!(files.contains_key(&relative), "contract/{} is no longer extracted: {refresh}", relative.display());
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { found.extend(walk(&path)) } else { found.push(path) }
    }
    found
}
