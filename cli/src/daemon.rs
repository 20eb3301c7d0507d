//! The daemon: the single owner of every session store under one state root. It serves a
//! control socket (`$WIRE_HOME/daemon.sock`, 0600, peer uid checked) on which a CLI process
//! hands over its command line and gets the command's output back, chunk by chunk; it runs
//! replication for every session in the background. A lock file keeps it a singleton.
//!
//! Control protocol (one request per connection, newline-delimited JSON):
//! client → `{"v":1,"argv":[…],"style":{json,emoji,colour},"chosen":{name,rule,binding?},"cwd":…}`
//! daemon → `{"o":"…"}` (stdout) / `{"e":"…"}` (stderr) … then `{"x":<exit code>}`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use wire_engine::Home;

use crate::agent::Agent;
use crate::output::{Sink, Style};

/// Output frames waiting for a slow client.
const FRAMES_QUEUED_MAX: usize = 256;

pub use wire_net::control::{Frame, Request};
use wire_net::control::{REQUEST_BYTES_MAX, encode_request, parse_request};

pub fn socket_path(home: &Home) -> PathBuf {
    home.root().join("daemon.sock")
}

fn lock_path(home: &Home) -> PathBuf {
    home.root().join("daemon.lock")
}

pub fn log_path(home: &Home) -> PathBuf {
    home.root().join("daemon.log")
}

/// Runs the daemon in this process until SIGTERM, SIGINT or `wire daemon stop`.
pub fn serve(home: Home) -> anyhow::Result<ExitCode> {
    wire_log::keyfile::create_private_dir(home.root())
        .with_context(|| format!("cannot create {}", home.root().display()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(lock_path(&home))
        .with_context(|| format!("cannot open {}", lock_path(&home).display()))?;
    // A daemon that is stopping holds the lock until its stores are closed: wait for it a
    // moment rather than refuse to start.
    let deadline = Instant::now() + Duration::from_secs(5);
    while lock.try_lock().is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if lock.try_lock().is_err() {
        bail!(
            "a wire daemon already runs for {}; `wire daemon status` shows it, `wire daemon stop` stops it",
            home.root().display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let agent = Agent::new(home.clone(), rt.handle().clone(), true);
    agent.enable_notifications();
    for (name, e) in agent.open_all() {
        eprintln!("wire daemon: session {name} not opened: {e:#}");
    }
    let sock = socket_path(&home);
    let result = rt.block_on(run(agent.clone(), &sock));
    let _ = std::fs::remove_file(&sock);
    // Waiting commands (an MCP host's `watch`, `tail --follow`) return first: polled on a
    // runtime that is shutting down, their timers would panic.
    if !agent.stop_commands(Duration::from_secs(1)) {
        eprintln!("wire daemon: stopping with commands still running");
    }
    // Only once every store is closed may the next daemon take the lock: released earlier, it
    // would find a store still open and fail to open that session (a `send` right after
    // `wire daemon stop` then failed with "in use by another process"). A store closes when
    // the last holder of its session lets go: the agent's map, the runtime's tasks, a command
    // still on a blocking thread.
    let open: Vec<std::sync::Weak<crate::agent::Live>> =
        agent.lives().iter().map(Arc::downgrade).collect();
    for live in agent.lives() {
        agent.close(&live.name);
    }
    drop(agent);
    rt.shutdown_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(5);
    while open.iter().any(|w| w.strong_count() > 0) {
        if Instant::now() > deadline {
            // Exiting closes them; the lock goes with the process.
            eprintln!("wire daemon: a session store is still in use; exiting with it open");
            std::process::exit(if result.is_ok() { 0 } else { 1 });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(lock);
    result.map(|()| ExitCode::SUCCESS)
}

async fn run(agent: Arc<Agent>, sock: &Path) -> anyhow::Result<()> {
    // The socket is bound under a temporary name inside the state root, which `serve` made
    // 0700 and which is checked again here: no other user can reach the new inode by any path
    // while it gets its final mode (0600; the process umask already left it 0700, see
    // `private_umask` in main.rs), and only then is it renamed to the name clients use. The
    // uid check on every connection is the second line behind the directory.
    let dir = sock
        .parent()
        .context("the control socket path has a directory")?;
    let dir_mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if dir_mode & 0o077 != 0 {
        bail!(
            "{} is mode {dir_mode:o}, open to other users; run `chmod 700 {}` and start the daemon again",
            dir.display(),
            dir.display()
        );
    }
    let tmp = sock.with_extension(format!("sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp)
        .with_context(|| format!("cannot bind the control socket {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    let my_uid = std::fs::metadata(&tmp)?.uid();
    std::fs::rename(&tmp, sock)?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut check = tokio::time::interval(Duration::from_secs(2));
    let inode = std::fs::metadata(sock)?.ino();
    loop {
        tokio::select! {
            _ = check.tick() => {
                // The state root was removed or another daemon took the socket over: our
                // clients can no longer reach us, so stop.
                if std::fs::metadata(sock).map(|m| m.ino()) .ok() != Some(inode) {
                    break;
                }
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                match stream.peer_cred() {
                    Ok(cred) if cred.uid() == my_uid => {}
                    _ => continue,
                }
                let agent = agent.clone();
                let stop = stop_tx.clone();
                tokio::spawn(async move {
                    let _ = connection(agent, stream, stop).await;
                });
            }
            _ = stop_rx.changed() => break,
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
}

async fn connection(
    agent: Arc<Agent>,
    stream: tokio::net::UnixStream,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read.take(REQUEST_BYTES_MAX as u64));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await?;
    let request = match parse_request(&line) {
        Ok(r) => r,
        Err(e) => {
            let frame = Frame {
                o: None,
                e: Some(format!("wire daemon: bad request: {e}\n")),
                x: Some(2),
            };
            write
                .write_all(format!("{}\n", serde_json::to_string(&frame)?).as_bytes())
                .await?;
            return Ok(());
        }
    };
    // Bounded: a client that stops reading (a `watch` or `tail --follow` subscriber) makes the
    // command's writes wait, never the daemon's memory grow.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Frame>(FRAMES_QUEUED_MAX);
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sink_tx = tx.clone();
    let sink_gone = gone.clone();
    let sink = Sink::Remote(Arc::new(move |err: bool, bytes: &[u8]| {
        if sink_gone.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        let text = String::from_utf8_lossy(bytes).into_owned();
        let frame = if err {
            Frame {
                o: None,
                e: Some(text),
                x: None,
            }
        } else {
            Frame {
                o: Some(text),
                e: None,
                x: None,
            }
        };
        // The command runs on a blocking thread, so it may wait here (polling rather than
        // `blocking_send`, which would panic if a command ever wrote from inside `block_on`).
        let mut frame = frame;
        loop {
            match sink_tx.try_send(frame) {
                Ok(()) => return true,
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return false,
                Err(tokio::sync::mpsc::error::TrySendError::Full(f)) => {
                    if sink_gone.load(std::sync::atomic::Ordering::Relaxed) {
                        return false;
                    }
                    frame = f;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }));
    let worker_agent = agent.clone();
    let stop_after = crate::is_daemon_stop(&request.argv);
    let worker = tokio::task::spawn_blocking(move || {
        let running = worker_agent.command();
        let code = crate::run_in_daemon(worker_agent.clone(), request, sink);
        drop(running);
        let _ = tx.blocking_send(Frame {
            o: None,
            e: None,
            x: Some(code),
        });
    });
    // Watch the client side: once it hangs up, tell the command (a `--follow` loop).
    let mut read_half = reader.into_inner();
    let watch_gone = gone.clone();
    let watcher = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            match read_half.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    watch_gone.store(true, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                Ok(_) => {}
            }
        }
    });
    while let Some(frame) = rx.recv().await {
        let done = frame.x.is_some();
        let mut text = serde_json::to_string(&frame)?;
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            gone.store(true, std::sync::atomic::Ordering::Relaxed);
            break;
        }
        if done {
            break;
        }
    }
    // Nobody drains the frames any more: let a command blocked on a full queue fail and stop.
    drop(rx);
    watcher.abort();
    let _ = worker.await;
    if stop_after {
        let _ = stop.send(true);
    }
    Ok(())
}

/// Connects to the running daemon, if any.
pub fn connect(home: &Home) -> Option<StdUnixStream> {
    StdUnixStream::connect(socket_path(home)).ok()
}

/// Starts a detached daemon for `home` and waits until its socket answers.
pub fn start(home: &Home) -> anyhow::Result<StdUnixStream> {
    wire_log::keyfile::create_private_dir(home.root())
        .with_context(|| format!("cannot create {}", home.root().display()))?;
    let exe = std::env::current_exe().context("cannot find the wire executable")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log_path(home))
        .with_context(|| format!("cannot open {}", log_path(home).display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(["daemon", "--foreground"])
        .env("WIRE_HOME", home.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("cannot start the wire daemon")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = connect(home) {
            // Reap the child in the background: it lives on as the daemon.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok(s);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Another daemon may have won the race to the lock.
            if let Some(s) = connect(home) {
                return Ok(s);
            }
            bail!(
                "the wire daemon exited at start ({status}); see {} for why, or run `wire daemon --foreground`",
                log_path(home).display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the wire daemon did not answer within 10 s; see {}",
                log_path(home).display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stops the running daemon, if any, and waits until its socket is gone.
pub fn stop(home: &Home) -> anyhow::Result<()> {
    let Some(stream) = connect(home) else {
        return Ok(());
    };
    let request = Request {
        v: wire_net::control::CONTROL_VERSION,
        argv: vec![
            "wire".into(),
            "--json".into(),
            "daemon".into(),
            "stop".into(),
        ],
        style: Style {
            json: true,
            emoji: false,
            colour: false,
            chatter: false,
        },
        chosen: crate::cmd::resolve_chosen(None, None, None),
        cwd: None,
    };
    let line = encode_request(&request);
    (&stream)
        .write_all(line.as_bytes())
        .context("cannot talk to the wire daemon")?;
    for line in BufReader::new(&stream).lines() {
        let Ok(line) = line else { break };
        if serde_json::from_str::<Frame>(&line).is_ok_and(|f| f.x.is_some()) {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while connect(home).is_some() {
        if Instant::now() > deadline {
            bail!(
                "the wire daemon did not stop within 10 s; see {}",
                log_path(home).display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Stopped means its stores are closed: it releases the lock last.
    if let Ok(lock) = std::fs::OpenOptions::new()
        .write(true)
        .open(lock_path(home))
    {
        while lock.try_lock().is_err() {
            if Instant::now() > deadline {
                bail!(
                    "the wire daemon closed its socket but did not exit within 10 s; see {}",
                    log_path(home).display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// Times a command is handed over when the daemon that took it went away without reading it.
const HAND_OVER_TRIES: u32 = 20;

/// Hands `request` to the daemon (starting one if none runs) and returns the daemon's first
/// line and the rest of its answer, or `None` for the first when it hung up before one.
///
/// A daemon that is going away (killed, its last threads still closing its files) can still
/// take a connection into its listener's queue, then close it unread: the request is then
/// refused (a broken pipe) or the connection reset before any answer, and since the daemon
/// read none of it the command never ran. It is handed over again, to the daemon that runs
/// by then or to a new one, up to [`HAND_OVER_TRIES`] times within about a second.
fn hand_over(
    home: &Home,
    request: &Request,
) -> anyhow::Result<(Option<String>, BufReader<StdUnixStream>)> {
    let line = encode_request(request);
    let mut tries = 0;
    loop {
        tries += 1;
        let stream = match connect(home) {
            Some(s) => s,
            None => start(home)?,
        };
        let unread = |e: &std::io::Error| {
            tries < HAND_OVER_TRIES
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                )
        };
        if let Err(e) = (&stream).write_all(line.as_bytes()) {
            if unread(&e) {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            return Err(e).context("cannot talk to the wire daemon");
        }
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        match reader.read_line(&mut first) {
            Ok(0) => return Ok((None, reader)),
            Ok(_) => {
                // As `lines()` gives the rest.
                if first.ends_with('\n') {
                    first.pop();
                    if first.ends_with('\r') {
                        first.pop();
                    }
                }
                return Ok((Some(first), reader));
            }
            Err(e) if unread(&e) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e).context("lost the wire daemon mid-command"),
        }
    }
}

/// Hands a command to the daemon (starting one if none runs) and returns its stdout, its
/// stderr and its exit code, for a client that drives several commands (`pair-host`).
pub fn capture(home: &Home, request: &Request) -> anyhow::Result<(String, String, u8)> {
    let (first, rest) = hand_over(home, request)?;
    let (mut out, mut err) = (String::new(), String::new());
    for line in first.map(Ok).into_iter().chain(rest.lines()) {
        let line = line.context("lost the wire daemon mid-command")?;
        let frame: Frame = serde_json::from_str(&line)
            .with_context(|| format!("the wire daemon sent an unreadable line: {line:?}"))?;
        if let Some(o) = frame.o {
            out.push_str(&o);
        }
        if let Some(e) = frame.e {
            err.push_str(&e);
        }
        if let Some(x) = frame.x {
            return Ok((out, err, x));
        }
    }
    bail!(
        "the wire daemon hung up before the command finished; see {}",
        log_path(home).display()
    )
}

/// Hands a command to the daemon (starting one if none runs) and relays its output.
pub fn forward(home: &Home, request: &Request) -> anyhow::Result<ExitCode> {
    let (first, rest) = hand_over(home, request)?;
    let mut stdout = std::io::stdout().lock();
    for line in first.map(Ok).into_iter().chain(rest.lines()) {
        let line = line.context("lost the wire daemon mid-command")?;
        let frame: Frame = serde_json::from_str(&line)
            .with_context(|| format!("the wire daemon sent an unreadable line: {line:?}"))?;
        if let Some(o) = frame.o
            && (stdout.write_all(o.as_bytes()).is_err() || stdout.flush().is_err())
        {
            // Our reader went away (`| head`): stop the command too.
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(e) = frame.e {
            eprint!("{e}");
        }
        if let Some(x) = frame.x {
            return Ok(ExitCode::from(x));
        }
    }
    bail!(
        "the wire daemon hung up before the command finished; see {}",
        log_path(home).display()
    )
}
