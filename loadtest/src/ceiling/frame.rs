//! The frames the ceiling server broadcasts: a `postgres_changes` INSERT of a row of the
//! harness's public table, in the shape the server sends for `realtime-public` (keys in
//! the server's order, the same columns and value formats; checked against a frame the
//! server sent), so both scenarios push frames of the same size — within a byte or two —
//! and the harness parses both the same way.

use crate::latency::format_timestamp_micros;

/// The subscription id the frames carry (a UUID's length, as the server's).
const SUBSCRIPTION_ID: &str = "00000000-0000-4000-8000-000000000001";
/// The owner of every row (a UUID, as `realtime-public`'s single owner).
const OWNER: &str = "00000000-0000-4000-8000-000000000002";
/// Added to the sequence number to make the frame's LSN: seven hex digits, as a fresh
/// cluster's LSNs have.
const LSN_BASE: u64 = 0x100_0000;
/// The table's columns as the server lists them.
const COLUMNS: &str = r#"[{"name":"id","type":"int8"},{"name":"user_id","type":"uuid"},{"name":"seq","type":"int8"},{"name":"written_at","type":"timestamptz"},{"name":"payload","type":"text"}]"#;

/// A frame template for one table and payload size; [`ChangeFrame::render`] fills in the
/// sequence number and the timestamps once per message.
#[derive(Debug, Clone)]
pub struct ChangeFrame {
    /// Everything before the commit timestamp.
    head: String,
    /// The row's `payload` value, already JSON-escaped (it is all `x`).
    payload: String,
    /// Everything after the record.
    tail: String,
}

impl ChangeFrame {
    /// The template for rows of `table` with a `payload_bytes`-long payload column.
    pub fn new(table: &str, payload_bytes: usize) -> Self {
        let head = format!(
            r#"{{"type":"postgres_changes","channel":"c1","subscription_ids":["{SUBSCRIPTION_ID}"],"payload":{{"columns":{COLUMNS},"commit_timestamp":""#
        );
        let tail = format!(r#","schema":"public","table":"{table}","type":"INSERT"}}}}"#);
        ChangeFrame {
            head,
            payload: "x".repeat(payload_bytes),
            tail,
        }
    }

    /// The frame of message `seq`, committed at `micros` (µs since the epoch): the
    /// harness measures latency from it, and `seq` doubles as the row id and orders the
    /// LSN, so the ledger checks order as it does for real changes.
    pub fn render(&self, seq: u64, micros: i64) -> String {
        let at = format_timestamp_micros(micros);
        let mut out = String::with_capacity(self.head.len() + self.payload.len() + 256);
        out.push_str(&self.head);
        out.push_str(&at);
        let lsn = LSN_BASE + seq;
        out.push_str(&format!(
            r#"","lsn":"0/{lsn:X}","old_record":null,"record":{{"id":{seq},"payload":""#
        ));
        out.push_str(&self.payload);
        out.push_str(&format!(
            r#"","seq":{seq},"user_id":"{OWNER}","written_at":"{}"}}"#,
            at.replace('Z', "+00:00")
        ));
        out.push_str(&self.tail);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::parse_timestamp_micros;
    use crate::ledger::parse_lsn;

    #[test]
    fn frames_are_change_frames_of_the_right_size() {
        let template = ChangeFrame::new("lt_public_0123abcd", 64);
        let micros = 1_795_370_400_123_456;
        let text = template.render(42, micros);
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(frame["type"], "postgres_changes");
        let payload = &frame["payload"];
        assert_eq!(payload["type"], "INSERT");
        assert_eq!(payload["table"], "lt_public_0123abcd");
        assert_eq!(payload["record"]["seq"], 42);
        assert_eq!(payload["record"]["payload"].as_str().unwrap().len(), 64);
        assert_eq!(
            parse_lsn(payload["lsn"].as_str().unwrap()),
            Some(LSN_BASE + 42)
        );
        assert_eq!(
            parse_timestamp_micros(payload["commit_timestamp"].as_str().unwrap()),
            Some(micros)
        );
        // Size grows with the payload and the sequence number only.
        let bigger = ChangeFrame::new("lt_public_0123abcd", 2000).render(42, micros);
        assert_eq!(bigger.len(), text.len() + 2000 - 64);
        assert_eq!(template.render(420, micros).len(), text.len() + 2);
    }

    /// A frame the server sent for an INSERT into the harness's public table (64-byte
    /// payload), captured from a release build on 2026-11-29.
    const SERVER_FRAME: &str = r#"{"type":"postgres_changes","channel":"c1","subscription_ids":["a41c9303-6c8b-4ef9-968b-3c9d8c7e2fde"],"payload":{"columns":[{"name":"id","type":"int8"},{"name":"user_id","type":"uuid"},{"name":"seq","type":"int8"},{"name":"written_at","type":"timestamptz"},{"name":"payload","type":"text"}],"commit_timestamp":"2026-11-29T09:03:07.635081Z","lsn":"0/1A3F428","old_record":null,"record":{"id":1,"payload":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","seq":42,"user_id":"4588c492-4f3f-44ac-ad38-edf2f629bac9","written_at":"2026-11-29T09:03:07.63486+00:00"},"schema":"public","table":"lt_public_0123abcd","type":"INSERT"}}"#;

    /// The frame's structure: keys in textual order, value contents blanked (strings
    /// become `""`, digits vanish).
    fn shape(text: &str) -> String {
        let mut out = String::new();
        let (mut in_string, mut escaped) = (false, false);
        let mut string = String::new();
        let mut closed: Option<String> = None;
        for c in text.chars() {
            if in_string {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        in_string = false;
                        closed = Some(std::mem::take(&mut string));
                        continue;
                    }
                    c => string.push(c),
                }
                continue;
            }
            if let Some(s) = closed.take() {
                // A key keeps its name; a value is blanked.
                out.push('"');
                if c == ':' {
                    out.push_str(&s);
                }
                out.push('"');
            }
            match c {
                '"' => in_string = true,
                '0'..='9' => {}
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn frames_have_the_shape_and_size_of_the_servers() {
        let ours = ChangeFrame::new("lt_public_0123abcd", 64).render(42, 1_795_370_400_123_456);
        assert_eq!(shape(&ours), shape(SERVER_FRAME));
        assert!(
            shape(&ours).contains(
                r#"{"type":"","channel":"","subscription_ids":[""],"payload":{"columns":"#
            )
        );
        // Row id 42 against 1, six fraction digits in written_at against five.
        assert_eq!(ours.len(), SERVER_FRAME.len() + 2);
    }
}
