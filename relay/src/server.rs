//! Serving the API on TCP (plain or TLS) and, optionally, a Unix socket, with clean shutdown
//! and, under TLS, certificate reloads on SIGHUP.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};

use crate::api::router;
use crate::app::{App, Config};
use crate::tls::{ServerTls, TlsFiles, TlsListener};

/// Why the relay could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "--local-only serves loopback only, and {0} is not a loopback address; bind 127.0.0.1 or drop --local-only"
    )]
    NotLoopback(SocketAddr),
    #[error(
        "cannot listen on {addr}: {source}; is another relay running there? pick another --bind"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serve on socket {path}: {problem}")]
    Uds { path: PathBuf, problem: String },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Sockets bound and ready, before serving starts.
#[derive(Debug)]
pub struct Bound {
    pub tcp: TcpListener,
    pub addr: SocketAddr,
    pub uds: Option<(UnixListener, PathBuf)>,
    /// When set, TCP connections are served over TLS with this certificate (the Unix socket
    /// stays plain: it is reachable only by its owner).
    pub tls: Option<Arc<ServerTls>>,
}

impl Bound {
    /// The scheme and address the TCP listener serves, e.g. `https://10.0.0.1:443`.
    pub fn listening_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

/// Binds the TCP address (refusing non-loopback under `local_only`) and the Unix socket.
pub async fn bind(
    addr: SocketAddr,
    uds: Option<&Path>,
    local_only: bool,
) -> Result<Bound, ServeError> {
    if local_only && !addr.ip().is_loopback() {
        return Err(ServeError::NotLoopback(addr));
    }
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = tcp.local_addr()?;
    let uds = match uds {
        Some(path) => Some((bind_uds(path).await?, path.to_owned())),
        None => None,
    };
    Ok(Bound {
        tcp,
        addr,
        uds,
        tls: None,
    })
}

/// Binds a Unix socket with mode 0600, never reachable with looser permissions.
///
/// The socket's directory is the operator's choice and may be open to everyone, and a socket is
/// created with the mode the process umask leaves (0777 under umask 000), so it is bound inside
/// a fresh directory of its own, created 0700 beside `path`: while the new inode gets its mode
/// no other user can reach it by any path. Only then is it renamed to `path`, and the staging
/// directory removed. This holds whatever the umask of the process that embeds the relay.
async fn bind_uds(path: &Path) -> Result<UnixListener, ServeError> {
    let err = |problem: String| ServeError::Uds {
        path: path.to_owned(),
        problem,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(err(
                "a file that is not a socket is in the way; remove it or pick another --uds path"
                    .into(),
            ));
        }
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(err(
                "another server is listening there; stop it or pick another --uds path".into(),
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
    }
    let staging = path.with_extension(format!("bind-{}", std::process::id()));
    // A staging directory left by a crashed relay of the same pid: ours to remove.
    let _ = std::fs::remove_dir_all(&staging);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| {
                err(format!(
                    "cannot create the private directory {} to bind in: {e}",
                    staging.display()
                ))
            })?;
    }
    let bound = (|| {
        let tmp = staging.join("s");
        let listener = UnixListener::bind(&tmp).map_err(|e| err(e.to_string()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| err(format!("cannot set mode 0600: {e}")))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| err(format!("cannot move the socket into place: {e}")))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    bound
}

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then ends every stream and gives in-flight requests up to
/// [`DRAIN`] to finish; a connection that will not finish (a stalled reader, a half-sent
/// request) cannot hold the relay up. The commit thread then commits what is queued and stops.
pub async fn serve(
    app: Arc<App>,
    bound: Bound,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let hub = app.hub.clone();
    tokio::spawn(async move {
        shutdown.await;
        hub.close();
        let _ = tx.send(true);
    });
    let stopping = rx.clone();
    // The sampler has its own stop, so it ends (and lets go of the store) however serving ends.
    let (sampler_stop, sampler_rx) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(crate::history::run(app.clone(), sampler_rx));
    let uds_path = bound.uds.as_ref().map(|(_, p)| p.clone());
    let served = serve_until_drained(router(app.clone()), bound, rx);
    let deadline = async move {
        let mut stopping = stopping;
        let _ = stopping.wait_for(|v| *v).await;
        tokio::time::sleep(DRAIN).await;
    };
    let result = tokio::select! {
        r = served => r,
        () = deadline => {
            eprintln!("wire relay: connections still open {} s after shutdown began; closing them", DRAIN.as_secs());
            Ok(())
        }
    };
    if let Some(path) = uds_path {
        let _ = std::fs::remove_file(path);
    }
    let _ = sampler_stop.send(true);
    let _ = sampler.await;
    app.committer.stop();
    result
}

async fn serve_until_drained(
    routes: axum::Router,
    bound: Bound,
    rx: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let service = routes
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    let tcp_rx = rx.clone();
    let tls = bound.tls.clone();
    let tcp = async move {
        match tls {
            None => {
                use axum::serve::ListenerExt;
                // No Nagle: a response written in more than one piece (a stream's frames)
                // must not wait for the client's delayed acknowledgement (the TLS listener
                // does the same).
                let listener = bound.tcp.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(listener, service)
                    .with_graceful_shutdown(stop(tcp_rx))
                    .await
            }
            Some(tls) => {
                use axum::serve::ListenerExt;
                // `tap_io` only so that axum hands the peer address on as `ConnectInfo`
                // (it does for a tapped listener of any kind); the tap does nothing.
                let listener = TlsListener::new(bound.tcp, &tls)?.tap_io(|_| {});
                axum::serve(listener, service)
                    .with_graceful_shutdown(stop(tcp_rx))
                    .await
            }
        }
    };
    match bound.uds {
        Some((listener, _)) => {
            let uds =
                axum::serve(listener, routes.into_make_service()).with_graceful_shutdown(stop(rx));
            let (a, b) = tokio::join!(tcp, uds);
            a?;
            b?;
        }
        None => tcp.await?,
    }
    Ok(())
}

/// Without TLS there is nothing to reload: a SIGHUP is noted and the relay goes on.
async fn ignore_hangup(mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        eprintln!("wire relay: SIGHUP: nothing to reload (no --tls-cert); still serving");
    }
}

/// Reloads the certificate and key on every SIGHUP, for rotation without a restart: a reload
/// that fails (a half-written file, a key that does not match) keeps the certificate in use
/// and says why on stderr. Runs until aborted. `hup` is registered by the caller before the
/// relay announces itself, so a SIGHUP sent as soon as it is up never kills it.
async fn reload_on_hangup(tls: Arc<ServerTls>, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        let files = tls.files();
        match tls.reload() {
            Ok(()) => eprintln!(
                "wire relay: SIGHUP: serving the certificate from {} (key {}) from the next connection on",
                files.cert.display(),
                files.key.display()
            ),
            Err(e) => eprintln!("wire relay: SIGHUP: {e}; still serving the previous certificate"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signals() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Everything `wire relay-server` does: load the certificate (with `tls`), bind, open,
/// announce, serve until a signal (reloading the certificate on SIGHUP), drain.
pub async fn run(
    bind_addr: SocketAddr,
    uds: Option<PathBuf>,
    public_url: Option<String>,
    tls: Option<TlsFiles>,
    mut config_for: impl FnMut(&str) -> Result<Config, String>,
    announce: impl FnOnce(&Config, &Bound),
) -> Result<(), ServeError> {
    let local_only_probe = config_for("http://127.0.0.1")
        .map_err(ServeError::Config)?
        .local_only;
    // The certificate first: a bad file is reported before anything is bound or opened.
    let tls = match tls {
        Some(files) => Some(Arc::new(ServerTls::new(files)?)),
        None => None,
    };
    if let (Some(_), Some(url)) = (&tls, &public_url)
        && url.trim().to_ascii_lowercase().starts_with("http://")
    {
        return Err(ServeError::Config(format!(
            "the relay serves HTTPS (--tls-cert), but --public-url {url} says http://; use https://…"
        )));
    }
    // Always listened for: a SIGHUP's default action ends the process, and an operator's
    // habit (or a service manager's reload) must not stop a relay that has no certificate.
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| ServeError::Config(format!("cannot listen for SIGHUP: {e}")))?;
    let mut bound = bind(bind_addr, uds.as_deref(), local_only_probe).await?;
    bound.tls = tls.clone();
    let url = public_url.unwrap_or_else(|| bound.listening_url());
    let config = config_for(&url).map_err(ServeError::Config)?;
    let (app, commit_thread) = App::open(config.clone())?;
    announce(&config, &bound);
    let reloader = match tls {
        Some(tls) => tokio::spawn(reload_on_hangup(tls, hup)),
        None => tokio::spawn(ignore_hangup(hup)),
    };
    let served = serve(app, bound, signals()).await;
    reloader.abort();
    served?;
    // serve stopped the committer; it commits what was queued and ends.
    let _ = tokio::task::spawn_blocking(move || commit_thread.join()).await;
    Ok(())
}
