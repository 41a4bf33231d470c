//! Queries: answers read from the projections (now) or folded from the log (as of a past
//! time, a member's history, a claim's explanation). Invariant: a query never writes, to the
//! log or to the projections.

use std::collections::BTreeSet;

use gongji_domain::state::{Fund, FundName, Member};
use gongji_domain::{evolve, EntityKey, EntityRef, Event, FundKind, Money, PolicyVersion, State};

use crate::views::{
    self, AccountView, FundView, HistoryEntry, InheritanceView, TransfersView, YearView,
};
use crate::{store, Ledger, LedgerError};

/// Which events an answer takes into account: those whose own date is on or before `date`
/// ("what was the balance on 30 June"), and those the ledger had recorded before
/// `recorded_before_micros` ("what did the ledger say then"); either, both or neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsOf {
    pub date: Option<gongji_domain::Day>,
    pub recorded_before_micros: Option<i64>,
}

impl AsOf {
    pub const NOW: AsOf = AsOf {
        date: None,
        recorded_before_micros: None,
    };

    pub fn is_now(&self) -> bool {
        *self == AsOf::NOW
    }

    pub fn admits(&self, recorded_at_micros: i64, date: gongji_domain::Day) -> bool {
        self.date.is_none_or(|d| date <= d)
            && self
                .recorded_before_micros
                .is_none_or(|t| recorded_at_micros < t)
    }
}

/// Why a query about `member` has no answer when the member has no account `as_of`.
pub fn not_enrolled(member: &str, as_of: &AsOf) -> String {
    if as_of.is_now() {
        format!("member {member} is not enrolled")
    } else {
        format!("member {member} was not enrolled as of the time asked")
    }
}

impl Ledger {
    pub fn account(&self, member: &str) -> Result<Option<AccountView>, LedgerError> {
        self.account_at(member, &AsOf::NOW)
    }

    /// The account as it stood `as_of`: from the projections for now, else by folding the
    /// member's stream with only the events `as_of` admits.
    pub fn account_at(
        &self,
        member: &str,
        as_of: &AsOf,
    ) -> Result<Option<AccountView>, LedgerError> {
        Ok(self.member_at(member, as_of)?.map(|m| AccountView::of(&m)))
    }

    pub fn year(&self, member: &str, year: i32) -> Result<Option<YearView>, LedgerError> {
        self.year_at(member, year, None, &AsOf::NOW)
    }

    /// A member's standing in an insurance year, in `region` (by default the region the member
    /// belonged to at the end of that year), as it stood `as_of`.
    pub fn year_at(
        &self,
        member: &str,
        year: i32,
        region: Option<&str>,
        as_of: &AsOf,
    ) -> Result<Option<YearView>, LedgerError> {
        match self.member_at(member, as_of)? {
            Some(account) => Ok(Some(self.year_of(&account, year, region)?)),
            None => Ok(None),
        }
    }

    /// The member's standing in `year` in `region` (by default the region at the year's end).
    fn year_of(
        &self,
        account: &gongji_domain::state::Member,
        year: i32,
        region: Option<&str>,
    ) -> Result<YearView, LedgerError> {
        let region = match region {
            Some(region) => region.to_string(),
            None => {
                let year_end =
                    gongji_domain::Day::from_ymd(year, 12, 31).unwrap_or(account.region_since);
                account.region_on(year_end).to_string()
            }
        };
        let policies = self.member_policies(&region)?;
        Ok(YearView::of(account, &region, year, &policies))
    }

    /// `year_at`, or why there is no answer: the member was not enrolled `as_of`, `year` is
    /// not a year the ledger can hold, or the member never belonged to `region`.
    pub fn year_answer(
        &self,
        member: &str,
        year: i32,
        region: Option<&str>,
        as_of: &AsOf,
    ) -> Result<Result<YearView, String>, LedgerError> {
        use gongji_domain::time::{YEAR_MAX, YEAR_MIN};
        if !(YEAR_MIN..=YEAR_MAX).contains(&year) {
            return Ok(Err(format!(
                "year {year} is not a year the ledger can hold ({YEAR_MIN} to {YEAR_MAX})"
            )));
        }
        let Some(account) = self.member_at(member, as_of)? else {
            return Ok(Err(not_enrolled(member, as_of)));
        };
        if let Some(region) = region {
            let belonged =
                account.region == region || account.past_regions.iter().any(|p| p.region == region);
            if !belonged {
                return Ok(Err(format!(
                    "member {member} never belonged to region {region}"
                )));
            }
        }
        Ok(Ok(self.year_of(&account, year, region)?))
    }

    /// The member's state as of `as_of`.
    pub(crate) fn member_at(
        &self,
        member: &str,
        as_of: &AsOf,
    ) -> Result<Option<gongji_domain::state::Member>, LedgerError> {
        self.refuse_if_broken()?;
        if as_of.is_now() && !self.projections_behind_log()? {
            return self.stored_member(member);
        }
        Ok(self.fold_member(member, as_of)?.0)
    }

    /// Whether a read-only ledger answers a member from the log: while its fold stopped
    /// partway ([`Ledger::fold_read_only`]), its projections are of no durable end, and a
    /// member's answers are folded from the log (the member's own stream, the region's policy
    /// stream), so that they are of the log's durable end like its history. Only a member's
    /// own events change the member: the member's stream folded alone is the member's state
    /// (`tests/member_from_log.rs` checks it answer for answer).
    fn projections_behind_log(&self) -> Result<bool, LedgerError> {
        Ok(self.folded_end()?.is_none())
    }

    /// A region's policies for a member's answer: from the projections, or, while they are
    /// partway through a fold, the region's policy stream folded.
    fn member_policies(&self, region: &str) -> Result<Vec<PolicyVersion>, LedgerError> {
        if !self.projections_behind_log()? {
            return self.stored_policies(region);
        }
        let mut state = State::untracked();
        let stream = gongji_domain::Stream::Policy(region.to_string()).name();
        for entry in self.stream_entries(&stream)? {
            evolve(&mut state, &entry.event);
        }
        Ok(state.policies.remove(region).unwrap_or_default())
    }

    /// Refuses an answer from the projections while a read-only ledger's fold stopped partway
    /// ([`Ledger::fold_read_only`]): they are then of no durable end (part of a unit folded).
    pub(crate) fn refuse_if_partway(&self) -> Result<(), LedgerError> {
        match self.read_only && self.fold_target.is_some() {
            false => Ok(()),
            true => Err(LedgerError::Projection(
                "the projections are partway through folding the log; ask again once they \
                 reach its durable end"
                    .into(),
            )),
        }
    }

    /// Folds the member's stream, keeping only the events `as_of` admits. Returns the state and
    /// the admitted records with their events.
    fn fold_member(
        &self,
        member: &str,
        as_of: &AsOf,
    ) -> Result<(Option<gongji_domain::state::Member>, Vec<HistoryEntry>), LedgerError> {
        let mut state = State::untracked();
        let mut admitted = Vec::new();
        for entry in self.history(member)? {
            if as_of.admits(entry.recorded_at_micros, entry.event.date()) {
                evolve(&mut state, &entry.event);
                admitted.push(entry);
            }
        }
        Ok((state.members.remove(member), admitted))
    }

    /// Every account as it stands now (of `region` only, if given: where it belongs now), in id
    /// order, handed to `each` one at a time from the projections, never all in memory; a
    /// read-only ledger's accounts changed since its open come from its cache, merged in order.
    /// Returns the accounts handed.
    pub fn each_account(
        &self,
        region: Option<&str>,
        each: &mut dyn FnMut(AccountView) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError> {
        self.refuse_if_broken()?;
        self.refuse_if_partway()?;
        let mut changed: BTreeSet<&str> = BTreeSet::new();
        if self.read_only {
            for key in &self.state.dirty {
                if let EntityKey::Member(id) = key {
                    changed.insert(id);
                }
            }
        }
        let mut changed = changed.into_iter().peekable();
        let mut handed = 0u64;
        let mut give = |member: Option<&Member>| -> Result<(), LedgerError> {
            match member {
                Some(m) if region.is_none_or(|r| m.region == r) => {
                    handed += 1;
                    each(AccountView::of(m))
                }
                _ => Ok(()),
            }
        };
        store::each_stored_member(&self.kv, &mut |id, stored| {
            while let Some(newer) = changed.next_if(|c| *c < id.as_str()) {
                give(self.state.members.get(newer))?;
            }
            // Changed since the open: the cache's (absent there: deleted).
            match changed.next_if(|c| *c == id.as_str()) {
                Some(_) => give(self.state.members.get(&id)),
                None => give(Some(&stored)),
            }
        })?;
        for newer in changed {
            give(self.state.members.get(newer))?;
        }
        Ok(handed)
    }

    /// The member's timeline as it stood `as_of`: the member's stream folded with only the
    /// events `as_of` admits, the balance read after each; `None` if the member was not
    /// enrolled then.
    pub fn timeline(
        &self,
        member: &str,
        as_of: &AsOf,
    ) -> Result<Option<views::TimelineView>, LedgerError> {
        let mut state = State::untracked();
        let mut entries = Vec::new();
        let mut before = Money::ZERO;
        for entry in self.history(member)? {
            if !as_of.admits(entry.recorded_at_micros, entry.event.date()) {
                continue;
            }
            evolve(&mut state, &entry.event);
            let after = state.members.get(member).map_or(Money::ZERO, |m| m.balance);
            entries.push(views::TimelineEntry::of(entry, after - before, after));
            before = after;
        }
        Ok(state
            .members
            .remove(member)
            .map(|m| views::TimelineView::of(&m, entries)))
    }

    /// What happened to a deceased member's account: the balance on the day of death, what
    /// moved it after, the payout per heir, and the account's state.
    pub fn inheritance(
        &self,
        member: &str,
        as_of: &AsOf,
    ) -> Result<Option<InheritanceView>, LedgerError> {
        let (account, entries) = self.fold_member(member, as_of)?;
        Ok(account.map(|account| InheritanceView::of(&account, &entries)))
    }

    /// The member's transfers between regions, with the balances moved.
    pub fn transfers(
        &self,
        member: &str,
        as_of: &AsOf,
    ) -> Result<Option<TransfersView>, LedgerError> {
        let (account, entries) = self.fold_member(member, as_of)?;
        Ok(account.map(|account| TransfersView::of(&account, &entries)))
    }

    pub fn fund(&self, region: &str) -> Result<Option<FundView>, LedgerError> {
        self.fund_at(region, &AsOf::NOW)
    }

    /// A region's funds, now (with its personal accounts taken together) or as of a past time
    /// (folding the funds' streams from the log).
    pub fn fund_at(&self, region: &str, as_of: &AsOf) -> Result<Option<FundView>, LedgerError> {
        self.refuse_if_broken()?;
        let policies = self.stored_policies(region)?;
        let (pooled, large, accounts) = if as_of.is_now() {
            (
                self.stored_fund(FundKind::Pooled, region)?,
                self.stored_fund(FundKind::LargeAmount, region)?,
                self.stored_accounts(region)?,
            )
        } else {
            let mut state = State::untracked();
            let mut seen = false;
            for kind in [FundKind::Pooled, FundKind::LargeAmount] {
                let stream = gongji_domain::Stream::Fund(kind, region.to_string()).name();
                for entry in self.stream_entries(&stream)? {
                    if as_of.admits(entry.recorded_at_micros, entry.event.date()) {
                        evolve(&mut state, &entry.event);
                        seen = true;
                    }
                }
            }
            let fund = |kind| seen.then(|| state.fund(kind, region));
            (fund(FundKind::Pooled), fund(FundKind::LargeAmount), None)
        };
        if pooled.is_none() && large.is_none() && accounts.is_none() && policies.is_empty() {
            return Ok(None);
        }
        Ok(Some(FundView::of(
            region,
            pooled.unwrap_or_default(),
            large.unwrap_or_default(),
            accounts,
        )))
    }

    /// Why a claim settled as it did: the recorded figures step by step, every event the
    /// claim produced and its reversal if any; or why there is no explanation (no claim has
    /// that id, or the id is an account payment's, whose events `history` shows).
    pub fn explain(&self, claim: &str) -> Result<Result<views::ExplainView, String>, LedgerError> {
        self.refuse_if_broken()?;
        self.refuse_if_partway()?;
        let mut state = State::default();
        let key = EntityRef::Tx(claim);
        if self.unstored(key) {
            if let Some(tx) = self.state.txs.get(claim) {
                state.txs.insert(claim.to_string(), tx.clone());
            }
        } else {
            store::load(&self.kv, &mut state, key)?;
        }
        if !state.txs.contains_key(claim) {
            return Ok(Err(format!("no settled claim has id {claim}")));
        }
        let tx = &state.txs[claim];
        let gongji_domain::state::TxKind::Claim(settlement) = &tx.kind else {
            return Ok(Err(format!(
                "{claim} is a payment from the account of member {member}, not a claim: `gongji history \
                 {member}` shows it and any reversal",
                member = tx.member
            )));
        };
        // The claim's own events sit in its member's stream; the fund events of the same unit
        // follow each of them directly in the log.
        let mut events = Vec::new();
        for entry in self.history(&tx.member)? {
            let mine = match &entry.event {
                Event::ClaimSettled { settlement } | Event::ClaimReversed { settlement, .. } => {
                    settlement.claim == claim
                }
                _ => false,
            };
            if !mine {
                continue;
            }
            let after = (entry.position + 1)..(entry.position + 3).min(self.log.durable_end());
            events.push(entry);
            for record in self
                .log
                .read_range(after.start, after.end.max(after.start))?
            {
                let record = record?;
                let event = Event::decode(&record.payload).map_err(|e| {
                    LedgerError::Projection(format!("record {}: {e}", record.position))
                })?;
                let same_claim = matches!(&event,
                    Event::FundClaimPaid { claim: c, .. } | Event::FundClaimRefunded { claim: c, .. } if c == claim);
                if same_claim {
                    events.push(HistoryEntry::of(&record, &event));
                }
            }
        }
        let member = self.stored_member(&settlement.member)?;
        let policies = self.member_policies(&settlement.region)?;
        let rules = member.zip(policies.iter().find(|p| p.version == settlement.policy));
        let rules =
            rules.map(|(member, policy)| views::AppliedRules::of(settlement, &member, policy));
        Ok(Ok(views::ExplainView::of(settlement, events, rules)))
    }

    /// The member's events in order, read from the log itself.
    pub fn history(&self, member: &str) -> Result<Vec<HistoryEntry>, LedgerError> {
        self.stream_entries(&gongji_domain::Stream::Member(member.to_string()).name())
    }

    /// A region's supervision history in order (its monitoring rules versions and the
    /// auditors' decisions on flags), read from the log itself.
    pub fn supervision(&self, region: &str) -> Result<Vec<HistoryEntry>, LedgerError> {
        self.stream_entries(&gongji_domain::Stream::Supervision(region.to_string()).name())
    }

    /// A stream's events in order, decoded.
    fn stream_entries(&self, stream: &str) -> Result<Vec<HistoryEntry>, LedgerError> {
        self.refuse_if_broken()?;
        self.log
            .read_stream(stream)?
            .into_iter()
            .map(|record| {
                let event = Event::decode(&record.payload).map_err(|e| {
                    LedgerError::Projection(format!(
                        "record {} of stream {}: {e}",
                        record.position, record.stream
                    ))
                })?;
                Ok(HistoryEntry::of(&record, &event))
            })
            .collect()
    }

    /// The regions whose policies are loaded, each with its versions.
    pub fn policy_regions(&self) -> Result<BTreeSet<String>, LedgerError> {
        self.refuse_if_partway()?;
        let mut regions = BTreeSet::new();
        for entry in self.kv.scan_prefix(b"p/") {
            let (key, _) = entry?;
            regions.insert(String::from_utf8_lossy(&key[2..]).into_owned());
        }
        // A read-only ledger's policies loaded since its open are in its cache, not the store
        // (`unstored`): only their keys are needed here, not everything stored first.
        if self.read_only {
            for key in &self.state.dirty {
                if let EntityKey::Policies(region) = key {
                    match self.state.policies.contains_key(region) {
                        true => regions.insert(region.clone()),
                        false => regions.remove(region),
                    };
                }
            }
        }
        Ok(regions)
    }

    pub fn policies(&self, region: &str) -> Result<Vec<gongji_domain::PolicyVersion>, LedgerError> {
        self.stored_policies(region)
    }

    /// Whether a query reads `key` from the cache: a read-only ledger stores nothing it folds
    /// (see `catch_up`), so what changed since its open is there, decoded, and marked dirty
    /// (an entity dirty and absent was deleted); the store holds the rest.
    fn unstored(&self, key: EntityRef<'_>) -> bool {
        self.read_only && self.state.dirty.contains(key)
    }

    fn stored_member(&self, id: &str) -> Result<Option<Member>, LedgerError> {
        self.refuse_if_partway()?;
        if self.unstored(EntityRef::Member(id)) {
            return Ok(self.state.members.get(id).cloned());
        }
        store::get_member(&self.kv, id)
    }

    fn stored_policies(&self, region: &str) -> Result<Vec<PolicyVersion>, LedgerError> {
        self.refuse_if_partway()?;
        if self.unstored(EntityRef::Policies(region)) {
            return Ok(self.state.policies.get(region).cloned().unwrap_or_default());
        }
        store::get_policies(&self.kv, region)
    }

    fn stored_fund(&self, kind: FundKind, region: &str) -> Result<Option<Fund>, LedgerError> {
        self.refuse_if_partway()?;
        if self.unstored(EntityRef::Fund(kind, region)) {
            return Ok(self.state.funds.get(&FundName(kind, region)).cloned());
        }
        store::get_fund(&self.kv, kind, region)
    }

    fn stored_accounts(&self, region: &str) -> Result<Option<Fund>, LedgerError> {
        self.refuse_if_partway()?;
        if self.unstored(EntityRef::Accounts(region)) {
            return Ok(self.state.accounts.get(region).cloned());
        }
        store::get_accounts(&self.kv, region)
    }

    /// Before a scan of the store (the digest: all of it; totals: `a/` and `f/`): a read-only
    /// ledger's layer takes what its cache holds and the store does not (the same entities
    /// again on the next scan if they changed; the cache stays what point reads use). A
    /// writer's store holds everything already.
    pub(crate) fn store_unstored(&self) -> Result<(), LedgerError> {
        self.refuse_if_partway()?;
        if !self.read_only || self.state.dirty.is_empty() {
            return Ok(());
        }
        let checkpoint = self.kv.checkpoint()?.unwrap_or(0);
        self.kv
            .apply(store::dirty_writes(&self.state), checkpoint)?;
        Ok(())
    }
}
