//! The file contract (PROTOCOL.md §26, decision (y)), for agents that can read and write files
//! but cannot run a process: the daemon mirrors each peer's verified messages to
//! `<session>/inbox/<peer>.jsonl` and sends the lines appended to `<session>/outbox/<peer>.jsonl`,
//! recording each line's outcome in `outbox/<peer>.status.jsonl`. One task per session polls
//! every 100 ms; the consumed offset of each outbox file is an `outbox.consumed` event in the
//! same transaction as the message, so a line is sent exactly once across restarts and crashes.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use wire_engine::{OutboxLine, OutboxRecord, Peer, PeerState};
use wire_log::body::OUTBOX_FILE_BYTES_MAX;
use wire_log::keyfile::create_private_dir;
use wire_log::{AuthorKey, BODY_BYTES_MAX, Kind};

use super::push::Why;
use super::{Agent, Live, PushOutcome};

/// How often the outbox directory is looked at and the log checked for new messages.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest outbox line, newline excluded (a 256 KiB body escaped as JSON fits); a longer line
/// is skipped and reported, never buffered.
pub const OUTBOX_LINE_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Most outbox lines consumed in one transaction.
pub const OUTBOX_LINES_PER_ROUND: usize = 4096;
/// Most messages mirrored to the inbox per scan of the log.
const INBOX_SCAN: usize = 4096;

/// The setting file under the session directory: `{"v":1,"enabled":true}`.
const SETTING: &str = "files.json";

#[derive(Debug, Serialize, Deserialize)]
struct Setting {
    v: u32,
    enabled: bool,
}

/// Whether the file contract is on for the session in `dir`. A damaged setting file is an
/// error, never "off".
pub fn enabled(dir: &Path) -> anyhow::Result<bool> {
    let path = dir.join(SETTING);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let s: Setting = serde_json::from_slice(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is damaged ({e}); `wire files on` or `wire files off` rewrites it",
            path.display()
        )
    })?;
    if s.v != 1 {
        anyhow::bail!(
            "{} has version {}, which this build does not know",
            path.display(),
            s.v
        );
    }
    Ok(s.enabled)
}

/// Turns the file contract on or off for the session in `dir`: the setting (written to a
/// temporary file and renamed) and, when on, the 0700 `inbox/` and `outbox/` directories.
pub fn set_enabled(dir: &Path, on: bool) -> anyhow::Result<()> {
    if on {
        for d in [inbox_dir(dir), outbox_dir(dir)] {
            create_private_dir(&d)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", d.display()))?;
        }
    }
    let path = dir.join(SETTING);
    let tmp = dir.join(format!("{SETTING}.tmp"));
    let body = serde_json::to_vec(&Setting { v: 1, enabled: on })?;
    let mut f = private_file(&tmp, false)?;
    f.write_all(&body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

pub fn inbox_dir(dir: &Path) -> PathBuf {
    dir.join("inbox")
}

pub fn outbox_dir(dir: &Path) -> PathBuf {
    dir.join("outbox")
}

/// Opens (creating 0600) a file for appending, or truncated for writing.
fn private_file(path: &Path, append: bool) -> anyhow::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).mode(0o600);
    if append {
        o.append(true).read(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))
}

/// A peer's file name: its nickname (derived from its key, so stable and `a-z` and `-`), kept
/// to `a-z 0-9 - _` (anything else becomes `_`); when two peers share a nickname, each gets
/// `-` and the first 8 hex digits of its key appended.
pub fn file_names(peers: &[Peer]) -> BTreeMap<String, AuthorKey> {
    let sanitise = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '-' | '_' => c,
                'A'..='Z' => c.to_ascii_lowercase(),
                _ => '_',
            })
            .collect()
    };
    let paired: Vec<&Peer> = peers
        .iter()
        .filter(|p| p.state == PeerState::Paired)
        .collect();
    let mut count: HashMap<String, usize> = HashMap::new();
    for p in &paired {
        *count.entry(sanitise(&p.character.nickname)).or_default() += 1;
    }
    paired
        .iter()
        .map(|p| {
            let base = sanitise(&p.character.nickname);
            let name = if count.get(&base).copied().unwrap_or(0) > 1 || base.is_empty() {
                format!("{base}-{}", &p.key.to_hex()[..8])
            } else {
                base
            };
            (name, p.key)
        })
        .collect()
}

/// One line of an outbox file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboxJson {
    body: Option<String>,
    body_base64: Option<String>,
    kind: Option<KindJson>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum KindJson {
    Number(u32),
    Name(String),
}

/// What an outbox line asks to send, or why it cannot be sent.
fn parse_line(raw: &[u8]) -> Result<(Kind, Vec<u8>), String> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err("empty line; nothing was sent".into());
    }
    let line: OutboxJson = serde_json::from_slice(raw).map_err(|e| {
        format!(
            "not a JSON object of the outbox format ({e}); write {{\"body\": \"text\"}} on one line"
        )
    })?;
    let kind = match &line.kind {
        None => Kind::MESSAGE,
        Some(KindJson::Name(s)) => crate::cmd::send::parse_kind(s).map_err(|e| e.to_string())?,
        Some(KindJson::Number(n)) => {
            crate::cmd::send::parse_kind(&n.to_string()).map_err(|e| e.to_string())?
        }
    };
    let body = match (line.body, line.body_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| format!("body_base64 is not base64 ({e}); nothing was sent"))?,
        (Some(_), Some(_)) => {
            return Err("both body and body_base64; give one. Nothing was sent".into());
        }
        (None, None) => {
            return Err(
                "no body: give \"body\" (text) or \"body_base64\". Nothing was sent".into(),
            );
        }
    };
    if body.len() > BODY_BYTES_MAX {
        return Err(format!(
            "the body is {} bytes; a message holds at most {BODY_BYTES_MAX} (256 KiB). Nothing was sent",
            body.len()
        ));
    }
    if kind == Kind::MESSAGE && std::str::from_utf8(&body).is_err() {
        return Err(
            "a `message` body must be UTF-8 text; send bytes with a numeric kind. Nothing was sent"
                .into(),
        );
    }
    Ok((kind, body))
}

/// Where reading one outbox file stands.
#[derive(Debug, Default, Clone, Copy)]
struct Cursor {
    /// Lines consumed so far (the last line's number).
    line: u64,
    /// Bytes consumed so far.
    offset: u64,
}

/// One line of a status file.
#[derive(Debug, Serialize)]
struct StatusJson<'a> {
    line: u64,
    start: u64,
    end: u64,
    #[serde(flatten)]
    outcome: &'a StatusOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum StatusOutcome {
    Push(PushOutcome),
    Invalid {
        outcome: &'static str,
        error: String,
    },
}

/// The file contract's state for one session, owned by its task.
#[derive(Debug, Default)]
struct Files {
    /// The last position mirrored to each peer's inbox file.
    inbox: HashMap<AuthorKey, u64>,
    /// Everything up to here has been looked at.
    scanned_to: u64,
    outbox: HashMap<String, Cursor>,
    /// Outbox files found shorter than their consumed offset, already reported.
    truncated: std::collections::HashSet<String>,
}

impl Files {
    /// Reads where every file stands: inbox files by their last complete line (a partial last
    /// line, from a crash mid-write, is cut off), outbox files by the log's `outbox.consumed`
    /// records; status lines the log has and the status file lacks are written now.
    fn load(live: &Live) -> anyhow::Result<Files> {
        let dir = live.session.dir().to_owned();
        for d in [inbox_dir(&dir), outbox_dir(&dir)] {
            create_private_dir(&d)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", d.display()))?;
        }
        let peers = live.session.peers()?;
        let names = file_names(&peers);
        let mut files = Files::default();
        let mut lowest = u64::MAX;
        for (name, key) in &names {
            let path = inbox_dir(&dir).join(format!("{name}.jsonl"));
            let last = last_inbox_position(&path)?;
            files.inbox.insert(*key, last);
            lowest = lowest.min(last);
        }
        files.scanned_to = if lowest == u64::MAX { 0 } else { lowest };
        let records = live.session.outbox_records()?;
        let mut by_file: BTreeMap<String, Vec<OutboxRecord>> = BTreeMap::new();
        for r in records {
            by_file.entry(r.consumed.file.clone()).or_default().push(r);
        }
        for (file, records) in by_file {
            let Some(last) = records.last() else { continue };
            files.outbox.insert(
                file.clone(),
                Cursor {
                    line: last.consumed.line,
                    offset: last.consumed.end,
                },
            );
            let status = outbox_dir(&dir).join(format!("{file}.status.jsonl"));
            let have = last_status_line(&status)?;
            let missing: Vec<(OutboxRecord, StatusOutcome)> = records
                .into_iter()
                .filter(|r| r.consumed.line > have)
                .map(|r| {
                    let o = match &r.consumed.error {
                        Some(e) => StatusOutcome::Invalid {
                            outcome: "invalid",
                            error: e.clone(),
                        },
                        None => StatusOutcome::Push(PushOutcome::Queued {
                            reason: "sent before the daemon stopped, whose push outcome was not recorded; it is in your log and the background push delivers it".into(),
                        }),
                    };
                    (r, o)
                })
                .collect();
            write_status(&status, &missing)?;
        }
        Ok(files)
    }

    /// Appends to the inbox files the peers' messages committed since the last look.
    fn mirror_inbox(&mut self, live: &Live) -> anyhow::Result<()> {
        let last = live.session.store().last_position()?.unwrap_or(0);
        if last <= self.scanned_to {
            return Ok(());
        }
        let peers = live.session.peers()?;
        let names = file_names(&peers);
        let dir = inbox_dir(live.session.dir());
        let mut open: HashMap<AuthorKey, std::fs::File> = HashMap::new();
        loop {
            let batch = live
                .session
                .messages_after(self.scanned_to, None, INBOX_SCAN)?;
            let Some(end) = batch.last().map(|m| m.position) else {
                break;
            };
            for m in &batch {
                if m.outgoing || m.position <= self.inbox.get(&m.peer).copied().unwrap_or(0) {
                    continue;
                }
                let Some(name) = names.iter().find(|(_, k)| **k == m.peer).map(|(n, _)| n) else {
                    continue;
                };
                let file = match open.entry(m.peer) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(private_file(&dir.join(format!("{name}.jsonl")), true)?)
                    }
                };
                let mut line = serde_json::to_vec(&crate::cmd::tail::message_json(m, &peers))?;
                line.push(b'\n');
                file.write_all(&line)?;
                self.inbox.insert(m.peer, m.position);
            }
            self.scanned_to = end;
            if batch.len() < INBOX_SCAN {
                break;
            }
        }
        for f in open.values() {
            f.sync_data()?;
        }
        self.scanned_to = self.scanned_to.max(last);
        Ok(())
    }

    /// Reads the complete new lines of every outbox file, at most `OUTBOX_LINES_PER_ROUND`.
    fn read_outbox(&mut self, live: &Live) -> anyhow::Result<Vec<OutboxLine>> {
        let dir = outbox_dir(live.session.dir());
        let names = file_names(&live.session.peers()?);
        let mut lines = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(lines),
            Err(e) => anyhow::bail!("cannot read {}: {e}", dir.display()),
        };
        let mut stems: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".jsonl").map(str::to_owned))
            .filter(|n| {
                !n.ends_with(".status") && !n.is_empty() && n.len() <= OUTBOX_FILE_BYTES_MAX
            })
            .filter(|n| !n.chars().any(char::is_control))
            .collect();
        stems.sort();
        for stem in stems {
            if lines.len() >= OUTBOX_LINES_PER_ROUND {
                break;
            }
            let cursor = self.outbox.get(&stem).copied().unwrap_or_default();
            let path = dir.join(format!("{stem}.jsonl"));
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            if len < cursor.offset {
                if self.truncated.insert(stem.clone()) {
                    live.refuse(
                        format!("outbox file {}", path.display()),
                        format!(
                            "it is {len} bytes but {} were consumed; outbox files are append-only, so nothing in it is read until it grows past that offset (lines before it are never sent)",
                            cursor.offset
                        ),
                    );
                }
                continue;
            }
            self.truncated.remove(&stem);
            let peer = names.get(&stem).copied();
            let room = OUTBOX_LINES_PER_ROUND - lines.len();
            for (i, (start, end, raw)) in read_lines(&path, cursor.offset, room)?
                .into_iter()
                .enumerate()
            {
                let send = match (raw, peer) {
                    (None, _) => Err(format!(
                        "the line is longer than {OUTBOX_LINE_BYTES_MAX} bytes; nothing was sent"
                    )),
                    (Some(_), None) => Err(format!(
                        "no paired peer has the file name `{stem}`; `wire files status` lists your peers' names. Nothing was sent"
                    )),
                    (Some(raw), Some(peer)) => parse_line(&raw).map(|(k, b)| (peer, k, b)),
                };
                lines.push(OutboxLine {
                    file: stem.clone(),
                    line: cursor.line + 1 + i as u64,
                    start,
                    end,
                    send,
                });
            }
        }
        Ok(lines)
    }
}

/// A line read from an outbox file: start, end, and its bytes (`None`: too long).
type RawLine = (u64, u64, Option<Vec<u8>>);

/// Complete lines of `path` from byte `offset`, at most `max`: `(start, end, bytes without the
/// newline)`, `None` for a line too long to keep. A partial last line waits for its newline.
fn read_lines(path: &Path, offset: u64, max: usize) -> anyhow::Result<Vec<RawLine>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("cannot open {}: {e}", path.display()),
    };
    let len = f.metadata()?.len();
    if len <= offset {
        return Ok(Vec::new());
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut out = Vec::new();
    let mut start = offset;
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    let mut pos = offset;
    let mut buf = vec![0u8; 256 * 1024];
    let mut budget: u64 = 16 * 1024 * 1024;
    while out.len() < max && budget > 0 {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        budget = budget.saturating_sub(n as u64);
        let mut from = 0;
        while from < n {
            match buf[from..n].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    if !too_long {
                        line.extend_from_slice(&buf[from..from + i]);
                    }
                    pos += (i + 1) as u64;
                    let content = if too_long || line.len() > OUTBOX_LINE_BYTES_MAX {
                        None
                    } else {
                        Some(std::mem::take(&mut line))
                    };
                    out.push((start, pos, content));
                    line.clear();
                    too_long = false;
                    start = pos;
                    from += i + 1;
                    if out.len() >= max {
                        return Ok(out);
                    }
                }
                None => {
                    if !too_long {
                        line.extend_from_slice(&buf[from..n]);
                        if line.len() > OUTBOX_LINE_BYTES_MAX {
                            too_long = true;
                            line = Vec::new();
                        }
                    }
                    pos += (n - from) as u64;
                    from = n;
                }
            }
        }
    }
    Ok(out)
}

/// The position of the last complete line of an inbox file (0 for none); a partial last line
/// is cut off. A complete line that does not parse is an error: the file is not ours to guess.
fn last_inbox_position(path: &Path) -> anyhow::Result<u64> {
    let Some(last) = last_complete_line(path)? else {
        return Ok(0);
    };
    let v: serde_json::Value = serde_json::from_slice(&last).map_err(|e| {
        anyhow::anyhow!(
            "the last line of {} is not an inbox line ({e}); move the file away and the daemon rebuilds it from the log",
            path.display()
        )
    })?;
    v["position"].as_u64().ok_or_else(|| {
        anyhow::anyhow!(
            "the last line of {} has no position; move the file away and the daemon rebuilds it from the log",
            path.display()
        )
    })
}

/// The line number of the last complete status line (0 for none); a partial one is cut off.
fn last_status_line(path: &Path) -> anyhow::Result<u64> {
    let Some(last) = last_complete_line(path)? else {
        return Ok(0);
    };
    let v: serde_json::Value = serde_json::from_slice(&last).map_err(|e| {
        anyhow::anyhow!(
            "the last line of {} is not a status line ({e}); move the file away and the daemon rewrites it from the log",
            path.display()
        )
    })?;
    v["line"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("the last line of {} has no line number", path.display()))
}

/// The last newline-terminated line of a file we write, cutting off anything after it.
fn last_complete_line(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot open {}: {e}", path.display()),
    };
    let len = f.metadata()?.len();
    // Lines we write are at most a message's JSON: read back far enough for two of them.
    let window = len.min(4 * 1024 * 1024);
    f.seek(SeekFrom::Start(len - window))?;
    let mut tail = Vec::with_capacity(window as usize);
    f.read_to_end(&mut tail)?;
    let Some(nl) = tail.iter().rposition(|&b| b == b'\n') else {
        if len > 0 && window == len {
            f.set_len(0)?;
        }
        return Ok(None);
    };
    if nl + 1 < tail.len() {
        f.set_len(len - window + nl as u64 + 1)?;
        f.sync_data()?;
    }
    let begin = tail[..nl]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    Ok(Some(tail[begin..nl].to_vec()))
}

/// Appends status lines (and fsyncs them).
fn write_status(path: &Path, lines: &[(OutboxRecord, StatusOutcome)]) -> anyhow::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut buf = Vec::new();
    for (r, o) in lines {
        serde_json::to_writer(
            &mut buf,
            &StatusJson {
                line: r.consumed.line,
                start: r.consumed.start,
                end: r.consumed.end,
                outcome: o,
                id: r.consumed.message.map(hex::encode),
                seq: r.seq,
            },
        )?;
        buf.push(b'\n');
    }
    let mut f = private_file(path, true)?;
    f.write_all(&buf)?;
    f.sync_data()?;
    Ok(())
}

impl Agent {
    /// Starts the file-contract task of a session if it is on and not running.
    pub(crate) fn start_files(self: &Arc<Self>, live: &Arc<Live>) {
        if !self.background {
            return;
        }
        let mut slot = live.files.lock().expect("files lock");
        if slot.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let agent = self.clone();
        let l = live.clone();
        let task = self.rt.spawn(async move { agent.files_forever(l).await });
        live.tasks
            .lock()
            .expect("tasks lock")
            .push(task.abort_handle());
        *slot = Some(task.abort_handle());
    }

    /// Stops the file-contract task of a session (`wire files off`).
    pub(crate) fn stop_files(&self, live: &Live) {
        if let Some(t) = live.files.lock().expect("files lock").take() {
            t.abort();
        }
    }

    /// The task: load, then every `POLL_INTERVAL` mirror the inbox and consume the outbox.
    /// A failure is reported in `wire status` and retried a second later.
    async fn files_forever(self: Arc<Self>, live: Arc<Live>) {
        let mut files: Option<Files> = None;
        let mut failed_at: Option<std::time::Instant> = None;
        loop {
            tokio::time::sleep(POLL_INTERVAL).await;
            if failed_at.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                continue;
            }
            let l = live.clone();
            let state = files.take();
            let round = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let mut f = match state {
                    Some(f) => f,
                    None => Files::load(&l)?,
                };
                let records = match f.mirror_inbox(&l).and_then(|()| f.read_outbox(&l)) {
                    Ok(lines) if lines.is_empty() => Vec::new(),
                    Ok(lines) => l.session.consume_outbox(lines)?,
                    Err(e) => return Err(e.context("the file contract")),
                };
                for r in &records {
                    f.outbox.insert(
                        r.consumed.file.clone(),
                        Cursor {
                            line: r.consumed.line,
                            offset: r.consumed.end,
                        },
                    );
                }
                Ok((f, records))
            })
            .await;
            let records = match round {
                Ok(Ok((f, records))) => {
                    files = Some(f);
                    failed_at = None;
                    records
                }
                Ok(Err(e)) => {
                    live.refuse("the file contract", format!("{e:#}"));
                    failed_at = Some(std::time::Instant::now());
                    continue;
                }
                Err(e) => {
                    live.refuse("the file contract", e.to_string());
                    failed_at = Some(std::time::Instant::now());
                    continue;
                }
            };
            if records.is_empty() {
                continue;
            }
            if let Ok(Some(position)) = live.session.store().last_position() {
                live.appended.send_replace(position);
            }
            // Push each peer written to once; every line to it shares that push's outcome.
            let mut outcomes: HashMap<AuthorKey, PushOutcome> = HashMap::new();
            for r in &records {
                if let (Some(peer), None) = (r.consumed.peer, &r.consumed.error)
                    && !outcomes.contains_key(&peer)
                {
                    let o = match self.push(&live, &peer, Why::Send).await {
                        Ok(o) => o,
                        Err(e) => PushOutcome::Queued {
                            reason: format!("{e:#}"),
                        },
                    };
                    outcomes.insert(peer, o);
                }
            }
            let dir = outbox_dir(live.session.dir());
            let mut by_file: BTreeMap<String, Vec<(OutboxRecord, StatusOutcome)>> = BTreeMap::new();
            for r in records {
                let o = match (&r.consumed.error, r.consumed.peer) {
                    (Some(e), _) => StatusOutcome::Invalid {
                        outcome: "invalid",
                        error: e.clone(),
                    },
                    (None, Some(peer)) => StatusOutcome::Push(
                        outcomes
                            .get(&peer)
                            .cloned()
                            .unwrap_or(PushOutcome::UpToDate),
                    ),
                    (None, None) => StatusOutcome::Push(PushOutcome::UpToDate),
                };
                by_file
                    .entry(r.consumed.file.clone())
                    .or_default()
                    .push((r, o));
            }
            let l = live.clone();
            let wrote = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                for (file, lines) in by_file {
                    write_status(&dir.join(format!("{file}.status.jsonl")), &lines)?;
                }
                Ok(())
            })
            .await;
            if let Ok(Err(e)) = wrote {
                // The log has the records: the next start writes the missing lines.
                l.refuse("the file contract's status file", format!("{e:#}"));
                files = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_lines_parse_or_say_why() {
        assert_eq!(
            parse_line(br#"{"body":"hi"}"#),
            Ok((Kind::MESSAGE, b"hi".to_vec()))
        );
        assert_eq!(
            parse_line(br#"{"body":"hi","kind":1100}"#).map(|(k, _)| k.number()),
            Ok(1100)
        );
        assert_eq!(
            parse_line(br#"{"body_base64":"AAE=","kind":"1200"}"#),
            Ok((Kind::new(1200).expect("test"), vec![0, 1]))
        );
        for bad in [
            &b"not json"[..],
            b"",
            b"{}",
            br#"{"body":"x","body_base64":"AA=="}"#,
            br#"{"bdy":"x"}"#,
            br#"{"body":"x","kind":1001}"#,
            br#"{"body_base64":"/w=="}"#,
            br#"["body"]"#,
        ] {
            assert!(parse_line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn only_complete_lines_are_read_and_long_ones_are_skipped() {
        let dir = tempfile::tempdir().expect("test");
        let path = dir.path().join("x.jsonl");
        let mut content = b"one\ntwo\n".to_vec();
        content.extend(std::iter::repeat_n(b'a', OUTBOX_LINE_BYTES_MAX + 10));
        content.extend_from_slice(b"\nthree\nfour");
        std::fs::write(&path, &content).expect("test");
        let lines = read_lines(&path, 0, 100).expect("test");
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], (0, 4, Some(b"one".to_vec())));
        assert_eq!(lines[1], (4, 8, Some(b"two".to_vec())));
        assert_eq!(lines[2].2, None);
        assert_eq!(lines[3].2, Some(b"three".to_vec()));
        assert_eq!(lines[3].1, content.len() as u64 - 4);
        assert_eq!(read_lines(&path, lines[3].1, 100).expect("test"), vec![]);
        assert_eq!(read_lines(&path, 0, 1).expect("test").len(), 1);
    }

    #[test]
    fn a_partial_last_line_is_cut_off() {
        let dir = tempfile::tempdir().expect("test");
        let path = dir.path().join("x.status.jsonl");
        std::fs::write(&path, b"{\"line\":1}\n{\"line\":2}\n{\"li").expect("test");
        assert_eq!(last_status_line(&path).expect("test"), 2);
        assert_eq!(
            std::fs::read(&path).expect("test"),
            b"{\"line\":1}\n{\"line\":2}\n"
        );
        std::fs::write(&path, b"{\"li").expect("test");
        assert_eq!(last_status_line(&path).expect("test"), 0);
        assert_eq!(std::fs::read(&path).expect("test"), b"");
    }
}
