//! Pairings by code in progress (SPAKE2 + SAS, PROTOCOL.md §25): one task per pairing on the
//! agent's runtime, driving the relay's pair slot through its phases, and a small registry the
//! commands (`pair-host`, `pair-join`, `pair-check`, `pair-confirm`) and the MCP tools read and
//! steer. The operator's confirmation of the SAS is the consent: until it comes, nothing of
//! ours leaves (no card, no capability), and the other side's card is pinned only if its box
//! opens under the key both sides derived.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;
use wire_log::pake::{Code, Exchange, FLAG_REQUIRE_SAS, HostHello, PakeError, Sas, Side};
use wire_net::{NetError, RelayClient};

use super::{Agent, Live, now_ms};

/// Most pairings remembered per daemon (running or finished); finished ones go first.
pub const PAIRINGS_MAX: usize = 64;
/// How long a pairing may take from start to pin, at most (the relay's own lifetime is 15 min).
pub const PAIRING_DEADLINE: Duration = Duration::from_secs(14 * 60);
/// How long one read of the pair slot waits at the relay (which caps it at 25 s).
const WAIT_MS: u64 = 20_000;
/// How long a finished pairing stays visible to `pair-check`.
const FINISHED_KEPT: Duration = Duration::from_secs(30 * 60);

/// Where a pairing stands, as `wire pair-check` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Waiting for the other side's first message.
    Waiting,
    /// Both sides hold a key; our operator must compare the SAS and confirm.
    Sas { sas: Sas },
    /// Our operator confirmed; waiting for the other side's card.
    Confirmed { sas: Sas },
    /// Pinned and paired.
    Paired { sas: Sas, peer: PairedPeer },
    /// Failed closed, with the reason; nothing was pinned.
    Failed { reason: String },
}

impl Phase {
    pub fn is_finished(&self) -> bool {
        matches!(self, Phase::Paired { .. } | Phase::Failed { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Sas { .. } => "sas",
            Phase::Confirmed { .. } => "confirmed",
            Phase::Paired { .. } => "paired",
            Phase::Failed { .. } => "failed",
        }
    }
}

/// The peer a pairing pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairedPeer {
    pub nickname: String,
    pub emoji: String,
    pub tag: String,
    pub handle: String,
    pub did: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Confirm,
    Abort(String),
}

/// One pairing by code.
#[derive(Debug)]
pub struct Pairing {
    pub id: String,
    pub session: String,
    pub side: Side,
    /// The code, on the host only (its operator reads it out).
    pub code: Option<String>,
    pub relay: String,
    pub started_ms: u64,
    require_sas: Mutex<bool>,
    phase: watch::Sender<Phase>,
    decision: watch::Sender<Option<Decision>>,
    finished_at: Mutex<Option<Instant>>,
}

impl Pairing {
    pub fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    pub fn require_sas(&self) -> bool {
        *self.require_sas.lock().expect("pairing lock")
    }

    /// Waits until the phase is not `now`, or `timeout` passes; returns the phase then.
    pub async fn changed_from(&self, now: &Phase, timeout: Duration) -> Phase {
        let mut rx = self.phase.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|p| p != now)).await;
        self.phase()
    }

    fn set(&self, phase: Phase) {
        if phase.is_finished() {
            *self.finished_at.lock().expect("pairing lock") = Some(Instant::now());
        }
        self.phase.send_replace(phase);
    }

    /// The operator's answer. `typed` is the digits they typed (required when the host asked
    /// for `--require-sas`, and always from the MCP tool); `None` is a plain yes. Digits that
    /// do not match abort this pairing for good.
    pub fn confirm(&self, typed: Option<&str>) -> Result<(), String> {
        let sas = match self.phase() {
            Phase::Sas { sas } => sas,
            Phase::Waiting => {
                return Err(
                    "the other side has not joined yet, so there is no SAS to confirm; wait for it"
                        .into(),
                );
            }
            Phase::Confirmed { .. } | Phase::Paired { .. } => {
                return Err("this pairing is confirmed already".into());
            }
            Phase::Failed { reason } => return Err(format!("this pairing failed: {reason}")),
        };
        match typed {
            None if self.require_sas() => Err(
                "this pairing requires the SAS digits to be typed: read them from the other screen and pass them"
                    .into(),
            ),
            None => {
                self.decision.send_replace(Some(Decision::Confirm));
                Ok(())
            }
            Some(t) if sas.matches(t) => {
                self.decision.send_replace(Some(Decision::Confirm));
                Ok(())
            }
            Some(t) => {
                let why = format!(
                    "the digits typed ({}) are not this pairing's SAS; it is aborted for good (a mistyped code or someone in the middle). Start again with `wire pair-host`",
                    t.chars().take(16).collect::<String>()
                );
                self.abort(&why);
                Err(why)
            }
        }
    }

    /// Gives up: the task closes the pair slot so the other side stops too.
    pub fn abort(&self, reason: &str) {
        if !self.phase().is_finished() {
            // The task stops at once, closes the slot and reports it.
            self.decision
                .send_replace(Some(Decision::Abort(reason.to_owned())));
        }
    }
}

fn registry() -> &'static Mutex<BTreeMap<String, Arc<Pairing>>> {
    static PAIRINGS: OnceLock<Mutex<BTreeMap<String, Arc<Pairing>>>> = OnceLock::new();
    PAIRINGS.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// The pairings of `session`, oldest first.
pub fn pairings(session: &str) -> Vec<Arc<Pairing>> {
    registry()
        .lock()
        .expect("pairings lock")
        .values()
        .filter(|p| p.session == session)
        .cloned()
        .collect()
}

/// The pairing `id` of `session`.
pub fn pairing(session: &str, id: &str) -> anyhow::Result<Arc<Pairing>> {
    let map = registry().lock().expect("pairings lock");
    match map.get(id).filter(|p| p.session == session) {
        Some(p) => Ok(p.clone()),
        None => {
            let known: Vec<&str> = map
                .values()
                .filter(|p| p.session == session)
                .map(|p| p.id.as_str())
                .collect();
            anyhow::bail!(
                "no pairing {id} in this session ({}); `wire pair-check` lists them",
                if known.is_empty() {
                    "there are none".to_owned()
                } else {
                    format!("there are {}", known.join(", "))
                }
            )
        }
    }
}

fn relay_failure(e: &NetError, what: &str) -> String {
    match e.code() {
        Some("unknown_pair_slot") => format!(
            "the relay no longer holds this pairing while {what} (the other side gave up, it timed out, or the relay restarted); nothing was paired, start again with `wire pair-host`"
        ),
        Some("pair_slot_taken") => format!(
            "the relay refused while {what}: another pairing uses this code number, or someone else joined first; nothing was paired, start again with a new code"
        ),
        _ => format!("the relay failed while {what}: {e}; nothing was paired, try again"),
    }
}

impl Agent {
    /// Starts a pairing by code for `live` on `relay`, in the background.
    pub fn start_pairing(
        self: &Arc<Self>,
        live: &Arc<Live>,
        side: Side,
        code: Code,
        relay: &str,
        require_sas: bool,
    ) -> anyhow::Result<Arc<Pairing>> {
        let client = self.client(relay)?;
        // The host opens the slot before it shows the code, so a joiner never finds it
        // missing; a number another pairing holds right now is drawn again.
        let mut code = code;
        let opened = if side == Side::Host {
            let flags = if require_sas { FLAG_REQUIRE_SAS } else { 0 };
            let mut tries = 0;
            loop {
                let ex = Exchange::host(&code, flags);
                match self.block_on(client.pair_put(
                    &code.slot(),
                    "host",
                    0,
                    Bytes::copy_from_slice(ex.hello()),
                )) {
                    Ok(()) => break Some(ex),
                    Err(e) if e.code() == Some("pair_slot_taken") && tries < 3 => {
                        tries += 1;
                        code = Code::generate();
                    }
                    Err(e) => anyhow::bail!("{}", relay_failure(&e, "opening the pairing")),
                }
            }
        } else {
            None
        };
        let mut map = registry().lock().expect("pairings lock");
        map.retain(|_, p| {
            p.finished_at
                .lock()
                .expect("pairing lock")
                .is_none_or(|t| t.elapsed() < FINISHED_KEPT)
        });
        if map.len() >= PAIRINGS_MAX {
            let done: Vec<String> = map
                .values()
                .filter(|p| p.phase().is_finished())
                .map(|p| p.id.clone())
                .collect();
            for id in done {
                map.remove(&id);
            }
        }
        if map.len() >= PAIRINGS_MAX {
            anyhow::bail!(
                "{PAIRINGS_MAX} pairings are in progress; finish or abort some (`wire pair-check`)"
            );
        }
        let mut raw = [0u8; 4];
        rand::fill(&mut raw[..]);
        let id = format!("{}-{}", side.as_str(), hex::encode(raw));
        let pairing = Arc::new(Pairing {
            id: id.clone(),
            session: live.name.clone(),
            side,
            code: (side == Side::Host).then(|| code.as_str().to_owned()),
            relay: relay.to_owned(),
            started_ms: now_ms(),
            require_sas: Mutex::new(require_sas),
            phase: watch::Sender::new(Phase::Waiting),
            decision: watch::Sender::new(None),
            finished_at: Mutex::new(None),
        });
        map.insert(id, pairing.clone());
        drop(map);
        let (agent, live, p) = (self.clone(), live.clone(), pairing.clone());
        // Bounded by PAIRING_DEADLINE; ends with the runtime at shutdown.
        self.rt.spawn(async move {
            let slot = code.slot();
            let mut decisions = p.decision.subscribe();
            let aborted = async {
                loop {
                    let d: Option<Decision> = decisions.borrow_and_update().clone();
                    if let Some(Decision::Abort(why)) = d {
                        return why;
                    }
                    if decisions.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            let outcome = tokio::select! {
                r = tokio::time::timeout(PAIRING_DEADLINE, drive(&agent, &live, &p, &client, &code, opened)) => {
                    r.unwrap_or_else(|_| {
                        Err("the pairing took longer than 14 minutes; nothing was paired, start again".into())
                    })
                }
                why = aborted => Err(why),
            };
            if let Err(reason) = outcome {
                let _ = client.pair_close(&slot).await;
                eprintln!("wire: pairing {} of session {} failed: {reason}", p.id, p.session);
                live.refuse(format!("pairing {}", p.id), reason.clone());
                p.set(Phase::Failed { reason });
            } else {
                eprintln!("wire: pairing {} of session {} paired", p.id, p.session);
            }
        });
        Ok(pairing)
    }
}

/// Reads the other side's message `index`, waiting as long as the pairing may.
async fn wait_for(
    client: &RelayClient,
    slot: &str,
    side: Side,
    index: u8,
    what: &str,
) -> Result<Bytes, String> {
    loop {
        match client.pair_get(slot, side.as_str(), index, WAIT_MS).await {
            Ok(Some(b)) => return Ok(b),
            Ok(None) => continue,
            Err(e) if e.is_transient() => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(relay_failure(&e, what)),
        }
    }
}

fn pake(e: PakeError) -> String {
    e.to_string()
}

async fn drive(
    agent: &Arc<Agent>,
    live: &Arc<Live>,
    p: &Arc<Pairing>,
    client: &RelayClient,
    code: &Code,
    opened: Option<Exchange>,
) -> Result<(), String> {
    let slot = code.slot();
    let me = p.side;
    let keys = match (me, opened) {
        (Side::Host, Some(ex)) => {
            let theirs = wait_for(client, &slot, Side::Join, 0, "waiting for the joiner").await?;
            ex.finish(&theirs).map_err(pake)?
        }
        (Side::Host, None) => return Err("the pairing was not opened".into()),
        (Side::Join, _) => {
            let hello = match client.pair_get(&slot, "host", 0, 0).await {
                Ok(Some(b)) => b,
                Ok(None) => return Err("the host's message is missing; start again".into()),
                Err(e) if e.code() == Some("unknown_pair_slot") => {
                    return Err(format!(
                        "no pairing is waiting under code {}-… on {}: check the code, and that the host still waits on this relay (`--relay`)",
                        code.nameplate(),
                        p.relay
                    ));
                }
                Err(e) => return Err(relay_failure(&e, "reading the host's message")),
            };
            let host = HostHello::decode(&hello).map_err(pake)?;
            *p.require_sas.lock().expect("pairing lock") = host.require_sas();
            let ex = Exchange::join(code);
            client
                .pair_put(&slot, "join", 0, Bytes::copy_from_slice(ex.hello()))
                .await
                .map_err(|e| relay_failure(&e, "joining"))?;
            ex.finish(&hello).map_err(pake)?
        }
    };
    let sas = keys.sas();
    p.set(Phase::Sas { sas: sas.clone() });

    // Our operator decides. Meanwhile a read of our own (unwritten) second message keeps the
    // slot alive at the relay and notices the other side giving up.
    let mut decisions = p.decision.subscribe();
    loop {
        let current: Option<Decision> = decisions.borrow_and_update().clone();
        match current {
            Some(Decision::Confirm) => break,
            Some(Decision::Abort(why)) => return Err(why),
            None => {}
        }
        tokio::select! {
            r = decisions.changed() => {
                if r.is_err() {
                    return Err("the pairing was dropped".into());
                }
            }
            r = client.pair_get(&slot, me.as_str(), 1, WAIT_MS) => match r {
                Ok(_) => {}
                Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(500)).await,
                Err(e) => return Err(relay_failure(&e, "waiting for your confirmation")),
            },
        }
    }

    // Confirmed: our card, endpoints and a capability for them go out, sealed.
    let handle = live
        .session
        .identity()
        .map_err(|e| e.to_string())?
        .claimed
        .first()
        .cloned()
        .ok_or("claim a handle first (`wire claim`): your card names it")?;
    let card = live.session.sign_card(&handle).map_err(|e| e.to_string())?;
    let minted = agent
        .mint_caps(live)
        .await
        .map_err(|e| format!("could not mint capabilities for the other side: {e:#}"))?;
    let endpoints: Vec<_> = minted.iter().map(|m| m.endpoint.clone()).collect();
    let more_caps: Vec<String> = minted[1..].iter().map(|m| m.cap.clone()).collect();
    let sealed = keys
        .seal_card(&card, &endpoints, &minted[0].cap, &more_caps)
        .map_err(pake)?;
    client
        .pair_put(&slot, me.as_str(), 1, Bytes::from(sealed))
        .await
        .map_err(|e| relay_failure(&e, "sending your card"))?;
    p.set(Phase::Confirmed { sas: sas.clone() });

    let theirs = wait_for(
        client,
        &slot,
        me.other(),
        1,
        "waiting for the other side to confirm",
    )
    .await?;
    let request = keys.open_card(&theirs).map_err(pake)?;
    let peer = live
        .session
        .accept_by_code(&request, &minted)
        .map_err(|e| e.to_string())?;
    p.set(Phase::Paired {
        sas,
        peer: PairedPeer {
            nickname: peer.character.nickname.clone(),
            emoji: peer.character.emoji.clone(),
            tag: peer.character.tag.clone(),
            handle: peer.handle.clone(),
            did: peer.did.clone(),
            key: peer.key.to_hex(),
        },
    });
    Ok(())
}
