//! One session: its key, its store, and every action as a signed event appended together with
//! its projections in one durable transaction.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use wire_log::body::{Body, CursorAdvanced, IdentityCreated, PeerCard, PeerRef, Renamed};
use wire_log::identity::check_handle;
use wire_log::store::APPEND_BATCH_MAX;
use wire_log::{
    AppendError, AppendOutcome, AuthorKey, Event, EventId, EventStore, Kind, LogId, LogWriter,
    SecretKey, VerifiedEvent, keyfile::create_private_dir,
};
use wire_projections::{MemState, PeerState, RedbState, apply, read_all};

use crate::{EngineError, Home, Identity, Peer, Pending, check_session_name};

/// Wall-clock milliseconds; tests pass their own.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

const KEY_FILE: &str = "keys/identity.key";
pub(crate) const STORE_FILE: &str = "store.redb";

/// An open session. Owns its store exclusively (redb locks the file).
#[derive(Debug)]
pub struct Session {
    name: String,
    dir: PathBuf,
    key: SecretKey,
    store: EventStore,
    clock: Box<dyn Clock>,
    /// Line keys derived so far, by peer and by the id on the peer's boxes to us.
    pub(crate) lines: std::sync::RwLock<Lines>,
}

/// The line-key cache (`wire_log::line`): a key is a pure function of both identities, so an
/// entry never goes stale; it is filled from the peers projection on a miss.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    pub(crate) by_peer: HashMap<AuthorKey, std::sync::Arc<wire_log::line::LineKeys>>,
    pub(crate) by_recv_id:
        HashMap<wire_log::line::LineId, std::sync::Arc<wire_log::line::LineKeys>>,
}

impl Session {
    /// Creates a session: its 0700 directory, its 0600 key file (a fresh key unless one is
    /// given), its store, and the `identity.created` event.
    pub fn create(
        home: &Home,
        name: &str,
        handle: &str,
        key: Option<SecretKey>,
        clock: Box<dyn Clock>,
    ) -> Result<Session, EngineError> {
        check_session_name(name)?;
        check_handle(handle).map_err(|reason| EngineError::Invalid {
            what: "handle",
            value: handle.to_owned(),
            reason,
        })?;
        let dir = home.session_dir(name);
        if dir.join(KEY_FILE).exists() || dir.join(STORE_FILE).exists() {
            return Err(EngineError::SessionExists {
                name: name.to_owned(),
                dir,
            });
        }
        for d in [home.root(), &home.sessions_dir(), &dir] {
            create_private_dir(d).map_err(|source| EngineError::Io {
                path: d.to_owned(),
                source,
            })?;
        }
        let key = key.unwrap_or_else(SecretKey::generate);
        key.write_new(&dir.join(KEY_FILE))?;
        let store = EventStore::create(&dir.join(STORE_FILE), key.author())?;
        let session = Session {
            name: name.to_owned(),
            dir,
            key,
            store,
            clock,
            lines: Default::default(),
        };
        let me = session.key.author();
        let body = IdentityCreated {
            handle: handle.to_owned(),
            x25519: session.key.x25519_public(),
        };
        session.append(LogId::self_log(&me), Kind::IDENTITY_CREATED, body.encode())?;
        Ok(session)
    }

    /// Opens an existing session; a missing, corrupt or mismatched key or store is an error
    /// and nothing is replaced.
    pub fn open(home: &Home, name: &str, clock: Box<dyn Clock>) -> Result<Session, EngineError> {
        check_session_name(name)?;
        let dir = home.session_dir(name);
        let (key_path, store_path) = (dir.join(KEY_FILE), dir.join(STORE_FILE));
        match (key_path.exists(), store_path.exists()) {
            (false, false) => {
                return Err(EngineError::NoSession {
                    name: name.to_owned(),
                    home: home.root().to_owned(),
                });
            }
            (true, false) => {
                return Err(EngineError::Incomplete {
                    dir,
                    found: "a key file",
                    missing: STORE_FILE,
                });
            }
            (false, true) => {
                return Err(EngineError::Incomplete {
                    dir,
                    found: "a store",
                    missing: KEY_FILE,
                });
            }
            (true, true) => {}
        }
        let key = SecretKey::read(&key_path)?;
        // The journal's frames are replayed into the log and folded into the projections here,
        // before anything else can append (ARCHITECTURE invariant 55).
        let store = EventStore::open(&store_path, &mut |txn, event, position| {
            let mut state = RedbState::open(txn).map_err(|e| e.to_string())?;
            apply(&mut state, event, position).map_err(|e| e.to_string())
        })?;
        if store.owner() != key.author() {
            return Err(EngineError::KeyMismatch {
                key_author: key.author(),
                store_owner: store.owner(),
            });
        }
        Ok(Session {
            name: name.to_owned(),
            dir,
            key,
            store,
            clock,
            lines: Default::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn key(&self) -> AuthorKey {
        self.key.author()
    }

    /// The secret key, for sealing and signing inside this crate only.
    pub(crate) fn secret(&self) -> &SecretKey {
        &self.key
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Makes every relaxed write (ingests) durable; a no-op when there is none. Required before
    /// anything those writes stored or signed leaves the process: an acknowledgement to a
    /// relay, a segment to a peer (ARCHITECTURE invariant 56).
    pub fn sync(&self) -> Result<(), EngineError> {
        Ok(self.store.sync()?)
    }

    pub fn self_log(&self) -> LogId {
        LogId::self_log(&self.key.author())
    }

    /// Every projection, read in one transaction.
    pub fn state(&self) -> Result<MemState, EngineError> {
        let txn = self.store.read_txn()?;
        Ok(read_all(&txn)?)
    }

    pub fn identity(&self) -> Result<Identity, EngineError> {
        self.state()?.identity.ok_or_else(|| {
            EngineError::Refused(format!(
                "session `{}` has no identity event; run `wire verify` to see what is wrong",
                self.name
            ))
        })
    }

    pub fn peers(&self) -> Result<Vec<Peer>, EngineError> {
        Ok(self.state()?.peers.into_values().collect())
    }

    pub fn pending(&self) -> Result<Vec<Pending>, EngineError> {
        Ok(self.state()?.pending.into_values().collect())
    }

    /// Signs one event at the head of our chain in `log` and appends it with its projections.
    pub fn append(
        &self,
        log: LogId,
        kind: Kind,
        body: Vec<u8>,
    ) -> Result<VerifiedEvent, EngineError> {
        let mut out = self.append_batch(vec![(log, kind, body)])?;
        // Invariant: append_batch returns one event per input.
        Ok(out.pop().expect("one event per input"))
    }

    /// Signs and appends many events in one durable transaction, projections included. Chains
    /// are laid out first (each event's `prev` is the previous id), then signed on all cores.
    pub fn append_batch(
        &self,
        items: Vec<(LogId, Kind, Vec<u8>)>,
    ) -> Result<Vec<VerifiedEvent>, EngineError> {
        if items.len() > APPEND_BATCH_MAX {
            return Err(AppendError::BatchTooLarge(items.len()).into());
        }
        self.store.write(|w| {
            let mut state = RedbState::open(w.txn)?;
            self.append_own(w, &mut state, items)
        })
    }

    /// Lays out, signs and appends our own events inside an open write transaction, folding
    /// each into `state`. Shared by every action and by ingest (which confirms and advances
    /// cursors in the same transaction as the peer's events).
    pub(crate) fn append_own(
        &self,
        w: &mut LogWriter<'_>,
        state: &mut RedbState<'_>,
        items: Vec<(LogId, Kind, Vec<u8>)>,
    ) -> Result<Vec<VerifiedEvent>, EngineError> {
        let me = self.key.author();
        let now = self.clock.now_ms();
        let mut heads: HashMap<LogId, (u64, Option<EventId>)> = HashMap::new();
        let mut events = Vec::with_capacity(items.len());
        for (log, kind, body) in items {
            let head = match heads.get(&log) {
                Some(h) => *h,
                None => w
                    .head(&log, &me)?
                    .map_or((0, None), |(s, id)| (s, Some(id))),
            };
            let event = Event {
                author: me,
                log,
                seq: head.0 + 1,
                prev: head.1,
                ts_ms: now,
                kind,
                body,
            };
            heads.insert(log, (event.seq, Some(event.id())));
            events.push(event);
        }
        let signed = wire_log::sign_all(events, &self.key)
            .map_err(|source| AppendError::Verify { index: 0, source })?;
        for event in &signed {
            let AppendOutcome::Stored { position } = w.append(event)? else {
                return Err(EngineError::Refused(
                    "a freshly signed event was already stored".into(),
                ));
            };
            apply(state, event, position)?;
        }
        Ok(signed)
    }

    /// Sets or clears the local display name and emoji. Local only, and itself an event.
    pub fn rename(
        &self,
        nickname: Option<&str>,
        emoji: Option<&str>,
    ) -> Result<Identity, EngineError> {
        let body = Renamed {
            nickname: nickname.map(str::to_owned),
            emoji: emoji.map(str::to_owned),
        };
        // Decode our own body first so a bad name is a clear error, not a projection refusal.
        Renamed::decode(&body.encode()).map_err(|e| EngineError::Invalid {
            what: "name",
            value: format!("{} {}", emoji.unwrap_or(""), nickname.unwrap_or("")),
            reason: e.to_string(),
        })?;
        self.append(self.self_log(), Kind::IDENTITY_RENAMED, body.encode())?;
        self.identity()
    }

    /// Records a pair request a stranger left for us.
    pub fn record_pair_request(&self, card: &PeerCard) -> Result<(), EngineError> {
        self.check_not_me(&card.peer)?;
        self.append(self.self_log(), Kind::PAIR_REQUESTED, card.encode())?;
        Ok(())
    }

    /// Records that we asked `card.peer` to pair.
    pub fn record_dial(&self, card: &PeerCard) -> Result<(), EngineError> {
        self.check_not_me(&card.peer)?;
        if self.peer_state(&card.peer)? == Some(PeerState::Paired) {
            return Err(EngineError::Refused("already paired with this peer".into()));
        }
        self.append(self.self_log(), Kind::PAIR_DIALED, card.encode())?;
        Ok(())
    }

    /// Accepts a pending request: the peer becomes paired.
    pub fn accept(&self, peer: &AuthorKey) -> Result<Peer, EngineError> {
        self.decide(peer, Kind::PAIR_ACCEPTED)
    }

    /// Refuses a pending request; later requests from this key are dropped.
    pub fn reject(&self, peer: &AuthorKey) -> Result<Peer, EngineError> {
        self.decide(peer, Kind::PAIR_REJECTED)
    }

    fn decide(&self, peer: &AuthorKey, kind: Kind) -> Result<Peer, EngineError> {
        if !self.state()?.pending.contains_key(peer) {
            return Err(EngineError::Refused(format!(
                "no pending pair request from {peer}; `wire pending` lists the requests waiting"
            )));
        }
        self.append(self.self_log(), kind, PeerRef { peer: *peer }.encode())?;
        self.peer(peer)
    }

    /// The peer we dialed accepted.
    pub fn confirm(&self, peer: &AuthorKey) -> Result<Peer, EngineError> {
        if self.peer_state(peer)? != Some(PeerState::Dialed) {
            return Err(EngineError::Refused(format!("we have not dialed {peer}")));
        }
        self.append(
            self.self_log(),
            Kind::PAIR_CONFIRMED,
            PeerRef { peer: *peer }.encode(),
        )?;
        self.peer(peer)
    }

    /// Drops a peer and any pending request from it.
    pub fn forget(&self, peer: &AuthorKey) -> Result<(), EngineError> {
        let state = self.state()?;
        if !state.peers.contains_key(peer) && !state.pending.contains_key(peer) {
            return Err(EngineError::Refused(format!("no peer {peer} to forget")));
        }
        self.append(
            self.self_log(),
            Kind::PEER_FORGOTTEN,
            PeerRef { peer: *peer }.encode(),
        )?;
        Ok(())
    }

    /// Records that `peer` holds our chain in the pair log up to `acked_seq`.
    pub fn advance_cursor(&self, peer: &AuthorKey, acked_seq: u64) -> Result<(), EngineError> {
        let body = CursorAdvanced {
            log: LogId::pair_log(&self.key.author(), peer),
            peer: *peer,
            acked_seq,
        };
        self.append(self.self_log(), Kind::CURSOR_ADVANCED, body.encode())?;
        Ok(())
    }

    /// Appends a message to the pair log we share with a paired peer.
    pub fn send(
        &self,
        peer: &AuthorKey,
        kind: Kind,
        body: Vec<u8>,
    ) -> Result<VerifiedEvent, EngineError> {
        self.check_paired(peer)?;
        self.append(LogId::pair_log(&self.key.author(), peer), kind, body)
    }

    /// [`send`](Self::send), committed relaxed (`EventStore::write_relaxed`): visible at once,
    /// durable at the next [`sync`](Self::sync). For a caller that pushes (or syncs) before it
    /// reports anything, so that concurrent sends share one fsync; the push syncs before the
    /// event leaves (ARCHITECTURE invariant 56).
    pub fn send_relaxed(
        &self,
        peer: &AuthorKey,
        kind: Kind,
        body: Vec<u8>,
    ) -> Result<VerifiedEvent, EngineError> {
        self.check_paired(peer)?;
        let log = LogId::pair_log(&self.key.author(), peer);
        let mut out = self.store.write_relaxed(|w| {
            let mut state = RedbState::open(w.txn)?;
            self.append_own(w, &mut state, vec![(log, kind, body)])
        })?;
        // Invariant: append_own returns one event per input.
        Ok(out.pop().expect("one event per input"))
    }

    fn check_paired(&self, peer: &AuthorKey) -> Result<(), EngineError> {
        if self.peer_state(peer)? != Some(PeerState::Paired) {
            return Err(EngineError::Refused(format!(
                "{peer} is not paired with us; dial them and wait for their `wire accept`"
            )));
        }
        Ok(())
    }

    /// Ingests events a peer wrote into our shared pair log (already opened from their seal):
    /// decodes, batch-verifies, checks the author is a paired peer, then appends and projects
    /// in one transaction. Events already held are skipped.
    pub fn ingest(&self, events: &[&[u8]]) -> Result<Vec<AppendOutcome>, EngineError> {
        let me = self.key.author();
        let verified = wire_log::store::decode_batch(events)?;
        let state = self.state()?;
        for e in &verified {
            let paired = state
                .peers
                .get(&e.author)
                .is_some_and(|p| p.state == PeerState::Paired);
            if e.author == me || !paired || e.log != LogId::pair_log(&me, &e.author) {
                return Err(EngineError::Refused(format!(
                    "event from {} (seq {}) is not from a paired peer in the log we share; it was not stored",
                    e.author, e.seq
                )));
            }
        }
        self.store.write(|w| {
            let mut projection = RedbState::open(w.txn)?;
            let mut out = Vec::with_capacity(verified.len());
            for e in &verified {
                let outcome = w.append(e)?;
                if let AppendOutcome::Stored { position } = outcome {
                    apply(&mut projection, e, position)?;
                }
                out.push(outcome);
            }
            Ok::<_, EngineError>(out)
        })
    }

    /// Throws the projection tables away and folds them again from the log alone.
    pub fn rebuild(&self) -> Result<MemState, EngineError> {
        let state = crate::audit::fold_log(&self.store, &mut |_| {})?;
        self.store.write(|w| {
            RedbState::open(w.txn)?.replace_with(&state)?;
            Ok::<_, EngineError>(())
        })?;
        Ok(state)
    }

    pub(crate) fn peer(&self, key: &AuthorKey) -> Result<Peer, EngineError> {
        self.find_peer(key)?
            .ok_or_else(|| EngineError::Refused(format!("no peer {key}")))
    }

    /// One peer's record, read by key.
    pub fn find_peer(&self, key: &AuthorKey) -> Result<Option<Peer>, EngineError> {
        let txn = self.store.read_txn()?;
        Ok(wire_projections::read_peer(&txn, key)?)
    }

    /// One replication cursor, read by key.
    pub fn cursor(
        &self,
        key: &wire_projections::CursorKey,
    ) -> Result<Option<wire_projections::Cursor>, EngineError> {
        let txn = self.store.read_txn()?;
        Ok(wire_projections::read_cursor(&txn, key)?)
    }

    pub(crate) fn peer_state(&self, key: &AuthorKey) -> Result<Option<PeerState>, EngineError> {
        Ok(self.find_peer(key)?.map(|p| p.state))
    }

    pub(crate) fn check_not_me(&self, peer: &AuthorKey) -> Result<(), EngineError> {
        if *peer == self.key.author() {
            return Err(EngineError::Refused(
                "an agent cannot pair with itself".into(),
            ));
        }
        Ok(())
    }
}
