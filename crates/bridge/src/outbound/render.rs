//! What an agent entry becomes on WhatsApp, within WhatsApp's limits: text (a long one split
//! into several messages at paragraph, sentence or word boundaries); choices as interactive
//! buttons (up to 3, titles up to 20 characters) or a list (up to 10 rows, titles up to 24),
//! else numbered text; attachments as the matching media message.

use serde_json::Value;

use super::AgentEntry;
use crate::directory::ActiveApp;
use crate::infobip::messages::{
    Body, ButtonsAction, Content, ListAction, ListRow, ListSection, ReplyButton, UrlButtonAction,
};

/// Infobip's limits (WhatsApp API `TextContent.text`, media `caption`, interactive `body`).
const MAX_TEXT: usize = 4096;
const MAX_CAPTION: usize = 3000;
const MAX_BODY: usize = 1024;
/// A URL button's label and link (`InteractiveUrlButtonActionContent`).
const MAX_BUTTON_TEXT: usize = 20;
const MAX_URL: usize = 2048;

/// A text as one message, or as several in order when it is longer than WhatsApp takes.
fn texts(text: &str) -> Vec<Content> {
    split_text(text, MAX_TEXT).into_iter().map(Content::text).collect()
}

/// Cuts `text` into parts of at most `max` characters: after a paragraph, else after a
/// sentence, else at a space (each at least halfway into the part), else where it must.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let half = window.len() / 2;
        let after = |needles: &[&str]| {
            needles.iter().filter_map(|n| window.rfind(n).map(|i| i + n.trim_end().len())).filter(|&i| i >= half).max()
        };
        let cut = after(&["\n\n"])
            .or_else(|| after(&[". ", "! ", "? ", ".\n", "!\n", "?\n", "。"]))
            .or_else(|| window.rfind(char::is_whitespace).filter(|&i| i > 0))
            .unwrap_or(limit);
        parts.push(window[..cut].trim_end().to_owned());
        rest = rest[cut..].trim_start();
    }
    if !parts.is_empty() {
        rest = rest.trim_end();
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Send(Vec<Content>),
    /// "The agent is typing…", shown on WhatsApp as a typing indicator.
    Typing,
    /// Nothing to send (an empty welcome message, a participant leaving).
    Nothing,
    /// The agent read the customer's entry of this id: show it read on WhatsApp.
    MarkRead(String),
    /// The agent sent something WhatsApp cannot carry: tell the agent why.
    Unsupported(String),
}

/// `media_url(i)` gives the link Infobip fetches the entry's `i`-th attachment from.
pub fn plan(app: &ActiveApp, entry: &AgentEntry, media_url: &dyn Fn(usize) -> String) -> Plan {
    let payload = entry.entry_payload();
    match entry.entry_type.as_str() {
        "Message" => message(payload.get("abstractMessage").unwrap_or(&Value::Null), media_url),
        "ParticipantChanged" => {
            let joined = payload.get("entries").and_then(Value::as_array).is_some_and(|e| {
                e.iter().any(|p| {
                    p.get("operation").and_then(Value::as_str) == Some("add")
                        && p.pointer("/participant/role").and_then(Value::as_str) == Some("Agent")
                })
            });
            if joined && !app.welcome_message.trim().is_empty() {
                Plan::Send(texts(&app.welcome_message))
            } else {
                Plan::Nothing
            }
        }
        // Agentforce working on an answer: the customer sees it typing.
        "TypingStartedIndicator" | "ProgressIndicator" => Plan::Typing,
        "ReadAcknowledgement" => match payload.get("acknowledgedConversationEntryIdentifier").and_then(Value::as_str) {
            Some(entry) => Plan::MarkRead(entry.to_owned()),
            None => Plan::Nothing,
        },
        // The customer's news while waiting, when the admin wrote a message for it.
        "QueuePosition" => match payload.get("position").and_then(Value::as_i64) {
            Some(position) if position > 0 && !app.waiting.queue.trim().is_empty() => {
                Plan::Send(texts(&app.waiting.queue.replace("{position}", &position.to_string())))
            }
            _ => Plan::Nothing,
        },
        "RoutingResult" => match estimated_wait_minutes(entry) {
            Some(minutes) if !app.waiting.wait.trim().is_empty() => {
                Plan::Send(texts(&app.waiting.wait.replace("{minutes}", &minutes.to_string())))
            }
            _ => Plan::Nothing,
        },
        "SessionStatusChanged" if !app.closing_message.trim().is_empty() => Plan::Send(texts(&app.closing_message)),
        "SessionStatusChanged" => Plan::Nothing,
        // An entry kind WhatsApp has nothing for reaches the agent as a failure that names it.
        other => Plan::Unsupported(format!("{other} entries cannot be shown on WhatsApp.")),
    }
}

/// The wait a successful routing estimates, in whole minutes (at least 1), when Salesforce
/// was asked to estimate it (`estimatedWaitTime.isEWTRequested`).
pub fn estimated_wait_minutes(entry: &AgentEntry) -> Option<i64> {
    let payload = entry.entry_payload();
    if payload.get("failureType").and_then(Value::as_str).is_some_and(|f| f != "None") {
        return None;
    }
    let wait = payload.get("estimatedWaitTime")?;
    if wait.get("isEWTRequested").and_then(Value::as_bool) == Some(false) {
        return None;
    }
    let seconds = wait.get("estimatedWaitTimeInSeconds").and_then(Value::as_i64).filter(|s| *s > 0)?;
    Some(((seconds + 59) / 60).max(1))
}

/// A rich link, a list of links or a web view (a survey). One link goes as WhatsApp's URL
/// button (the title on the button when it fits its 20 characters, else under the text);
/// several, or a text too long for an interactive body, as text with the URLs, where
/// WhatsApp shows a preview of the first.
fn links(content: &Value, text: &str) -> Plan {
    let text = text.trim();
    let title = content
        .pointer("/linkItem/titleItem/title")
        .or_else(|| content.pointer("/title/title"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let urls: Vec<&str> = content
        .pointer("/linkItem/url")
        .into_iter()
        .chain(content.get("url"))
        .chain(content.get("links").and_then(Value::as_array).into_iter().flatten().filter_map(|l| l.get("url")))
        .filter_map(Value::as_str)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .collect();
    let lines = |with_urls: bool| {
        let mut lines: Vec<&str> = [text, title.unwrap_or_default()].into_iter().filter(|l| !l.is_empty()).collect();
        if with_urls {
            lines.extend(&urls);
        }
        lines.join("\n")
    };
    match urls.as_slice() {
        [] => Plan::Unsupported("The link has no URL.".into()),
        [url] if url.chars().count() <= MAX_URL => {
            let (display, body) = match title {
                Some(t) if t.chars().count() <= MAX_BUTTON_TEXT && !text.is_empty() => (t.to_owned(), text.to_owned()),
                _ => ("Open link".to_owned(), lines(false)),
            };
            let body = if body.is_empty() { (*url).to_owned() } else { body };
            if body.chars().count() > MAX_BODY {
                return Plan::Send(texts(&lines(true)));
            }
            Plan::Send(vec![Content::UrlButton {
                body: Body { text: body },
                action: UrlButtonAction { display_text: display, url: (*url).to_owned() },
            }])
        }
        _ => Plan::Send(texts(&lines(true))),
    }
}

fn message(m: &Value, media_url: &dyn Fn(usize) -> String) -> Plan {
    let kind = m.get("messageType").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "StaticContentMessage" => {
            let content = m.get("staticContent").unwrap_or(&Value::Null);
            let text = content.get("text").and_then(Value::as_str).unwrap_or_default();
            match content.get("formatType").and_then(Value::as_str) {
                Some("Text") => Plan::Send(texts(text)),
                Some("Attachments") => attachments(content, text, media_url),
                Some("RichLink" | "Links" | "WebView") => links(content, text),
                other => {
                    Plan::Unsupported(format!("{} messages cannot be shown on WhatsApp.", other.unwrap_or("These")))
                }
            }
        }
        "ChoicesMessage" => choices(m.get("choices").unwrap_or(&Value::Null)),
        other => Plan::Unsupported(format!("{other} messages cannot be shown on WhatsApp.")),
    }
}

fn attachments(content: &Value, text: &str, media_url: &dyn Fn(usize) -> String) -> Plan {
    let files = content.get("attachments").and_then(Value::as_array).cloned().unwrap_or_default();
    if files.is_empty() {
        return Plan::Unsupported("The message has no attachment.".into());
    }
    let mut parts = Vec::new();
    // A text too long for a caption goes first, as messages of its own.
    let captioned = text.chars().count() <= MAX_CAPTION;
    if !captioned {
        parts.extend(texts(text));
    }
    for (i, file) in files.iter().enumerate() {
        let mime = file.get("mimeType").and_then(Value::as_str).unwrap_or_default();
        let name = file.get("name").and_then(Value::as_str).unwrap_or("file");
        // The text goes with the first file that can carry a caption (audio cannot).
        let caption = (i == 0 && captioned && !text.is_empty()).then(|| text.to_owned());
        let media_url = media_url(i);
        let part = match mime {
            "image/jpeg" | "image/png" => Content::Image { media_url, caption },
            "video/mp4" | "video/3gpp" => Content::Video { media_url, caption },
            m if m.starts_with("audio/") => {
                if let Some(caption) = caption {
                    parts.push(Content::text(caption));
                }
                Content::Audio { media_url }
            }
            _ => Content::Document { media_url, caption, filename: name.chars().take(240).collect() },
        };
        parts.push(part);
    }
    Plan::Send(parts)
}

fn choices(c: &Value) -> Plan {
    let prompt = c
        .get("text")
        .or_else(|| c.get("title"))
        .and_then(Value::as_str)
        .or_else(|| c.pointer("/message/title").and_then(Value::as_str))
        .unwrap_or("Please choose:")
        .to_owned();
    let options: Vec<(String, String)> = c
        .get("optionItems")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let id = o.get("optionIdentifier").and_then(Value::as_str)?;
            let title = o.pointer("/titleItem/title").and_then(Value::as_str).unwrap_or(id);
            Some((id.to_owned(), title.to_owned()))
        })
        .collect();
    if options.is_empty() {
        return Plan::Unsupported("The choices message has no options.".into());
    }
    let body = prompt.clone();
    let fits = |max: usize| options.iter().all(|(id, title)| title.chars().count() <= max && id.len() <= 200);
    let list_picker = c.get("formatType").and_then(Value::as_str) == Some("ListPicker");
    // A question too long for an interactive message's body is asked as numbered text.
    let short = body.chars().count() <= MAX_BODY;
    if short && options.len() <= 3 && fits(20) && !list_picker {
        let buttons = options.iter().map(|(id, title)| ReplyButton::new(id, title)).collect();
        return Plan::Send(vec![Content::Buttons { body: Body { text: body }, action: ButtonsAction { buttons } }]);
    }
    if short && options.len() <= 10 && fits(24) {
        let rows = options.iter().map(|(id, title)| ListRow { id: id.clone(), title: title.clone() }).collect();
        let action = ListAction { title: "Choose".into(), sections: vec![ListSection { rows }] };
        return Plan::Send(vec![Content::List { body: Body { text: body }, action }]);
    }
    // Too many or too long for WhatsApp's interactive messages: numbered text.
    let mut text = prompt;
    for (i, (_, title)) in options.iter().enumerate() {
        text.push_str(&format!("\n{}. {title}", i + 1));
    }
    text.push_str("\n(Reply with the number of your choice.)");
    Plan::Send(texts(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(n: usize, title_len: usize) -> Value {
        let items: Vec<Value> = (0..n)
            .map(|i| json!({ "itemType": "TitleOptionItem", "optionIdentifier": format!("o{i}"), "titleItem": { "itemType": "TitleItem", "title": format!("{i}{}", "x".repeat(title_len - 1)) } }))
            .collect();
        json!({ "formatType": "Buttons", "text": "Pick", "optionItems": items })
    }

    #[test]
    fn one_link_is_a_url_button_and_several_go_as_text() {
        let rich = |title: &str| {
            json!({ "formatType": "RichLink", "text": "Track it here",
                "linkItem": { "itemType": "TitleLinkItem", "url": "https://acme.example/t/1",
                              "titleItem": { "itemType": "TitleItem", "title": title } } })
        };
        let Plan::Send(parts) = links(&rich("Your parcel"), "Track it here") else { panic!("expected a button") };
        assert_eq!(parts[0].endpoint(), "interactive/url-button");
        assert_eq!(
            serde_json::to_value(&parts).unwrap(),
            json!([{ "body": { "text": "Track it here" },
                     "action": { "displayText": "Your parcel", "url": "https://acme.example/t/1" } }])
        );
        let long = "Where your parcel is right now";
        let Plan::Send(parts) = links(&rich(long), "Track it here") else { panic!("expected a button") };
        let v = serde_json::to_value(&parts).unwrap();
        assert_eq!(v[0]["action"]["displayText"], "Open link", "a title over 20 characters goes in the body");
        assert_eq!(v[0]["body"]["text"], format!("Track it here\n{long}"));

        let list = json!({ "formatType": "Links", "links": [{ "url": "https://acme.example/faq" },
                                                            { "url": "https://acme.example/help" }] });
        let Plan::Send(parts) = links(&list, "See") else { panic!("expected text") };
        assert_eq!(
            serde_json::to_value(&parts).unwrap(),
            json!([{ "text": "See\nhttps://acme.example/faq\nhttps://acme.example/help" }])
        );
        let one = json!({ "formatType": "Links", "links": [{ "url": "https://acme.example/faq" }] });
        let Plan::Send(parts) = links(&one, "") else { panic!("expected a button") };
        assert_eq!(serde_json::to_value(&parts).unwrap()[0]["body"]["text"], "https://acme.example/faq");
        assert!(matches!(links(&json!({ "formatType": "Links", "links": [] }), ""), Plan::Unsupported(_)));
        assert!(matches!(links(&json!({ "url": "javascript:alert(1)" }), ""), Plan::Unsupported(_)));
    }

    #[test]
    fn files_go_as_the_matching_media_message() {
        let files = |mimes: &[&str]| {
            let attachments: Vec<Value> = mimes
                .iter()
                .enumerate()
                .map(|(i, m)| json!({ "name": format!("f{i}"), "mimeType": m, "url": "x" }))
                .collect();
            json!({ "formatType": "Attachments", "text": "see", "attachments": attachments })
        };
        let link = |i: usize| format!("https://bridge.example/media/1/{i}");
        let Plan::Send(parts) =
            attachments(&files(&["image/png", "video/mp4", "audio/mpeg", "application/zip"]), "see", &link)
        else {
            panic!("expected parts")
        };
        let kinds: Vec<&str> = parts.iter().map(Content::endpoint).collect();
        assert_eq!(kinds, ["image", "video", "audio", "document"]);
        let json: Vec<Value> = parts.iter().map(|p| serde_json::to_value(p).unwrap()).collect();
        assert_eq!(json[0]["caption"], "see", "the text rides with the first file");
        assert_eq!(json[1].get("caption"), None);
        assert_eq!(json[3]["filename"], "f3");
        assert_eq!(json[2]["mediaUrl"], "https://bridge.example/media/1/2");

        // Audio carries no caption on WhatsApp, so a text goes first.
        let Plan::Send(parts) = attachments(&files(&["audio/ogg"]), "listen", &link) else { panic!("expected parts") };
        let kinds: Vec<&str> = parts.iter().map(Content::endpoint).collect();
        assert_eq!(kinds, ["text", "audio"]);
        assert_eq!(parts[0], Content::text("listen"));
    }

    #[test]
    fn long_texts_are_cut_at_paragraphs_sentences_or_words() {
        let sentence = "This sentence has exactly fifty characters in it. ";
        let text = sentence.repeat(200); // 10,000 characters
        let parts = split_text(&text, MAX_TEXT);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_TEXT && p.ends_with('.')), "cut after sentences");
        assert_eq!(parts.join(" "), text.trim_end(), "nothing lost, order kept");
        let paragraphs = format!("{}\n\n{}", "a ".repeat(1500), "b ".repeat(1500));
        let parts = split_text(&paragraphs, MAX_TEXT);
        assert!(parts[0].ends_with('a') && parts[1].starts_with('b'), "cut at the paragraph");
        let words = "word ".repeat(1000);
        assert!(split_text(&words, MAX_TEXT).iter().all(|p| p.split(' ').all(|w| w == "word")), "whole words");
        let one = "x".repeat(5000);
        assert_eq!(split_text(&one, MAX_TEXT).iter().map(|p| p.len()).collect::<Vec<_>>(), [4096, 904]);
        assert_eq!(split_text("short", MAX_TEXT), ["short"]);
        let emoji = "😀".repeat(5000);
        assert_eq!(split_text(&emoji, MAX_TEXT)[0].chars().count(), 4096, "characters, not bytes");
    }

    #[test]
    fn choices_fit_whatsapps_limits_or_fall_back_to_text() {
        let kind = |p: Plan| match p {
            Plan::Send(parts) => parts[0].endpoint(),
            _ => "none",
        };
        assert_eq!(kind(choices(&options(3, 20))), "interactive/buttons");
        assert_eq!(kind(choices(&options(4, 10))), "interactive/list");
        assert_eq!(kind(choices(&options(3, 22))), "interactive/list");
        assert_eq!(kind(choices(&options(11, 5))), "text");
        assert_eq!(kind(choices(&options(5, 30))), "text");
    }
}
