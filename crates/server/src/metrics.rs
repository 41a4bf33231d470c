//! The figures `GET /metrics` shows, in Prometheus' text format: requests by route and status,
//! a latency histogram per route (fixed buckets: `_bucket{le}`, `_sum`, `_count`), command
//! lines applied and refused, and the log's durable position. Counters only grow; the
//! position is what the last durable group or the open reported.
//!
//! Invariant as the code holds it: a request is counted in its route's histogram and in its
//! route-and-status counter under one lock, so a scrape sees the `+Inf` bucket equal to
//! `_count`, and each route's `_count` equal to the sum of its statuses' counters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The histogram's upper bounds, in microseconds (rendered in seconds), ascending; `+Inf`
/// follows them.
pub const BUCKET_BOUNDS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// One route's latencies: how many fell in each bucket (not cumulative; the last is `+Inf`),
/// their sum and their count.
#[derive(Default)]
struct Latencies {
    in_bucket: [u64; BUCKET_BOUNDS_MICROS.len() + 1],
    micros_total: u64,
    count: u64,
}

impl Latencies {
    fn add(&mut self, micros: u64) {
        let bucket = BUCKET_BOUNDS_MICROS.partition_point(|&bound| bound < micros);
        self.in_bucket[bucket] += 1;
        self.micros_total = self.micros_total.saturating_add(micros);
        self.count += 1;
    }

    fn render(&self, route: &str, text: &mut String) {
        let name = "gongji_http_request_duration_seconds";
        let mut cumulative = 0;
        for (i, n) in self.in_bucket.iter().enumerate() {
            cumulative += n;
            let le = match BUCKET_BOUNDS_MICROS.get(i) {
                Some(&bound) => seconds(bound),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                text,
                "{name}_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = seconds(self.micros_total);
        let _ = writeln!(text, "{name}_sum{{route=\"{route}\"}} {sum}");
        let _ = writeln!(text, "{name}_count{{route=\"{route}\"}} {}", self.count);
    }
}

/// Microseconds as decimal seconds, exactly (`2500` is `0.0025`).
fn seconds(micros: u64) -> String {
    let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[derive(Default)]
struct Requests {
    /// Requests answered, by route template (`unmatched` for no route) and status.
    by_status: BTreeMap<(&'static str, u16), u64>,
    /// Their latencies, to the answer's head, by route template.
    latencies: BTreeMap<&'static str, Latencies>,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<Requests>,
    pub lines_applied: AtomicU64,
    pub lines_refused: AtomicU64,
    pub durable_position: AtomicU64,
    /// Records the read view's follower folded: taken from the writer's handed-over events,
    /// and read from the log.
    pub view_folded_handed: AtomicU64,
    pub view_folded_read: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.by_status.entry((route, status)).or_default() += 1;
        requests.latencies.entry(route).or_default().add(micros);
    }

    /// The text `GET /metrics` answers.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        text.push_str(
            "# HELP gongji_http_requests_total Requests answered, by route and status.\n",
        );
        text.push_str("# TYPE gongji_http_requests_total counter\n");
        for ((route, status), n) in requests.by_status.iter() {
            let _ = writeln!(
                text,
                "gongji_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        text.push_str(
            "# HELP gongji_http_request_duration_seconds Time to answer a request's head, by \
             route.\n# TYPE gongji_http_request_duration_seconds histogram\n",
        );
        for (route, latencies) in requests.latencies.iter() {
            latencies.render(route, &mut text);
        }
        drop(requests);
        let figures: [(&str, &str, &str, u64); 5] = [
            (
                "gongji_command_lines_applied_total",
                "counter",
                "Command lines applied and answered.",
                self.lines_applied.load(Ordering::Relaxed),
            ),
            (
                "gongji_command_lines_refused_total",
                "counter",
                "Command lines rejected and answered.",
                self.lines_refused.load(Ordering::Relaxed),
            ),
            (
                "gongji_durable_position",
                "gauge",
                "Log position before which every record is durable.",
                self.durable_position.load(Ordering::Relaxed),
            ),
            (
                "gongji_read_view_folded_handed_total",
                "counter",
                "Records the read view's follower folded from the events the writer handed over.",
                self.view_folded_handed.load(Ordering::Relaxed),
            ),
            (
                "gongji_read_view_folded_read_total",
                "counter",
                "Records the read view's follower folded by reading them from the log.",
                self.view_folded_read.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in figures {
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let metrics = Metrics::default();
        metrics.request("/healthz", 200, Duration::from_millis(2));
        metrics.request("/healthz", 200, Duration::from_millis(2));
        metrics.request("/v1/policies", 403, Duration::ZERO);
        metrics.lines_applied.fetch_add(7, Ordering::Relaxed);
        let text = metrics.render();
        assert!(text.contains("gongji_http_requests_total{route=\"/healthz\",status=\"200\"} 2\n"));
        assert!(text.contains("{route=\"/v1/policies\",status=\"403\"} 1\n"));
        assert!(text.contains("gongji_http_request_duration_seconds_count{route=\"/healthz\"} 2\n"));
        assert!(
            text.contains("gongji_http_request_duration_seconds_count{route=\"/v1/policies\"} 1\n")
        );
        assert!(text.contains("gongji_command_lines_applied_total 7\n"));
    }

    #[test]
    fn latencies_fall_in_the_first_bucket_they_fit_and_buckets_are_cumulative() {
        let metrics = Metrics::default();
        for millis in [0, 1, 2, 3, 7, 20_000] {
            metrics.request("/r", 200, Duration::from_millis(millis));
        }
        let text = metrics.render();
        for (le, n) in [
            ("0.0005", 1),
            ("0.001", 2),
            ("0.0025", 3),
            ("0.005", 4),
            ("0.01", 5),
            ("10", 5),
            ("+Inf", 6),
        ] {
            let line = format!(
                "gongji_http_request_duration_seconds_bucket{{route=\"/r\",le=\"{le}\"}} {n}\n"
            );
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(
            text.contains("gongji_http_request_duration_seconds_sum{route=\"/r\"} 20.013\n"),
            "{text}"
        );
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(0), "0");
    }
}
