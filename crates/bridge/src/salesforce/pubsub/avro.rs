//! Avro helpers for custom platform events carried by the Pub/Sub API.
//!
//! Salesforce sends each event as one bare Avro binary datum (no container-file header), written
//! with the schema that `GetSchema` returns for the event's `schema_id`. A custom platform event
//! record holds `CreatedDate` (long, epoch ms) and `CreatedById` (string), then each custom text
//! field as the union `["null","string"]`.

use std::collections::BTreeMap;

use apache_avro::rabin::Rabin;
use apache_avro::schema::{RecordSchema, Schema};
use apache_avro::types::Value;

/// Name of the system field holding the creation time (epoch milliseconds).
pub const CREATED_DATE: &str = "CreatedDate";
/// Name of the system field holding the id of the publishing user.
pub const CREATED_BY_ID: &str = "CreatedById";

/// Namespace Salesforce gives platform-event schemas.
const NAMESPACE: &str = "com.sforce.eventbus";

/// Failures of the Avro helpers.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    #[error("invalid Avro schema")]
    Schema(#[source] apache_avro::Error),
    #[error("the schema is not a record schema")]
    NotARecord,
    #[error("cannot encode the event as Avro")]
    Encode(#[source] apache_avro::Error),
    #[error("cannot decode the Avro payload")]
    Decode(#[source] apache_avro::Error),
    #[error("the payload has {0} trailing bytes after the datum")]
    TrailingBytes(usize),
    #[error("field {field}: {problem}")]
    Field { field: String, problem: &'static str },
}

/// One platform-event record: the two system fields plus custom fields that are text or null.
///
/// This is the shape the simulator publishes and the bridge reads; custom fields are keyed by API
/// name (e.g. `EventType__c`). A field the schema has but the map lacks is encoded as null.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventRecord {
    /// `CreatedDate`, epoch milliseconds.
    pub created_date: i64,
    /// `CreatedById`, the 18-character id of the publishing user.
    pub created_by_id: String,
    /// Custom fields by API name; `None` is Avro null.
    pub fields: BTreeMap<String, Option<String>>,
}

impl EventRecord {
    /// The value of a custom text field, `None` if absent or null.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(|v| v.as_deref())
    }

    /// Builds the Avro value in the field order of `schema` (required by the binary encoding).
    pub fn to_value(&self, schema: &Schema) -> Result<Value, AvroError> {
        let record = record_schema(schema)?;
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

    /// Reads a decoded record. Custom fields that are not text or null are rejected, since a
    /// BYOC event only has text fields.
    pub fn from_value(value: Value) -> Result<Self, AvroError> {
        let Value::Record(values) = value else {
            return Err(AvroError::NotARecord);
        };
        let mut record = EventRecord::default();
        for (name, value) in values {
            match (name.as_str(), value) {
                (CREATED_DATE, Value::Long(ms) | Value::TimestampMillis(ms)) => record.created_date = ms,
                (CREATED_BY_ID, Value::String(id)) => record.created_by_id = id,
                (CREATED_DATE | CREATED_BY_ID, _) => {
                    return Err(AvroError::Field { field: name, problem: "unexpected type of a system field" });
                }
                (_, value) => {
                    let text = optional_string(value)
                        .ok_or_else(|| AvroError::Field { field: name.clone(), problem: "not text or null" })?;
                    record.fields.insert(name, text);
                }
            }
        }
        Ok(record)
    }
}

/// `Some(None)` for null, `Some(Some(text))` for text (bare or in a union), `None` otherwise.
fn optional_string(value: Value) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s)),
        Value::Union(_, inner) => optional_string(*inner),
        _ => None,
    }
}

fn record_schema(schema: &Schema) -> Result<&RecordSchema, AvroError> {
    match schema {
        Schema::Record(record) => Ok(record),
        _ => Err(AvroError::NotARecord),
    }
}

/// The Avro schema JSON of a custom platform event with an event-type and a payload text field,
/// shaped like the schemas Salesforce serves (`GetSchema`).
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

/// Parses an Avro schema given as JSON text.
pub fn parse_schema(schema_json: &str) -> Result<Schema, AvroError> {
    Schema::parse_str(schema_json).map_err(AvroError::Schema)
}

/// A stable id for a schema: the hex Rabin (CRC-64-AVRO) fingerprint of its canonical form, so
/// formatting and `doc` changes keep the id while any change to the fields gives a new one.
pub fn schema_id(schema: &Schema) -> String {
    schema.fingerprint::<Rabin>().to_string()
}

/// Encodes one datum as bare Avro binary (no container header), as Pub/Sub payloads are.
pub fn encode_datum(schema: &Schema, value: Value) -> Result<Vec<u8>, AvroError> {
    apache_avro::to_avro_datum(schema, value).map_err(AvroError::Encode)
}

/// Decodes one bare Avro binary datum written with `schema`; trailing bytes are an error.
pub fn decode_datum(schema: &Schema, payload: &[u8]) -> Result<Value, AvroError> {
    let mut rest = payload;
    let value = apache_avro::from_avro_datum(schema, &mut rest, None).map_err(AvroError::Decode)?;
    if !rest.is_empty() {
        return Err(AvroError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Decodes a payload given the schema as JSON text (as `SchemaInfo.schema_json` carries it).
pub fn decode_with_schema_json(schema_json: &str, payload: &[u8]) -> Result<Value, AvroError> {
    decode_datum(&parse_schema(schema_json)?, payload)
}

/// Encodes a platform-event record with `schema`.
pub fn encode_event(schema: &Schema, record: &EventRecord) -> Result<Vec<u8>, AvroError> {
    encode_datum(schema, record.to_value(schema)?)
}

/// Decodes a platform-event payload written with `schema`.
pub fn decode_event(schema: &Schema, payload: &[u8]) -> Result<EventRecord, AvroError> {
    EventRecord::from_value(decode_datum(schema, payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        parse_schema(&platform_event_schema_json("ns__BYOC_Event__e", "ns__EventType__c", "ns__Payload__c")).unwrap()
    }

    fn record() -> EventRecord {
        EventRecord {
            created_date: 1_690_344_475_508,
            created_by_id: "005000000000001AAA".into(),
            fields: BTreeMap::from([
                ("ns__EventType__c".to_owned(), Some("Interaction".to_owned())),
                ("ns__Payload__c".to_owned(), Some(r#"{"conversationIdentifier":"c-1"}"#.to_owned())),
            ]),
        }
    }

    #[test]
    fn schema_is_a_record_named_after_the_event() {
        let Schema::Record(r) = schema() else { panic!("not a record") };
        assert_eq!(r.name.name, "ns__BYOC_Event__e");
        let names: Vec<_> = r.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["CreatedDate", "CreatedById", "ns__EventType__c", "ns__Payload__c"]);
    }

    #[test]
    fn event_round_trips_through_bare_binary() {
        let schema = schema();
        let bytes = encode_event(&schema, &record()).unwrap();
        assert_ne!(bytes.get(..4), Some(&b"Obj\x01"[..]), "no container header");
        assert_eq!(decode_event(&schema, &bytes).unwrap(), record());
    }

    #[test]
    fn missing_custom_fields_encode_as_null() {
        let schema = schema();
        let mut sparse = record();
        sparse.fields.remove("ns__Payload__c");
        let decoded = decode_event(&schema, &encode_event(&schema, &sparse).unwrap()).unwrap();
        assert_eq!(decoded.field("ns__EventType__c"), Some("Interaction"));
        assert_eq!(decoded.fields.get("ns__Payload__c"), Some(&None));
    }

    #[test]
    fn union_branch_is_written_as_a_zigzag_index() {
        let schema = schema();
        let mut nulls = record();
        nulls.fields.clear();
        let bytes = encode_event(&schema, &nulls).unwrap();
        // Two null branches (index 0, zig-zag 0x00) close the datum.
        assert_eq!(bytes.get(bytes.len() - 2..), Some(&[0u8, 0][..]));
    }

    #[test]
    fn unknown_field_is_refused() {
        let mut bad = record();
        bad.fields.insert("Other__c".into(), None);
        assert!(matches!(bad.to_value(&schema()), Err(AvroError::Field { .. })));
    }

    #[test]
    fn decode_via_schema_json_and_reject_garbage() {
        let json = platform_event_schema_json("E__e", "T__c", "P__c");
        let schema = parse_schema(&json).unwrap();
        let rec = EventRecord {
            created_date: 1,
            created_by_id: "u".into(),
            fields: BTreeMap::from([("T__c".to_owned(), Some("x".to_owned()))]),
        };
        let bytes = encode_event(&schema, &rec).unwrap();
        assert!(matches!(decode_with_schema_json(&json, &bytes), Ok(Value::Record(_))));
        let mut extra = bytes.clone();
        extra.push(7);
        assert!(matches!(decode_datum(&schema, &extra), Err(AvroError::TrailingBytes(1))));
        assert!(decode_datum(&schema, &[0xff]).is_err());
    }

    #[test]
    fn schema_id_is_stable_and_tracks_fields() {
        let a = schema_id(&schema());
        assert_eq!(a, schema_id(&schema()));
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        let other = parse_schema(&platform_event_schema_json("ns__BYOC_Event__e", "ns__Kind__c", "ns__Payload__c"));
        assert_ne!(a, schema_id(&other.unwrap()));
    }
}
