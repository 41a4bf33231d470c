//! `reseal`: what anyone holding an archive can do, written down once so the checks behind the
//! chain can be tested: recompute every record's hash from its fields, every record's
//! `prev_hash`, its readable `event` (where the line has one and the payload decodes), the
//! running chain of every line and the manifest, so the archive's hashes all match its contents
//! again. The chain is no obstacle to a forger; the invariant fold is what
//! refuses a forged archive (see docs/audit.md). Used by the forged-archive tests and the
//! `archive` fuzz target, never by the ledger itself.

use serde_json::Value;

use super::readable::event_object;
use super::{chain_next, hex, json_hash, record_of_line, Header, RecordLine};
use gongji_domain::{Event, PolicyVersion};
use gongji_log::Record;

/// The archive `text` with every hash, chain and manifest recomputed from its contents. Lines
/// that do not read as archive lines are kept as they are; fields the checker does not know
/// are kept too (so a test can add them after the chain is made to match).
pub fn reseal(text: &[u8]) -> Vec<u8> {
    let mut chain = [0u8; 32];
    let mut previous: Option<[u8; 32]> = None;
    let mut first: Option<String> = None;
    let (mut records, mut policies, mut complete) = (0u64, 0u64, false);
    let mut out = Vec::with_capacity(text.len());
    for (index, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        let Ok(mut value) = serde_json::from_slice::<Value>(line) else {
            out.extend_from_slice(line);
            continue;
        };
        if index == 0 {
            if let Ok(header) = serde_json::from_value::<Header>(value.clone()) {
                complete = header.complete;
                chain = chain_next(&chain, &json_hash(&header));
            }
        } else if let Some(policy) = value.get("policy") {
            if let Ok(policy) = serde_json::from_value::<PolicyVersion>(policy.clone()) {
                chain = chain_next(&chain, &json_hash(&policy));
                value["chain"] = Value::from(hex(&chain));
                policies += 1;
            }
        } else if let Some(fields) = value.get_mut("record") {
            if let Some(record) = reseal_record(fields, previous.unwrap_or([0; 32])) {
                let hash = record.hash;
                if let (Some(readable), Ok(event)) =
                    (value.get_mut("event"), Event::decode(&record.payload))
                {
                    *readable = event_object(&record, &event);
                }
                chain = chain_next(&chain, &hash);
                value["chain"] = Value::from(hex(&chain));
                first.get_or_insert_with(|| hex(&hash));
                previous = Some(hash);
                records += 1;
            }
        } else if value.get("manifest").is_some() {
            value["manifest"] = serde_json::json!({
                "records": records,
                "policies": policies,
                "first_hash": first,
                "last_hash": previous.map(|h| hex(&h)),
                "chain": hex(&chain),
                "complete": complete,
            });
        }
        out.extend_from_slice(value.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Sets a record line's `prev_hash` and `hash` to match its fields; the record it now holds.
fn reseal_record(fields: &mut Value, prev_hash: [u8; 32]) -> Option<Record> {
    fields["prev_hash"] = Value::from(hex(&prev_hash));
    fields["hash"] = Value::from(hex(&[0; 32]));
    let mut known = fields.clone();
    if let Some(object) = known.as_object_mut() {
        let names = [
            "position",
            "stream",
            "version",
            "event_id",
            "recorded_at_micros",
        ];
        let names = [&names[..], &["unit_end", "prev_hash", "hash", "payload"]].concat();
        object.retain(|name, _| names.contains(&name.as_str()));
    }
    let line: RecordLine = serde_json::from_value(known).ok()?;
    let mut record = record_of_line(&line)?;
    record.hash = record.recompute_hash();
    fields["hash"] = Value::from(hex(&record.hash));
    Some(record)
}
