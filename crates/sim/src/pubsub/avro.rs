//! Avro as the simulated org writes platform events: the schema `GetSchema` serves for a
//! custom platform event, its id, and bare binary datums (no container header), following the
//! Avro specification and the Pub/Sub documentation (reference `pubsub-wire.md`).

use std::collections::BTreeMap;

use apache_avro::rabin::Rabin;
use apache_avro::schema::{RecordSchema, Schema};
use apache_avro::types::Value;

/// The system fields every platform event has.
pub const CREATED_DATE: &str = "CreatedDate";
pub const CREATED_BY_ID: &str = "CreatedById";

/// Namespace Salesforce gives platform-event schemas.
const NAMESPACE: &str = "com.sforce.eventbus";

#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    #[error("invalid Avro schema")]
    Schema(#[source] apache_avro::Error),
    #[error("the schema is not a record schema")]
    NotARecord,
    #[error("cannot encode the event as Avro")]
    Encode(#[source] apache_avro::Error),
    #[error("field {field}: {problem}")]
    Field { field: String, problem: &'static str },
}

/// One platform event to publish: the two system fields and custom text fields by API name.
/// A field the schema has but the map lacks is written as null.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventRecord {
    /// `CreatedDate`, epoch milliseconds.
    pub created_date: i64,
    /// `CreatedById`, the 18-character id of the publishing user.
    pub created_by_id: String,
    pub fields: BTreeMap<String, Option<String>>,
}

impl EventRecord {
    /// The Avro value in the field order of `schema` (the binary encoding needs it).
    pub fn to_value(&self, schema: &Schema) -> Result<Value, AvroError> {
        let Schema::Record(record) = schema else { return Err(AvroError::NotARecord) };
        let record: &RecordSchema = record;
        for name in self.fields.keys() {
            if !record.lookup.contains_key(name) || name == CREATED_DATE || name == CREATED_BY_ID {
                return Err(AvroError::Field { field: name.clone(), problem: "not a custom field of the schema" });
            }
        }
        let values = record
            .fields
            .iter()
            .map(|f| {
                let value = match f.name.as_str() {
                    CREATED_DATE => Value::Long(self.created_date),
                    CREATED_BY_ID => Value::String(self.created_by_id.clone()),
                    name => match self.fields.get(name).cloned().flatten() {
                        Some(text) => Value::Union(1, Box::new(Value::String(text))),
                        None => Value::Union(0, Box::new(Value::Null)),
                    },
                };
                (f.name.clone(), value)
            })
            .collect();
        Ok(Value::Record(values))
    }
}

/// The schema JSON of a custom platform event with an event-type and a payload text field,
/// shaped like the schemas Salesforce serves.
pub fn platform_event_schema_json(event_api_name: &str, event_type_field: &str, payload_field: &str) -> String {
    let custom = |name: &str| serde_json::json!({ "name": name, "type": ["null", "string"], "doc": "Data:Text", "default": null });
    serde_json::json!({
        "type": "record",
        "name": event_api_name,
        "namespace": NAMESPACE,
        "fields": [
            { "name": CREATED_DATE, "type": "long", "doc": "CreatedDate:DateTime" },
            { "name": CREATED_BY_ID, "type": "string", "doc": "CreatedBy:EntityId" },
            custom(event_type_field),
            custom(payload_field),
        ],
    })
    .to_string()
}

pub fn parse_schema(schema_json: &str) -> Result<Schema, AvroError> {
    Schema::parse_str(schema_json).map_err(AvroError::Schema)
}

/// A stable id for a schema: the hex Rabin (CRC-64-AVRO) fingerprint of its canonical form, so
/// formatting and `doc` changes keep the id while any change to the fields gives a new one.
pub fn schema_id(schema: &Schema) -> String {
    schema.fingerprint::<Rabin>().to_string()
}

/// One datum as bare Avro binary, as Pub/Sub payloads are.
pub fn encode_datum(schema: &Schema, value: Value) -> Result<Vec<u8>, AvroError> {
    apache_avro::to_avro_datum(schema, value).map_err(AvroError::Encode)
}

pub fn encode_event(schema: &Schema, record: &EventRecord) -> Result<Vec<u8>, AvroError> {
    encode_datum(schema, record.to_value(schema)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        parse_schema(&platform_event_schema_json("ns__BYOC_Event__e", "ns__EventType__c", "ns__Payload__c")).unwrap()
    }

    #[test]
    fn schema_is_a_record_named_after_the_event() {
        let Schema::Record(r) = schema() else { panic!("not a record") };
        assert_eq!(r.name.name, "ns__BYOC_Event__e");
        let names: Vec<_> = r.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["CreatedDate", "CreatedById", "ns__EventType__c", "ns__Payload__c"]);
    }

    #[test]
    fn datums_are_bare_binary_with_zigzag_union_branches() {
        let schema = schema();
        let record = EventRecord {
            created_date: 1,
            created_by_id: "u".into(),
            fields: BTreeMap::from([("ns__EventType__c".to_owned(), Some("x".to_owned()))]),
        };
        let bytes = encode_event(&schema, &record).unwrap();
        // CreatedDate 1 (zig-zag 0x02), "u", branch 1 + "x", branch 0 (null).
        assert_eq!(bytes, [0x02, 0x02, b'u', 0x02, 0x02, b'x', 0x00]);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = EventRecord { fields: BTreeMap::from([("Other__c".to_owned(), None)]), ..EventRecord::default() };
        assert!(matches!(bad.to_value(&schema()), Err(AvroError::Field { .. })));
    }

    #[test]
    fn schema_id_is_stable_and_tracks_fields() {
        let a = schema_id(&schema());
        assert_eq!(a, schema_id(&schema()));
        assert_eq!(a.len(), 16);
        let other = parse_schema(&platform_event_schema_json("ns__BYOC_Event__e", "ns__Kind__c", "ns__Payload__c"));
        assert_ne!(a, schema_id(&other.unwrap()));
    }
}
