//! Which records an export takes: `--from`/`--to` on the event's own date
//! ([`Event::date`]), and `--region` as `audit export` reads it
//! ([`ArchiveFilter`]): an event counts for the region it names (a fund's, a settlement's, a
//! payment's), a member's event without one for the region the member belonged to then, and a
//! transfer within the ledger for both regions.
//!
//! The archive's own rule (`gongji-ledger`'s `archive::event_region`) is private to it; this is
//! the same rule, event for event, and the export's test checks a `--region` export against
//! it on a ledger where a member changed regions. To know a member's region it keeps one
//! entry per member (enrolment and transfers update it): the only state of a pass that grows,
//! with the members, not with the log.

use std::collections::HashMap;

use gongji_domain::{Day, Event};
use gongji_ledger::archive::ArchiveFilter;

/// The selection of a pass, and each member's region so far.
pub struct Selection {
    filter: ArchiveFilter,
    /// Each member's region, as an index into `regions` (a region's name is kept once).
    members: HashMap<Box<str>, u32>,
    regions: Vec<Box<str>>,
}

/// The regions an event counts for: one, or two for a transfer within the ledger, or none
/// (a member's event before the member's enrolment was seen: only a partial log has one).
pub type Regions<'a> = [Option<&'a str>; 2];

impl Selection {
    pub fn new(filter: ArchiveFilter) -> Selection {
        Selection {
            filter,
            members: HashMap::new(),
            regions: Vec::new(),
        }
    }

    pub fn filter(&self) -> &ArchiveFilter {
        &self.filter
    }

    /// Takes note of where a member is from `event` on (an enrolment, a transfer); call it for
    /// every record in log order, before [`Selection::regions`] of the same event.
    pub fn note(&mut self, event: &Event) {
        match event {
            Event::Enrolled { member, region, .. } => self.place(member, region),
            Event::Transferred {
                member, to_region, ..
            }
            | Event::TransferSent {
                member, to_region, ..
            }
            | Event::TransferReceived {
                member, to_region, ..
            } => self.place(member, to_region),
            _ => {}
        }
    }

    fn place(&mut self, member: &str, region: &str) {
        let index = match self.regions.iter().position(|r| &**r == region) {
            Some(index) => index,
            None => {
                self.regions.push(region.into());
                self.regions.len() - 1
            }
        };
        let index = u32::try_from(index).expect("fewer than 2^32 regions: a region code is short");
        match self.members.get_mut(member) {
            Some(at) => *at = index,
            None => {
                self.members.insert(member.into(), index);
            }
        }
    }

    /// The region `member` belongs to as of the records noted so far.
    pub fn member_region(&self, member: &str) -> Option<&str> {
        let index = *self.members.get(member)?;
        Some(&self.regions[index as usize])
    }

    /// The regions `event` counts for (after [`Selection::note`] of it).
    pub fn regions<'a>(&'a self, event: &'a Event) -> Regions<'a> {
        let of = |member: &str| [self.member_region(member), None];
        match event {
            Event::PolicyLoaded { policy } => [Some(&policy.region), None],
            Event::Transferred {
                from_region,
                to_region,
                ..
            } => [Some(from_region), Some(to_region)],
            Event::TransferSent { from_region, .. } => [Some(from_region), None],
            Event::TransferReceived { to_region, .. } => [Some(to_region), None],
            Event::FundEventOwed { owed } => of(&owed.member),
            Event::ClaimSettled { settlement } | Event::ClaimReversed { settlement, .. } => {
                [Some(&settlement.region), None]
            }
            Event::Enrolled { region, .. }
            | Event::FlagDecided { region, .. }
            | Event::MonitorRulesLoaded { region, .. }
            | Event::OwedLanded { region, .. }
            | Event::PooledContributed { region, .. }
            | Event::PooledCreditPaid { region, .. }
            | Event::FundClaimPaid { region, .. }
            | Event::FundClaimRefunded { region, .. }
            | Event::PremiumReceived { region, .. }
            | Event::PremiumRefunded { region, .. }
            | Event::AccountPaid { region, .. }
            | Event::YearClosed { region, .. } => [Some(region), None],
            Event::AccountCredited { member, .. }
            | Event::Retired { member, .. }
            | Event::Deceased { member, .. }
            | Event::Inherited { member, .. }
            | Event::FamilyBound { holder: member, .. }
            | Event::FamilyUnbound { holder: member, .. }
            | Event::AccountPaymentReversed { holder: member, .. } => of(member),
        }
    }

    /// Whether an event of own date `date` counting for `regions` is selected.
    pub fn admits(&self, date: Day, regions: &Regions<'_>) -> bool {
        let filter = &self.filter;
        let in_dates = filter.from.is_none_or(|f| date >= f) && filter.to.is_none_or(|t| date <= t);
        let in_region = filter
            .region
            .as_deref()
            .is_none_or(|wanted| regions.iter().flatten().any(|r| *r == wanted));
        in_dates && in_region
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gongji_domain::types::{Scheme, Status};
    use gongji_domain::Money;

    fn day(text: &str) -> Day {
        text.parse().expect("a day")
    }

    fn enrolled(member: &str, region: &str) -> Event {
        Event::Enrolled {
            member: member.into(),
            region: region.into(),
            born: day("1980-01-01"),
            status: Status::Active,
            scheme: Scheme::Employer,
            date: day("2024-01-01"),
            opening_balance: Money::ZERO,
            lump_sum_base: None,
            lump_sum_until: None,
        }
    }

    fn retired(member: &str) -> Event {
        Event::Retired {
            member: member.into(),
            date: day("2024-08-01"),
        }
    }

    #[test]
    fn a_members_event_counts_for_the_region_the_member_belonged_to_then() {
        let filter = ArchiveFilter {
            region: Some("510100".into()),
            ..ArchiveFilter::default()
        };
        let mut selection = Selection::new(filter);
        let admitted = |selection: &mut Selection, event: &Event| {
            selection.note(event);
            selection.admits(event.date(), &selection.regions(event))
        };
        assert!(!admitted(&mut selection, &enrolled("M1", "500000")));
        assert!(!admitted(&mut selection, &retired("M1")));
        let moved = Event::Transferred {
            member: "M1".into(),
            date: day("2024-07-01"),
            from_region: "500000".into(),
            to_region: "510100".into(),
            balance: Money::ZERO,
        };
        assert!(
            admitted(&mut selection, &moved),
            "a transfer counts for both"
        );
        assert!(admitted(&mut selection, &retired("M1")));
        assert_eq!(selection.member_region("M1"), Some("510100"));
    }

    #[test]
    fn dates_select_on_the_own_date_both_ends_included() {
        let filter = ArchiveFilter {
            from: Some(day("2024-08-01")),
            to: Some(day("2024-08-01")),
            region: None,
        };
        let selection = Selection::new(filter);
        assert!(selection.admits(day("2024-08-01"), &[None, None]));
        assert!(!selection.admits(day("2024-08-02"), &[None, None]));
        assert!(!selection.admits(day("2024-07-31"), &[None, None]));
    }
}
