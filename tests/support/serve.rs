//! Starting, stopping and asking `gongji serve` for the end-to-end tests: one harness for
//! every test that runs the service.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{add_token, TestLedger};

/// The roles a token can have.
pub const ROLES: [&str; 4] = ["operator", "clerk", "auditor", "reconciler"];

/// How long a stopped server may take to exit.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// `gongji serve --listen LISTEN EXTRA…` over `ledger`, its standard error the test's; the
/// caller may set more (an environment variable, another standard error) before [`Serve::spawn`].
pub fn command(ledger: &TestLedger, listen: &str, extra: &[&str]) -> Command {
    let mut command = ledger.command(&["serve", "--listen", listen]);
    command.args(extra).stderr(Stdio::inherit());
    command
}

/// A running `gongji serve`. Dropped, it is killed and reaped, so a failed check leaves no
/// server running.
pub struct Serve {
    pub child: Child,
    /// As its first line says: `http://…` or `https://…`.
    pub url: String,
    /// The host and port it listens on (the URL without its scheme).
    pub address: String,
}

impl Serve {
    /// Over `ledger` on a loopback port the system picks, with `extra` arguments, serving plain
    /// HTTP.
    pub fn start(ledger: &TestLedger, extra: &[&str]) -> Serve {
        Serve::spawn_http(&mut command(ledger, "127.0.0.1:0", extra))
    }

    /// Starts `command` (a [`command`]) and reads the first line it prints, which must name
    /// the URL it listens on, plain HTTP or HTTPS.
    pub fn spawn(command: &mut Command) -> Serve {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("gongji serve starts");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("stdout piped");
        BufReader::new(stdout).read_line(&mut first).unwrap();
        let url = first
            .trim()
            .strip_prefix("gongji serve: listening on ")
            .unwrap_or_else(|| panic!("first line names the address: {first:?}"))
            .to_string();
        let address = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .unwrap_or_else(|| panic!("first line names the address: {first:?}"))
            .to_string();
        Serve {
            child,
            url,
            address,
        }
    }

    /// [`Serve::spawn`], and the server must serve plain HTTP.
    pub fn spawn_http(command: &mut Command) -> Serve {
        let serve = Serve::spawn(command);
        assert!(
            serve.url.starts_with("http://"),
            "first line names the address: {}",
            serve.url
        );
        serve
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the server to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(started.elapsed() < limit, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and the server must exit 0.
    pub fn stop(mut self) {
        self.terminate();
        let status = self.wait_exit(STOP_LIMIT);
        assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    }

    /// SIGKILL, and reaps the server.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("child reaped");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token for each of [`ROLES`], each token named after its role.
pub struct RoleTokens(Vec<(&'static str, String)>);

impl RoleTokens {
    pub fn add(ledger: &TestLedger) -> RoleTokens {
        let tokens = ROLES
            .iter()
            .map(|role| (*role, add_token(ledger, role, role, &[])))
            .collect();
        RoleTokens(tokens)
    }

    /// The token of `role`, one of [`ROLES`].
    pub fn of(&self, role: &str) -> &str {
        let found = self.0.iter().find(|(r, _)| *r == role);
        &found.expect("a role of ROLES").1
    }
}

/// An HTTP client that returns every status as an answer, never waiting over three minutes (a
/// test's command stream of 60,000 lines on the debug build took over one on a loaded machine).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(180)))
        .build()
        .into()
}

/// GET `url` with `token` (if any): the status and the body.
pub fn get(agent: &ureq::Agent, url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = agent.get(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call().expect("the server answers");
    let body = response.body_mut().read_to_string().expect("a text body");
    (response.status().as_u16(), body)
}

/// POST `body` to `url` as NDJSON with `token` (if any): the answer, whatever its status.
pub fn post_ndjson(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    body: &[u8],
) -> ureq::http::Response<ureq::Body> {
    let mut request = agent
        .post(url)
        .header("Content-Type", "application/x-ndjson");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    request.send(body).expect("the server answers")
}

/// Connects to `address` and writes the head of a `POST /v1/commands` with `token` whose body
/// the caller sends by hand, chunk by chunk: the connection to write the chunks to, and the one
/// to read the answer from (its reads time out after `timeout`).
pub fn open_chunked_commands(
    address: &str,
    token: &str,
    timeout: Duration,
) -> (TcpStream, TcpStream) {
    let connection = TcpStream::connect(address).unwrap();
    connection.set_read_timeout(Some(timeout)).unwrap();
    let mut writer = connection.try_clone().unwrap();
    let head = format!(
        "POST /v1/commands HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).unwrap();
    (writer, connection)
}
