//! Records for the log-pg tests that write some (not shared with the workspace's tests, which
//! include `mod.rs` only).

/// Appends `units` units of two records (streams `m-UNIT` and `fund`) and syncs every
/// `per_sync` units; returns the durable end.
pub fn append(
    log: &mut gongji_log_pg::PgLog,
    from: u64,
    units: u64,
    per_sync: u64,
) -> Result<u64, gongji_log::LogError> {
    for unit in from..from + units {
        let member = format!("m-{unit}");
        let payload = format!("unit {unit}").into_bytes();
        gongji_log::DurableLog::append(
            log,
            &[(member.as_str(), gongji_log::ExpectedVersion::NoStream)],
            &[
                gongji_log::NewRecord {
                    stream: &member,
                    event_id: uuid::Uuid::from_u64_pair(unit, 0),
                    payload: &payload,
                },
                gongji_log::NewRecord {
                    stream: "fund",
                    event_id: uuid::Uuid::from_u64_pair(unit, 1),
                    payload: &payload,
                },
            ],
            unit as i64,
        )?;
        if (unit + 1) % per_sync == 0 {
            gongji_log::DurableLog::sync(log)?;
        }
    }
    gongji_log::DurableLog::sync(log)
}
