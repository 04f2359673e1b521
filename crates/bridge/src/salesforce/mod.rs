//! Salesforce: identifiers, and the Pub/Sub API types and Avro helpers in [`pubsub`]; the OAuth
//! JWT bearer flow, the Interaction Service API and the Pub/Sub subscriber join this module in
//! later work.

pub mod auth;
pub mod certificate;
pub mod interactions;
pub mod platform_event;
pub mod setup;

/// The three-character suffix that turns a 15-character (case-sensitive) Salesforce id into
/// the 18-character case-insensitive form.
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

/// The 15-character form the Interaction Service API wants in its `OrgId` header.
pub fn org_id_15(org_id: &str) -> &str {
    org_id.get(..15).unwrap_or(org_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_known_ids() {
        // Known pair from Salesforce documentation samples.
        assert_eq!(id_checksum("001A0000006Vm9r"), "IAC");
        assert_eq!(id_checksum("00D000000000062"), "EAA");
    }

    #[test]
    fn org_id_is_cut_to_15() {
        assert_eq!(org_id_15("00D5g00000AbCdEXYZ"), "00D5g00000AbCdE");
        assert_eq!(org_id_15("00D5g00000AbCdE"), "00D5g00000AbCdE");
    }
}
