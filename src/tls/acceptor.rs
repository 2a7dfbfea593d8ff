//! The poem `Acceptor`/`Listener` that terminates TLS lazily with hot-swappable configs.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use poem::{
    http::uri::Scheme,
    listener::{Acceptor, Listener},
    web::{LocalAddr, RemoteAddr},
};
use rustls::ServerConfig;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};

/// The server config currently in use; replace it to rotate certificates without a restart.
#[derive(Clone)]
pub struct CertSwap(Arc<parking_lot::RwLock<Arc<ServerConfig>>>);

impl CertSwap {
    pub fn new(cfg: Arc<ServerConfig>) -> Self {
        Self(Arc::new(parking_lot::RwLock::new(cfg)))
    }

    /// New connections use `cfg`; established ones keep theirs.
    pub fn set(&self, cfg: Arc<ServerConfig>) {
        *self.0.write() = cfg;
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        self.0.read().clone()
    }
}

impl std::fmt::Debug for CertSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertSwap")
    }
}

enum State<S> {
    Handshaking { accept: tokio_rustls::Accept<S>, deadline: Pin<Box<Sleep>> },
    Ready(tokio_rustls::server::TlsStream<S>),
    Failed,
}

/// A server-side TLS stream whose handshake runs inside its first read/write, bounded by
/// the acceptor's handshake timeout.
pub struct LazyTlsStream<S> {
    state: State<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> LazyTlsStream<S> {
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let State::Handshaking { accept, deadline } = &mut self.state {
            match Pin::new(accept).poll(cx) {
                Poll::Ready(Ok(stream)) => self.state = State::Ready(stream),
                Poll::Ready(Err(err)) => {
                    tracing::debug!(error = %err, "TLS handshake failed");
                    self.state = State::Failed;
                    return Poll::Ready(Err(err));
                }
                Poll::Pending => {
                    ready!(deadline.as_mut().poll(cx));
                    tracing::debug!("TLS handshake timed out");
                    self.state = State::Failed;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "TLS handshake timed out",
                    )));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn ready_stream(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&mut tokio_rustls::server::TlsStream<S>>> {
        ready!(self.poll_handshake(cx))?;
        match &mut self.state {
            State::Ready(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "TLS handshake failed",
            ))),
        }
    }

    /// The negotiated ALPN protocol, once the handshake has completed.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match &self.state {
            State::Ready(stream) => stream.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for LazyTlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().ready_stream(cx))?;
        Pin::new(stream).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LazyTlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().ready_stream(cx))?;
        Pin::new(stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().ready_stream(cx))?;
        Pin::new(stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().ready_stream(cx))?;
        Pin::new(stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.state {
            // Nothing was exchanged yet; dropping the socket is the shutdown.
            State::Handshaking { .. } | State::Failed => {
                this.state = State::Failed;
                Poll::Ready(Ok(()))
            }
            State::Ready(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// Wraps a poem acceptor: every accepted stream becomes a [`LazyTlsStream`] using the
/// config current at accept time. `accept()` never waits for a client's handshake.
pub struct TlsAcceptor<A> {
    inner: A,
    certs: CertSwap,
    handshake_timeout: Duration,
}

impl<A> TlsAcceptor<A> {
    pub fn new(inner: A, certs: CertSwap, handshake_timeout: Duration) -> Self {
        Self { inner, certs, handshake_timeout }
    }
}

impl<A: Acceptor> Acceptor for TlsAcceptor<A> {
    type Io = LazyTlsStream<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, local, remote, _) = self.inner.accept().await?;
        let acceptor = tokio_rustls::TlsAcceptor::from(self.certs.current());
        let io = LazyTlsStream {
            state: State::Handshaking {
                accept: acceptor.accept(stream),
                deadline: Box::pin(tokio::time::sleep(self.handshake_timeout)),
            },
        };
        Ok((io, local, remote, Scheme::HTTPS))
    }
}

/// Wraps a poem listener (e.g. `TcpListener`) so its acceptor is a [`TlsAcceptor`].
pub struct TlsListener<L> {
    inner: L,
    certs: CertSwap,
    handshake_timeout: Duration,
}

impl<L> TlsListener<L> {
    pub fn new(inner: L, certs: CertSwap, handshake_timeout: Duration) -> Self {
        Self { inner, certs, handshake_timeout }
    }
}

impl<L: Listener> Listener for TlsListener<L> {
    type Acceptor = TlsAcceptor<L::Acceptor>;

    async fn into_acceptor(self) -> io::Result<Self::Acceptor> {
        let inner = self.inner.into_acceptor().await?;
        Ok(TlsAcceptor::new(inner, self.certs, self.handshake_timeout))
    }
}
