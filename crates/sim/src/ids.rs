//! Salesforce record ids and random tokens, as the simulated org makes them.

use base64::Engine;

/// The three-character suffix that turns a 15-character (case-sensitive) Salesforce id into
/// the 18-character case-insensitive form: per block of five characters, a bit per upper-case
/// letter, looked up in `A–Z0–5`.
pub fn id_checksum(id15: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    id15.as_bytes()
        .chunks(5)
        .take(3)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            ALPHABET.get(bits).copied().map_or('A', char::from)
        })
        .collect()
}

/// The 18-character form of a 15-character id.
pub fn id_18(id15: &str) -> String {
    format!("{id15}{}", id_checksum(id15))
}

/// The 15-character form (an 18-character id without its checksum).
pub fn id_15(id: &str) -> &str {
    id.get(..15).unwrap_or(id)
}

/// An unguessable token (access tokens, authorization codes): 32 random bytes, URL-safe.
pub fn random_token() -> String {
    let bytes: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_known_ids() {
        // Known pairs from Salesforce documentation samples.
        assert_eq!(id_checksum("001A0000006Vm9r"), "IAC");
        assert_eq!(id_checksum("00D000000000062"), "EAA");
        assert_eq!(id_15("00D5g00000AbCdEXYZ"), "00D5g00000AbCdE");
    }
}
