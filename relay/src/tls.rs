//! Serving the API over TLS (rustls with ring): loading the certificate chain and key from PEM
//! files, swapping them in place on reload (SIGHUP), and a listener that runs handshakes off
//! the accept loop, bounded in number and time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;

/// Handshakes in progress at once; further connections wait in the kernel's backlog.
pub const HANDSHAKES_MAX: usize = 1024;
/// A client that has not finished its handshake in this time is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const READY_MAX: usize = 64;

/// Why the certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} {path}: {source}; check the path and its permissions")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the TLS certificate file {0} holds no certificate; it should hold the PEM chain, the relay's own certificate first (`-----BEGIN CERTIFICATE-----`)"
    )]
    NoCertificate(PathBuf),
    #[error("the TLS {what} {path} is not valid PEM ({problem}); it should hold {expected}")]
    BadPem {
        what: &'static str,
        path: PathBuf,
        problem: String,
        expected: &'static str,
    },
    #[error(
        "the TLS key file {0} holds no private key; it should hold one PEM key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
    )]
    NoKey(PathBuf),
    #[error("the TLS key {path} cannot be used: {problem}")]
    BadKey { path: PathBuf, problem: String },
    #[error(
        "the TLS key {key} does not belong to the certificate {cert} ({problem}); pass the key the certificate was issued for"
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        problem: String,
    },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// Where the certificate chain and its key are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM, the relay's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM, PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads and checks both files: a chain of at least one certificate and a private key
    /// whose public half is the leaf certificate's.
    pub fn load(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let provider = rustls::crypto::ring::default_provider();
        let cert_pem = read(&self.cert, "certificate file")?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::BadPem {
                what: "certificate file",
                path: self.cert.clone(),
                problem: e.to_string(),
                expected: "`-----BEGIN CERTIFICATE-----` blocks",
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(self.cert.clone()));
        }
        let key_pem = read(&self.key, "key file")?;
        let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
            Ok(k) => k,
            Err(rustls::pki_types::pem::Error::NoItemsFound) => {
                return Err(TlsError::NoKey(self.key.clone()));
            }
            Err(e) => {
                return Err(TlsError::BadPem {
                    what: "key file",
                    path: self.key.clone(),
                    problem: e.to_string(),
                    expected: "one private key",
                });
            }
        };
        let signing =
            provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| TlsError::BadKey {
                    path: self.key.clone(),
                    problem: e.to_string(),
                })?;
        let certified = CertifiedKey::new(chain, signing);
        certified.keys_match().map_err(|e| TlsError::Mismatch {
            cert: self.cert.clone(),
            key: self.key.clone(),
            problem: e.to_string(),
        })?;
        Ok(Arc::new(certified))
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The certificate in use, swapped whole on reload; a handshake takes the one current when it
/// starts.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // One certificate whatever the SNI: a relay has one public name.
        match self.0.read() {
            Ok(c) => Some(c.clone()),
            Err(poisoned) => Some(poisoned.into_inner().clone()),
        }
    }
}

/// A relay's TLS: its files, the certificate in use and the rustls configuration over it.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    current: Arc<Current>,
    config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// Loads the files (every problem is an error here, before the relay binds anything) and
    /// builds the server configuration: TLS 1.2 and 1.3, HTTP/1.1 by ALPN, no client
    /// certificates.
    pub fn new(files: TlsFiles) -> Result<ServerTls, TlsError> {
        let current = Arc::new(Current(RwLock::new(files.load()?)));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            files,
            current,
            config: Arc::new(config),
        })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the files again and, if they load and match, serves the new certificate from the
    /// next handshake on. On any error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = self.files.load()?;
        match self.current.0.write() {
            Ok(mut c) => *c = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// The end-entity certificate in use (DER), for tests and diagnostics.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        let c = match self.current.0.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        c.cert.first().cloned()
    }

    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }
}

/// A TCP listener whose connections come out TLS-established. One task accepts and runs each
/// handshake in a task of its own (at most [`HANDSHAKES_MAX`] at once, each within
/// [`HANDSHAKE_TIMEOUT`]), so a client that connects and says nothing holds up no one.
/// Dropping the listener (the server does when it stops accepting) aborts that task and with
/// it every handshake in progress.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, tls: &ServerTls) -> std::io::Result<TlsListener> {
        let addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_MAX);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
        let acceptor = tokio::spawn(accept_loop(tcp, acceptor, tx));
        Ok(TlsListener {
            ready,
            addr,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let permits = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    let mut handshakes = JoinSet::new();
    loop {
        // Reap finished handshakes so the set stays as small as the work in progress.
        while handshakes.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, addr) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, as axum does.
                    if !is_connection_error(&e) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = ready.closed() => return,
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        handshakes.spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            // A client that fails the handshake (one that does not trust our certificate, a
            // port scanner, plain HTTP) is dropped; it has learned nothing but our certificate.
            if let Ok(Ok(tls)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            {
                let _ = ready.send((tls, addr)).await;
            }
        });
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this receiver is gone, or if it panicked: then
            // no connection will ever come, and waiting forever is the honest answer (the
            // server's shutdown signal still stops it).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
