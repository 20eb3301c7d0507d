//! The agent runtime: every open session of one state root, the relay clients, and the work
//! that moves a pair log between two agents (push, pull, intros). The daemon runs one of these
//! with background loops; `--no-daemon` runs one for a single command.

pub(crate) mod files;
pub(crate) mod pairing;
pub(crate) mod pull;
pub(crate) mod push;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use wire_engine::{Home, PeerState, Session, SystemClock};
use wire_log::AuthorKey;
use wire_log::body::Endpoint;
use wire_net::RelayClient;

pub use push::PushOutcome;

/// Most refusals remembered per session for `wire status`.
const REFUSALS_KEPT: usize = 100;

/// Most events held aside per peer while a gap is filled; more are dropped (the sender resends).
pub const HELD_EVENTS_MAX: usize = 65_536;

/// The default local relay.
pub const DEFAULT_RELAY: &str = "http://127.0.0.1:8771";

/// All open sessions of one state root and the machinery around them.
#[derive(Debug)]
pub struct Agent {
    home: Home,
    rt: tokio::runtime::Handle,
    /// Background replication runs (the daemon); otherwise work happens only when asked.
    background: bool,
    lives: Mutex<HashMap<String, Arc<Live>>>,
    clients: Mutex<HashMap<String, RelayClient>>,
    pub started: Instant,
    /// Desktop notifications (the daemon only).
    notifier: std::sync::OnceLock<crate::notify::Notifier>,
    /// Set when the daemon stops: commands that wait (`watch`, `tail --follow`, pairing
    /// waits) return instead of polling timers on a runtime that is shutting down.
    closing: tokio::sync::watch::Sender<bool>,
    /// Commands running in the daemon now (the daemon waits for them before it stops).
    running: std::sync::atomic::AtomicUsize,
}

/// Counts a command as running while it lives (`Agent::command`).
#[derive(Debug)]
pub struct Running<'a>(&'a Agent);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// One open session and its replication state.
#[derive(Debug)]
pub struct Live {
    pub name: String,
    pub session: Session,
    pub key: AuthorKey,
    /// The position of the last event appended by replication, for `tail --follow` and waits.
    pub appended: tokio::sync::watch::Sender<u64>,
    pushers: Mutex<HashMap<AuthorKey, Arc<tokio::sync::Mutex<push::Pusher>>>>,
    held: Mutex<HashMap<AuthorKey, Vec<Vec<u8>>>>,
    pub report: Mutex<Report>,
    readers: Mutex<Vec<Endpoint>>,
    /// The background tasks of this session, aborted when it is closed.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// When this process last reached each peer and last heard from it.
    contacts: Mutex<HashMap<AuthorKey, Contact>>,
    /// The file-contract task (`agent/files.rs`), while it runs.
    files: Mutex<Option<tokio::task::AbortHandle>>,
}

/// When this process last reached a peer (a push stored or delivered, Unix ms) and last
/// ingested a segment from it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Contact {
    pub pushed_ms: Option<u64>,
    pub received_ms: Option<u64>,
}

/// What replication refused or set aside, for `wire status`.
#[derive(Debug, Default, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    pub refused_total: u64,
    pub refused: VecDeque<Refusal>,
    pub junk_intros: u64,
    pub dropped_requests: u64,
    /// Per peer (hex key): why its outbox is waiting.
    pub queued: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Refusal {
    pub at_ms: u64,
    pub what: String,
    pub reason: String,
}

impl Live {
    /// Makes this session's relaxed ingests durable before anything derived from them leaves
    /// the process (an acknowledgement, a segment: invariant 56). Free when there is nothing to
    /// sync; otherwise one fsync.
    pub(crate) async fn durable(self: &Arc<Self>) -> anyhow::Result<()> {
        if !self.session.store().needs_sync() {
            return Ok(());
        }
        // Inline where the thread may block (a command's thread, a bench's `block_on`), and on an
        // async worker after handing its other tasks to another thread (`block_in_place`): no
        // hop to the blocking pool and back, which cost a sister message two thread wake-ups.
        // A current-thread runtime has no other thread to hand to: the blocking pool, as before.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| self.session.sync())?;
            }
            _ => {
                let live = self.clone();
                tokio::task::spawn_blocking(move || live.session.sync()).await??;
            }
        }
        Ok(())
    }

    pub fn refuse(&self, what: impl Into<String>, reason: impl Into<String>) {
        let mut r = self.report.lock().expect("report lock");
        r.refused_total += 1;
        if r.refused.len() == REFUSALS_KEPT {
            r.refused.pop_front();
        }
        r.refused.push_back(Refusal {
            at_ms: now_ms(),
            what: what.into(),
            reason: reason.into(),
        });
    }

    /// Events held aside per peer, with the seq each group waits for.
    pub fn held(&self) -> BTreeMap<String, usize> {
        self.held
            .lock()
            .expect("held lock")
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_hex(), v.len()))
            .collect()
    }

    /// The slots a reader runs for (the daemon's).
    pub fn reading(&self) -> Vec<Endpoint> {
        self.readers.lock().expect("readers lock").clone()
    }

    pub fn contacts(&self) -> HashMap<AuthorKey, Contact> {
        self.contacts.lock().expect("contacts lock").clone()
    }

    pub(crate) fn contact(&self, peer: &AuthorKey, f: impl FnOnce(&mut Contact)) {
        f(self
            .contacts
            .lock()
            .expect("contacts lock")
            .entry(*peer)
            .or_default());
    }

    fn pusher(&self, peer: &AuthorKey) -> Arc<tokio::sync::Mutex<push::Pusher>> {
        self.pushers
            .lock()
            .expect("pushers lock")
            .entry(*peer)
            .or_default()
            .clone()
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Agent {
    pub fn new(home: Home, rt: tokio::runtime::Handle, background: bool) -> Arc<Agent> {
        Arc::new(Agent {
            home,
            rt,
            background,
            lives: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            started: Instant::now(),
            notifier: std::sync::OnceLock::new(),
            closing: tokio::sync::watch::channel(false).0,
            running: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Marks one command as running until the guard drops.
    pub fn command(&self) -> Running<'_> {
        self.running
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Running(self)
    }

    /// Tells waiting commands to return, then gives every running command up to `grace` to
    /// finish; true if none is left.
    pub fn stop_commands(&self, grace: std::time::Duration) -> bool {
        self.closing.send_replace(true);
        let end = Instant::now() + grace;
        while self.running.load(std::sync::atomic::Ordering::Acquire) > 0 {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        true
    }

    /// Like [`block_on`](Self::block_on), for a wait a stopping daemon may cut short: `None`
    /// once the agent is closing.
    pub fn block_on_until_close<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        let mut closing = self.closing.subscribe();
        if *closing.borrow() {
            return None;
        }
        self.rt.block_on(async move {
            tokio::select! {
                out = f => Some(out),
                _ = closing.wait_for(|c| *c) => None,
            }
        })
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    pub fn is_daemon(&self) -> bool {
        self.background
    }

    /// Turns desktop notifications on (the daemon does, once, at start).
    pub fn enable_notifications(&self) {
        let _ = self
            .notifier
            .set(crate::notify::Notifier::start(self.home.root()));
    }

    pub fn notifier(&self) -> Option<&crate::notify::Notifier> {
        self.notifier.get()
    }

    /// Runs async work from a command (which runs on a plain thread).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.rt
    }

    /// A client for a relay URL, shared so its connections are reused.
    pub fn client(&self, url: &str) -> anyhow::Result<RelayClient> {
        let mut clients = self.clients.lock().expect("clients lock");
        if let Some(c) = clients.get(url) {
            return Ok(c.clone());
        }
        let c = RelayClient::new(url)?;
        clients.insert(url.to_owned(), c.clone());
        Ok(c)
    }

    /// The open session `name`, opening it (and starting its replication) on first use.
    pub fn session(self: &Arc<Self>, name: &str) -> anyhow::Result<Arc<Live>> {
        if let Some(live) = self.lives.lock().expect("lives lock").get(name) {
            return Ok(live.clone());
        }
        let session = Session::open(&self.home, name, Box::new(SystemClock))?;
        Ok(self.adopt(session))
    }

    /// Mints an append capability for a new peer on every slot of ours, newest first (the
    /// order an offer lists them in). A relay that does not answer is left out of the offer,
    /// unless none answers.
    pub async fn mint_caps(&self, live: &Live) -> anyhow::Result<Vec<wire_engine::Minted>> {
        let mut minted = Vec::new();
        let mut problems = Vec::new();
        for endpoint in live.session.our_endpoints()? {
            let token = live.session.slot_token(&endpoint)?;
            let client = self.client(&endpoint.relay)?;
            match client.mint_cap(&endpoint.slot, &token).await {
                Ok(cap) => minted.push(wire_engine::Minted {
                    endpoint,
                    cap_id: cap.cap_id,
                    cap: cap.cap,
                }),
                Err(e) => problems.push(format!("{}: {e}", endpoint.relay)),
            }
        }
        if minted.is_empty() {
            if problems.is_empty() {
                anyhow::bail!(
                    "this session is not attached to a relay, so the peer could not write to it; `wire session new` or `wire init --relay URL` attaches one"
                );
            }
            anyhow::bail!(
                "no relay of ours minted a capability for the peer ({})",
                problems.join("; ")
            );
        }
        Ok(minted)
    }

    /// Opens every session under the state root (the daemon does this at start).
    pub fn open_all(self: &Arc<Self>) -> Vec<(String, anyhow::Error)> {
        let mut problems = Vec::new();
        match self.home.sessions() {
            Ok(list) => {
                for s in list {
                    if let Err(e) = self.session(&s.name) {
                        problems.push((s.name, e));
                    }
                }
            }
            Err(e) => problems.push(("*".into(), e.into())),
        }
        problems
    }

    /// Takes ownership of a freshly created or opened session.
    pub fn adopt(self: &Arc<Self>, session: Session) -> Arc<Live> {
        let mut lives = self.lives.lock().expect("lives lock");
        if let Some(live) = lives.get(session.name()) {
            return live.clone();
        }
        let last = session.store().last_position().ok().flatten().unwrap_or(0);
        let live = Arc::new(Live {
            name: session.name().to_owned(),
            key: session.key(),
            session,
            appended: tokio::sync::watch::Sender::new(last),
            pushers: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            report: Mutex::new(Report::default()),
            readers: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            contacts: Mutex::new(HashMap::new()),
            files: Mutex::new(None),
        });
        lives.insert(live.name.clone(), live.clone());
        drop(lives);
        if self.background {
            self.start_background(&live);
        }
        live
    }

    /// The open session whose key is `key`, if it is one of ours (a sister session).
    pub fn sister(&self, key: &AuthorKey) -> Option<Arc<Live>> {
        self.lives
            .lock()
            .expect("lives lock")
            .values()
            .find(|l| l.key == *key)
            .cloned()
    }

    pub fn lives(&self) -> Vec<Arc<Live>> {
        let mut v: Vec<_> = self
            .lives
            .lock()
            .expect("lives lock")
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Starts the background loops of a session: a reader per slot, the intro poller, the
    /// outbox ticker and, when it is on, the file contract.
    fn start_background(self: &Arc<Self>, live: &Arc<Live>) {
        self.ensure_readers(live);
        let agent = self.clone();
        let l = live.clone();
        let task = self.rt.spawn(async move { agent.ticker(l).await });
        live.tasks
            .lock()
            .expect("tasks lock")
            .push(task.abort_handle());
        match files::enabled(live.session.dir()) {
            Ok(true) => self.start_files(live),
            Ok(false) => {}
            Err(e) => live.refuse("the file contract", format!("{e:#}")),
        }
    }

    /// Closes session `name`: its background tasks stop and the agent forgets it. Work already
    /// handed to a blocking thread finishes (each commit is all or nothing). Returns whether it
    /// was open.
    pub fn close(&self, name: &str) -> bool {
        let Some(live) = self.lives.lock().expect("lives lock").remove(name) else {
            return false;
        };
        for task in live.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
        true
    }

    /// Starts a reader for every slot that has none (after init or rotation).
    pub fn ensure_readers(self: &Arc<Self>, live: &Arc<Live>) {
        if !self.background {
            return;
        }
        let slots = live.session.identity().map(|i| i.slots).unwrap_or_default();
        let mut readers = live.readers.lock().expect("readers lock");
        for ep in slots {
            if !readers.contains(&ep) {
                readers.push(ep.clone());
                let agent = self.clone();
                let l = live.clone();
                let task = self
                    .rt
                    .spawn(async move { agent.read_slot_forever(l, ep).await });
                live.tasks
                    .lock()
                    .expect("tasks lock")
                    .push(task.abort_handle());
            }
        }
    }

    /// Every 100 ms: push what is unpushed or unacknowledged, acknowledge what we received,
    /// and every second poll the intro queue and check slot retirement.
    async fn ticker(self: Arc<Self>, live: Arc<Live>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            let peers: Vec<AuthorKey> = match live.session.peers() {
                Ok(p) => p
                    .into_iter()
                    .filter(|p| p.state == PeerState::Paired)
                    .map(|p| p.key)
                    .collect(),
                Err(_) => continue,
            };
            for peer in peers {
                let _ = self.push(&live, &peer, push::Why::Tick).await;
            }
            if n.is_multiple_of(10) {
                let agent = self.clone();
                let l = live.clone();
                let _ = tokio::task::spawn_blocking(move || agent.poll_intros(&l)).await;
                let _ = self.retire_slots(&live).await;
            }
        }
    }

    /// A slot superseded by a newer one on the same relay (rotation) is read until every
    /// peer has that newer endpoint and our chain past it, and the slot is empty; then its
    /// capabilities are revoked and it is retired. Slots on different relays (a session that
    /// receives at several) supersede nothing.
    async fn retire_slots(self: &Arc<Self>, live: &Arc<Live>) -> anyhow::Result<()> {
        let identity = live.session.identity()?;
        let slots = &identity.slots;
        let superseded: Vec<(Endpoint, Endpoint)> = slots
            .iter()
            .enumerate()
            .filter_map(|(i, old)| {
                let newer = slots[i + 1..].iter().rev().find(|n| n.relay == old.relay)?;
                Some((old.clone(), newer.clone()))
            })
            .collect();
        if superseded.is_empty() {
            return Ok(());
        }
        let peers = live.session.peers()?;
        'slots: for (old, newer) in superseded {
            for p in &peers {
                if p.state != PeerState::Paired {
                    continue;
                }
                if !p.grants.iter().any(|g| g.endpoint == newer) {
                    continue 'slots;
                }
                let line = live.session.line(&p.key)?;
                if line.acked < line.our_head {
                    continue 'slots;
                }
            }
            let token = live.session.slot_token(&old)?;
            let client = self.client(&old.relay)?;
            let info = client.slot_info(&old.slot, &token).await?;
            if info.last_seq > info.acked_through {
                continue;
            }
            for p in &peers {
                for g in p.grants.iter().filter(|g| g.endpoint == old) {
                    let _ = client.revoke_cap(&old.slot, &token, &g.cap_id).await;
                }
            }
            live.session.retire_slot(&old)?;
        }
        Ok(())
    }
}
