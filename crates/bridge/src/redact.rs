//! What of a vendor's words or an HTTP client's error may reach a log or a stored reason.
//! Vendors quote the request in validation errors (a customer's message, a phone number), and
//! an HTTP client's error names the URL with its query (a SOQL filter, a media signature).

/// A phone number as pages and errors show it: its last four digits only.
pub fn phone(number: &str) -> String {
    format!("…{}", number.get(number.len().saturating_sub(4)..).unwrap_or(number))
}

/// A vendor's error text with what it quotes taken out: a quoted text becomes `"…"` unless it
/// is a field name (one identifier-like word, as in `'title' was unexpected`), and a run of six
/// or more digits (a phone number, a card) becomes `#…`. Codes and the vendor's own words stay.
/// At most 300 characters.
pub fn vendor_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(300));
    let mut chars = text.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        // An apostrophe inside a word (`don't`) opens nothing.
        let opens = closing_quote(c).filter(|_| !previous.is_alphanumeric());
        if let Some(close) = opens {
            let mut quoted = String::new();
            for inner in chars.by_ref() {
                if inner == close {
                    break;
                }
                quoted.push(inner);
            }
            if is_field_name(&quoted) {
                out.push('"');
                out.push_str(&quoted);
                out.push('"');
            } else {
                out.push_str("\"…\"");
            }
            previous = close;
        } else if c.is_ascii_digit() {
            let mut digits = c.to_string();
            while let Some(d) = chars.next_if(|d| d.is_ascii_digit()) {
                digits.push(d);
            }
            out.push_str(if digits.len() >= 6 { "#…" } else { &digits });
            previous = '0';
        } else {
            out.push(c);
            previous = c;
        }
        if out.chars().count() >= 300 {
            out.push('…');
            break;
        }
    }
    out
}

/// `title`, `content.text`, `entries[0].payload`: a name, not somebody's words.
fn is_field_name(quoted: &str) -> bool {
    let mut chars = quoted.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$' || c == '/')
        && quoted.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.[]/$-".contains(c))
        && quoted.chars().filter(char::is_ascii_digit).count() < 6
}

fn closing_quote(c: char) -> Option<char> {
    match c {
        '"' => Some('"'),
        '\'' => Some('\''),
        '`' => Some('`'),
        '“' => Some('”'),
        '‘' => Some('’'),
        '«' => Some('»'),
        _ => None,
    }
}

/// An HTTP client's error without its URL, with the chain of causes (`connection refused`).
pub fn http_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_long_numbers_are_taken_out_codes_and_fields_stay() {
        assert_eq!(
            vendor_text(r#""my card is 4111 1111" is longer than 4096 characters at /entries/0/text"#),
            r#""…" is longer than 4096 characters at /entries/0/text"#
        );
        assert_eq!(vendor_text("10045: Invalid 'to' for +447700900123"), "10045: Invalid \"to\" for +#…");
        assert_eq!(
            vendor_text("Additional properties are not allowed ('title' was unexpected)"),
            "Additional properties are not allowed (\"title\" was unexpected)"
        );
        assert_eq!(vendor_text("'hello there' isn't valid"), "\"…\" isn't valid");
        assert_eq!(vendor_text("unclosed \"secret text"), "unclosed \"…\"");
        assert_eq!(
            vendor_text("Unrecognized field “title” (class SelectedOption)"),
            "Unrecognized field \"title\" (class SelectedOption)"
        );
        assert!(vendor_text(&"x".repeat(1000)).chars().count() <= 301);
    }
}
