//! Who may do what: the four roles, the kinds of route, and the one table between them
//! ([`RouteKind::access`]). The middleware asks it for every request and the tests iterate it;
//! there is no other place a permission is decided.

/// A token's role, as the issue names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Submits commands and loads policies; reads everything a clerk reads.
    Operator,
    /// Member-level reads: account, year, history, inheritance, transfers, explain.
    Clerk,
    /// Every read, fund totals, the access log, audit replay/verify/export, the change feed,
    /// monitoring flags; no writes but decisions on flags.
    Auditor,
    /// Reconciliation and statements; no writes.
    Reconciler,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Operator, Role::Clerk, Role::Auditor, Role::Reconciler];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Clerk => "clerk",
            Role::Auditor => "auditor",
            Role::Reconciler => "reconciler",
        }
    }

    pub fn parse(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                format!("'{text}' is not a role: operator, clerk, auditor or reconciler")
            })
    }
}

/// What a route does, as far as permissions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// `GET /healthz`.
    Health,
    /// `GET /v1/openapi.json`.
    OpenApi,
    /// `GET /metrics`.
    Metrics,
    /// `POST /v1/commands`.
    Commands,
    /// One member's data: account, year, history, inheritance, transfers, a claim's explanation.
    MemberRead,
    /// A region's fund totals.
    Funds,
    /// The policy versions loaded.
    Policies,
    /// Who read whose data.
    AccessLog,
    /// The change feed: every record of the log from a position on, then live.
    Events,
    /// Audit replay, verify and export: the whole log, checked or copied out.
    Audit,
    /// Reconciliation against an institution's file, and an institution's statement.
    Reconcile,
    /// Monitoring flags (智能监控) and auditors' decisions on them.
    Flags,
    /// The web page and its assets (they hold no data: the page reads the API with the
    /// token its user gives).
    Page,
    /// Who a token is: its name, role and the routes the role may use.
    Me,
}

/// Who may use a kind of route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No token needed (a token given is not checked).
    Public,
    /// A valid token of one of these roles.
    Roles(&'static [Role]),
}

impl RouteKind {
    pub const ALL: [RouteKind; 14] = [
        RouteKind::Health,
        RouteKind::OpenApi,
        RouteKind::Metrics,
        RouteKind::Commands,
        RouteKind::MemberRead,
        RouteKind::Funds,
        RouteKind::Policies,
        RouteKind::AccessLog,
        RouteKind::Events,
        RouteKind::Audit,
        RouteKind::Reconcile,
        RouteKind::Flags,
        RouteKind::Page,
        RouteKind::Me,
    ];

    /// The permission table.
    pub fn access(self) -> Access {
        use Role::*;
        match self {
            RouteKind::Health | RouteKind::OpenApi | RouteKind::Page => Access::Public,
            RouteKind::Me => Access::Roles(&Role::ALL),
            RouteKind::Metrics => Access::Roles(&[Operator, Auditor]),
            RouteKind::Commands => Access::Roles(&[Operator]),
            RouteKind::MemberRead => Access::Roles(&[Operator, Clerk, Auditor]),
            RouteKind::Funds => Access::Roles(&[Auditor]),
            RouteKind::Policies => Access::Roles(&[Operator, Auditor]),
            RouteKind::AccessLog => Access::Roles(&[Auditor]),
            RouteKind::Events => Access::Roles(&[Auditor]),
            RouteKind::Audit => Access::Roles(&[Auditor]),
            RouteKind::Reconcile => Access::Roles(&[Reconciler, Auditor]),
            RouteKind::Flags => Access::Roles(&[Auditor]),
        }
    }

    /// Whether `role` may use this kind of route.
    pub fn allows(self, role: Role) -> bool {
        match self.access() {
            Access::Public => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }
}

/// Every route of the service: method, path as the router and the OpenAPI document write it,
/// and its kind.
pub const ROUTES: &[(&str, &str, RouteKind)] = &[
    ("GET", "/healthz", RouteKind::Health),
    ("GET", "/v1/openapi.json", RouteKind::OpenApi),
    ("GET", "/", RouteKind::Page),
    ("GET", "/ui/{file}", RouteKind::Page),
    ("GET", "/v1/me", RouteKind::Me),
    ("GET", "/metrics", RouteKind::Metrics),
    ("POST", "/v1/commands", RouteKind::Commands),
    ("GET", "/v1/members/{id}", RouteKind::MemberRead),
    (
        "GET",
        "/v1/members/{id}/years/{year}",
        RouteKind::MemberRead,
    ),
    ("GET", "/v1/members/{id}/history", RouteKind::MemberRead),
    ("GET", "/v1/members/{id}/inheritance", RouteKind::MemberRead),
    ("GET", "/v1/members/{id}/transfers", RouteKind::MemberRead),
    ("GET", "/v1/members/{id}/timeline", RouteKind::MemberRead),
    ("GET", "/v1/claims/{id}/explain", RouteKind::MemberRead),
    ("GET", "/v1/funds/{region}", RouteKind::Funds),
    ("GET", "/v1/policies", RouteKind::Policies),
    ("GET", "/v1/access-log", RouteKind::AccessLog),
    ("GET", "/v1/events", RouteKind::Events),
    ("POST", "/v1/audit/verify", RouteKind::Audit),
    ("GET", "/v1/audit/replay", RouteKind::Audit),
    ("GET", "/v1/audit/export", RouteKind::Audit),
    ("GET", "/v1/export/{table}", RouteKind::Audit),
    ("POST", "/v1/reconcile/detail", RouteKind::Reconcile),
    ("POST", "/v1/reconcile/totals", RouteKind::Reconcile),
    (
        "GET",
        "/v1/statements/{institution}/{month}",
        RouteKind::Reconcile,
    ),
    ("GET", "/v1/flags", RouteKind::Flags),
    ("POST", "/v1/flags/{id}/decision", RouteKind::Flags),
];

/// The kind of the route whose path template is `path`.
pub fn kind_of(path: &str) -> Option<RouteKind> {
    ROUTES
        .iter()
        .find(|(_, route, _)| *route == path)
        .map(|(_, _, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_operators_write_and_only_auditors_see_funds_and_the_access_log() {
        for kind in RouteKind::ALL {
            for role in Role::ALL {
                let expected = match kind {
                    RouteKind::Health | RouteKind::OpenApi | RouteKind::Page => true,
                    RouteKind::Me => true,
                    RouteKind::Commands => role == Role::Operator,
                    RouteKind::MemberRead => role != Role::Reconciler,
                    RouteKind::Funds | RouteKind::AccessLog => role == Role::Auditor,
                    RouteKind::Events | RouteKind::Audit | RouteKind::Flags => {
                        role == Role::Auditor
                    }
                    RouteKind::Reconcile => matches!(role, Role::Reconciler | Role::Auditor),
                    RouteKind::Policies | RouteKind::Metrics => {
                        matches!(role, Role::Operator | Role::Auditor)
                    }
                };
                assert_eq!(kind.allows(role), expected, "{kind:?} for {role:?}");
            }
        }
    }

    #[test]
    fn every_route_has_a_kind_and_every_kind_a_route() {
        for kind in RouteKind::ALL {
            assert!(ROUTES.iter().any(|(_, _, k)| *k == kind), "{kind:?}");
        }
        for (_, path, kind) in ROUTES {
            assert_eq!(kind_of(path), Some(*kind));
        }
    }

    #[test]
    fn roles_read_back_from_their_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("admin").is_err());
    }
}
