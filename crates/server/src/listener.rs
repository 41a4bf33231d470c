//! The connection bound: a listener that accepts a connection only while fewer than
//! `connections_max` are open. A connection past the bound waits in the kernel's backlog until
//! one closes; each accepted connection holds its place until it is dropped.
//!
//! With TLS ([`TlsBounded`]), a task of its own accepts connections (within the same bound) and
//! runs each handshake on a task of its own, bounded by [`HANDSHAKE_MAX`]; only connections
//! whose handshake completed reach the server. So a client that stalls its handshake holds one
//! place for at most that long, and never the accepting of others.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Longest a TLS handshake may take; then the connection is dropped.
pub const HANDSHAKE_MAX: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them, at most.
const HANDSHAKEN_WAITING_MAX: usize = 64;

pub struct Bounded {
    listener: TcpListener,
    places: Arc<Semaphore>,
}

impl Bounded {
    pub fn new(listener: TcpListener, connections_max: usize) -> Bounded {
        Bounded {
            listener,
            places: Arc::new(Semaphore::new(connections_max)),
        }
    }
}

/// An accepted connection and its place.
pub struct Placed<S = TcpStream> {
    stream: S,
    _place: OwnedSemaphorePermit,
}

/// The bounded listener with TLS: connections are handed out once their handshake completed.
pub struct TlsBounded {
    handshaken: mpsc::Receiver<(Placed<TlsStream<TcpStream>>, SocketAddr)>,
    local: io::Result<SocketAddr>,
}

impl TlsBounded {
    /// Starts accepting on `listener` (on the current runtime) and handshaking with `acceptor`.
    pub fn new(mut listener: Bounded, acceptor: TlsAcceptor) -> TlsBounded {
        let local = listener.listener.local_addr();
        let (to_server, handshaken) = mpsc::channel(HANDSHAKEN_WAITING_MAX);
        tokio::spawn(async move {
            while !to_server.is_closed() {
                let (placed, address) = axum::serve::Listener::accept(&mut listener).await;
                let (acceptor, to_server) = (acceptor.clone(), to_server.clone());
                tokio::spawn(async move {
                    let shaking = acceptor.accept(placed.stream);
                    // A failed or stalled handshake drops the connection and frees its place.
                    if let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_MAX, shaking).await {
                        let placed = Placed {
                            stream,
                            _place: placed._place,
                        };
                        let _ = to_server.send((placed, address)).await;
                    }
                });
            }
        });
        TlsBounded { handshaken, local }
    }
}

impl axum::serve::Listener for TlsBounded {
    type Io = Placed<TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accepting task ends only once this receiver is gone: never while here.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.local {
            Ok(address) => Ok(*address),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Placed;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Placed, Self::Addr) {
        let place = self
            .places
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, address) = axum::serve::Listener::accept(&mut self.listener).await;
        let _ = stream.set_nodelay(true);
        let placed = Placed {
            stream,
            _place: place,
        };
        (placed, address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Placed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Placed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
