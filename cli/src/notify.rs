//! Desktop notifications from the daemon: one for a new pair request, one for a message from a
//! peer (a batch from one peer is one notification), never for our own sends, never twice for
//! the same event. They go through [`Toaster`]: the desktop (`notify-rust`), the daemon's log
//! when there is no notification service, or a file of JSON lines (`WIRE_NOTIFY_SINK`, what
//! the tests read). `wire quiet on` (a marker file in the state root) and `WIRE_NO_TOASTS=1`
//! silence them.
//!
//! A notification is shown on a thread of its own behind a bounded queue, so a slow or hung
//! notification service never holds up an ingest; when the queue is full the notice goes to
//! the log instead.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{SyncSender, TrySendError};

use serde::Serialize;

/// Notices waiting for the notification thread.
const QUEUED_MAX: usize = 64;

/// Event ids remembered to suppress a second notification for the same event.
const SEEN_MAX: usize = 4096;

/// Longest message preview in a notification, in characters.
const PREVIEW_CHARS: usize = 120;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    PairRequest,
    Message,
}

/// One notification.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub kind: NoticeKind,
    /// Our session it concerns.
    pub session: String,
    /// The peer's key (hex).
    pub peer: String,
    pub title: String,
    pub body: String,
    /// What makes it the same notice twice: the event ids it covers.
    #[serde(skip)]
    pub ids: Vec<String>,
}

/// Somewhere a notification can be shown.
pub trait Toaster: Send {
    /// Shows one notice, or says why it could not.
    fn show(&mut self, notice: &Notice) -> Result<(), String>;
    /// What this is, for `wire quiet status` and the log.
    fn name(&self) -> &'static str;
}

/// The desktop's notification service.
struct Desktop;

impl Toaster for Desktop {
    fn show(&mut self, notice: &Notice) -> Result<(), String> {
        notify_rust::Notification::new()
            .appname("wire")
            .summary(&notice.title)
            .body(&notice.body)
            .show()
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn name(&self) -> &'static str {
        "desktop"
    }
}

/// The daemon's log (its stderr).
struct Log;

impl Toaster for Log {
    fn show(&mut self, notice: &Notice) -> Result<(), String> {
        eprintln!(
            "wire daemon: notice [{}]: {}: {}",
            notice.session, notice.title, notice.body
        );
        Ok(())
    }

    fn name(&self) -> &'static str {
        "log"
    }
}

/// A file of JSON lines, one per notice (`WIRE_NOTIFY_SINK`).
struct FileSink(PathBuf);

impl Toaster for FileSink {
    fn show(&mut self, notice: &Notice) -> Result<(), String> {
        let mut line = serde_json::to_string(notice).map_err(|e| e.to_string())?;
        line.push('\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.0)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| format!("{}: {e}", self.0.display()))
    }

    fn name(&self) -> &'static str {
        "file"
    }
}

/// The toaster this environment calls for: the test sink if named, the desktop where a
/// notification service can be reached, else the log.
fn from_env() -> Box<dyn Toaster> {
    if let Some(path) = std::env::var_os("WIRE_NOTIFY_SINK").filter(|p| !p.is_empty()) {
        return Box::new(FileSink(PathBuf::from(path)));
    }
    if desktop_reachable() {
        Box::new(Desktop)
    } else {
        Box::new(Log)
    }
}

/// macOS always has Notification Center; elsewhere notifications travel on the session bus.
fn desktop_reachable() -> bool {
    if cfg!(target_os = "macos") {
        return true;
    }
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(|d| Path::new(&d).join("bus"))
        .is_some_and(|bus| bus.exists())
}

/// Whether `WIRE_NO_TOASTS` asks for silence.
fn env_silenced() -> bool {
    std::env::var("WIRE_NO_TOASTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The marker file `wire quiet on` writes.
pub fn quiet_path(root: &Path) -> PathBuf {
    root.join("quiet")
}

/// Why notifications are silenced, if they are.
pub fn silenced(root: &Path) -> Option<&'static str> {
    if env_silenced() {
        Some("WIRE_NO_TOASTS is set in the daemon's environment")
    } else if quiet_path(root).exists() {
        Some("`wire quiet on`")
    } else {
        None
    }
}

/// The daemon's notifier: deduplicates, honours quiet, and hands notices to the thread that
/// shows them.
pub struct Notifier {
    root: PathBuf,
    backend: &'static str,
    seen: Mutex<Seen>,
    tx: SyncSender<Notice>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// The notifier for state root `root`, with the toaster the environment calls for.
    pub fn start(root: &Path) -> Notifier {
        Notifier::with(root, from_env())
    }

    /// The notifier with a given toaster.
    pub fn with(root: &Path, toaster: Box<dyn Toaster>) -> Notifier {
        let backend = toaster.name();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Notice>(QUEUED_MAX);
        std::thread::Builder::new()
            .name("wire-notify".into())
            .spawn(move || {
                let mut toaster = toaster;
                let mut fell_back = false;
                for notice in rx {
                    if fell_back {
                        let _ = Log.show(&notice);
                        continue;
                    }
                    if let Err(e) = toaster.show(&notice) {
                        // Once the service fails, the log gets this and every later notice.
                        eprintln!(
                            "wire daemon: cannot show a notification ({e}); notices go to this log from now on"
                        );
                        fell_back = true;
                        let _ = Log.show(&notice);
                    }
                }
            })
            .ok();
        Notifier {
            root: root.to_owned(),
            backend,
            seen: Mutex::new(Seen::default()),
            tx,
        }
    }

    /// Where notices go: `desktop`, `log` or `file`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Raises `notice` unless silenced or already raised for the same events. Returns
    /// whether it was handed on.
    pub fn raise(&self, notice: Notice) -> bool {
        if !self.seen.lock().expect("seen lock").first_time(&notice.ids) {
            return false;
        }
        if silenced(&self.root).is_some() {
            return false;
        }
        match self.tx.try_send(notice) {
            Ok(()) => true,
            Err(TrySendError::Full(n) | TrySendError::Disconnected(n)) => {
                let _ = Log.show(&n);
                true
            }
        }
    }
}

/// Recently notified event ids, bounded.
#[derive(Default)]
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// Records `ids`; true if none of them was seen before (a notice covers its events once).
    fn first_time(&mut self, ids: &[String]) -> bool {
        if ids.iter().any(|id| self.set.contains(id)) {
            return false;
        }
        for id in ids {
            if self.order.len() == SEEN_MAX
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
            self.set.insert(id.clone());
            self.order.push_back(id.clone());
        }
        true
    }
}

/// `text` cut to a preview: one line, at most [`PREVIEW_CHARS`] characters, control
/// characters dropped.
pub fn preview(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= PREVIEW_CHARS {
        flat.to_owned()
    } else {
        let mut s: String = flat.chars().take(PREVIEW_CHARS - 1).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Collects what it is shown.
    struct Collect(Arc<Mutex<Vec<Notice>>>);

    impl Toaster for Collect {
        fn show(&mut self, notice: &Notice) -> Result<(), String> {
            self.0.lock().expect("lock").push(notice.clone());
            Ok(())
        }
        fn name(&self) -> &'static str {
            "test"
        }
    }

    fn notice(ids: &[&str]) -> Notice {
        Notice {
            kind: NoticeKind::Message,
            session: "default".into(),
            peer: "ab".into(),
            title: "t".into(),
            body: "b".into(),
            ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn wait_for(shown: &Arc<Mutex<Vec<Notice>>>, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while shown.lock().expect("lock").len() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn the_same_events_are_notified_once_and_quiet_silences() {
        let root = tempfile::tempdir().expect("tempdir");
        let shown = Arc::new(Mutex::new(Vec::new()));
        let n = Notifier::with(root.path(), Box::new(Collect(shown.clone())));
        assert!(n.raise(notice(&["e1", "e2"])));
        assert!(!n.raise(notice(&["e2"])), "a resent event is not news");
        assert!(!n.raise(notice(&["e1", "e3"])));
        assert!(n.raise(notice(&["e4"])));
        std::fs::write(quiet_path(root.path()), b"").expect("quiet on");
        assert!(!n.raise(notice(&["e5"])), "quiet on silences");
        std::fs::remove_file(quiet_path(root.path())).expect("quiet off");
        assert!(n.raise(notice(&["e6"])));
        wait_for(&shown, 3);
        let got: Vec<Vec<String>> = shown
            .lock()
            .expect("lock")
            .iter()
            .map(|n| n.ids.clone())
            .collect();
        assert_eq!(got, [vec!["e1", "e2"], vec!["e4"], vec!["e6"]]);
    }

    #[test]
    fn the_memory_of_seen_events_is_bounded() {
        let mut seen = Seen::default();
        for i in 0..SEEN_MAX + 10 {
            assert!(seen.first_time(&[i.to_string()]));
        }
        assert_eq!(seen.set.len(), SEEN_MAX);
        assert!(seen.first_time(&["0".into()]), "the oldest was forgotten");
        assert!(!seen.first_time(&[(SEEN_MAX + 9).to_string()]));
    }

    #[test]
    fn previews_are_one_short_line() {
        assert_eq!(preview("hi\nthere\x07"), "hi there");
        let long = "x".repeat(500);
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS);
        assert!(p.ends_with('…'));
    }

    #[test]
    fn a_failing_service_falls_back_to_the_log() {
        struct Broken(Arc<Mutex<u32>>);
        impl Toaster for Broken {
            fn show(&mut self, _: &Notice) -> Result<(), String> {
                *self.0.lock().expect("lock") += 1;
                Err("no service".into())
            }
            fn name(&self) -> &'static str {
                "broken"
            }
        }
        let root = tempfile::tempdir().expect("tempdir");
        let tries = Arc::new(Mutex::new(0));
        let n = Notifier::with(root.path(), Box::new(Broken(tries.clone())));
        assert!(n.raise(notice(&["a"])));
        assert!(n.raise(notice(&["b"])));
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(*tries.lock().expect("lock"), 1, "tried once, then the log");
    }
}
