//! The readable event beside a record's bytes: what `jq` and pandas read, and the rule that
//! keeps it honest. A record line's `event` is the entry `history --json` prints for the
//! record ([`HistoryEntry`]: position, version, event id, time recorded in UTC, own date and
//! every field of the event, figures as decimal strings), its kind under `kind`. The hash
//! covers the payload, not this object, so the checker never trusts it: it renders the object
//! again from the payload and refuses a line whose `event` differs (an edited readable part
//! is a forgery). A line without `event` (format 1, or stripped) is read from its bytes alone.

use gongji_domain::Event;
use gongji_log::Record;
use serde_json::Value;

use crate::HistoryEntry;

/// The record's event as the object a record line carries under `event`.
pub(super) fn event_object(record: &Record, event: &Event) -> Value {
    let mut entry = serde_json::to_value(HistoryEntry::of(record, event))
        .expect("every event serializes to JSON (history --json prints it)");
    if let Some(&schema) = record.payload.first() {
        as_schema(schema, &mut entry);
    }
    match entry {
        // `history --json` names the kind `event`; here `event` names the object itself. The
        // key is renamed where it stands, keeping the entry's order.
        Value::Object(fields) => fields
            .into_iter()
            .map(|(name, value)| match name.as_str() {
                "event" => ("kind".to_string(), value),
                _ => (name, value),
            })
            .collect(),
        other => other,
    }
}

/// The record's event, decoded from its payload; refused if the line's readable `event` (when
/// it has one) is not exactly what the payload renders to.
pub(super) fn checked_event(record: &Record, readable: Option<&Value>) -> Result<Event, String> {
    let position = record.position;
    let event = Event::decode(&record.payload)
        .map_err(|e| format!("record at position {position} breaks the decode check: {e}"))?;
    if let Some(readable) = readable {
        let rendered = event_object(record, &event);
        if *readable != rendered {
            return Err(format!(
                "record at position {position}: its readable event is not what its payload \
                 holds ({}): the readable part was edited; the payload, which the hash covers, \
                 is the record",
                first_difference("event", Some(readable), Some(&rendered)).unwrap_or_default()
            ));
        }
    }
    Ok(event)
}

/// The readable form of a payload of an older schema, as a release of that schema rendered it:
/// without the fields later schemas added (which decoding now fills in), so an archive of
/// either release, and an export of an upgraded ledger, render its old records alike. Schema 1
/// has settlements without the institution kind and `use_account`; schemas 1 and 2 have
/// account payments without their institution.
fn as_schema(schema: u8, value: &mut Value) {
    match value {
        Value::Object(fields) => {
            if schema < 2 {
                if let Some(Value::Object(settlement)) = fields.get_mut("settlement") {
                    settlement.remove("institution_kind");
                    settlement.remove("use_account");
                }
            }
            if schema < 3 && fields.get("event").and_then(Value::as_str) == Some("account_paid") {
                // Shifted out, so the keys after it stay in the order that release wrote.
                fields.shift_remove("institution");
            }
            fields
                .values_mut()
                .for_each(|value| as_schema(schema, value));
        }
        Value::Array(items) => items.iter_mut().for_each(|value| as_schema(schema, value)),
        _ => {}
    }
}

/// Where the line's readable event first differs from what the payload renders to, in words:
/// the path of the first field that differs (`event.settlement.account_paid`) and both values.
fn first_difference(path: &str, said: Option<&Value>, held: Option<&Value>) -> Option<String> {
    if said == held {
        return None;
    }
    if let (Some(Value::Object(said)), Some(Value::Object(held))) = (said, held) {
        let names = said
            .keys()
            .chain(held.keys().filter(|k| !said.contains_key(*k)));
        for name in names {
            let path = format!("{path}.{name}");
            if let Some(found) = first_difference(&path, said.get(name), held.get(name)) {
                return Some(found);
            }
        }
    }
    let show = |value: Option<&Value>| clip(&value.map_or("nothing".into(), Value::to_string));
    Some(format!(
        "`{path}`: the line says {}, the payload {}",
        show(said),
        show(held)
    ))
}

/// At most 80 characters of a value, for a message.
fn clip(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}
