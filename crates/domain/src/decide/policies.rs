//! Loading a policy version (政策版本) of a region.

use super::{Decision, Outcome};
use crate::event::{Event, Stream};
use crate::policy::PolicyVersion;
use crate::policy_check;
use crate::state::State;
use crate::types::{Rejection, RejectionCode};

/// Loads a version that passes `validate` and the lint ([`policy_check::lint`]): a version a
/// log already holds is held to `validate` alone, a new one to both.
pub(super) fn load_policy(state: &State, policy: &PolicyVersion) -> Result<Decision, Rejection> {
    let invalid = |why: String| {
        Rejection::new(
            RejectionCode::InvalidPolicy,
            format!(
                "policy {} of region {}: {why}",
                policy.version, policy.region
            ),
        )
    };
    policy.validate().map_err(invalid)?;
    let findings = policy_check::lint(policy);
    if !findings.is_empty() {
        let said: Vec<String> = findings.iter().map(ToString::to_string).collect();
        return Err(invalid(said.join("; ")));
    }
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
