//! The small vocabularies of the domain: statuses, schemes, channels, purposes, relations.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// 在职 (active employee) or 退休 (retiree).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Encode, Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Retired,
}

/// 参保方式: how the member is insured.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Encode, Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// 随单位参保
    Employer,
    /// 个人参加职工医保一档: no personal-account credit.
    IndividualTier1,
    /// 个人参加职工医保二档
    IndividualTier2,
    /// 二档趸缴: tier 2 paid as a lump sum for a period.
    LumpSum,
}

/// How a claim reached the fund.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Encode, Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Settled directly at a designated institution.
    Institution,
    /// At a designated pharmacy on an external prescription: the prescriber's level applies.
    Pharmacy,
    /// Paid in full by the member first and reimbursed by hand (手工报销).
    Manual,
}

/// What kind of place settled a claim (机构类别): the reform pays grass-roots institutions
/// (基层医疗机构: community health centres, township health centres) a higher ratio than
/// hospitals of the same level, so a policy rule may be conditioned on it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Encode, Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum InstitutionKind {
    /// 基层医疗机构.
    Grassroots,
    /// Any other designated medical institution.
    Hospital,
    /// A designated retail pharmacy.
    Pharmacy,
}

impl InstitutionKind {
    /// All kinds, in declaration order.
    pub const ALL: [InstitutionKind; 3] = [
        InstitutionKind::Grassroots,
        InstitutionKind::Hospital,
        InstitutionKind::Pharmacy,
    ];

    /// The kind of a claim that does not say: a pharmacy for a pharmacy claim, a hospital
    /// otherwise. Claims and settlements recorded before the kind existed read as this.
    pub fn default_for(channel: Channel) -> InstitutionKind {
        match channel {
            Channel::Pharmacy => InstitutionKind::Pharmacy,
            Channel::Institution | Channel::Manual => InstitutionKind::Hospital,
        }
    }

    /// Whether a claim through `channel` can have been settled at this kind of place: a
    /// pharmacy claim at a pharmacy, a direct institution claim at an institution, a manual
    /// reimbursement anywhere.
    pub fn fits(self, channel: Channel) -> bool {
        match channel {
            Channel::Pharmacy => self == InstitutionKind::Pharmacy,
            Channel::Institution => self != InstitutionKind::Pharmacy,
            Channel::Manual => true,
        }
    }
}

/// What a personal-account payment is for (个人账户使用范围).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Encode, Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Institution,
    Pharmacy,
    ResidentPremium,
    LtcPremium,
    LargeAmountPremium,
    PublicHealth,
    Fitness,
    Wellness,
}

impl Purpose {
    /// Public health, fitness and wellness may never be paid from a personal account.
    pub fn allowed(self) -> bool {
        !matches!(
            self,
            Purpose::PublicHealth | Purpose::Fitness | Purpose::Wellness
        )
    }
}

/// An auditor's decision on a monitoring flag (智能监控): the pattern is misuse, or it is not.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Encode, Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum FlagDecision {
    Confirmed,
    Dismissed,
}

/// Who may be bound to a holder's account (家庭共济).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Encode, Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Spouse,
    Parent,
    Child,
    /// Siblings, grandparents and grandchildren: allowed where a region adopted the 2024
    /// widening (国办发〔2024〕38号).
    Sibling,
    Grandparent,
    Grandchild,
}

/// The two funds each region has.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Encode, Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum FundKind {
    /// 统筹基金
    Pooled,
    /// 大额医疗互助基金
    LargeAmount,
}

pub use crate::rejection::{Rejection, RejectionCode};
