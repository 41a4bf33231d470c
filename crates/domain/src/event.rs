//! Events: the immutable facts the log records, each belonging to one stream.
//!
//! Events carry every figure they assert (a settlement records its deductible, ratio split and
//! policy version), so replay only adds and subtracts: it never re-runs policy.

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::money::{Money, Rate};
use crate::policy::{CreditSource, PolicyVersion};
use crate::state::{EntityRef, Member};
use crate::time::{Day, Month};
use crate::types::{
    Channel, FlagDecision, FundKind, InstitutionKind, Purpose, Relation, Scheme, Status,
};

/// The schema version written in front of every encoded event. Version 2 added a claim's
/// institution kind (`Settlement::institution_kind`) and the policy condition on it
/// (`When::institution_kinds`); version-1 records still decode, with the kind their channel
/// implies and no condition. Version 3 added an account payment's institution
/// (`Event::AccountPaid`'s last field); older records decode with none.
pub const EVENT_SCHEMA_VERSION: u8 = 3;

/// The oldest event schema version this build decodes.
pub const EVENT_SCHEMA_VERSION_MIN: u8 = 1;

/// The decoding context of events and of everything that holds a settlement or a policy
/// version (projections too): the schema version the bytes were written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaVersion(pub u8);

impl SchemaVersion {
    pub const CURRENT: SchemaVersion = SchemaVersion(EVENT_SCHEMA_VERSION);

    /// Whether bytes of this version carry fields added in `version`.
    pub fn has(self, version: u8) -> bool {
        self.0 >= version
    }
}

/// A field schema version `SCHEMA` added to an event: always encoded, but decoded only from
/// bytes of that version or later, since older bytes do not hold it (it reads as
/// `T::default()`). The event keeps its derived decoding; in JSON it is the value itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AddedIn<const SCHEMA: u8, T>(pub T);

impl<const SCHEMA: u8, T: Encode> Encode for AddedIn<SCHEMA, T> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.0.encode(encoder)
    }
}

impl<const SCHEMA: u8, T: Decode<SchemaVersion> + Default> Decode<SchemaVersion>
    for AddedIn<SCHEMA, T>
{
    fn decode<D: bincode::de::Decoder<Context = SchemaVersion>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        match decoder.context().has(SCHEMA) {
            true => T::decode(decoder).map(AddedIn),
            false => Ok(AddedIn(T::default())),
        }
    }
}

impl<'de, const SCHEMA: u8, T: Decode<SchemaVersion> + Default>
    bincode::BorrowDecode<'de, SchemaVersion> for AddedIn<SCHEMA, T>
{
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = SchemaVersion>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Self::decode(decoder)
    }
}

/// Where an event belongs: one stream per member account, per region's fund, per region's policy.
/// `Stream<&str>` ([`Event::stream_ref`]) names one without building its strings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stream<S = String> {
    Member(S),
    Fund(FundKind, S),
    Policy(S),
    /// A region's supervision history: decisions on monitoring flags.
    Supervision(S),
}

impl<S: AsRef<str>> Stream<S> {
    /// The stream's name in the log.
    pub fn name(&self) -> String {
        let (prefix, id) = self.parts();
        // Not `format!`: the writer names every event it appends, and the formatting machinery
        // took as many instructions as the allocation and the copies together.
        let mut name = String::with_capacity(prefix.len() + id.len());
        name.push_str(prefix);
        name.push_str(id);
        name
    }

    /// Whether `name` is this stream's name (without building it: replay asks for every record).
    pub fn is_named(&self, name: &str) -> bool {
        let (prefix, id) = self.parts();
        name.strip_prefix(prefix) == Some(id)
    }

    fn parts(&self) -> (&'static str, &str) {
        match self {
            Stream::Member(member) => ("member/", member.as_ref()),
            Stream::Fund(FundKind::Pooled, region) => ("pooled/", region.as_ref()),
            Stream::Fund(FundKind::LargeAmount, region) => ("large/", region.as_ref()),
            Stream::Policy(region) => ("policy/", region.as_ref()),
            Stream::Supervision(region) => ("supervision/", region.as_ref()),
        }
    }
}

/// Every figure of one settled claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Encode)]
pub struct Settlement {
    pub claim: String,
    pub member: String,
    pub region: String,
    pub date: Day,
    /// The insurance year whose counters the claim uses.
    pub year: i32,
    /// The first day of the member's stint in `region` whose counters the claim is counted in.
    pub stint_since: Day,
    pub level: u8,
    pub channel: Channel,
    pub institution: Option<String>,
    /// Where the claim was settled: what a policy's `institution_kinds` condition matched.
    pub institution_kind: InstitutionKind,
    /// Whether the claim asked for the member's share to come from the account.
    pub use_account: bool,
    pub visit: Option<String>,
    /// The policy version the claim settled under.
    pub policy: String,
    pub status: Status,
    pub eligible: Money,
    pub special_paid: Money,
    pub uncovered: Money,
    pub deductible_group: String,
    pub deductible_applied: Money,
    /// The year's cumulative ordinary-pooling cost before this claim (where ratio bands start).
    pub ordinary_cost_before: Money,
    /// Ordinary pooling payment before the annual limit cut.
    pub ordinary_computed: Money,
    /// Ordinary pooling payment after the limit: `ordinary_pooled + large_amount_paid`.
    pub ordinary_paid: Money,
    pub ordinary_pooled: Money,
    pub large_amount_paid: Money,
    /// Everything the pooled fund paid: `special_paid + ordinary_pooled`.
    pub pooled_paid: Money,
    pub account_paid: Money,
    pub cash_paid: Money,
    /// For manual claims: the fund's payment made to the member instead of the institution.
    pub reimbursed_to_member: Money,
    /// The figures the settlement started from, recorded so it can be explained without
    /// re-running policy.
    pub basis: SettlementBasis,
}

/// The policy figures and the member's positions a settlement was computed from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Encode, Decode)]
pub struct SettlementBasis {
    /// The year's deductible for this claim, and how much of its group was filled before.
    pub deductible: Money,
    pub deductible_used_before: Money,
    /// The cap on the deductible a member pays in a year, if the policy has one.
    pub deductible_cap: Option<Money>,
    /// The ratio bands applied (a single band is a flat ratio).
    pub bands: Vec<crate::policy::Band>,
    /// The annual ordinary limit (None: no limit) and ordinary payments before this claim.
    pub ordinary_limit: Option<Money>,
    pub ordinary_paid_before: Money,
    /// The pooled fund's annual maximum (None: none) and the year's pooled payments before.
    pub annual_max: Option<Money>,
    pub pooled_paid_before: Money,
    /// What the account held, and what a payment dated on the claim's date could take from it.
    pub balance_before: Money,
    pub available_before: Money,
}

/// Written by hand for the fields schema 2 added: a schema-1 settlement has no
/// `institution_kind` (it reads as the kind its channel implies) and no `use_account` (read
/// from its figures).
impl bincode::Decode<SchemaVersion> for Settlement {
    fn decode<D: bincode::de::Decoder<Context = SchemaVersion>>(
        decoder: &mut D,
    ) -> Result<Settlement, bincode::error::DecodeError> {
        use bincode::Decode as D_;
        let claim = D_::decode(decoder)?;
        let member = D_::decode(decoder)?;
        let region = D_::decode(decoder)?;
        let date = D_::decode(decoder)?;
        let year = D_::decode(decoder)?;
        let stint_since = D_::decode(decoder)?;
        let level = D_::decode(decoder)?;
        let channel: Channel = D_::decode(decoder)?;
        let institution = D_::decode(decoder)?;
        let schema_2 = decoder.context().has(2);
        let institution_kind = if schema_2 {
            D_::decode(decoder)?
        } else {
            InstitutionKind::default_for(channel)
        };
        let use_account = if schema_2 {
            Some(D_::decode(decoder)?)
        } else {
            None
        };
        let mut settlement = Settlement {
            claim,
            member,
            region,
            date,
            year,
            stint_since,
            level,
            channel,
            institution,
            institution_kind,
            use_account: use_account.unwrap_or(true),
            visit: D_::decode(decoder)?,
            policy: D_::decode(decoder)?,
            status: D_::decode(decoder)?,
            eligible: D_::decode(decoder)?,
            special_paid: D_::decode(decoder)?,
            uncovered: D_::decode(decoder)?,
            deductible_group: D_::decode(decoder)?,
            deductible_applied: D_::decode(decoder)?,
            ordinary_cost_before: D_::decode(decoder)?,
            ordinary_computed: D_::decode(decoder)?,
            ordinary_paid: D_::decode(decoder)?,
            ordinary_pooled: D_::decode(decoder)?,
            large_amount_paid: D_::decode(decoder)?,
            pooled_paid: D_::decode(decoder)?,
            account_paid: D_::decode(decoder)?,
            cash_paid: D_::decode(decoder)?,
            reimbursed_to_member: D_::decode(decoder)?,
            basis: D_::decode(decoder)?,
        };
        if use_account.is_none() {
            // Schema 1 did not record it: a claim that left its share in cash while the
            // account had money available did not ask; any other asked (or could not tell,
            // and then the settlement is the same either way).
            let share_left_in_cash = settlement.cash_paid > Money::ZERO
                && settlement.account_paid == Money::ZERO
                && settlement.basis.available_before > Money::ZERO;
            settlement.use_account = !share_left_in_cash;
        }
        Ok(settlement)
    }
}
bincode::impl_borrow_decode_with_context!(Settlement, SchemaVersion);

impl Settlement {
    /// `special + ordinary`.
    pub fn fund_paid(&self) -> Money {
        self.special_paid + self.ordinary_paid
    }

    /// The member's own share: what the funds did not pay.
    pub fn own_share(&self) -> Money {
        self.eligible + self.uncovered - self.fund_paid()
    }

    /// The money every settlement must conserve; a false here is a bug, not bad input.
    pub fn adds_up(&self) -> bool {
        let non_negative = [
            self.eligible,
            self.special_paid,
            self.uncovered,
            self.deductible_applied,
            self.ordinary_paid,
            self.ordinary_pooled,
            self.large_amount_paid,
            self.account_paid,
            self.cash_paid,
        ]
        .iter()
        .all(|m| !m.is_negative());
        non_negative
            && self.ordinary_paid == self.ordinary_pooled + self.large_amount_paid
            && self.pooled_paid == self.special_paid + self.ordinary_pooled
            && self.ordinary_paid <= self.ordinary_computed
            && self.special_paid + self.deductible_applied + self.ordinary_paid <= self.eligible
            && self.account_paid + self.cash_paid == self.own_share()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Encode, Decode)]
#[bincode(decode_context = "SchemaVersion")]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    PolicyLoaded {
        policy: Box<PolicyVersion>,
    },
    Enrolled {
        member: String,
        region: String,
        born: Day,
        status: Status,
        scheme: Scheme,
        date: Day,
        /// Balance brought from before the reform: money entering the ledger.
        opening_balance: Money,
        lump_sum_base: Option<Money>,
        lump_sum_until: Option<Month>,
    },
    Retired {
        member: String,
        date: Day,
    },
    /// A monthly credit to a personal account.
    AccountCredited {
        member: String,
        month: Month,
        amount: Money,
        paid_by: CreditSource,
        /// The contribution or lump-sum base the credit was computed from, if any.
        base: Option<Money>,
        policy: String,
    },
    /// The pooled fund's share of a contribution (the employer's, for employees).
    PooledContributed {
        region: String,
        member: String,
        month: Month,
        amount: Money,
    },
    /// The pooled fund paying a retiree's (or post-period lump-sum member's) monthly credit.
    PooledCreditPaid {
        region: String,
        member: String,
        month: Month,
        amount: Money,
    },
    ClaimSettled {
        settlement: Box<Settlement>,
    },
    FundClaimPaid {
        fund: FundKind,
        region: String,
        claim: String,
        member: String,
        date: Day,
        amount: Money,
    },
    FamilyBound {
        holder: String,
        relative: String,
        relation: Relation,
        date: Day,
        /// The holder's yearly limit on payments for this relative.
        yearly_limit: Option<Money>,
    },
    FamilyUnbound {
        holder: String,
        relative: String,
        date: Day,
    },
    AccountPaid {
        id: String,
        holder: String,
        beneficiary: String,
        region: String,
        date: Day,
        /// The insurance year of `date` (a relative's yearly limit counts per year).
        year: i32,
        purpose: Purpose,
        amount: Money,
        /// The pharmacy or hospital paid, as the settlement front end named it (schema 3).
        /// A `Box<str>`, 16 bytes to a `String`'s 24: every `Event` is as large as this variant.
        institution: AddedIn<3, Option<Box<str>>>,
    },
    /// A retiree's large-amount premium paid from the account into the large-amount fund.
    PremiumReceived {
        region: String,
        payment: String,
        member: String,
        date: Day,
        amount: Money,
    },
    /// A settled claim undone; it carries the settlement it undoes, figure for figure.
    ClaimReversed {
        date: Day,
        reason: String,
        settlement: Box<Settlement>,
    },
    FundClaimRefunded {
        fund: FundKind,
        region: String,
        claim: String,
        date: Day,
        amount: Money,
    },
    AccountPaymentReversed {
        id: String,
        holder: String,
        beneficiary: String,
        year: i32,
        purpose: Purpose,
        date: Day,
        reason: String,
        amount: Money,
    },
    PremiumRefunded {
        region: String,
        payment: String,
        date: Day,
        amount: Money,
    },
    /// Rollover (结转): the insurance year closed for this account, its closing balance carried
    /// into the next year unchanged.
    YearClosed {
        member: String,
        region: String,
        year: i32,
        /// The last day of the insurance year closed.
        date: Day,
        closing_balance: Money,
    },
    /// The member died: the account is frozen from the day after.
    Deceased {
        member: String,
        date: Day,
    },
    /// The balance paid to the heirs (依法继承) and the account closed.
    Inherited {
        member: String,
        date: Day,
        /// `inherited_balance` in JSON, as in every answer about it (serde only: the stored,
        /// bincode form is unchanged).
        #[serde(rename = "inherited_balance")]
        balance: Money,
        payouts: Vec<Payout>,
    },
    /// Transfer across pooling regions (转移接续): the account, with its balance, leaves
    /// `from_region` for `to_region`; the yearly counters stay with the old region.
    Transferred {
        member: String,
        date: Day,
        from_region: String,
        to_region: String,
        balance: Money,
    },
    /// A transfer between two regions' ledgers (a region map), as the source's ledger records
    /// it: the account leaves this ledger with its balance, which is in transit under
    /// `transfer` until the destination's ledger records it arriving
    /// ([`Event::TransferReceived`] under the same id). `account` is the account as it arrives
    /// (what [`Event::Transferred`] would leave in a single ledger); the destination takes it
    /// whole. Shown in answers without it.
    TransferSent {
        transfer: String,
        member: String,
        date: Day,
        from_region: String,
        to_region: String,
        balance: Money,
        #[serde(skip)]
        account: Box<Member>,
    },
    /// The destination's half of a transfer between two ledgers: the account of
    /// [`Event::TransferSent`] arrives, whole, under the same transfer id.
    TransferReceived {
        transfer: String,
        member: String,
        date: Day,
        from_region: String,
        to_region: String,
        balance: Money,
        #[serde(skip)]
        account: Box<Member>,
    },
    /// A fund event owed to another region's ledger (see [`Owed`]), on the member's stream.
    FundEventOwed {
        owed: Owed,
    },
    /// This region's ledger recorded (in the same unit, before it) the fund event another
    /// region's ledger owed it from its record `owed`: once only.
    OwedLanded {
        owed: String,
        from_region: String,
        fund: FundKind,
        region: String,
        member: String,
        date: Day,
        /// What the owed event moved into and out of this ledger from the owing one (the
        /// other way round of [`owed_flow`]).
        moved_in: Money,
        moved_out: Money,
    },
    /// An auditor's decision on a monitoring flag of `region` (schema 3): the flag's id as
    /// `gongji monitor run` derived it, the decision, why, who, and the day.
    FlagDecided {
        flag: String,
        region: String,
        decision: FlagDecision,
        reason: String,
        by: String,
        date: Day,
    },
    /// A version of `region`'s monitoring rules loaded (`gongji monitor rules load`): the
    /// rules as the JSON `gongji-monitor` reads, in force for movements from `effective`, who
    /// loaded them and the day. Flags name the version they came from.
    MonitorRulesLoaded {
        region: String,
        /// The rules' version (named so, not `version`: a history entry has a `version` of
        /// its own, the record's in its stream).
        rules_version: String,
        effective: Day,
        rules: String,
        by: String,
        date: Day,
    },
}

/// The fund events of a decision taken in another region's ledger (a region map): a late
/// claim, contribution or reversal dated when the member belonged to `owed_to`, decided where
/// the account is now. The account's side is recorded here; the fund's side (`event`, a fund
/// event of `owed_to`) is owed to that region's ledger, which records it when the relay lands
/// it ([`Event::OwedLanded`] beside it, under the id [`owed_id`]). Nothing moves here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Encode, Decode)]
#[bincode(decode_context = "SchemaVersion")]
pub struct Owed {
    pub owed_to: String,
    pub member: String,
    pub event: Box<Event>,
}

/// What every [`owed_id`] starts with; no claim or payment id may (they share one namespace).
pub const OWED_PREFIX: &str = "owed:";

/// The id under which `region`'s ledger records landing what its record at `position` owed.
pub fn owed_id(region: &str, position: u64) -> String {
    format!("{OWED_PREFIX}{region}:{position}")
}

/// Money an owed fund event moves between the two ledgers, as the owing ledger counts it:
/// (in, out). A fund event that is a move within one ledger (a premium paid from the account
/// into the large-amount fund, a retiree's credit paid from the pooled fund into the account,
/// and their refunds) is, between two ledgers, money leaving one and entering the other: the
/// owing ledger's account side has moved and its fund side is the other ledger's. The landing
/// ledger counts the same amounts the other way round (`Event::OwedLanded`'s `moved_in` and
/// `moved_out`). Fund events that are flows in and out of the system already (a claim's
/// payment, a contribution) move nothing between the two.
pub fn owed_flow(event: &Event) -> (Money, Money) {
    match event {
        Event::PremiumReceived { amount, .. } => (Money::ZERO, *amount),
        Event::PremiumRefunded { amount, .. } | Event::PooledCreditPaid { amount, .. } => {
            (*amount, Money::ZERO)
        }
        _ => (Money::ZERO, Money::ZERO),
    }
}

/// Whether `event` is one of a region's fund events (the ones a ledger may owe another), and
/// the fund and region it belongs to.
pub fn fund_event(event: &Event) -> Option<(FundKind, &str)> {
    match event {
        Event::FundClaimPaid { fund, region, .. }
        | Event::FundClaimRefunded { fund, region, .. } => Some((*fund, region)),
        Event::PooledContributed { region, .. } | Event::PooledCreditPaid { region, .. } => {
            Some((FundKind::Pooled, region))
        }
        Event::PremiumReceived { region, .. } | Event::PremiumRefunded { region, .. } => {
            Some((FundKind::LargeAmount, region))
        }
        _ => None,
    }
}

/// The id of a member's `count`-th transfer (counting from 1): unique nationally, since a
/// member's account, with its count of past regions, travels whole.
pub fn transfer_id(member: &str, count: usize) -> String {
    format!("{member}#{count}")
}

/// One heir's part of an inheritance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Encode, Decode)]
pub struct Payout {
    pub heir: String,
    pub share: Rate,
    pub amount: Money,
}

/// Every event kind's name, in the order the variants are declared (their encoded tags).
const KINDS: [&str; 26] = [
    "policy_loaded",
    "enrolled",
    "retired",
    "account_credited",
    "pooled_contributed",
    "pooled_credit_paid",
    "claim_settled",
    "fund_claim_paid",
    "family_bound",
    "family_unbound",
    "account_paid",
    "premium_received",
    "claim_reversed",
    "fund_claim_refunded",
    "account_payment_reversed",
    "premium_refunded",
    "year_closed",
    "deceased",
    "inherited",
    "transferred",
    "transfer_sent",
    "transfer_received",
    "fund_event_owed",
    "owed_landed",
    "flag_decided",
    "monitor_rules_loaded",
];

/// Why a stored event could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Decoding limit: no event is larger than this.
const EVENT_BYTES_MAX: usize = 1024 * 1024;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<EVENT_BYTES_MAX>()
}

impl Event {
    /// The schema-version byte followed by the compact binary form.
    pub fn encode(&self) -> Vec<u8> {
        /// Appends to a vector directly (bincode's `std::io::Write` path went through the I/O
        /// error machinery for every field: an eighth of `apply`'s deciding thread).
        struct Append<'a>(&'a mut Vec<u8>);
        impl bincode::enc::write::Writer for Append<'_> {
            fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
                self.0.extend_from_slice(bytes);
                Ok(())
            }
        }
        let mut bytes = Vec::with_capacity(128);
        bytes.push(EVENT_SCHEMA_VERSION);
        bincode::encode_into_writer(self, Append(&mut bytes), bincode_config())
            .expect("encoding an event into memory cannot fail");
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        match bytes.split_first() {
            Some((&version, body))
                if (EVENT_SCHEMA_VERSION_MIN..=EVENT_SCHEMA_VERSION).contains(&version) =>
            {
                let (event, used) = bincode::decode_from_slice_with_context(
                    body,
                    bincode_config(),
                    SchemaVersion(version),
                )
                .map_err(|e| DecodeError(format!("event does not decode: {e}")))?;
                if used != body.len() {
                    return Err(DecodeError(format!(
                        "event has {} trailing bytes",
                        body.len() - used
                    )));
                }
                if let Event::PolicyLoaded { policy } = &event {
                    policy.validate().map_err(|why| {
                        DecodeError(format!("policy {} in the log is invalid: {why}", policy.version))
                    })?;
                }
                Ok(event)
            }
            Some((version, _)) => Err(DecodeError(format!(
                "event schema version {version} is not known to this build (knows {EVENT_SCHEMA_VERSION_MIN} to {EVENT_SCHEMA_VERSION})"
            ))),
            None => Err(DecodeError("empty event".into())),
        }
    }

    /// Money entering (`.0`) and leaving (`.1`) the ledger as a whole with this event. Moves
    /// between accounts and funds (a retiree credit, a premium into the large-amount fund) are
    /// not flows. Declared apart from `evolve`, so tests can check one against the other.
    pub fn external_flow(&self) -> (Money, Money) {
        let zero = Money::ZERO;
        match self {
            Event::Enrolled {
                opening_balance, ..
            } => (*opening_balance, zero),
            Event::AccountCredited {
                paid_by, amount, ..
            } => match paid_by {
                CreditSource::Contribution | CreditSource::LumpSum => (*amount, zero),
                CreditSource::PooledFund => (zero, zero),
            },
            Event::PooledContributed { amount, .. } => (*amount, zero),
            Event::ClaimSettled { settlement } => (zero, settlement.account_paid),
            Event::FundClaimPaid { amount, .. } => (zero, *amount),
            Event::AccountPaid {
                purpose, amount, ..
            } => match purpose {
                Purpose::LargeAmountPremium => (zero, zero),
                _ => (zero, *amount),
            },
            Event::ClaimReversed { settlement, .. } => (settlement.account_paid, zero),
            Event::FundClaimRefunded { amount, .. } => (*amount, zero),
            Event::AccountPaymentReversed {
                purpose, amount, ..
            } => match purpose {
                Purpose::LargeAmountPremium => (zero, zero),
                _ => (*amount, zero),
            },
            Event::Inherited { balance, .. } => (zero, *balance),
            Event::TransferSent { balance, .. } => (zero, *balance),
            Event::TransferReceived { balance, .. } => (*balance, zero),
            Event::FundEventOwed { owed } => owed_flow(&owed.event),
            Event::OwedLanded {
                moved_in,
                moved_out,
                ..
            } => (*moved_in, *moved_out),
            Event::PolicyLoaded { .. }
            | Event::YearClosed { .. }
            | Event::Deceased { .. }
            | Event::Transferred { .. }
            | Event::Retired { .. }
            | Event::PooledCreditPaid { .. }
            | Event::FamilyBound { .. }
            | Event::FamilyUnbound { .. }
            | Event::PremiumReceived { .. }
            | Event::PremiumRefunded { .. }
            | Event::FlagDecided { .. }
            | Event::MonitorRulesLoaded { .. } => (zero, zero),
        }
    }

    /// The pieces of state this event changes or reads while it is folded in: a store loads
    /// these before calling `evolve`.
    pub fn entities<'a>(&'a self) -> impl Iterator<Item = EntityRef<'a>> {
        // Seven: what a transfer names, the most of any event (a new event naming more must
        // widen this, or `put` panics on the index the first time one is folded).
        let mut refs: [Option<EntityRef<'a>>; 7] = [None; 7];
        let mut at = 0;
        let mut put = |key: EntityRef<'a>| {
            refs[at] = Some(key);
            at += 1;
        };
        match self {
            Event::PolicyLoaded { policy } => put(EntityRef::Policies(&policy.region)),
            Event::Enrolled { member, region, .. } => {
                put(EntityRef::Member(member));
                put(EntityRef::RegionMember(region, member));
                put(EntityRef::Accounts(region));
            }
            Event::Retired { member, .. }
            | Event::AccountCredited { member, .. }
            | Event::YearClosed { member, .. }
            | Event::Deceased { member, .. }
            | Event::Inherited { member, .. } => put(EntityRef::Member(member)),
            Event::FamilyBound {
                holder, relative, ..
            }
            | Event::FamilyUnbound {
                holder, relative, ..
            } => {
                put(EntityRef::Member(holder));
                put(EntityRef::Relative(relative));
            }
            Event::Transferred {
                member,
                from_region,
                to_region,
                ..
            } => {
                put(EntityRef::Member(member));
                put(EntityRef::RegionMember(from_region, member));
                put(EntityRef::RegionMember(to_region, member));
                put(EntityRef::Fund(FundKind::Pooled, to_region));
                put(EntityRef::Fund(FundKind::LargeAmount, to_region));
                put(EntityRef::Accounts(from_region));
                put(EntityRef::Accounts(to_region));
            }
            Event::TransferSent {
                member,
                from_region: region,
                ..
            }
            | Event::TransferReceived {
                member,
                to_region: region,
                ..
            } => {
                put(EntityRef::Member(member));
                put(EntityRef::RegionMember(region, member));
                put(EntityRef::Accounts(region));
            }
            Event::FundEventOwed { owed } => put(EntityRef::Member(&owed.member)),
            Event::OwedLanded { owed, .. } => put(EntityRef::Tx(owed)),
            Event::PooledContributed { region, .. } | Event::PooledCreditPaid { region, .. } => {
                put(EntityRef::Fund(FundKind::Pooled, region));
            }
            Event::ClaimSettled { settlement } | Event::ClaimReversed { settlement, .. } => {
                put(EntityRef::Member(&settlement.member));
                put(EntityRef::Tx(&settlement.claim));
            }
            Event::FundClaimPaid {
                fund: kind, region, ..
            }
            | Event::FundClaimRefunded {
                fund: kind, region, ..
            } => put(EntityRef::Fund(*kind, region)),
            Event::AccountPaid { id, holder, .. }
            | Event::AccountPaymentReversed { id, holder, .. } => {
                put(EntityRef::Member(holder));
                put(EntityRef::Tx(id));
            }
            Event::PremiumReceived { region, .. } | Event::PremiumRefunded { region, .. } => {
                put(EntityRef::Fund(FundKind::LargeAmount, region));
            }
            // Supervision changes nothing the ledger keeps.
            Event::FlagDecided { .. } | Event::MonitorRulesLoaded { .. } => {}
        }
        refs.into_iter().flatten()
    }

    /// The stream the event belongs to: the one `decide` appends it to. A member's events go to
    /// the member's stream (a payment to its holder's, a settlement to its member's), a fund's to
    /// the fund's stream of its region, a policy version to its region's policy stream. A log
    /// that files an event anywhere else was not written by the ledger.
    pub fn stream(&self) -> Stream {
        match self.stream_ref() {
            Stream::Member(id) => Stream::Member(id.to_string()),
            Stream::Fund(kind, region) => Stream::Fund(kind, region.to_string()),
            Stream::Policy(region) => Stream::Policy(region.to_string()),
            Stream::Supervision(region) => Stream::Supervision(region.to_string()),
        }
    }

    /// The stream the event belongs to, borrowing its id from the event.
    pub fn stream_ref(&self) -> Stream<&str> {
        match self {
            Event::PolicyLoaded { policy } => Stream::Policy(&policy.region),
            Event::PooledContributed { region, .. } | Event::PooledCreditPaid { region, .. } => {
                Stream::Fund(FundKind::Pooled, region)
            }
            Event::FundClaimPaid { fund, region, .. }
            | Event::FundClaimRefunded { fund, region, .. } => Stream::Fund(*fund, region),
            Event::PremiumReceived { region, .. } | Event::PremiumRefunded { region, .. } => {
                Stream::Fund(FundKind::LargeAmount, region)
            }
            Event::ClaimSettled { settlement } | Event::ClaimReversed { settlement, .. } => {
                Stream::Member(&settlement.member)
            }
            Event::FamilyBound { holder, .. }
            | Event::FamilyUnbound { holder, .. }
            | Event::AccountPaid { holder, .. }
            | Event::AccountPaymentReversed { holder, .. } => Stream::Member(holder),
            Event::Enrolled { member: id, .. }
            | Event::Retired { member: id, .. }
            | Event::AccountCredited { member: id, .. }
            | Event::YearClosed { member: id, .. }
            | Event::Deceased { member: id, .. }
            | Event::Inherited { member: id, .. }
            | Event::Transferred { member: id, .. }
            | Event::TransferSent { member: id, .. }
            | Event::TransferReceived { member: id, .. } => Stream::Member(id),
            Event::FundEventOwed { owed } => Stream::Member(&owed.member),
            Event::OwedLanded { fund, region, .. } => Stream::Fund(*fund, region),
            Event::FlagDecided { region, .. } | Event::MonitorRulesLoaded { region, .. } => {
                Stream::Supervision(region)
            }
        }
    }

    /// The event's own date: the day it happened, as opposed to the time the ledger recorded it.
    /// Monthly events are dated on the first day of their month; a rollover on the last day of
    /// the insurance year it closes (as-of answers filter on this date).
    pub fn date(&self) -> Day {
        match self {
            Event::PolicyLoaded { policy } => policy.effective,
            Event::AccountCredited { month, .. }
            | Event::PooledContributed { month, .. }
            | Event::PooledCreditPaid { month, .. } => month.first_day(),
            Event::ClaimSettled { settlement } => settlement.date,
            Event::Enrolled { date, .. }
            | Event::Retired { date, .. }
            | Event::FundClaimPaid { date, .. }
            | Event::FamilyBound { date, .. }
            | Event::FamilyUnbound { date, .. }
            | Event::AccountPaid { date, .. }
            | Event::PremiumReceived { date, .. }
            | Event::ClaimReversed { date, .. }
            | Event::FundClaimRefunded { date, .. }
            | Event::AccountPaymentReversed { date, .. }
            | Event::PremiumRefunded { date, .. }
            | Event::YearClosed { date, .. }
            | Event::Deceased { date, .. }
            | Event::Inherited { date, .. }
            | Event::Transferred { date, .. }
            | Event::TransferSent { date, .. }
            | Event::TransferReceived { date, .. }
            | Event::OwedLanded { date, .. }
            | Event::FlagDecided { date, .. }
            | Event::MonitorRulesLoaded { date, .. } => *date,
            Event::FundEventOwed { owed } => owed.event.date(),
        }
    }

    /// A short name for listings.
    pub fn kind(&self) -> &'static str {
        KINDS[self.variant_index()]
    }

    /// The kind of the event `bytes` encode (as [`Event::kind`] names it), read from the
    /// variant's tag alone: for a pass that decodes only some kinds (what-if reads claims and
    /// enrolments). None when the bytes are no event of a known schema.
    pub fn peek_kind(bytes: &[u8]) -> Option<&'static str> {
        match bytes {
            // bincode's standard form writes a tag below 251 as one byte.
            [version, tag, ..]
                if (EVENT_SCHEMA_VERSION_MIN..=EVENT_SCHEMA_VERSION).contains(version) =>
            {
                KINDS.get(usize::from(*tag)).copied()
            }
            _ => None,
        }
    }

    /// The variant's place in the declaration, which is its encoded tag.
    fn variant_index(&self) -> usize {
        match self {
            Event::PolicyLoaded { .. } => 0,
            Event::Enrolled { .. } => 1,
            Event::Retired { .. } => 2,
            Event::AccountCredited { .. } => 3,
            Event::PooledContributed { .. } => 4,
            Event::PooledCreditPaid { .. } => 5,
            Event::ClaimSettled { .. } => 6,
            Event::FundClaimPaid { .. } => 7,
            Event::FamilyBound { .. } => 8,
            Event::FamilyUnbound { .. } => 9,
            Event::AccountPaid { .. } => 10,
            Event::PremiumReceived { .. } => 11,
            Event::ClaimReversed { .. } => 12,
            Event::FundClaimRefunded { .. } => 13,
            Event::AccountPaymentReversed { .. } => 14,
            Event::PremiumRefunded { .. } => 15,
            Event::YearClosed { .. } => 16,
            Event::Deceased { .. } => 17,
            Event::Inherited { .. } => 18,
            Event::Transferred { .. } => 19,
            Event::TransferSent { .. } => 20,
            Event::TransferReceived { .. } => 21,
            Event::FundEventOwed { .. } => 22,
            Event::OwedLanded { .. } => 23,
            Event::FlagDecided { .. } => 24,
            Event::MonitorRulesLoaded { .. } => 25,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(institution: Option<&str>) -> Event {
        Event::AccountPaid {
            id: "P1".into(),
            holder: "M".into(),
            beneficiary: "M".into(),
            region: "R".into(),
            date: "2024-02-01".parse().expect("a day"),
            year: 2024,
            purpose: Purpose::Pharmacy,
            amount: Money::from_fen(8800),
            institution: AddedIn(institution.map(Box::from)),
        }
    }

    /// A payment as schemas 1 and 2 wrote it: the variant's tag and its eight fields.
    fn payment_of_schema(version: u8) -> Vec<u8> {
        let day: Day = "2024-02-01".parse().expect("a day");
        let amount = Money::from_fen(8800);
        let ids = ("P1", "M", "M", "R");
        let fields = (10u32, ids, day, 2024i32, Purpose::Pharmacy, amount);
        let mut bytes = vec![version];
        bytes.extend(bincode::encode_to_vec(fields, bincode_config()).expect("in memory"));
        bytes
    }

    #[test]
    fn a_payment_of_schema_1_or_2_decodes_with_no_institution() {
        for version in [1, 2] {
            assert_eq!(
                Event::decode(&payment_of_schema(version)),
                Ok(payment(None))
            );
        }
        // The same bytes under schema 3 lack the institution.
        assert!(Event::decode(&payment_of_schema(3)).is_err());
    }

    #[test]
    fn a_payment_of_schema_3_keeps_its_institution() {
        for institution in [None, Some("PH500101")] {
            let bytes = payment(institution).encode();
            assert_eq!(bytes[0], 3);
            assert_eq!(Event::decode(&bytes), Ok(payment(institution)));
        }
        let json = serde_json::to_value(payment(Some("PH500101"))).expect("JSON");
        assert_eq!(json["institution"], "PH500101");
        let json = serde_json::to_value(payment(None)).expect("JSON");
        assert_eq!(json["institution"], serde_json::Value::Null);
    }
}
