//! Decoding the Avro payloads of platform events carried by the Pub/Sub API.
//!
//! Salesforce sends each event as one bare Avro binary datum (no container-file header), written
//! with the schema that `GetSchema` returns for the event's `schema_id`. A custom platform event
//! record holds `CreatedDate` (long, epoch ms) and `CreatedById` (string), then each custom text
//! field as the union `["null","string"]`.

use std::collections::BTreeMap;

use apache_avro::schema::Schema;
use apache_avro::types::Value;

/// Name of the system field holding the creation time (epoch milliseconds).
pub const CREATED_DATE: &str = "CreatedDate";
/// Name of the system field holding the id of the publishing user.
pub const CREATED_BY_ID: &str = "CreatedById";

/// Failures of decoding.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    #[error("invalid Avro schema")]
    Schema(#[source] apache_avro::Error),
    #[error("the datum is not a record")]
    NotARecord,
    #[error("cannot decode the Avro payload")]
    Decode(#[source] apache_avro::Error),
    #[error("the payload has {0} trailing bytes after the datum")]
    TrailingBytes(usize),
    #[error("field {field}: {problem}")]
    Field { field: String, problem: &'static str },
}

/// One platform-event record: the two system fields plus custom fields that are text or null,
/// keyed by API name (e.g. `EventType__c`).
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

/// Parses an Avro schema given as JSON text (as `SchemaInfo.schema_json` carries it).
pub fn parse_schema(schema_json: &str) -> Result<Schema, AvroError> {
    Schema::parse_str(schema_json).map_err(AvroError::Schema)
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

/// Decodes a payload given the schema as JSON text.
pub fn decode_with_schema_json(schema_json: &str, payload: &[u8]) -> Result<Value, AvroError> {
    decode_datum(&parse_schema(schema_json)?, payload)
}

/// Decodes a platform-event payload written with `schema`.
pub fn decode_event(schema: &Schema, payload: &[u8]) -> Result<EventRecord, AvroError> {
    EventRecord::from_value(decode_datum(schema, payload)?)
}

/// The field names a change event's `changedFields`, `nulledFields` or `diffFields` stand for.
///
/// Salesforce writes them as bitmaps: `0x…` where bit `i` (least significant first) is the
/// record's `i`-th field, and `<position>-0x…` for the fields of the nested record at that
/// position (named `Parent.Child`). Entries that are names already are kept as they are.
pub fn expand_field_bitmaps(schema: &Schema, entries: &[String]) -> Vec<String> {
    let Schema::Record(record) = schema else { return entries.to_vec() };
    let names: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
    let mut out = Vec::new();
    for entry in entries {
        let (parent, bitmap) = match entry.split_once('-') {
            Some((position, bits)) if bits.starts_with("0x") => (position.parse::<usize>().ok(), bits),
            _ => (None, entry.as_str()),
        };
        let Some(hex) = bitmap.strip_prefix("0x") else {
            out.push(entry.clone());
            continue;
        };
        let (prefix, fields): (String, Vec<&str>) = match parent {
            Some(p) => {
                let nested = record.fields.get(p).and_then(|f| match &f.schema {
                    Schema::Record(r) => Some(r),
                    Schema::Union(u) => u.variants().iter().find_map(|v| match v {
                        Schema::Record(r) => Some(r),
                        _ => None,
                    }),
                    _ => None,
                });
                match nested {
                    Some(r) => (
                        format!("{}.", names.get(p).copied().unwrap_or_default()),
                        r.fields.iter().map(|f| f.name.as_str()).collect(),
                    ),
                    None => continue,
                }
            }
            None => (String::new(), names.clone()),
        };
        // Hex digits from the right: the last digit holds fields 0 to 3.
        for (digit_index, digit) in hex.chars().rev().enumerate() {
            let Some(value) = digit.to_digit(16) else { break };
            for bit in 0..4 {
                if value & (1 << bit) != 0
                    && let Some(name) = fields.get(digit_index * 4 + bit)
                {
                    out.push(format!("{prefix}{name}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schema as Salesforce serves one for a custom platform event.
    const SCHEMA: &str = r#"{"type":"record","name":"BYOC_Event__e","namespace":"com.sforce.eventbus","fields":[
        {"name":"CreatedDate","type":"long","doc":"CreatedDate:DateTime"},
        {"name":"CreatedById","type":"string","doc":"CreatedBy:EntityId"},
        {"name":"EventType__c","type":["null","string"],"doc":"Data:Text","default":null},
        {"name":"Payload__c","type":["null","string"],"doc":"Data:Text","default":null}]}"#;

    /// The bytes of a datum, written by hand from the Avro specification: longs are zig-zag
    /// varints, strings a length then UTF-8, a union its branch index then the value.
    fn datum(payload: Option<&str>) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.push((s.len() as u8) << 1);
            out.extend_from_slice(s.as_bytes());
        }
        let mut out = vec![0x02]; // CreatedDate = 1
        string(&mut out, "005x");
        out.push(0x02); // EventType__c: branch 1 (string)
        string(&mut out, "Interaction");
        match payload {
            Some(p) => {
                out.push(0x02);
                string(&mut out, p);
            }
            None => out.push(0x00),
        }
        out
    }

    #[test]
    fn an_event_written_as_the_specification_says_is_decoded() {
        let schema = parse_schema(SCHEMA).unwrap();
        let record = decode_event(&schema, &datum(Some("{}"))).unwrap();
        assert_eq!(record.created_date, 1);
        assert_eq!(record.created_by_id, "005x");
        assert_eq!(record.field("EventType__c"), Some("Interaction"));
        assert_eq!(record.field("Payload__c"), Some("{}"));
        let sparse = decode_event(&schema, &datum(None)).unwrap();
        assert_eq!(sparse.fields.get("Payload__c"), Some(&None));
    }

    #[test]
    fn trailing_bytes_and_garbage_are_refused() {
        let schema = parse_schema(SCHEMA).unwrap();
        let mut extra = datum(None);
        extra.push(7);
        assert!(matches!(decode_datum(&schema, &extra), Err(AvroError::TrailingBytes(1))));
        assert!(decode_datum(&schema, &[0xff]).is_err());
        assert!(matches!(decode_with_schema_json(SCHEMA, &datum(None)), Ok(Value::Record(_))));
    }

    #[test]
    fn change_event_bitmaps_name_their_fields() {
        let schema = parse_schema(
            r#"{"type":"record","name":"E","fields":[
                {"name":"ChangeEventHeader","type":{"type":"record","name":"H","fields":[{"name":"a","type":"string"}]}},
                {"name":"Name","type":["null","string"]},
                {"name":"Address","type":["null",{"type":"record","name":"A","fields":[
                    {"name":"Street","type":["null","string"]},{"name":"City","type":["null","string"]}]}]},
                {"name":"Status","type":["null","string"]},
                {"name":"F4","type":"string"},{"name":"F5","type":"string"},{"name":"F6","type":"string"},
                {"name":"F7","type":"string"},{"name":"F8","type":"string"}]}"#,
        )
        .unwrap();
        let expand = |entries: &[&str]| {
            expand_field_bitmaps(&schema, &entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(expand(&["0x8"]), ["Status"]);
        assert_eq!(expand(&["0x10A"]), ["Name", "Status", "F8"]);
        assert_eq!(expand(&["2-0x2"]), ["Address.City"]);
        assert_eq!(expand(&["Status"]), ["Status"], "names are kept");
    }

    #[test]
    fn non_text_custom_fields_are_refused() {
        let value = Value::Record(vec![("Count__c".into(), Value::Long(3))]);
        assert!(matches!(EventRecord::from_value(value), Err(AvroError::Field { .. })));
    }
}
