//! The slice of the REST and Tooling APIs the setup wizard and the template panel use:
//! SOQL queries on the messaging objects, and creating the setup records. Errors come in
//! the standard REST shape, an array of `{message, errorCode, fields}`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::errors::{authorize, rest_error};
use super::{SalesforceSim, ToolingRecord, salesforce_id};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/services/data/{version}/limits", web::get().to(limits))
        .route("/services/data/{version}/query", web::get().to(query))
        .route("/services/data/{version}/tooling/query", web::get().to(query))
        .route("/services/data/{version}/tooling/sobjects/{sobject}", web::post().to(tooling_create));
}

#[derive(Debug, Deserialize)]
struct Soql {
    q: String,
}

/// A tiny SOQL reader: `SELECT <fields> FROM <object> [WHERE <field> = '<value>' [AND …]]`.
struct Select {
    fields: Vec<String>,
    object: String,
    conditions: Vec<(String, String)>,
}

fn parse(soql: &str) -> Option<Select> {
    let lower = soql.to_ascii_lowercase();
    let select_at = lower.find("select ")?;
    let from_at = lower.find(" from ")?;
    let fields = soql.get(select_at + 7..from_at)?.split(',').map(|f| f.trim().to_owned()).collect();
    let rest = soql.get(from_at + 6..)?.trim();
    let (object, where_clause) = match rest.to_ascii_lowercase().find(" where ") {
        Some(i) => (rest.get(..i)?.trim(), rest.get(i + 7..)),
        None => (rest.split_whitespace().next()?, None),
    };
    let mut conditions = Vec::new();
    if let Some(clause) = where_clause {
        for part in clause.split(" AND ").flat_map(|p| p.split(" and ")) {
            let (field, value) = part.split_once('=')?;
            let value = value.split_whitespace().next()?.trim_matches('\'');
            conditions.push((field.trim().to_owned(), value.to_owned()));
        }
    }
    Some(Select { fields, object: object.to_owned(), conditions })
}

/// Does the (possibly dotted) field hold this literal? Booleans compare case-insensitively.
fn matches(row: &Value, field: &str, literal: &str) -> bool {
    match field.split('.').try_fold(row, |v, part| v.get(part)) {
        Some(Value::String(s)) => s == literal,
        Some(Value::Bool(b)) => literal.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        _ => false,
    }
}

/// Picks the selected (possibly dotted) fields out of a full record.
fn project(object: &str, full: &Value, fields: &[String]) -> Value {
    let mut record = Map::new();
    record.insert("attributes".into(), json!({ "type": object }));
    for field in fields {
        let mut parts = field.split('.');
        let Some(head) = parts.next() else { continue };
        let value = full.get(head).cloned().unwrap_or(Value::Null);
        match parts.next() {
            Some(child) => {
                let nested = record.entry(head.to_owned()).or_insert_with(|| json!({ "attributes": { "type": head } }));
                nested[child] = value.get(child).cloned().unwrap_or(Value::Null);
            }
            None => {
                record.insert(head.to_owned(), value);
            }
        }
    }
    Value::Object(record)
}

/// A developer edition's daily maxima of the two limits a connector meets.
const DAILY_API_REQUESTS: i64 = 15_000;
const DAILY_DELIVERED_PLATFORM_EVENTS: i64 = 50_000;

/// `GET /limits`: each limit's `Max` and `Remaining` today. API requests count what the org
/// served; delivered platform events what it published to subscribers. A test may set any.
async fn limits(sim: web::Data<SalesforceSim>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = authorize(&sim, &req) {
        return r;
    }
    let state = sim.state();
    let published = state.events_published;
    let mut body = Map::new();
    for (name, max, used) in [
        ("DailyApiRequests", DAILY_API_REQUESTS, state.api_requests),
        ("DailyDeliveredPlatformEvents", DAILY_DELIVERED_PLATFORM_EVENTS, published),
    ] {
        let (max, remaining) = state.limits.get(name).copied().unwrap_or((max, (max - used).max(0)));
        body.insert(name.into(), json!({ "Max": max, "Remaining": remaining }));
    }
    body.insert("DailyStreamingApiEvents".into(), json!({ "Max": 10_000, "Remaining": 10_000 }));
    HttpResponse::Ok().json(Value::Object(body))
}

/// The label Messaging Settings shows for the org's `index`th channel.
pub(crate) fn channel_label(index: usize) -> String {
    format!("WhatsApp {}", index + 1)
}

async fn query(sim: web::Data<SalesforceSim>, req: HttpRequest, soql: web::Query<Soql>) -> HttpResponse {
    if let Err(r) = authorize(&sim, &req) {
        return r;
    }
    let Some(select) = parse(&soql.q) else {
        return rest_error(400, "MALFORMED_QUERY", "unexpected token in SOQL");
    };
    let rows: Vec<Value> = match select.object.as_str() {
        "MessagingSession" => {
            let state = sim.state();
            state
                .conversations
                .iter()
                .map(|c| {
                    let (name, contact, account) =
                        state.end_users.get(&c.end_user).cloned().unwrap_or_else(|| (c.end_user.clone(), None, None));
                    json!({ "Id": c.messaging_session_id, "Status": c.session_status, "ConversationId": c.identifier,
                            "MessagingEndUser": { "MessagingPlatformKey": c.end_user, "Name": name },
                            "EndUserContact": contact.map(|n| json!({ "Name": n })),
                            "EndUserAccount": account.map(|n| json!({ "Name": n })),
                            "MessagingChannel": { "ChannelAddressIdentifier": c.channel_address_identifier } })
                })
                .collect()
        }
        // `ChannelDefinitionId` is the definition record's id, as in a real org (its name
        // only through the definition itself).
        "MessagingChannel" => {
            let state = sim.state();
            state
                .channels
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let definition = state
                        .tooling
                        .iter()
                        .find(|r| r.sobject == "ConversationChannelDefinition" && r.full_name == c.channel_definition)
                        .map_or_else(|| salesforce_id("11v", 0xF00 + i), |r| r.id.clone());
                    json!({ "Id": salesforce_id("0Mj", i + 1), "ChannelAddressIdentifier": c.address_identifier,
                            "DeveloperName": format!("WhatsApp_{}", i + 1), "MasterLabel": channel_label(i),
                            "IsActive": c.active, "MessageType": "Custom", "ChannelDefinitionId": definition })
                })
                .collect()
        }
        "ConversationChannelDefinition" | "ConversationVendorInfo" => sim
            .state()
            .tooling
            .iter()
            .filter(|r| r.sobject == select.object)
            .map(|r| {
                let mut v = json!({ "Id": r.id, "DeveloperName": r.full_name });
                if let Some(meta) = r.metadata.as_object() {
                    for (k, value) in meta {
                        let mut name = k.clone();
                        if let Some(first) = name.get(..1) {
                            name = format!("{}{}", first.to_ascii_uppercase(), name.get(1..).unwrap_or_default());
                        }
                        v[name] = value.clone();
                    }
                }
                v
            })
            .collect(),
        // Each profile's permissions are a permission set owned by the profile; the simulated
        // System Administrator profile has Customize Application, the Agent profile not.
        "PermissionSetAssignment" => sim
            .state()
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                json!({ "Id": salesforce_id("0Pa", i + 1), "AssigneeId": u.id,
                        "PermissionSet": { "IsOwnedByProfile": true, "Profile": { "Name": u.profile },
                                           "PermissionsCustomizeApplication": u.profile == "System Administrator" } })
            })
            .collect(),
        "PermissionSet" => super::schema::permission_sets(),
        "ObjectPermissions" => sim.state().object_permissions.clone(),
        other => return rest_error(400, "INVALID_TYPE", &format!("sObject type '{other}' is not supported.")),
    };
    let records: Vec<Value> = rows
        .iter()
        .filter(|row| select.conditions.iter().all(|(field, value)| matches(row, field, value)))
        .map(|row| project(&select.object, row, &select.fields))
        .collect();
    HttpResponse::Ok().json(json!({ "totalSize": records.len(), "done": true, "records": records }))
}

async fn tooling_create(
    sim: web::Data<SalesforceSim>,
    req: HttpRequest,
    sobject: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Err(r) = authorize(&sim, &req) {
        return r;
    }
    let (_, sobject) = sobject.into_inner();
    let full_name = body.get("FullName").and_then(Value::as_str).unwrap_or_default().to_owned();
    let metadata = body.get("Metadata").cloned().unwrap_or(Value::Null);
    let (prefix, required): (&str, &[&str]) = match sobject.as_str() {
        "CustomObject" | "CustomField" => {
            if let Err(refused) = super::schema::create_custom(&sim, &sobject, &full_name, &metadata) {
                return refused;
            }
            let prefix = if sobject == "CustomObject" { "01I" } else { "00N" };
            return created(&sim, prefix, sobject, full_name, metadata);
        }
        "ConversationVendorInfo" => ("0m8", &["developerName", "masterLabel", "vendorType"]),
        "ConversationChannelDefinition" => (
            "11v",
            &["developerName", "masterLabel", "customPlatformEvent", "customEventTypeField", "customEventPayloadField"],
        ),
        other => return rest_error(404, "NOT_FOUND", &format!("The requested resource does not exist: {other}")),
    };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|f| metadata.get(*f).and_then(Value::as_str).is_none_or(str::is_empty))
        .collect();
    if full_name.is_empty() || !missing.is_empty() {
        return HttpResponse::BadRequest().json(json!([{
            "message": format!("Required fields are missing: [{}]", if full_name.is_empty() { "FullName".to_owned() } else { missing.join(", ") }),
            "errorCode": "REQUIRED_FIELD_MISSING", "fields": missing
        }]));
    }
    if sobject == "ConversationChannelDefinition" {
        for (field, expected) in [("routingOwner", "Salesforce"), ("consentOwner", "Salesforce")] {
            if metadata.get(field).and_then(Value::as_str).is_some_and(|v| v != expected) {
                return rest_error(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    &format!("{field} must be {expected} for Bring Your Own Channel"),
                );
            }
        }
        // The event and both fields must exist: `Event__e` and `Event__e.Field__c`.
        let text = |f: &str| metadata.get(f).and_then(Value::as_str).unwrap_or_default();
        let event = text("customPlatformEvent");
        let field_of = |f: &str| text(f).strip_prefix(&format!("{event}.")).unwrap_or_default().to_owned();
        let fields = [field_of("customEventTypeField"), field_of("customEventPayloadField")];
        if !super::schema::has_fields(&sim, event, &[fields[0].as_str(), fields[1].as_str()]) {
            return rest_error(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                &format!("customPlatformEvent: {event} is not a platform event with the fields named"),
            );
        }
    }
    if sim.state().tooling.iter().any(|r| r.sobject == sobject && r.full_name == full_name) {
        return rest_error(
            400,
            "DUPLICATE_VALUE",
            &format!("duplicate value found: DeveloperName duplicates value on record with id: {full_name}"),
        );
    }
    created(&sim, prefix, sobject, full_name, metadata)
}

fn created(sim: &SalesforceSim, prefix: &str, sobject: String, full_name: String, metadata: Value) -> HttpResponse {
    let mut state = sim.state();
    let id = salesforce_id(prefix, state.tooling.len() + 1);
    state.tooling.push(ToolingRecord { id: id.clone(), sobject, full_name, metadata });
    HttpResponse::Created().json(json!({ "id": id, "success": true, "errors": [], "warnings": [], "infos": [] }))
}
