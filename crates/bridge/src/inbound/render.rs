//! What an agent should see for each WhatsApp message type. Salesforce takes text,
//! choices responses and attachments from an end user; everything else becomes readable
//! text, so no message is ever dropped for its type.

use serde_json::Value;

/// How a stored WhatsApp message goes to Salesforce.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    Text(String),
    /// The user picked one of the agent's options: answers the agent's entry `in_reply_to`.
    Choice {
        in_reply_to: String,
        option: String,
        title: String,
    },
    /// Media to download from Infobip and attach; `label` says what it was if it has to be
    /// replaced by text.
    Media {
        url: String,
        caption: Option<String>,
        label: &'static str,
    },
}

fn s<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|x| !x.is_empty())
}

/// `reply_target` resolves an outbound WhatsApp message id (the `context.id` of a button or
/// list reply) to the Salesforce entry of the agent's choices, when the bridge sent them.
pub fn render(kind: &str, raw: &Value, reply_target: Option<&str>) -> Rendered {
    let m = raw.get("message").unwrap_or(&Value::Null);
    let media = |label| Rendered::Media {
        url: s(m, "/url").unwrap_or_default().to_owned(),
        caption: s(m, "/caption").map(str::to_owned),
        label,
    };
    match kind {
        "TEXT" => {
            let text = s(m, "/text").unwrap_or_default().to_owned();
            match s(m, "/referral/headline").or_else(|| s(m, "/referral/sourceUrl")) {
                Some(ad) => Rendered::Text(format!("{text}\n\n(Started from the ad: {ad})")),
                None => Rendered::Text(text),
            }
        }
        // Notices about the customer (identity change, marketing STOP or RESUME, a file that did not upload), in words.
        "IDENTITY_CHANGE" | "MARKETING_UPDATE" | "UPLOAD_FAILED" => {
            Rendered::Text(s(m, "/text").unwrap_or("WhatsApp notice").to_owned())
        }
        "IMAGE" => media("Image"),
        "DOCUMENT" => media("Document"),
        "VIDEO" => media("Video"),
        "AUDIO" => media("Audio"),
        "VOICE" => media("Voice message"),
        "STICKER" => media("Sticker"),
        "LOCATION" => Rendered::Text(location(m)),
        "CONTACT" => Rendered::Text(contacts(m)),
        "BUTTON" => Rendered::Text(s(m, "/text").or_else(|| s(m, "/payload")).unwrap_or("(button)").to_owned()),
        "INTERACTIVE_BUTTON_REPLY" | "INTERACTIVE_LIST_REPLY" => {
            let option = s(m, "/id").unwrap_or_default().to_owned();
            let title = s(m, "/title").unwrap_or(&option).to_owned();
            match reply_target {
                Some(entry) if !option.is_empty() => Rendered::Choice { in_reply_to: entry.to_owned(), option, title },
                _ => Rendered::Text(match s(m, "/description") {
                    Some(d) => format!("{title} ({d})"),
                    None => title,
                }),
            }
        }
        "INTERACTIVE_FLOW_REPLY" => {
            let response = m.get("response").map(Value::to_string).unwrap_or_default();
            Rendered::Text(
                format!("Form submitted: {} {response}", s(m, "/text").unwrap_or_default()).trim().to_owned(),
            )
        }
        "ORDER" => Rendered::Text(order(m)),
        "REACTION" => {
            let emoji = s(m, "/emoji").unwrap_or("?");
            if s(m, "/action") == Some("REMOVED") {
                Rendered::Text(format!("(removed the reaction {emoji})"))
            } else {
                Rendered::Text(format!("(reacted {emoji} to a message)"))
            }
        }
        "INFECTED_CONTENT" => {
            Rendered::Text("(sent a file that WhatsApp blocked as unsafe; it was not delivered)".into())
        }
        other => Rendered::Text(format!("(sent a WhatsApp message of type {other}, which cannot be shown here)")),
    }
}

fn location(m: &Value) -> String {
    let lat = m.get("latitude").and_then(Value::as_f64).unwrap_or_default();
    let lng = m.get("longitude").and_then(Value::as_f64).unwrap_or_default();
    let mut lines = vec!["📍 Location".to_owned()];
    lines.extend(s(m, "/name").map(str::to_owned));
    lines.extend(s(m, "/address").map(str::to_owned));
    lines.push(format!("{lat:.6}, {lng:.6}"));
    lines.push(format!("https://www.google.com/maps/search/?api=1&query={lat:.6},{lng:.6}"));
    lines.join("\n")
}

fn contacts(m: &Value) -> String {
    let mut lines = Vec::new();
    for c in m.get("contacts").and_then(Value::as_array).into_iter().flatten() {
        let name = s(c, "/name/formattedName")
            .map(str::to_owned)
            .or_else(|| {
                let parts: Vec<&str> = ["/name/firstName", "/name/lastName"].iter().filter_map(|p| s(c, p)).collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            })
            .unwrap_or_else(|| "(no name)".into());
        lines.push(format!("👤 Contact: {name}"));
        for phone in c.get("phones").and_then(Value::as_array).into_iter().flatten() {
            if let Some(p) = s(phone, "/phone") {
                lines.push(format!("   phone: {p}"));
            }
        }
        for email in c.get("emails").and_then(Value::as_array).into_iter().flatten() {
            if let Some(e) = s(email, "/email") {
                lines.push(format!("   email: {e}"));
            }
        }
        if let Some(company) = s(c, "/org/company") {
            lines.push(format!("   company: {company}"));
        }
    }
    if lines.is_empty() { "👤 (shared an empty contact card)".into() } else { lines.join("\n") }
}

fn order(m: &Value) -> String {
    let items = m.get("productItems").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut lines = vec![format!("🛒 Order with {} item(s)", items.len())];
    for item in &items {
        lines.push(format!(
            "   {} × {} at {} {}",
            item.get("quantity").map(Value::to_string).unwrap_or_default(),
            s(item, "/productRetailerId").unwrap_or("?"),
            item.get("itemPrice").map(Value::to_string).unwrap_or_default(),
            s(item, "/currency").unwrap_or_default()
        ));
    }
    if let Some(text) = s(m, "/text") {
        lines.push(text.to_owned());
    }
    lines.join("\n")
}

/// The text the agent sees for a transcript turn: the speaker's label first.
pub fn labelled(speaker: Option<&str>, text: &str) -> String {
    match speaker {
        Some(s) if text.is_empty() => s.to_owned(),
        Some(s) => format!("{s}: {text}"),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn button_replies_answer_the_agents_choices_when_known() {
        let raw = json!({ "message": { "type": "INTERACTIVE_BUTTON_REPLY", "id": "yes", "title": "Yes", "context": { "id": "out-1" } } });
        assert_eq!(
            render("INTERACTIVE_BUTTON_REPLY", &raw, Some("entry-9")),
            Rendered::Choice { in_reply_to: "entry-9".into(), option: "yes".into(), title: "Yes".into() }
        );
        assert_eq!(render("INTERACTIVE_BUTTON_REPLY", &raw, None), Rendered::Text("Yes".into()));
    }

    #[test]
    fn unknown_types_become_readable_text() {
        let Rendered::Text(text) = render("HOLOGRAM", &json!({ "message": {} }), None) else { panic!() };
        assert!(text.contains("HOLOGRAM"));
    }

    #[test]
    fn locations_link_to_a_map() {
        let raw = json!({ "message": { "latitude": 45.8, "longitude": 15.97, "name": "Office" } });
        let Rendered::Text(text) = render("LOCATION", &raw, None) else { panic!() };
        assert!(text.contains("Office") && text.contains("45.800000, 15.970000") && text.contains("maps"));
    }
}
