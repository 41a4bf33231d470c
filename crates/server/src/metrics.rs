//! The figures `GET /metrics` shows, in Prometheus' text format: requests by route and status,
//! their total duration, command lines applied and refused, and the log's durable position.
//! Counters only grow; the position is what the last durable group or the open reported.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Metrics {
    /// Requests answered, by route template (`unmatched` for no route) and status.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    request_micros_total: AtomicU64,
    pub lines_applied: AtomicU64,
    pub lines_refused: AtomicU64,
    pub durable_position: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry((route, status)).or_default() += 1;
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.request_micros_total
            .fetch_add(micros, Ordering::Relaxed);
    }

    /// The text `GET /metrics` answers.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let count: u64 = requests.values().sum();
        text.push_str(
            "# HELP gongji_http_requests_total Requests answered, by route and status.\n",
        );
        text.push_str("# TYPE gongji_http_requests_total counter\n");
        for ((route, status), n) in requests.iter() {
            let _ = writeln!(
                text,
                "gongji_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        drop(requests);
        let seconds = self.request_micros_total.load(Ordering::Relaxed) as f64 / 1e6;
        let figures: [(&str, &str, &str, String); 5] = [
            (
                "gongji_http_request_duration_seconds_sum",
                "counter",
                "Time spent answering requests (to the answer's head).",
                format!("{seconds}"),
            ),
            (
                "gongji_http_request_duration_seconds_count",
                "counter",
                "Requests timed.",
                count.to_string(),
            ),
            (
                "gongji_command_lines_applied_total",
                "counter",
                "Command lines applied and answered.",
                self.lines_applied.load(Ordering::Relaxed).to_string(),
            ),
            (
                "gongji_command_lines_refused_total",
                "counter",
                "Command lines rejected and answered.",
                self.lines_refused.load(Ordering::Relaxed).to_string(),
            ),
            (
                "gongji_durable_position",
                "gauge",
                "Log position before which every record is durable.",
                self.durable_position.load(Ordering::Relaxed).to_string(),
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
        assert!(text.contains("gongji_http_request_duration_seconds_count 3\n"));
        assert!(text.contains("gongji_command_lines_applied_total 7\n"));
    }
}
