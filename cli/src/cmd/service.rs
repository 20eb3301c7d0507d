//! `wire service install [--local-relay] | uninstall | status` and `wire upgrade --local`: keep
//! the daemon (and the local relay) running across logins and reboots, as a systemd user unit on
//! Linux or a launchd agent on macOS, restarted on failure. Units name the binary by absolute
//! path, so installing again (or `wire upgrade --local`) rewrites them to the current binary.
//!
//! Activation goes through `systemctl --user` or `launchctl`; where neither can act (no user
//! bus, a container, `WIRE_SERVICE_MANAGER=none`) the unit is still written and the reply says
//! how to start it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;
use wire_engine::Home;

use crate::agent::DEFAULT_RELAY;
use crate::output::Out;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Install and start the daemon as a login service (and the local relay with
    /// `--local-relay`).
    Install(InstallArgs),
    /// Stop and remove the installed services.
    Uninstall,
    /// What is installed, which binary it runs, and whether it runs.
    Status,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Also run the local relay (`wire relay-server --local-only`) as a service.
    #[arg(long)]
    local_relay: bool,
    /// Where the local relay listens.
    #[arg(long, default_value = "127.0.0.1:8771", value_name = "ADDR")]
    relay_bind: String,
}

#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    /// Restart this machine's daemon and local relay on the current binary and refresh the
    /// installed services.
    #[arg(long)]
    local: bool,
}

/// The service manager units are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Systemd,
    Launchd,
}

impl Platform {
    fn here() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::Launchd
        } else {
            Platform::Systemd
        }
    }
}

/// One service wire installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    Daemon,
    Relay,
}

impl Unit {
    const ALL: [Unit; 2] = [Unit::Daemon, Unit::Relay];

    fn systemd_name(self) -> &'static str {
        match self {
            Unit::Daemon => "wire-daemon.service",
            Unit::Relay => "wire-relay.service",
        }
    }

    fn launchd_label(self) -> &'static str {
        match self {
            Unit::Daemon => "dev.wire.daemon",
            Unit::Relay => "dev.wire.relay",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Unit::Daemon => "the wire daemon",
            Unit::Relay => "the local wire relay",
        }
    }
}

/// What a unit runs: the binary, its arguments and its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub unit: Unit,
    pub exe: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

impl Spec {
    fn daemon(exe: &Path, home: &Home) -> Spec {
        Spec {
            unit: Unit::Daemon,
            exe: exe.to_owned(),
            args: vec!["daemon".into(), "--foreground".into()],
            env: vec![("WIRE_HOME".into(), home.root().display().to_string())],
            log: home.root().join("daemon.service.log"),
        }
    }

    fn relay(exe: &Path, home: &Home, bind: &str) -> Spec {
        Spec {
            unit: Unit::Relay,
            exe: exe.to_owned(),
            args: vec![
                "relay-server".into(),
                "--local-only".into(),
                "--bind".into(),
                bind.to_owned(),
                "--data".into(),
                home.root().join("relay").display().to_string(),
            ],
            env: vec![("WIRE_HOME".into(), home.root().display().to_string())],
            log: home.root().join("relay.service.log"),
        }
    }
}

/// Quotes one systemd `ExecStart` word.
fn systemd_word(w: &str) -> String {
    if !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=@+,".contains(&b))
    {
        w.to_owned()
    } else {
        format!(
            "\"{}\"",
            w.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('%', "%%")
        )
    }
}

/// The systemd user unit for `spec`.
pub fn systemd_unit(spec: &Spec) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by `wire service install`; `wire service uninstall` removes it."
    );
    let _ = writeln!(s, "[Unit]");
    let _ = writeln!(s, "Description={}", spec.unit.what());
    if spec.unit == Unit::Daemon {
        let _ = writeln!(s, "After=wire-relay.service");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "[Service]");
    let _ = writeln!(s, "Type=simple");
    let mut exec = vec![systemd_word(&spec.exe.display().to_string())];
    exec.extend(spec.args.iter().map(|a| systemd_word(a)));
    let _ = writeln!(s, "ExecStart={}", exec.join(" "));
    for (k, v) in &spec.env {
        let _ = writeln!(s, "Environment={}", systemd_word(&format!("{k}={v}")));
    }
    let _ = writeln!(s, "Restart=on-failure");
    let _ = writeln!(s, "RestartSec=2");
    let _ = writeln!(s, "UMask=0077");
    let _ = writeln!(s);
    let _ = writeln!(s, "[Install]");
    let _ = writeln!(s, "WantedBy=default.target");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The launchd agent property list for `spec`.
pub fn launchd_plist(spec: &Spec) -> String {
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str("<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n");
    s.push_str(
        "<!-- Written by `wire service install`; `wire service uninstall` removes it. -->\n",
    );
    s.push_str("<plist version=\"1.0\">\n<dict>\n");
    let _ = writeln!(
        s,
        "  <key>Label</key>\n  <string>{}</string>",
        spec.unit.launchd_label()
    );
    s.push_str("  <key>ProgramArguments</key>\n  <array>\n");
    let _ = writeln!(
        s,
        "    <string>{}</string>",
        xml(&spec.exe.display().to_string())
    );
    for a in &spec.args {
        let _ = writeln!(s, "    <string>{}</string>", xml(a));
    }
    s.push_str("  </array>\n  <key>EnvironmentVariables</key>\n  <dict>\n");
    for (k, v) in &spec.env {
        let _ = writeln!(
            s,
            "    <key>{}</key>\n    <string>{}</string>",
            xml(k),
            xml(v)
        );
    }
    s.push_str("  </dict>\n");
    s.push_str("  <key>RunAtLoad</key>\n  <true/>\n");
    s.push_str("  <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n");
    s.push_str("  <key>ThrottleInterval</key>\n  <integer>2</integer>\n");
    s.push_str("  <key>Umask</key>\n  <integer>63</integer>\n");
    let log = xml(&spec.log.display().to_string());
    let _ = writeln!(s, "  <key>StandardOutPath</key>\n  <string>{log}</string>");
    let _ = writeln!(
        s,
        "  <key>StandardErrorPath</key>\n  <string>{log}</string>"
    );
    s.push_str("</dict>\n</plist>\n");
    s
}

/// Where units live: `$XDG_CONFIG_HOME/systemd/user` (else `~/.config/systemd/user`) or
/// `~/Library/LaunchAgents`.
fn unit_dir(platform: Platform) -> anyhow::Result<PathBuf> {
    let home = || {
        std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .context("HOME is not set, so there is no place for the service file")
    };
    Ok(match platform {
        Platform::Systemd => match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(c) => PathBuf::from(c).join("systemd/user"),
            None => home()?.join(".config/systemd/user"),
        },
        Platform::Launchd => home()?.join("Library/LaunchAgents"),
    })
}

fn unit_path(platform: Platform, unit: Unit) -> anyhow::Result<PathBuf> {
    let dir = unit_dir(platform)?;
    Ok(match platform {
        Platform::Systemd => dir.join(unit.systemd_name()),
        Platform::Launchd => dir.join(format!("{}.plist", unit.launchd_label())),
    })
}

fn render(platform: Platform, spec: &Spec) -> String {
    match platform {
        Platform::Systemd => systemd_unit(spec),
        Platform::Launchd => launchd_plist(spec),
    }
}

/// The binary an installed unit runs (the first word of `ExecStart`, or the first
/// `ProgramArguments` string).
fn installed_exe(platform: Platform, text: &str) -> Option<String> {
    match platform {
        Platform::Systemd => {
            let line = text.lines().find_map(|l| l.strip_prefix("ExecStart="))?;
            let word = if let Some(rest) = line.strip_prefix('"') {
                rest.split('"').next()?.replace("%%", "%")
            } else {
                line.split_whitespace().next()?.to_owned()
            };
            Some(word)
        }
        Platform::Launchd => {
            let after = text.split("<key>ProgramArguments</key>").nth(1)?;
            let first = after.split("<string>").nth(1)?.split("</string>").next()?;
            Some(
                first
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&amp;", "&"),
            )
        }
    }
}

/// Whether the service manager may be driven (`WIRE_SERVICE_MANAGER=none` says no).
fn manager_allowed() -> bool {
    std::env::var("WIRE_SERVICE_MANAGER").map_or(true, |v| v != "none")
}

/// Runs the service manager; `Err` says why it could not act.
fn manage(program: &str, args: &[&str]) -> Result<String, String> {
    if !manager_allowed() {
        return Err("WIRE_SERVICE_MANAGER=none".into());
    }
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{program} cannot run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            if err.is_empty() {
                "no reason given".into()
            } else {
                err
            }
        ))
    }
}

fn activate(platform: Platform, unit: Unit, path: &Path) -> Result<(), String> {
    match platform {
        Platform::Systemd => {
            manage("systemctl", &["--user", "daemon-reload"])?;
            manage("systemctl", &["--user", "enable", unit.systemd_name()])?;
            manage("systemctl", &["--user", "restart", unit.systemd_name()]).map(drop)
        }
        Platform::Launchd => {
            let p = path.display().to_string();
            let _ = manage("launchctl", &["unload", &p]);
            manage("launchctl", &["load", "-w", &p]).map(drop)
        }
    }
}

fn deactivate(platform: Platform, unit: Unit, path: &Path) -> Result<(), String> {
    match platform {
        Platform::Systemd => manage(
            "systemctl",
            &["--user", "disable", "--now", unit.systemd_name()],
        )
        .map(drop),
        Platform::Launchd => {
            manage("launchctl", &["unload", "-w", &path.display().to_string()]).map(drop)
        }
    }
}

fn running(platform: Platform, unit: Unit) -> Result<bool, String> {
    match platform {
        Platform::Systemd => {
            match manage("systemctl", &["--user", "is-active", unit.systemd_name()]) {
                Ok(s) => Ok(s == "active"),
                Err(e) if e.contains("inactive") || e.contains("failed") => Ok(false),
                Err(e) => Err(e),
            }
        }
        Platform::Launchd => manage("launchctl", &["list", unit.launchd_label()]).map(|_| true),
    }
}

fn start_hint(platform: Platform, unit: Unit, path: &Path) -> String {
    match platform {
        Platform::Systemd => format!(
            "systemctl --user daemon-reload && systemctl --user enable --now {}",
            unit.systemd_name()
        ),
        Platform::Launchd => format!("launchctl load -w {}", path.display()),
    }
}

/// One unit, as `install`, `status` and `upgrade` report it.
#[derive(Debug, Serialize)]
struct UnitReport {
    unit: Unit,
    path: String,
    installed: bool,
    /// The binary it runs.
    exe: Option<String>,
    /// Whether that is this binary.
    current: bool,
    /// Whether the service manager says it runs (`None`: it could not be asked).
    running: Option<bool>,
    /// What could not be done, and the command that does it.
    note: Option<String>,
}

fn current_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .context("cannot find this binary's path for the service file")
}

/// Writes the unit file (0644 like any unit; it holds no secret), replacing an older one.
fn write_unit(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().context("unit path has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("wire-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn report(platform: Platform, unit: Unit, exe: &Path) -> anyhow::Result<UnitReport> {
    let path = unit_path(platform, unit)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let installed_exe = text.as_deref().and_then(|t| installed_exe(platform, t));
    let (running, note) = if text.is_some() {
        match running(platform, unit) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(format!("cannot ask the service manager: {e}"))),
        }
    } else {
        (None, None)
    };
    let current = installed_exe.as_deref() == exe.to_str();
    let note = match (&text, &installed_exe, current) {
        (Some(_), None, _) => Some(format!(
            "{} does not name a binary; `wire service install` rewrites it",
            path.display()
        )),
        (Some(_), Some(other), false) => Some(format!(
            "it runs {other}, not this binary; `wire service install` (or `wire upgrade --local`) rewrites it"
        )),
        _ => note,
    };
    Ok(UnitReport {
        unit,
        path: path.display().to_string(),
        installed: text.is_some(),
        exe: installed_exe,
        current,
        running,
        note,
    })
}

fn install_units(
    platform: Platform,
    specs: &[Spec],
    exe: &Path,
) -> anyhow::Result<Vec<UnitReport>> {
    let mut out = Vec::new();
    for spec in specs {
        let path = unit_path(platform, spec.unit)?;
        write_unit(&path, &render(platform, spec))?;
        let mut r = report(platform, spec.unit, exe)?;
        match activate(platform, spec.unit, &path) {
            Ok(()) => {
                r.running = running(platform, spec.unit).ok();
                r.note = None;
            }
            Err(e) => {
                r.note = Some(format!(
                    "written but not started ({e}); start it with `{}`",
                    start_hint(platform, spec.unit, &path)
                ));
            }
        }
        out.push(r);
    }
    Ok(out)
}

fn prose(out: &Out, head: &str, reports: &[UnitReport]) -> String {
    let _ = out;
    let mut s = format!("{head}\n");
    for r in reports {
        let state = match (r.installed, r.running) {
            (false, _) => "not installed".to_owned(),
            (true, Some(true)) => "installed, running".to_owned(),
            (true, Some(false)) => "installed, not running".to_owned(),
            (true, None) => "installed".to_owned(),
        };
        let _ = writeln!(s, "  {}: {state} ({})", r.unit.what(), r.path);
        if let Some(exe) = &r.exe {
            let _ = writeln!(s, "    runs {exe}");
        }
        if let Some(n) = &r.note {
            let _ = writeln!(s, "    {n}");
        }
    }
    s
}

pub fn run(out: &Out, command: Command) -> anyhow::Result<ExitCode> {
    let platform = Platform::here();
    let home = Home::from_env()?;
    let exe = current_exe()?;
    match command {
        Command::Install(args) => {
            let mut specs = Vec::new();
            if args.local_relay {
                specs.push(Spec::relay(&exe, &home, &args.relay_bind));
            }
            specs.push(Spec::daemon(&exe, &home));
            let reports = install_units(platform, &specs, &exe)?;
            out.print(
                &serde_json::json!({ "platform": platform, "units": reports }),
                || {
                    prose(
                        out,
                        "Installed (they start at login and restart on failure):",
                        &reports,
                    )
                },
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Uninstall => {
            let mut reports = Vec::new();
            for unit in Unit::ALL {
                let path = unit_path(platform, unit)?;
                if !path.exists() {
                    continue;
                }
                let note = deactivate(platform, unit, &path)
                    .err()
                    .map(|e| format!("removed, but it may still run until logout ({e})"));
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
                if platform == Platform::Systemd {
                    let _ = manage("systemctl", &["--user", "daemon-reload"]);
                }
                reports.push(UnitReport {
                    unit,
                    path: path.display().to_string(),
                    installed: false,
                    exe: None,
                    current: false,
                    running: None,
                    note,
                });
            }
            out.print(
                &serde_json::json!({ "platform": platform, "removed": reports }),
                || {
                    if reports.is_empty() {
                        "No wire service was installed.\n".into()
                    } else {
                        prose(out, "Removed:", &reports)
                    }
                },
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let reports: Vec<UnitReport> = Unit::ALL
                .iter()
                .map(|u| report(platform, *u, &exe))
                .collect::<anyhow::Result<_>>()?;
            out.print(
                &serde_json::json!({ "platform": platform, "units": reports }),
                || prose(out, "wire services:", &reports),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Processes of this user running `wire relay-server` from another binary than this one.
fn stale_relays(exe: &Path) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    let me = std::process::id();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let words: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        if !words.iter().any(|w| w == "relay-server") {
            continue;
        }
        let Ok(their) = std::fs::read_link(e.path().join("exe")) else {
            continue;
        };
        let their_name = their.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !their_name.starts_with("wire") {
            continue;
        }
        if their != exe {
            found.push((pid, their.display().to_string()));
        }
    }
    found
}

/// `wire upgrade --local`: refresh installed units to this binary, restart them, restart the
/// daemon of this state root on this binary, and name relays still running an older binary.
pub fn upgrade(out: &Out, args: UpgradeArgs) -> anyhow::Result<ExitCode> {
    if !args.local {
        bail!(
            "`wire upgrade` only knows `--local`: restart this machine's daemon and local relay on the current binary. Install a new binary first (for example `cargo install --path cli`)"
        );
    }
    let platform = Platform::here();
    let home = Home::from_env()?;
    let exe = current_exe()?;
    let mut specs = Vec::new();
    for unit in Unit::ALL {
        let path = unit_path(platform, unit)?;
        if !path.exists() {
            continue;
        }
        specs.push(match unit {
            Unit::Daemon => Spec::daemon(&exe, &home),
            Unit::Relay => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let bind = bind_of(&text)
                    .unwrap_or_else(|| DEFAULT_RELAY.trim_start_matches("http://").to_owned());
                Spec::relay(&exe, &home, &bind)
            }
        });
    }
    let units = install_units(platform, &specs, &exe)?;
    let daemon_managed = units
        .iter()
        .any(|u| u.unit == Unit::Daemon && u.note.is_none());
    let mut daemon = "not running".to_owned();
    if !daemon_managed && crate::daemon::connect(&home).is_some() {
        crate::daemon::stop(&home)?;
        crate::daemon::start(&home)?;
        daemon = format!("restarted on {}", exe.display());
    } else if daemon_managed {
        daemon = "restarted by the service manager".into();
    }
    let stale: Vec<serde_json::Value> = stale_relays(&exe)
        .into_iter()
        .map(|(pid, bin)| serde_json::json!({ "pid": pid, "exe": bin }))
        .collect();
    out.print(
        &serde_json::json!({
            "binary": exe.display().to_string(),
            "daemon": daemon,
            "units": units,
            "stale_relays": stale,
        }),
        || {
            let mut s = format!("Upgraded to {}.\n  daemon: {daemon}\n", exe.display());
            if units.is_empty() {
                s.push_str("  no service installed (`wire service install` adds them)\n");
            }
            for u in &units {
                let _ = writeln!(
                    s,
                    "  {}: rewritten{}",
                    u.unit.what(),
                    u.note
                        .as_ref()
                        .map(|n| format!(", {n}"))
                        .unwrap_or_default()
                );
            }
            for r in &stale {
                let _ = writeln!(
                    s,
                    "  a relay (pid {}) still runs {}; restart it on this binary",
                    r["pid"], r["exe"]
                );
            }
            s
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// The `--bind` of an installed relay unit.
fn bind_of(text: &str) -> Option<String> {
    let mut words = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter();
    if words.len() == 0 {
        // A plist: the string after `--bind`.
        let mut strings = text
            .split("<string>")
            .skip(1)
            .filter_map(|s| s.split("</string>").next());
        while let Some(s) = strings.next() {
            if s == "--bind" {
                return strings.next().map(str::to_owned);
            }
        }
        return None;
    }
    while let Some(w) = words.next() {
        if w == "--bind" {
            return words.next();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> Home {
        Home::new("/home/ops/.local/state/wire")
    }

    fn exe() -> PathBuf {
        PathBuf::from("/home/ops/.cargo/bin/wire")
    }

    #[test]
    fn systemd_units() {
        insta::assert_snapshot!(
            "systemd_daemon",
            systemd_unit(&Spec::daemon(&exe(), &home()))
        );
        insta::assert_snapshot!(
            "systemd_relay",
            systemd_unit(&Spec::relay(&exe(), &home(), "127.0.0.1:8771"))
        );
    }

    #[test]
    fn launchd_plists() {
        insta::assert_snapshot!(
            "launchd_daemon",
            launchd_plist(&Spec::daemon(&exe(), &home()))
        );
        insta::assert_snapshot!(
            "launchd_relay",
            launchd_plist(&Spec::relay(&exe(), &home(), "127.0.0.1:8771"))
        );
    }

    #[test]
    fn the_binary_and_bind_are_read_back_from_either_format() {
        let odd = Spec::relay(
            Path::new("/opt/my tools/wire%1<&>"),
            &Home::new("/srv/state \"x\""),
            "127.0.0.1:9000",
        );
        for platform in [Platform::Systemd, Platform::Launchd] {
            let text = render(platform, &odd);
            assert_eq!(
                installed_exe(platform, &text).as_deref(),
                Some("/opt/my tools/wire%1<&>"),
                "{text}"
            );
            assert_eq!(bind_of(&text).as_deref(), Some("127.0.0.1:9000"), "{text}");
        }
        assert_eq!(installed_exe(Platform::Systemd, "[Unit]\n"), None);
        assert_eq!(installed_exe(Platform::Launchd, "<plist/>"), None);
    }
}
