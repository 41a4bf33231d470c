//! A nation of regions: each pooling region's ledger on a store of its own or shared, the
//! region map that places them, and what runs across them.
//!
//! The map is a JSON object, region code to store: a directory (relative to the map file; each
//! region's ledger is the directory `STORE/REGION` in it, so regions sharing a store keep their
//! own log, chain and digest) or a PostgreSQL URI (the region's ledger is the log named by the
//! region code in that database). [`Regions`] opens the ledgers the map places and keeps the
//! member directory: which region holds each member now, built at open from each region's own
//! index of its members and kept from the outcomes after that (rebuildable: it is never stored).
//!
//! A transfer between two regions is two events in two ledgers under one id: the source's
//! `TransferSent` (the account leaves with its balance, in transit) and the destination's
//! `TransferReceived` (the account arrives whole). The relay ([`relay`]) carries what the
//! sources sent and the destinations have not received; it keeps no state of its own, and a
//! destination refuses a transfer it already holds, so each lands exactly once whatever is
//! killed between the two. `apply` (module `apply`) routes each line to the region that holds
//! what it names and relays its own transfers at once; [`national`] verifies every region and
//! matches every transfer received with the one sent.

mod apply;
mod national;
mod relay;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use gongji_domain::state::Member;
use gongji_domain::{Event, Stream};
use gongji_log::LogOptions;

use crate::{Ledger, LedgerError};

pub use apply::{apply_routed, RoutedError, RoutedSink, RoutedSummary};
pub use national::{
    check_archives, national_replay, national_verify, NationalReplay, NationalReport, RegionCheck,
    RegionReplay, TransitCheck,
};
pub use relay::{relay, RelayCursor, RelayReport};

/// Most bytes of a map file read.
const MAP_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Where a region's ledger is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Store {
    /// The directory of the region's ledger: `STORE/REGION`.
    Dir(PathBuf),
    /// A PostgreSQL database; the region's log is named by the region's code.
    Postgres(String),
}

impl Store {
    /// How messages name the store: a URI's password masked.
    pub fn describe(&self) -> String {
        match self {
            Store::Dir(dir) => dir.display().to_string(),
            Store::Postgres(uri) => mask_password(uri),
        }
    }
}

/// The region map: region code -> where its ledger is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionMap {
    pub file: PathBuf,
    pub regions: BTreeMap<String, Store>,
}

impl RegionMap {
    /// Reads and checks the map file: a JSON object of region codes (non-empty, at most 64
    /// bytes, letters, digits, `-` and `_`) to stores (a relative or absolute directory, or a
    /// `postgres://` or `postgresql://` URI). Every problem names the file and the region.
    pub fn load(file: &Path) -> Result<RegionMap, String> {
        use std::io::Read;
        let opened =
            std::fs::File::open(file).map_err(|e| format!("region map {}: {e}", file.display()))?;
        let mut text = String::new();
        opened
            .take(MAP_BYTES_MAX + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("region map {}: {e}", file.display()))?;
        if text.len() as u64 > MAP_BYTES_MAX {
            return Err(format!(
                "region map {} is over {MAP_BYTES_MAX} bytes",
                file.display()
            ));
        }
        let base = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        RegionMap::parse(&text, file, &base)
    }

    /// The map in `text`, its relative directories taken from `base`.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<RegionMap, String> {
        let named = file.display();
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("region map {named} is not JSON: {e}"))?;
        let serde_json::Value::Object(object) = value else {
            return Err(format!(
                "region map {named} must be a JSON object of region codes to stores, like {{\"500000\": \"cq\"}}"
            ));
        };
        if object.is_empty() {
            return Err(format!("region map {named} places no region"));
        }
        let mut regions = BTreeMap::new();
        for (region, store) in object {
            if let Err(why) = check_region_code(&region) {
                return Err(format!("region map {named}: region \"{region}\": {why}"));
            }
            let Some(store) = store.as_str() else {
                return Err(format!(
                    "region map {named}: region {region}: the store must be a directory or a postgres:// URI, not {store}"
                ));
            };
            let store = if store.starts_with("postgres://") || store.starts_with("postgresql://") {
                Store::Postgres(store.to_string())
            } else if store.is_empty() {
                return Err(format!(
                    "region map {named}: region {region}: the store is empty"
                ));
            } else {
                Store::Dir(base.join(store).join(&region))
            };
            regions.insert(region, store);
        }
        Ok(RegionMap {
            file: file.to_path_buf(),
            regions,
        })
    }

    /// The stores the map names, each once, with the regions on each.
    pub fn stores(&self) -> BTreeMap<String, Vec<String>> {
        let mut stores: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (region, store) in &self.regions {
            let name = match store {
                Store::Dir(dir) => dir
                    .parent()
                    .map_or_else(|| dir.display().to_string(), |p| p.display().to_string()),
                Store::Postgres(uri) => mask_password(uri),
            };
            stores.entry(name).or_default().push(region.clone());
        }
        stores
    }
}

/// A region code as the map may name it (it becomes a directory's name and a log's name).
fn check_region_code(region: &str) -> Result<(), String> {
    if region.is_empty() || region.len() > gongji_domain::command::ID_BYTES_MAX {
        return Err(format!(
            "a region code is 1 to {} bytes",
            gongji_domain::command::ID_BYTES_MAX
        ));
    }
    if !region
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("a region code holds only letters, digits, '-' and '_'".into());
    }
    Ok(())
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`.
fn mask_password(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return uri.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => uri.to_string(),
    }
}

/// How a region's ledger is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The only writer (created if there is none yet: `apply`, `relay`).
    Write,
    /// Read-only, beside a writer (queries, `audit verify`); the ledger must exist.
    Read,
}

/// Opens `region`'s ledger in `store`.
pub fn open_region(
    region: &str,
    store: &Store,
    access: Access,
    options: &LogOptions,
) -> Result<Ledger, LedgerError> {
    match (store, access) {
        (Store::Dir(dir), Access::Write) => {
            std::fs::create_dir_all(dir.parent().unwrap_or(dir)).map_err(|e| {
                LedgerError::Projection(format!("cannot create {}: {e}", dir.display()))
            })?;
            Ledger::open_with(dir, options.clone())
        }
        (Store::Dir(dir), Access::Read) => Ledger::open_read_only(dir, options.clone()),
        (Store::Postgres(uri), Access::Write) => Ledger::open_postgres(uri, region),
        (Store::Postgres(uri), Access::Read) => Ledger::open_postgres_read_only(uri, region),
    }
}

/// Whether `region`'s ledger exists in `store` (creates nothing).
pub fn region_exists(region: &str, store: &Store) -> Result<bool, LedgerError> {
    match store {
        Store::Dir(dir) => Ledger::exists_in(dir),
        Store::Postgres(uri) => Ledger::postgres_exists(uri, region),
    }
}

/// Every region's ledger the map places, opened as writers, and the member directory.
pub struct Regions {
    pub map: RegionMap,
    pub ledgers: BTreeMap<String, Ledger>,
    /// Which region holds each member now.
    pub directory: HashMap<String, String>,
    /// Which region's ledger holds each transaction.
    pub txs: TxDirectory,
    /// Told (region, durable end) by a routed apply each time a region's ledger made lines
    /// durable, before their outcomes are handed on (a service raises what its readers wait
    /// for with it).
    pub durable: Option<DurableHook>,
}

/// Which region's ledger holds each transaction (a claim or an account payment), and its
/// member: built when the map is opened from each region's stored transactions, kept by a
/// routed apply from the lines it routes. A transaction id is the map's: a claim or payment
/// whose id another region's ledger holds is refused (`duplicate_id`), and a reversal is sent
/// to the ledger holding its transaction without asking every region.
#[derive(Debug, Default)]
pub struct TxDirectory {
    /// Id -> (region, member).
    pub held: HashMap<String, (String, String)>,
    /// Ids a routed apply sent to a region whose ledger may have refused the line (its
    /// outcome not known yet): asked of that ledger before they are relied on to refuse
    /// another. Emptied at the apply's end, the refused ones taken out of `held`.
    pub routed: HashSet<String>,
    /// Ids two regions' ledgers both hold (from before ids were the map's): (region, member)
    /// of each. A reversal of one is refused.
    pub ambiguous: HashMap<String, Vec<(String, String)>>,
}

/// See [`Regions::durable`].
pub type DurableHook = std::sync::Arc<dyn Fn(&str, u64) + Send + Sync>;

impl Regions {
    /// Opens every region's ledger as its writer (creating those not there yet) and builds the
    /// member directory from each region's index of its members. A member two regions both
    /// hold is an error naming both: the map is not one nation's ledger then.
    pub fn open(map: RegionMap, options: &LogOptions) -> Result<Regions, LedgerError> {
        let mut ledgers = BTreeMap::new();
        for (region, store) in &map.regions {
            let ledger = open_region(region, store, Access::Write, options).map_err(|e| {
                LedgerError::Projection(format!(
                    "region {region} (store {}): {e}",
                    store.describe()
                ))
            })?;
            let mut ledger = ledger;
            ledger.keep_region(region);
            ledgers.insert(region.clone(), ledger);
        }
        let mut directory = HashMap::new();
        let mut txs = TxDirectory::default();
        for (region, ledger) in &mut ledgers {
            for (id, member) in ledger.tx_members()? {
                let here = (region.clone(), member);
                if let Some(ambiguous) = txs.ambiguous.get_mut(&id) {
                    ambiguous.push(here);
                } else if let Some(other) = txs.held.insert(id.clone(), here.clone()) {
                    txs.held.remove(&id);
                    txs.ambiguous.insert(id, vec![other, here]);
                }
            }
            for member in ledger.region_member_ids(region)? {
                if let Some(other) = directory.insert(member.clone(), region.clone()) {
                    return Err(LedgerError::Projection(format!(
                        "member {member} is held by both region {other} and region {region}"
                    )));
                }
            }
        }
        Ok(Regions {
            map,
            ledgers,
            directory,
            txs,
            durable: None,
        })
    }

    /// Closes every region's ledger; the first error is returned after all are closed.
    pub fn close(self) -> Result<(), LedgerError> {
        let mut first = None;
        for (_, ledger) in self.ledgers {
            if let Err(error) = ledger.close() {
                first.get_or_insert(error);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Where a member's account is now, as the map's ledgers say.
#[derive(Clone, Debug, PartialEq)]
pub enum Located {
    /// Held by `region`'s ledger: the account as it holds it.
    Held {
        region: String,
        account: Box<Member>,
    },
    /// Sent by `from_region`'s ledger and not received by `to_region`'s yet.
    InTransit {
        transfer: String,
        from_region: String,
        to_region: String,
    },
    Unknown,
}

/// Finds the region holding `member`, asking each region's ledger read-only (beside a
/// writer): see [`Located::among`].
pub fn locate(map: &RegionMap, options: &LogOptions, member: &str) -> Result<Located, LedgerError> {
    let mut copies = Vec::new();
    for (region, store) in &map.regions {
        if !region_exists(region, store)? {
            continue;
        }
        let mut ledger = open_region(region, store, Access::Read, options)?;
        if let Some(copy) = ledger.member_copy(member)? {
            copies.push((region.clone(), copy));
        }
    }
    Ok(Located::among(member, copies))
}

impl Located {
    /// Where `member` is, from the copies of the account the regions' ledgers hold
    /// (region, copy): the one whose account is in its own region holds it; failing that, the
    /// latest copy a region sent on says where it is in transit to.
    pub fn among(member: &str, copies: Vec<(String, Member)>) -> Located {
        let mut sent: Option<(String, Member)> = None;
        for (region, copy) in copies {
            if copy.region == region {
                return Located::Held {
                    region,
                    account: Box::new(copy),
                };
            }
            if sent
                .as_ref()
                .is_none_or(|(_, s)| s.past_regions.len() < copy.past_regions.len())
            {
                sent = Some((region, copy));
            }
        }
        match sent {
            Some((from_region, copy)) => Located::InTransit {
                transfer: gongji_domain::event::transfer_id(member, copy.past_regions.len()),
                from_region,
                to_region: copy.region,
            },
            None => Located::Unknown,
        }
    }
}

/// What a region's ledger records as owed to others: transfers sent, fund events owed (with
/// the position of the record that owes each).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outbound {
    pub transfers: Vec<SentTransfer>,
    pub owed: Vec<(u64, gongji_domain::event::Owed)>,
}

/// A transfer a source's log recorded as sent.
#[derive(Clone, Debug, PartialEq)]
pub struct SentTransfer {
    pub transfer: String,
    pub member: String,
    pub from_region: String,
    pub to_region: String,
    pub balance: gongji_domain::Money,
    pub position: u64,
    pub account: Box<Member>,
}

impl Ledger {
    /// Makes this ledger `region`'s in a region map: another region's fund events its
    /// decisions make are recorded as owed to that region's ledger.
    pub fn keep_region(&mut self, region: &str) {
        self.own_region = Some(region.to_string());
    }

    /// The members this ledger's index holds in `region` now.
    pub fn region_member_ids(&mut self, region: &str) -> Result<Vec<String>, LedgerError> {
        self.store_unstored()?;
        let ids = crate::store::load_region_members(&self.kv, &mut self.state, region)?;
        Ok(ids.into_iter().collect())
    }

    /// The policy versions of `region` this ledger holds (its own, or copies of another
    /// region's).
    pub fn policy_versions(
        &mut self,
        region: &str,
    ) -> Result<Vec<gongji_domain::PolicyVersion>, LedgerError> {
        crate::load_region(&self.kv, &mut self.state, region)?;
        Ok(self.state.policies.get(region).cloned().unwrap_or_default())
    }

    /// Loads the versions of `region`'s policy this ledger lacks (by version name), so that
    /// it can decide what its members do dated in a region they came from; durable on return.
    /// How many were loaded.
    pub fn copy_policies(
        &mut self,
        region: &str,
        versions: Vec<gongji_domain::PolicyVersion>,
    ) -> Result<usize, LedgerError> {
        let held: std::collections::BTreeSet<String> = self
            .policy_versions(region)?
            .into_iter()
            .map(|v| v.version)
            .collect();
        let mut loaded = 0;
        for version in versions {
            if version.region != region || held.contains(&version.version) {
                continue;
            }
            self.apply_parsed(
                Ok(gongji_domain::Command::LoadPolicy {
                    policy: Box::new(version),
                }),
                crate::now_micros(),
            )?;
            loaded += 1;
        }
        if loaded > 0 {
            for outcome in self.commit()? {
                if let crate::LineOutcome::Rejected(rejection) = outcome {
                    return Err(LedgerError::Projection(format!(
                        "a copy of region {region}'s policy was refused: {rejection}"
                    )));
                }
            }
        }
        Ok(loaded)
    }

    /// The member's account as this ledger holds it (a copy left behind by a transfer
    /// included), or None.
    pub fn member_copy(&mut self, id: &str) -> Result<Option<Member>, LedgerError> {
        crate::load_member(&self.kv, &mut self.state, id)?;
        Ok(self.state.members.get(id).cloned())
    }

    /// The member's account as this ledger holds it now, without loading it into the
    /// ledger's state: [`Ledger::member_copy`] for a read-only view shared by queries.
    pub fn member_now(&self, id: &str) -> Result<Option<Member>, LedgerError> {
        self.member_at(id, &crate::AsOf::NOW)
    }

    /// What the transaction `id` is, if this ledger holds it.
    pub fn tx_kind(
        &mut self,
        id: &str,
    ) -> Result<Option<gongji_domain::state::TxKind>, LedgerError> {
        self.load_tx(id)?;
        Ok(self.state.txs.get(id).map(|tx| tx.kind.clone()))
    }

    /// Every transaction this ledger holds, with its member.
    pub fn tx_members(&mut self) -> Result<Vec<(String, String)>, LedgerError> {
        self.store_unstored()?;
        let mut found = Vec::new();
        for id in crate::store::stored_tx_ids(&self.kv)? {
            if let Some(member) = self.tx_member(&id)? {
                found.push((id, member));
            }
        }
        Ok(found)
    }

    /// The member of the transaction (a claim or an account payment) `id`, if this ledger
    /// holds it.
    pub fn tx_member(&mut self, id: &str) -> Result<Option<String>, LedgerError> {
        self.load_tx(id)?;
        Ok(self.state.txs.get(id).map(|tx| tx.member.clone()))
    }

    /// What this ledger's log records as owed to other regions' ledgers, from position
    /// `from` to the durable end: the transfers it sent and the fund events it owes; and the
    /// end read to.
    pub fn outbound(&self, from: u64) -> Result<(Outbound, u64), LedgerError> {
        let end = self.log.durable_end();
        let mut outbound = Outbound::default();
        for record in self.log.read_range(from.min(end), end)? {
            let record = record?;
            match member_event(&record)? {
                Some(Event::FundEventOwed { owed }) => outbound.owed.push((record.position, owed)),
                Some(event) => outbound.transfers.extend(as_sent(&event, record.position)),
                None => {}
            }
        }
        Ok((outbound, end))
    }

    /// The last transfer `member`'s stream records as sent, if its last event is one.
    pub fn last_sent(&self, member: &str) -> Result<Option<SentTransfer>, LedgerError> {
        let stream = Stream::Member(member).name();
        let records = self.log.read_stream(&stream)?;
        match records.last() {
            Some(record) => sent_transfer(record),
            None => Ok(None),
        }
    }
}

/// A member stream's record's event (the rest are not decoded: only they can be outbound).
fn member_event(record: &gongji_log::Record) -> Result<Option<Event>, LedgerError> {
    if !record
        .stream
        .starts_with(Stream::<&str>::Member("").name().as_str())
    {
        return Ok(None);
    }
    Event::decode(&record.payload)
        .map(Some)
        .map_err(|e| LedgerError::Projection(format!("record {}: {e}", record.position)))
}

fn sent_transfer(record: &gongji_log::Record) -> Result<Option<SentTransfer>, LedgerError> {
    Ok(member_event(record)?.and_then(|event| as_sent(&event, record.position)))
}

/// The transfer a `TransferSent` at `position` records; None for any other event (borrowed, so
/// the records that are no transfer, nearly all, are not moved through a result).
pub(super) fn as_sent(event: &Event, position: u64) -> Option<SentTransfer> {
    match event {
        Event::TransferSent {
            transfer,
            member,
            from_region,
            to_region,
            balance,
            account,
            ..
        } => Some(SentTransfer {
            transfer: transfer.clone(),
            member: member.clone(),
            from_region: from_region.clone(),
            to_region: to_region.clone(),
            balance: *balance,
            position,
            account: account.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_places_regions_and_names_what_is_wrong() {
        let file = Path::new("/maps/nation.json");
        let base = Path::new("/maps");
        let map = RegionMap::parse(
            r#"{"500000": "cq", "340100": "postgres://u:secret@127.0.0.1/db", "510100": "cq"}"#,
            file,
            base,
        )
        .expect("a valid map");
        assert_eq!(
            map.regions["500000"],
            Store::Dir(PathBuf::from("/maps/cq/500000"))
        );
        assert_eq!(
            map.regions["340100"].describe(),
            "postgres://u:***@127.0.0.1/db"
        );
        assert_eq!(map.stores().len(), 2);
        for (text, says) in [
            ("[1]", "must be a JSON object"),
            ("{}", "places no region"),
            (r#"{"../x": "cq"}"#, "region \"../x\""),
            (r#"{"500000": 5}"#, "region 500000: the store must be"),
            (r#"{"500000": ""}"#, "the store is empty"),
            ("{", "is not JSON"),
        ] {
            let error = RegionMap::parse(text, file, base).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
            assert!(error.contains("/maps/nation.json"), "{error}");
        }
    }
}
