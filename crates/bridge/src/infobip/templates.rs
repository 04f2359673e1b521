//! WhatsApp templates as Infobip lists them (`TemplateApiResponse`): what a template needs
//! filled in before it can be sent, the checks on those values, the `templateData` Infobip
//! takes, and a preview of the message the customer will see.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Quick-reply payloads come back in the customer's button click; WhatsApp caps them.
pub const MAX_PAYLOAD: usize = 128;
const MAX_HEADER_TEXT: usize = 60;
const MAX_BODY_VALUE: usize = 1024;
const MAX_MEDIA_URL: usize = 2048;
const MAX_FILENAME: usize = 240;
const MAX_COPY_CODE: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    None,
    /// Text, with `placeholders` values (0 or 1).
    Text {
        text: String,
        placeholders: usize,
    },
    /// `IMAGE`, `VIDEO`, `DOCUMENT` or `GIF`: a media URL (and a filename for documents).
    Media {
        format: String,
    },
    Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Button {
    QuickReply {
        text: String,
    },
    /// A URL button; dynamic when its URL ends in `{{1}}` (the agent supplies the suffix).
    Url {
        text: String,
        url: String,
        dynamic: bool,
    },
    CopyCode {
        text: String,
    },
    /// Shown read-only: phone numbers, flows, catalogs…
    Fixed {
        kind: String,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub language: String,
    pub category: String,
    pub header: Header,
    pub body: String,
    /// The examples registered with the body's values (`{{1}}`, `{{2}}`, …), in order.
    pub body_examples: Vec<String>,
    pub footer: Option<String>,
    pub buttons: Vec<Button>,
}

/// The highest `{{n}}` in a text: the number of values it needs.
pub fn placeholders(text: &str) -> usize {
    let mut highest = 0;
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        if let Some(end) = after.find("}}") {
            if let Ok(n) = after[..end].trim().parse::<usize>() {
                highest = highest.max(n);
            }
            rest = &after[end + 2..];
        } else {
            break;
        }
    }
    highest
}

fn text_of<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

impl Template {
    /// Reads an approved template; `None` for others and for kinds an agent cannot send
    /// (authentication templates, carousels).
    pub fn approved(v: &Value) -> Option<Self> {
        if text_of(v, "/status") != Some("APPROVED") || text_of(v, "/category") == Some("AUTHENTICATION") {
            return None;
        }
        let structure = v.get("structure")?;
        if structure.get("carousel").is_some() {
            return None;
        }
        let header = match structure.pointer("/header/format").and_then(Value::as_str) {
            None => Header::None,
            Some("TEXT") => {
                let text = text_of(structure, "/header/text").unwrap_or_default().to_owned();
                Header::Text { placeholders: placeholders(&text).min(1), text }
            }
            Some("LOCATION") => Header::Location,
            Some(format) => Header::Media { format: format.to_owned() },
        };
        let buttons = structure
            .get("buttons")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|b| {
                let text = text_of(b, "/text").unwrap_or_default().to_owned();
                match text_of(b, "/type").unwrap_or_default() {
                    "QUICK_REPLY" => Button::QuickReply { text },
                    "URL" => {
                        let url = text_of(b, "/url").unwrap_or_default().to_owned();
                        Button::Url { dynamic: url.trim_end().ends_with("{{1}}"), url, text }
                    }
                    "COPY_CODE" => Button::CopyCode { text },
                    other => Button::Fixed { kind: other.to_owned(), text },
                }
            })
            .collect();
        Some(Self {
            name: text_of(v, "/name")?.to_owned(),
            language: text_of(v, "/language").unwrap_or_default().to_owned(),
            category: text_of(v, "/category").unwrap_or_default().to_owned(),
            header,
            body: text_of(structure, "/body/text").unwrap_or_default().to_owned(),
            body_examples: structure
                .pointer("/body/examples")
                .and_then(Value::as_array)
                .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            footer: text_of(structure, "/footer/text").map(str::to_owned),
            buttons,
        })
    }

    pub fn key(&self) -> String {
        format!("{}|{}", self.name, self.language)
    }

    /// Does the search text match the name or the category?
    pub fn matches(&self, search: &str) -> bool {
        let s = search.trim().to_lowercase();
        s.is_empty() || self.name.to_lowercase().contains(&s) || self.category.to_lowercase().contains(&s)
    }

    pub fn body_placeholders(&self) -> usize {
        placeholders(&self.body)
    }
}

/// What the agent typed, by form field name (`header_text`, `header_url`,
/// `header_filename`, `body_1`…, `button_1`… for the n-th button's parameter).
pub type Inputs = BTreeMap<String, String>;

/// A value WhatsApp accepts in a placeholder: no line breaks or tabs, no long runs of spaces.
pub fn single_line(value: &str) -> Result<(), String> {
    if value.contains(['\n', '\r', '\t']) || value.contains("     ") {
        Err("must be one line, without tabs or more than 4 spaces in a row".into())
    } else {
        Ok(())
    }
}

fn https_url(value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some() && value.len() <= MAX_MEDIA_URL => Ok(()),
        _ => Err("must be an https:// address".into()),
    }
}

/// Checks the inputs; on success, the `templateData` to send. Every problem is returned
/// with the field it concerns.
pub fn template_data(t: &Template, inputs: &Inputs) -> Result<Value, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let get = |name: &str| inputs.get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
    let mut require = |name: String, value: &str, max: usize, check: &dyn Fn(&str) -> Result<(), String>| {
        if value.is_empty() {
            problems.push((name, "is required".to_owned()));
        } else if value.chars().count() > max {
            problems.push((name, format!("must be at most {max} characters")));
        } else if let Err(p) = check(value) {
            problems.push((name, p));
        }
    };
    let mut data = json!({});
    let mut body = Vec::new();
    for i in 1..=t.body_placeholders() {
        let value = get(&format!("body_{i}"));
        require(format!("body_{i}"), &value, MAX_BODY_VALUE, &single_line);
        body.push(value);
    }
    data["body"] = json!({ "placeholders": body });
    match &t.header {
        Header::Text { placeholders: 1, .. } => {
            let value = get("header_text");
            require("header_text".into(), &value, MAX_HEADER_TEXT, &single_line);
            data["header"] = json!({ "type": "TEXT", "placeholder": value });
        }
        Header::Media { format } => {
            let url = get("header_url");
            require("header_url".into(), &url, MAX_MEDIA_URL, &https_url);
            let mut header = json!({ "type": format, "mediaUrl": url });
            if format == "DOCUMENT" {
                let name = get("header_filename");
                require("header_filename".into(), &name, MAX_FILENAME, &|_| Ok(()));
                header["filename"] = json!(name);
            }
            data["header"] = header;
        }
        _ => {}
    }
    let mut buttons = Vec::new();
    for (i, b) in t.buttons.iter().enumerate() {
        let field = format!("button_{}", i + 1);
        let value = get(&field);
        match b {
            Button::QuickReply { text } => {
                // The payload comes back when the customer taps; the label is a fine default.
                let payload = if value.is_empty() { text.clone() } else { value };
                require(field, &payload, MAX_PAYLOAD, &|_| Ok(()));
                buttons.push(json!({ "type": "QUICK_REPLY", "parameter": payload }));
            }
            Button::Url { url, dynamic: true, .. } => {
                let base = url.trim_end().trim_end_matches("{{1}}").to_owned();
                require(field, &value, MAX_MEDIA_URL, &|v| {
                    if v.contains(char::is_whitespace) {
                        return Err("must not contain spaces".into());
                    }
                    url::Url::parse(&format!("{base}{v}"))
                        .map(|_| ())
                        .map_err(|_| "does not make a valid address".into())
                });
                buttons.push(json!({ "type": "URL", "parameter": value }));
            }
            Button::CopyCode { .. } => {
                require(field, &value, MAX_COPY_CODE, &|_| Ok(()));
                buttons.push(json!({ "type": "COPY_CODE", "parameter": value }));
            }
            _ => {}
        }
    }
    if !buttons.is_empty() {
        data["buttons"] = json!(buttons);
    }
    if problems.is_empty() { Ok(data) } else { Err(problems) }
}

/// Fills `{{n}}` with the n-th value, or leaves `[n]` where none is given yet.
fn fill(text: &str, value: impl Fn(usize) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| after[..end].trim().parse::<usize>().ok().map(|n| (n, end))) {
            Some((n, end)) => {
                out.push_str(&value(n).filter(|v| !v.is_empty()).unwrap_or_else(|| format!("[{n}]")));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The message as the customer will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub header: Option<String>,
    pub body: String,
    pub footer: Option<String>,
    pub buttons: Vec<String>,
}

pub fn preview(t: &Template, inputs: &Inputs) -> Preview {
    let value = |name: String| inputs.get(&name).map(|v| v.trim().to_owned());
    let header = match &t.header {
        Header::None => None,
        Header::Text { text, .. } => Some(fill(text, |_| value("header_text".into()))),
        Header::Media { format } => Some(format!("[{}]", format.to_lowercase())),
        Header::Location => Some("[location]".into()),
    };
    Preview {
        header,
        body: fill(&t.body, |n| value(format!("body_{n}"))),
        footer: t.footer.clone(),
        buttons: t
            .buttons
            .iter()
            .map(|b| match b {
                Button::QuickReply { text } | Button::Url { text, .. } | Button::CopyCode { text } => text.clone(),
                Button::Fixed { text, .. } => text.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        Template::approved(&json!({
            "name": "order_update", "language": "en", "status": "APPROVED", "category": "UTILITY",
            "structure": {
                "header": { "format": "TEXT", "text": "Order {{1}}" },
                "body": { "text": "Hi {{1}}, your order {{2}} has shipped." },
                "footer": { "text": "Acme" },
                "buttons": [
                    { "type": "URL", "text": "Track", "url": "https://acme.example/track/{{1}}" },
                    { "type": "QUICK_REPLY", "text": "Thanks" },
                    { "type": "PHONE_NUMBER", "text": "Call us", "phoneNumber": "+441234" }
                ]
            }
        }))
        .unwrap()
    }

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_complete_form_becomes_template_data_in_registered_order() {
        let data = template_data(
            &template(),
            &inputs(&[("header_text", "42"), ("body_1", "Ann"), ("body_2", "42"), ("button_1", "A-42")]),
        )
        .unwrap();
        assert_eq!(
            data,
            json!({ "body": { "placeholders": ["Ann", "42"] }, "header": { "type": "TEXT", "placeholder": "42" },
                    "buttons": [{ "type": "URL", "parameter": "A-42" }, { "type": "QUICK_REPLY", "parameter": "Thanks" }] })
        );
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        let long = "x".repeat(MAX_PAYLOAD + 1);
        let problems = template_data(
            &template(),
            &inputs(&[("body_1", "two\nlines"), ("button_1", "has space"), ("button_2", &long)]),
        )
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["body_1", "body_2", "header_text", "button_1", "button_2"]);
        assert!(problems[4].1.contains("128"));
    }

    #[test]
    fn the_preview_fills_what_is_known() {
        let p = preview(&template(), &inputs(&[("body_1", "Ann")]));
        assert_eq!(p.body, "Hi Ann, your order [2] has shipped.");
        assert_eq!(p.header.as_deref(), Some("Order [1]"));
        assert_eq!(p.buttons, ["Track", "Thanks", "Call us"]);
    }

    #[test]
    fn document_headers_need_an_https_url_and_a_file_name() {
        let t = Template::approved(
            &json!({ "name": "invoice", "language": "en", "status": "APPROVED", "category": "UTILITY",
            "structure": { "header": { "format": "DOCUMENT" }, "body": { "text": "Your invoice" } } }),
        )
        .unwrap();
        let problems = template_data(&t, &inputs(&[("header_url", "http://plain.example/x.pdf")])).unwrap_err();
        assert_eq!(problems.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), ["header_url", "header_filename"]);
        let data =
            template_data(&t, &inputs(&[("header_url", "https://acme.example/x.pdf"), ("header_filename", "x.pdf")]))
                .unwrap();
        assert_eq!(
            data["header"],
            json!({ "type": "DOCUMENT", "mediaUrl": "https://acme.example/x.pdf", "filename": "x.pdf" })
        );
        assert_eq!(data["body"], json!({ "placeholders": [] }));
    }

    #[test]
    fn only_approved_sendable_templates_are_offered() {
        let mut t = json!({ "name": "x", "language": "en", "status": "REJECTED", "category": "UTILITY", "structure": { "body": { "text": "x" } } });
        assert!(Template::approved(&t).is_none());
        t["status"] = json!("APPROVED");
        assert!(Template::approved(&t).is_some());
        t["category"] = json!("AUTHENTICATION");
        assert!(Template::approved(&t).is_none());
    }
}
