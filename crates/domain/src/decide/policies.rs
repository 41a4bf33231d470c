//! Loading a policy version (政策版本) of a region.

use super::{Decision, Outcome};
use crate::event::{Event, Stream};
use crate::policy::PolicyVersion;
use crate::state::State;
use crate::types::{Rejection, RejectionCode};

pub(super) fn load_policy(state: &State, policy: &PolicyVersion) -> Result<Decision, Rejection> {
    policy.validate().map_err(|why| {
        Rejection::new(
            RejectionCode::InvalidPolicy,
            format!(
                "policy {} of region {}: {why}",
                policy.version, policy.region
            ),
        )
    })?;
    if let Some(versions) = state.policies.get(&policy.region) {
        if let Some(same) = versions
            .iter()
            .find(|v| v.effective == policy.effective || v.version == policy.version)
        {
            return Err(Rejection::new(
                RejectionCode::DuplicatePolicy,
                format!(
                    "region {} already has version {} effective {}",
                    policy.region, same.version, same.effective
                ),
            ));
        }
    }
    Ok(Decision {
        events: vec![(
            Stream::Policy(policy.region.clone()),
            Event::PolicyLoaded {
                policy: Box::new(policy.clone()),
            },
        )],
        outcome: Outcome::PolicyLoaded {
            region: policy.region.clone(),
            version: policy.version.clone(),
            effective: policy.effective,
        },
    })
}
