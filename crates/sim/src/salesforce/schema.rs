//! The org's custom objects as the setup wizard meets them: `describe` of an object, a
//! platform event and its fields created through the Tooling API (`CustomObject`,
//! `CustomField`), and object permissions of permission sets (`ObjectPermissions`), which
//! is how the messaging platform's `sfdc_scrt2` set is allowed to publish the event.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::errors::{authorize, rest_error};
use super::{SalesforceSim, salesforce_id};

/// The permission set Salesforce's messaging platform publishes platform events as.
pub const MESSAGING_PERMISSION_SET: &str = "sfdc_scrt2";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/services/data/{version}/sobjects/ObjectPermissions", web::post().to(create_permission))
        .route("/services/data/{version}/sobjects/ObjectPermissions/{id}", web::patch().to(update_permission))
        .route("/services/data/{version}/sobjects/{sobject}/describe", web::get().to(describe));
}

/// The org's permission sets, as `PermissionSet` rows.
pub(crate) fn permission_sets() -> Vec<Value> {
    vec![json!({ "Id": salesforce_id("0PS", 1), "Name": MESSAGING_PERMISSION_SET, "Label": "Messaging platform" })]
}

async fn describe(sim: web::Data<SalesforceSim>, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    if let Err(r) = authorize(&sim, &req) {
        return r;
    }
    let (_, sobject) = path.into_inner();
    let state = sim.state();
    let Some(custom) = state.custom_objects.get(&sobject) else {
        return rest_error(404, "NOT_FOUND", "The requested resource does not exist");
    };
    let mut fields =
        vec![json!({ "name": "ReplayId", "custom": false }), json!({ "name": "CreatedDate", "custom": false })];
    fields.extend(custom.iter().map(|f| json!({ "name": f, "custom": true })));
    HttpResponse::Ok().json(json!({ "name": sobject, "custom": true, "fields": fields }))
}

/// Checks a Tooling `CustomObject` or `CustomField` create and applies it to the schema;
/// `Err` is the REST error to answer.
pub(crate) fn create_custom(
    sim: &SalesforceSim,
    sobject: &str,
    full_name: &str,
    metadata: &Value,
) -> Result<(), HttpResponse> {
    let text = |f: &str| metadata.get(f).and_then(Value::as_str).filter(|v| !v.is_empty());
    let mut state = sim.state();
    if sobject == "CustomObject" {
        let missing: Vec<&str> =
            ["label", "pluralLabel", "deploymentStatus"].into_iter().filter(|f| text(f).is_none()).collect();
        if !missing.is_empty() {
            return Err(rest_error(
                400,
                "REQUIRED_FIELD_MISSING",
                &format!("Required fields are missing: {missing:?}"),
            ));
        }
        if full_name.ends_with("__e") && text("eventType").is_none() {
            return Err(rest_error(400, "FIELD_INTEGRITY_EXCEPTION", "A platform event needs an eventType"));
        }
        if !full_name.ends_with("__e") && !full_name.ends_with("__c") {
            return Err(rest_error(400, "INVALID_FIELD", "Custom object names end in __c, platform events in __e"));
        }
        if state.custom_objects.contains_key(full_name) {
            return Err(rest_error(400, "DUPLICATE_DEVELOPER_NAME", "This API name is already in use"));
        }
        state.custom_objects.insert(full_name.to_owned(), Vec::new());
        return Ok(());
    }
    let Some((object, field)) = full_name.split_once('.') else {
        return Err(rest_error(400, "INVALID_FIELD", "A custom field's FullName is Object.Field__c"));
    };
    if text("label").is_none() || text("type").is_none() {
        return Err(rest_error(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [label, type]"));
    }
    if !field.ends_with("__c") {
        return Err(rest_error(400, "INVALID_FIELD", "Custom field names end in __c"));
    }
    let Some(fields) = state.custom_objects.get_mut(object) else {
        return Err(rest_error(400, "INVALID_CROSS_REFERENCE_KEY", &format!("No such object: {object}")));
    };
    if fields.iter().any(|f| f == field) {
        return Err(rest_error(400, "DUPLICATE_DEVELOPER_NAME", "This field name is already in use"));
    }
    fields.push(field.to_owned());
    Ok(())
}

/// Whether the object exists with these fields (a channel definition may only name those).
pub(crate) fn has_fields(sim: &SalesforceSim, object: &str, fields: &[&str]) -> bool {
    sim.state().custom_objects.get(object).is_some_and(|have| fields.iter().all(|f| have.iter().any(|h| h == f)))
}

async fn create_permission(sim: web::Data<SalesforceSim>, req: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    if let Err(r) = authorize(&sim, &req) {
        return r;
    }
    let parent = body.get("ParentId").and_then(Value::as_str).unwrap_or_default();
    let sobject = body.get("SobjectType").and_then(Value::as_str).unwrap_or_default();
    if !permission_sets().iter().any(|p| p["Id"] == parent) {
        return rest_error(400, "INVALID_CROSS_REFERENCE_KEY", "ParentId: id value of incorrect type");
    }
    let mut state = sim.state();
    if !state.custom_objects.contains_key(sobject) {
        return rest_error(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "SobjectType: bad value for restricted picklist field",
        );
    }
    if state.object_permissions.iter().any(|p| p["ParentId"] == parent && p["SobjectType"] == sobject) {
        return rest_error(400, "DUPLICATE_VALUE", "duplicate value found: ParentId, SobjectType");
    }
    let id = salesforce_id("110", state.object_permissions.len() + 1);
    let flag = |f: &str| body.get(f).and_then(Value::as_bool).unwrap_or(false);
    state.object_permissions.push(json!({
        "Id": id, "ParentId": parent, "SobjectType": sobject,
        "PermissionsRead": flag("PermissionsRead"), "PermissionsCreate": flag("PermissionsCreate")
    }));
    HttpResponse::Created().json(json!({ "id": id, "success": true, "errors": [] }))
}

async fn update_permission(
    sim: web::Data<SalesforceSim>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Err(r) = authorize(&sim, &req) {
        return r;
    }
    let (_, id) = path.into_inner();
    let mut state = sim.state();
    let Some(row) = state.object_permissions.iter_mut().find(|p| p["Id"] == id.as_str()) else {
        return rest_error(404, "NOT_FOUND", "The requested resource does not exist");
    };
    for flag in ["PermissionsRead", "PermissionsCreate"] {
        if let Some(v) = body.get(flag).and_then(Value::as_bool) {
            row[flag] = json!(v);
        }
    }
    HttpResponse::NoContent().finish()
}
