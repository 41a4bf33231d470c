//! A TCP proxy in front of the test database that can be cut: every connection through it
//! closed and the port refusing new ones, until it is restored on the same port. What a client
//! sees of a primary lost to a failover (connections gone, nothing accepting) without a
//! formation. Used by the log's tests and the server's (`tests/postgres.rs`), each using some of
//! it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The proxy: `uri` reaches the test database through it (`url`: the same as a
/// `postgresql://` URI, as the command line's `--data` takes it).
pub struct Proxy {
    pub uri: String,
    pub url: String,
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    accepting: Option<JoinHandle<()>>,
}

struct Shared {
    /// The accept loop stops (and drops the listener) once this is set.
    stop: AtomicBool,
    /// Both ends of every connection made, to be shut down at a cut.
    streams: Mutex<Vec<TcpStream>>,
    /// Connections accepted since the proxy started.
    accepted: AtomicUsize,
}

impl Proxy {
    /// A proxy in front of the database `pg_uri` names (one host, TCP), on a free port of
    /// 127.0.0.1; `uri` is `pg_uri`'s settings with that address.
    pub fn start(pg_uri: &str) -> Proxy {
        let config: postgres::Config = pg_uri.parse().expect("the test database's URI");
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            other => panic!("the proxy needs a TCP host, not {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = format!("{host}:{port}").parse().expect("an IP address");
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let mut uri = format!("host=127.0.0.1 port={} connect_timeout=2", addr.port());
        let mut who = String::new();
        if let Some(user) = config.get_user() {
            uri.push_str(&format!(" user={user}"));
            who.push_str(user);
        }
        if let Some(password) = config.get_password() {
            let password = String::from_utf8_lossy(password);
            uri.push_str(&format!(" password={password}"));
            who.push_str(&format!(":{password}"));
        }
        // libpq's default database is the user's name.
        let db = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres");
        uri.push_str(&format!(" dbname={db}"));
        let at = if who.is_empty() { "" } else { "@" };
        let url = format!(
            "postgresql://{who}{at}127.0.0.1:{}/{db}?connect_timeout=2",
            addr.port()
        );
        let mut proxy = Proxy {
            uri,
            url,
            addr,
            target,
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                streams: Mutex::new(Vec::new()),
                accepted: AtomicUsize::new(0),
            }),
            accepting: None,
        };
        proxy.accept_on(listener);
        proxy
    }

    /// Closes every connection through the proxy and refuses new ones until [`Proxy::restore`].
    pub fn cut(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.accepting.take() {
            thread.join().expect("the proxy's accept loop");
        }
        let mut streams = self
            .shared
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for stream in streams.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// How many connections the proxy accepted since it started.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Accepts connections again, on the same port.
    pub fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).expect("binding the proxy's port again");
        self.shared.stop.store(false, Ordering::SeqCst);
        self.accept_on(listener);
    }

    fn accept_on(&mut self, listener: TcpListener) {
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let shared = Arc::clone(&self.shared);
        let target = self.target;
        self.accepting = Some(std::thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        shared.accepted.fetch_add(1, Ordering::SeqCst);
                        connect_through(client, target, &shared)
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Connects `client` to `target` and copies bytes both ways, each on a thread of its own.
fn connect_through(client: TcpStream, target: SocketAddr, shared: &Shared) {
    let Ok(server) = TcpStream::connect(target) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nonblocking(false);
    let (Ok(client_2), Ok(server_2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let mut streams = shared
        .streams
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
        streams.push(c);
        streams.push(s);
    }
    drop(streams);
    std::thread::spawn(move || copy(client, server));
    std::thread::spawn(move || copy(server_2, client_2));
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
