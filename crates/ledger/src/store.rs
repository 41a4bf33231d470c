//! How projected entities are kept in the log's key-value store: one key per entity, the value
//! its compact binary form. Nothing here decides anything.

use std::collections::BTreeSet;

use bincode::{Decode, Encode};
use gongji_domain::event::{SchemaVersion, EVENT_SCHEMA_VERSION};
use gongji_domain::state::{Fund, FundName, Member, Tx};
use gongji_domain::{EntityKey, EntityRef, FundKind, PolicyVersion, State};
use gongji_log::{Kv, LogError};

use crate::LedgerError;

const ENTITY_BYTES_MAX: usize = 64 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<ENTITY_BYTES_MAX>()
}

/// Key prefixes of members and transactions, which [`all_entries`] encodes apart.
const MEMBER_PREFIX: &[u8] = b"m/";
const TX_PREFIX: &[u8] = b"t/";

pub(crate) fn key_bytes(key: &EntityKey) -> Vec<u8> {
    ref_bytes(key.as_ref())
}

/// [`key_bytes`] of a borrowed key.
pub(crate) fn ref_bytes(key: EntityRef<'_>) -> Vec<u8> {
    match key {
        EntityRef::Member(id) => prefixed(MEMBER_PREFIX, id),
        EntityRef::Fund(kind, region) => prefixed(
            match kind {
                FundKind::Pooled => b"f/p/",
                FundKind::LargeAmount => b"f/l/",
            },
            region,
        ),
        EntityRef::Tx(id) => prefixed(TX_PREFIX, id),
        EntityRef::Policies(region) => prefixed(b"p/", region),
        EntityRef::RegionMember(region, member) => prefixed(&region_prefix(region), member),
        EntityRef::Relative(relative) => prefixed(b"b/", relative),
        EntityRef::Accounts(region) => prefixed(b"a/", region),
    }
}

fn prefixed(prefix: &[u8], id: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(prefix.len() + id.len());
    bytes.extend_from_slice(prefix);
    bytes.extend_from_slice(id.as_bytes());
    bytes
}

/// Region member keys: `r/` region, a zero byte (ids hold no control characters), the member.
fn region_prefix(region: &str) -> Vec<u8> {
    let mut bytes = b"r/".to_vec();
    bytes.extend_from_slice(region.as_bytes());
    bytes.push(0);
    bytes
}

/// The event schema version the stored entities were encoded in (a settlement or a policy
/// version is encoded as events hold it). Written whenever the store is cleared, so every
/// entity stored since is of that version. A store without it, or of another version, is not
/// folded onto: the ledger clears it and folds the log from its first record.
const SCHEMA_KEY: &[u8] = b"s/schema";

/// Whether the store's entities are of this build's schema version.
pub(crate) fn schema_is_current(kv: &Kv) -> Result<bool, LedgerError> {
    Ok(kv.get(SCHEMA_KEY)?.as_deref() == Some(&[EVENT_SCHEMA_VERSION][..]))
}

/// Whether `key` is the schema mark rather than an entity.
pub(crate) fn is_schema_mark(key: &[u8]) -> bool {
    key == SCHEMA_KEY
}

/// Drops every projection and the checkpoint, and marks the store as of this build's schema.
pub(crate) fn clear(kv: &Kv) -> Result<(), LedgerError> {
    kv.clear()?;
    kv.apply_without_checkpoint(vec![(
        SCHEMA_KEY.to_vec(),
        Some(vec![EVENT_SCHEMA_VERSION]),
    )])?;
    Ok(())
}

fn encode<T: Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, config()).expect("encoding into memory cannot fail")
}

fn decode<T: Decode<SchemaVersion>>(key: EntityRef<'_>, bytes: &[u8]) -> Result<T, LedgerError> {
    bincode::decode_from_slice_with_context(bytes, config(), SchemaVersion::CURRENT)
        .map(|(value, _)| value)
        .map_err(|e| {
            LedgerError::Projection(format!(
                "projection {key:?} does not decode ({e}); run `gongji rebuild`"
            ))
        })
}

/// Loads `key` from the store into `state` unless it is there already. Returns whether the
/// entity exists. Builds no owned key for an entity `state` holds (the fold asks for every
/// entity of every event, nearly all of them held).
pub(crate) fn load(kv: &Kv, state: &mut State, key: EntityRef<'_>) -> Result<bool, LedgerError> {
    let present = match key {
        EntityRef::Member(id) => state.members.contains_key(id),
        EntityRef::Fund(kind, region) => state.funds.contains_key(&FundName(kind, region)),
        EntityRef::Tx(id) => state.txs.contains_key(id),
        EntityRef::Policies(region) => state.policies.contains_key(region),
        EntityRef::RegionMember(region, member) => state
            .region_members
            .get(region)
            .is_some_and(|m| m.contains(member)),
        EntityRef::Relative(relative) => state.relatives.contains_key(relative),
        EntityRef::Accounts(region) => state.accounts.contains_key(region),
    };
    if present {
        return Ok(true);
    }
    // A changed entity the cache no longer holds was deleted (an unbinding, a member leaving a
    // region): the store still has its old value until the change is stored.
    if state.is_dirty(key) {
        return Ok(false);
    }
    let Some(bytes) = kv.get(&ref_bytes(key))? else {
        return Ok(false);
    };
    match key {
        EntityRef::Member(id) => {
            let member = decode::<Member>(key, &bytes)?;
            state.members.insert(id.to_string(), member);
        }
        EntityRef::Fund(kind, region) => {
            let fund = decode::<Fund>(key, &bytes)?;
            state.funds.insert((kind, region.to_string()), fund);
        }
        EntityRef::Tx(id) => {
            let tx = decode::<Tx>(key, &bytes)?;
            state.txs.insert(id.to_string(), tx);
        }
        EntityRef::Policies(region) => {
            let versions = decode::<Vec<PolicyVersion>>(key, &bytes)?;
            state.policies.insert(region.to_string(), versions);
        }
        EntityRef::RegionMember(region, member) => {
            state
                .region_members
                .entry(region.to_string())
                .or_default()
                .insert(member.to_string());
        }
        EntityRef::Accounts(region) => {
            let fund = decode::<Fund>(key, &bytes)?;
            state.accounts.insert(region.to_string(), fund);
        }
        EntityRef::Relative(relative) => {
            let holder = String::from_utf8(bytes).map_err(|_| {
                LedgerError::Projection(format!("binding of {relative} is not UTF-8"))
            })?;
            state.relatives.insert(relative.to_string(), holder);
        }
    }
    Ok(true)
}

/// Every member id of a region, from the store's region index, merged into `state`.
pub(crate) fn load_region_members(
    kv: &Kv,
    state: &mut State,
    region: &str,
) -> Result<BTreeSet<String>, LedgerError> {
    let prefix = region_prefix(region);
    let mut members = BTreeSet::new();
    for entry in kv.scan_prefix(&prefix) {
        let (key, _) = entry?;
        let member = String::from_utf8(key[prefix.len()..].to_vec()).map_err(|_| {
            LedgerError::Projection(format!("region index key of {region} is not UTF-8"))
        })?;
        // A member who left the region since the store was written is still in it there.
        if !state.is_dirty(EntityRef::RegionMember(region, &member)) {
            members.insert(member);
        }
    }
    let known = state.region_members.entry(region.to_string()).or_default();
    known.extend(members.iter().cloned());
    Ok(known.clone())
}

/// The id of every transaction the store keeps.
pub(crate) fn stored_tx_ids(kv: &Kv) -> Result<Vec<String>, LedgerError> {
    let mut ids = Vec::new();
    for entry in kv.scan_prefix(TX_PREFIX) {
        let (key, _) = entry?;
        let id = String::from_utf8(key[TX_PREFIX.len()..].to_vec())
            .map_err(|_| LedgerError::Projection("a transaction key is not UTF-8".into()))?;
        ids.push(id);
    }
    Ok(ids)
}

/// A projection entry as the store keeps it: key and value bytes.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// Every entity `state` holds, with the members, transactions and region-index entries of
/// `more`, as the store would keep them, in key order. Each kind of entity has a key prefix of
/// its own, so the kinds are encoded apart and laid end to end in the prefixes' order; members
/// and transactions, nearly all of a ledger, are encoded on threads of their own while the rest
/// is encoded here.
///
/// A member or transaction in two of the states is refused: a fold on several workers leaves
/// one there only from a log forged to record a transaction on two members' streams, which a
/// fold in one state (`audit verify`, the catch-up) refuses too.
pub(crate) fn all_entries(state: &State, more: &[State]) -> Result<Vec<Entry>, LedgerError> {
    let states = || std::iter::once(state).chain(more);
    let (members, txs, rest) = std::thread::scope(|scope| {
        let members =
            scope.spawn(|| keyed_by_id(MEMBER_PREFIX, "member", states().map(|s| &s.members)));
        let txs = scope.spawn(|| keyed_by_id(TX_PREFIX, "transaction", states().map(|s| &s.txs)));
        let entries = |keys: Vec<EntityKey>| -> Vec<Entry> {
            in_key_order(
                keys.iter()
                    .filter_map(|key| entity_value(state, key).map(|value| (key_bytes(key), value)))
                    .collect(),
            )
        };
        let accounts = entries(
            state
                .accounts
                .keys()
                .cloned()
                .map(EntityKey::Accounts)
                .collect(),
        );
        let relatives = entries(
            state
                .relatives
                .keys()
                .cloned()
                .map(EntityKey::Relative)
                .collect(),
        );
        let funds = entries(
            state
                .funds
                .keys()
                .map(|(kind, region)| EntityKey::Fund(*kind, region.clone()))
                .collect(),
        );
        let policies = entries(
            state
                .policies
                .keys()
                .cloned()
                .map(EntityKey::Policies)
                .collect(),
        );
        // A region-index entry's value is empty: its key is all it holds.
        let region_members = in_key_order(
            states()
                .flat_map(|s| &s.region_members)
                .flat_map(|(region, members)| {
                    let prefix = region_prefix(region);
                    members
                        .iter()
                        .map(move |member| (prefixed(&prefix, member), Vec::new()))
                })
                .collect(),
        );
        let members = members.join().expect("encoding members does not panic");
        let txs = txs.join().expect("encoding transactions does not panic");
        (
            members,
            txs,
            [accounts, relatives, funds, policies, region_members],
        )
    });
    // Prefixes in order: a/ b/ f/ m/ p/ r/ t/.
    let [accounts, relatives, funds, policies, region_members] = rest;
    let (members, txs) = (members?, txs?);
    let kinds = [
        accounts,
        relatives,
        funds,
        members,
        policies,
        region_members,
        txs,
    ];
    let mut all = Vec::with_capacity(kinds.iter().map(Vec::len).sum());
    for kind in kinds {
        all.extend(kind);
    }
    debug_assert!(all.is_sorted_by(|a, b| a.0 < b.0));
    Ok(all)
}

/// `entries` (whose keys are distinct) sorted by key, when they are not in order already.
fn in_key_order(mut entries: Vec<Entry>) -> Vec<Entry> {
    if !entries.is_sorted_by(|a, b| a.0 < b.0) {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    entries
}

/// Maps keyed by id as store entries (`prefix` and the id), in key order; an id in two of the
/// maps is refused (see [`all_entries`]), `what` naming it.
fn keyed_by_id<'s, V: Encode + 's>(
    prefix: &[u8],
    what: &str,
    maps: impl Iterator<Item = &'s gongji_domain::state::SpreadMap<V>>,
) -> Result<Vec<Entry>, LedgerError> {
    let mut items: Vec<(&String, &V)> = maps.flatten().collect();
    items.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if let Some(pair) = items.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(LedgerError::Projection(format!(
            "{what} {} is folded from two members' streams: the log was not written by the \
             ledger; `gongji audit verify` names the record",
            pair[0].0
        )));
    }
    Ok(items
        .into_iter()
        .map(|(id, value)| (prefixed(prefix, id), encode(value)))
        .collect())
}

/// How the store keeps the entity `key` of `state`; None if the state does not hold it.
fn entity_value(state: &State, key: &EntityKey) -> Option<Vec<u8>> {
    match key {
        EntityKey::Member(id) => state.members.get(id).map(encode),
        EntityKey::Fund(kind, region) => state.funds.get(&FundName(*kind, region)).map(encode),
        EntityKey::Tx(id) => state.txs.get(id).map(encode),
        EntityKey::Policies(region) => state.policies.get(region).map(encode),
        // Index entries that left the state (a transfer, an unbinding) are deleted.
        EntityKey::RegionMember(region, member) => state
            .region_members
            .get(region)
            .is_some_and(|m| m.contains(member))
            .then(Vec::new),
        EntityKey::Relative(relative) => {
            state.relatives.get(relative).map(|h| h.as_bytes().to_vec())
        }
        EntityKey::Accounts(region) => state.accounts.get(region).map(encode),
    }
}

/// Entities encoded ahead of their store, a slice between each of a stream's groups, so that
/// the store itself (once a second in the service) has little left to encode on the writer's
/// thread. An entity encoded here has left `state.dirty`; changed again, it is dirty again,
/// and its later encoding, written after this one, wins. Deletions are never encoded ahead:
/// they stay dirty, which is how `load` knows the store's old value is gone.
#[derive(Default)]
pub(crate) struct Encoded {
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// What `writes` holds: the cache keeps these until the write holding them has landed.
    pub(crate) keys: gongji_domain::state::KeySet,
    /// What the running write deletes: kept dirty (so `load` does not read the store's old
    /// value) until that write is joined, instead of waiting for it.
    deleting: Vec<EntityKey>,
}

impl Encoded {
    /// Encodes dirty entities of `state` until `budget` has passed or none is left to encode.
    pub(crate) fn encode_some(&mut self, state: &mut State, budget: std::time::Duration) {
        const CLOCK_EVERY: usize = 64;
        let started = std::time::Instant::now();
        let mut done = Vec::new();
        for (seen, key) in state.dirty.iter().enumerate() {
            if seen % CLOCK_EVERY == CLOCK_EVERY - 1 && started.elapsed() >= budget {
                break;
            }
            if let Some(value) = entity_value(state, key) {
                self.writes.push((key_bytes(key), Some(value)));
                done.push(key.clone());
            }
        }
        for key in done {
            state.dirty.remove(key.as_ref());
            self.keys.insert(key);
        }
    }

    /// Every write encoded ahead, then every entity still dirty: the whole batch to store,
    /// later writes of a key after earlier ones. Leaves nothing encoded ahead, and `state`
    /// dirty with only what the batch deletes, until [`Encoded::landed`].
    pub(crate) fn take_with_dirty(&mut self, state: &mut State) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut writes = std::mem::take(&mut self.writes);
        for key in std::mem::take(&mut state.dirty) {
            let value = entity_value(state, &key);
            let deleted = value.is_none();
            writes.push((key_bytes(&key), value));
            if deleted {
                self.deleting.push(key);
            }
        }
        state.dirty.extend(self.deleting.iter().cloned());
        self.keys.clear();
        writes
    }

    /// The write started by the last [`take_with_dirty`](Encoded::take_with_dirty) has
    /// landed: what it deleted and is still absent needs no write any more, unless it was
    /// encoded ahead since (present again meanwhile, so its absence now is a new deletion).
    pub(crate) fn landed(&mut self, state: &mut State) {
        for key in self.deleting.drain(..) {
            if entity_value(state, &key).is_none() && !self.keys.contains(&key) {
                state.dirty.remove(key.as_ref());
            }
        }
    }
}

/// The writes that store every dirty entity of `state`, encoded one at a time as the store
/// takes them (no second copy of a large batch).
pub(crate) fn dirty_writes(state: &State) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> + '_ {
    state
        .dirty
        .iter()
        .map(|key| (key_bytes(key), entity_value(state, key)))
}

/// Every stored member in id order (the store's key order), decoded one at a time.
pub(crate) fn each_stored_member(
    kv: &Kv,
    each: &mut dyn FnMut(String, Member) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    for entry in kv.scan_prefix(MEMBER_PREFIX) {
        let (key, value) = entry?;
        let id = String::from_utf8(key[MEMBER_PREFIX.len()..].to_vec())
            .map_err(|_| LedgerError::Projection("a stored member's key is not UTF-8".into()))?;
        let member: Member = decode(EntityRef::Member(&id), &value)?;
        each(id, member)?;
    }
    Ok(())
}

pub(crate) fn get_member(kv: &Kv, id: &str) -> Result<Option<Member>, LedgerError> {
    let key = EntityRef::Member(id);
    kv.get(&ref_bytes(key))?
        .map(|b| decode(key, &b))
        .transpose()
}

pub(crate) fn decode_fund(key: &[u8], bytes: &[u8]) -> Result<Fund, LedgerError> {
    bincode::decode_from_slice(bytes, config())
        .map(|(value, _)| value)
        .map_err(|e| {
            LedgerError::Projection(format!(
                "projection {} does not decode ({e}); run `gongji rebuild`",
                String::from_utf8_lossy(key)
            ))
        })
}

pub(crate) fn get_accounts(kv: &Kv, region: &str) -> Result<Option<Fund>, LedgerError> {
    let key = EntityRef::Accounts(region);
    kv.get(&ref_bytes(key))?
        .map(|b| decode(key, &b))
        .transpose()
}

pub(crate) fn get_fund(kv: &Kv, kind: FundKind, region: &str) -> Result<Option<Fund>, LedgerError> {
    let key = EntityRef::Fund(kind, region);
    kv.get(&ref_bytes(key))?
        .map(|b| decode(key, &b))
        .transpose()
}

pub(crate) fn get_policies(kv: &Kv, region: &str) -> Result<Vec<PolicyVersion>, LedgerError> {
    let key = EntityRef::Policies(region);
    Ok(kv
        .get(&ref_bytes(key))?
        .map(|b| decode(key, &b))
        .transpose()?
        .unwrap_or_default())
}

impl From<LogError> for LedgerError {
    fn from(error: LogError) -> LedgerError {
        LedgerError::Log(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gongji_domain::state::Fund;
    use gongji_domain::Money;

    fn fund(inflow_fen: i64) -> Fund {
        Fund {
            inflow: Money::from_fen(inflow_fen),
            outflow: Money::from_fen(0),
        }
    }

    fn payment(member: &str) -> gongji_domain::state::Tx {
        gongji_domain::state::Tx {
            member: member.into(),
            date: gongji_domain::Day::from_ymd(2024, 3, 1).expect("a day"),
            kind: gongji_domain::state::TxKind::Payment {
                beneficiary: member.into(),
                year: 2024,
                purpose: gongji_domain::types::Purpose::Pharmacy,
                amount: Money::from_fen(100),
                region: "500000".into(),
            },
            reversed_on: None,
        }
    }

    /// Entries of states kept apart are those of one state holding them all, in key order (the
    /// funds' map orders pooled before large-amount, their keys the other way round).
    #[test]
    fn the_entries_of_states_kept_apart_are_those_of_one_state() {
        let mut first = State::default();
        let mut second = State::default();
        let mut whole = State::default();
        for (state, ids) in [(&mut first, ["P2", "P9"]), (&mut second, ["P1", "P5"])] {
            for id in ids {
                state.txs.insert(id.into(), payment(id));
                whole.txs.insert(id.into(), payment(id));
            }
        }
        for (kind, inflow) in [(FundKind::Pooled, 5), (FundKind::LargeAmount, 7)] {
            first.funds.insert((kind, "500000".into()), fund(inflow));
            whole.funds.insert((kind, "500000".into()), fund(inflow));
        }
        for (state, region, member) in [(&mut first, "50", "M2"), (&mut second, "500000", "M1")] {
            for state in [state, &mut whole] {
                state
                    .region_members
                    .entry(region.into())
                    .or_default()
                    .insert(member.into());
            }
        }
        let apart = all_entries(&first, std::slice::from_ref(&second)).expect("entries");
        let together = all_entries(&whole, &[]).expect("entries");
        assert_eq!(apart, together);
        let keys: Vec<_> = apart.iter().map(|(k, _)| k.clone()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 4 + 2 + 2);
    }

    /// A transaction in two workers' states (a log forged to put it on two members' streams)
    /// is refused, not written once from whichever state came last.
    #[test]
    fn a_transaction_in_two_states_is_refused() {
        let mut first = State::default();
        let mut second = State::default();
        first.txs.insert("P7".into(), payment("M1"));
        second.txs.insert("P7".into(), payment("M2"));
        let refused = all_entries(&first, std::slice::from_ref(&second))
            .expect_err("one transaction in two states");
        assert!(
            refused
                .to_string()
                .contains("transaction P7 is folded from two members' streams"),
            "{refused}"
        );
    }

    #[test]
    fn encoding_ahead_leaves_deletions_dirty_and_a_later_change_wins() {
        let mut state = State::default();
        let accounts = EntityKey::Accounts("500000".into());
        let gone = EntityKey::Relative("R1".into());
        state.accounts.insert("500000".into(), fund(100));
        state.dirty.insert(accounts.clone());
        state.dirty.insert(gone.clone()); // dirty and absent: a deletion
        let mut encoded = Encoded::default();
        encoded.encode_some(&mut state, std::time::Duration::from_secs(60));
        assert_eq!(
            state.dirty.iter().collect::<Vec<_>>(),
            vec![&gone],
            "a deletion stays dirty, so `load` still knows the store's value is gone"
        );
        assert!(encoded.keys.contains(&accounts));
        // Changed again after its encoding: dirty again, and written after it.
        state.accounts.insert("500000".into(), fund(250));
        state.dirty.insert(accounts.clone());
        let writes = encoded.take_with_dirty(&mut state);
        let of_accounts: Vec<_> = writes
            .iter()
            .filter(|(key, _)| *key == key_bytes(&accounts))
            .map(|(_, value)| value.clone())
            .collect();
        assert_eq!(
            of_accounts,
            vec![Some(encode(&fund(100))), Some(encode(&fund(250)))]
        );
        assert!(writes.contains(&(key_bytes(&gone), None)));
        assert!(encoded.writes.is_empty(), "nothing left encoded ahead");
        // Until its write lands, the deletion stays dirty: absent, whatever the store holds.
        assert_eq!(state.dirty.iter().collect::<Vec<_>>(), vec![&gone]);
        encoded.landed(&mut state);
        assert!(state.dirty.is_empty());
    }

    /// An unbinding of `R1` taken into a write that has not landed, then `R1` bound again
    /// while that write runs.
    fn deletion_running_then_bound_again() -> (State, Encoded, EntityKey) {
        let mut state = State::default();
        let bound = EntityKey::Relative("R1".into());
        state.dirty.insert(bound.clone());
        let mut encoded = Encoded::default();
        encoded.take_with_dirty(&mut state);
        state.relatives.insert("R1".into(), "H1".into());
        state.dirty.insert(bound.clone());
        (state, encoded, bound)
    }

    #[test]
    fn a_deletion_made_again_after_its_write_stays_dirty_once_that_write_lands() {
        // Present again: it must be written after the deletion lands.
        let (mut state, mut encoded, bound) = deletion_running_then_bound_again();
        encoded.landed(&mut state);
        assert!(state.dirty.contains(bound.as_ref()));
    }

    #[test]
    fn a_deletion_encoded_over_and_made_again_while_its_write_runs_is_written_again() {
        // While the deletion's write runs: bound again and encoded ahead, then unbound again.
        let (mut state, mut encoded, bound) = deletion_running_then_bound_again();
        encoded.encode_some(&mut state, std::time::Duration::from_secs(60));
        state.relatives.remove("R1");
        state.dirty.insert(bound.clone());
        encoded.landed(&mut state);
        let writes = encoded.take_with_dirty(&mut state);
        assert_eq!(
            writes.last(),
            Some(&(key_bytes(&bound), None)),
            "the second unbinding is written after the binding encoded ahead"
        );
    }
}
