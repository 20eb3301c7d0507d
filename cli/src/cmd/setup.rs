//! `wire setup [--apply] [--remove]`: find the MCP config files of Claude Code (user
//! `~/.claude.json`, project `.mcp.json`), Claude Desktop, Cursor and VS Code (user and
//! workspace `mcp.json`), and say what adding (or removing) the `wire` server entry would
//! change. `--apply` makes the change: only that one entry is written, by splicing text, so
//! every other entry, comment and blank line stays as it was; a backup is kept next to the
//! file and the result is re-read and checked before it replaces the original. A second run
//! changes nothing. A file that cannot be parsed (or has comments where its host allows none)
//! is reported and left untouched.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::output::Out;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Make the changes (each changed file is backed up first, as FILE.wire-backup).
    #[arg(long)]
    apply: bool,
    /// Take the `wire` entry out instead of adding it.
    #[arg(long)]
    remove: bool,
}

/// Largest config file read (`~/.claude.json` grows with history, but not this far).
const FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Deepest nesting the parser follows.
const DEPTH_MAX: usize = 128;
const ENTRY: &str = "wire";

/// One config file wire knows how to edit.
#[derive(Debug)]
struct Target {
    host: &'static str,
    path: PathBuf,
    /// The member that holds the servers: `mcpServers`, or `servers` for VS Code.
    key: &'static str,
    /// Comments and trailing commas are allowed (VS Code's JSONC).
    jsonc: bool,
    /// VS Code and Claude Code want `"type": "stdio"`.
    typed: bool,
    /// The host seems installed (its file or its config directory exists).
    detected: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    host: &'static str,
    file: String,
    /// `add`, `update`, `remove`, `unchanged`, `absent` (nothing to remove), `malformed`.
    action: &'static str,
    applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<String>,
}

fn targets(home: &Path, config: &Path, cwd: &Path) -> Vec<Target> {
    let exists = |p: &Path| p.exists();
    let mut t = vec![
        Target {
            host: "Claude Code (user)",
            path: home.join(".claude.json"),
            key: "mcpServers",
            jsonc: false,
            typed: true,
            detected: exists(&home.join(".claude.json")) || exists(&home.join(".claude")),
        },
        Target {
            host: "Claude Code (project)",
            path: cwd.join(".mcp.json"),
            key: "mcpServers",
            jsonc: false,
            typed: true,
            detected: exists(&cwd.join(".mcp.json")),
        },
        Target {
            host: "Claude Desktop",
            path: config.join("Claude/claude_desktop_config.json"),
            key: "mcpServers",
            jsonc: false,
            typed: false,
            detected: exists(&config.join("Claude")),
        },
        Target {
            host: "Cursor",
            path: home.join(".cursor/mcp.json"),
            key: "mcpServers",
            jsonc: false,
            typed: false,
            detected: exists(&home.join(".cursor")),
        },
        Target {
            host: "VS Code (user)",
            path: config.join("Code/User/mcp.json"),
            key: "servers",
            jsonc: true,
            typed: true,
            detected: exists(&config.join("Code/User")),
        },
        Target {
            host: "VS Code (workspace)",
            path: cwd.join(".vscode/mcp.json"),
            key: "servers",
            jsonc: true,
            typed: true,
            detected: exists(&cwd.join(".vscode/mcp.json")),
        },
    ];
    t.retain(|t| t.detected);
    t
}

/// The entry wire puts in a host's servers object.
fn entry(typed: bool) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("cannot find the wire executable")?;
    let mut e = Map::new();
    if typed {
        e.insert("type".into(), json!("stdio"));
    }
    e.insert("command".into(), json!(exe.display().to_string()));
    e.insert("args".into(), json!(["mcp"]));
    let mut env = Map::new();
    for var in ["WIRE_HOME", "WIRE_SESSION"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            env.insert(var.into(), json!(v.to_string_lossy()));
        }
    }
    if !env.is_empty() {
        e.insert("env".into(), Value::Object(env));
    }
    Ok(Value::Object(e))
}

/// The config files of the hosts this machine seems to have.
fn detected() -> anyhow::Result<Vec<Target>> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set, so the MCP hosts' config files cannot be found")?;
    let config = if cfg!(target_os = "macos") {
        home.join("Library/Application Support")
    } else {
        std::env::var_os("XDG_CONFIG_HOME")
            .filter(|h| !h.is_empty())
            .map_or_else(|| home.join(".config"), PathBuf::from)
    };
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(targets(&home, &config, &cwd))
}

/// What a host's config says about wire, for `wire doctor`.
#[derive(Debug)]
pub struct HostEntry {
    pub host: &'static str,
    pub file: PathBuf,
    /// The `command` of its `wire` entry (`Ok(None)`: no wire entry), or why it could not be
    /// read.
    pub command: Result<Option<String>, String>,
}

/// The `wire` entry of every detected host config.
pub fn host_entries() -> anyhow::Result<Vec<HostEntry>> {
    let mut out = Vec::new();
    for t in detected()? {
        let command = match std::fs::metadata(&t.path) {
            Err(_) => Ok(None),
            Ok(m) if m.len() > FILE_BYTES_MAX => Err(format!("larger than {FILE_BYTES_MAX} bytes")),
            Ok(_) => std::fs::read_to_string(&t.path)
                .map_err(|e| format!("cannot read it: {e}"))
                .and_then(|text| {
                    if text.trim().is_empty() {
                        return Ok(None);
                    }
                    let top = parse(&text, t.jsonc).map_err(|e| format!("{e:#}"))?;
                    Ok(top.parsed.get(t.key).and_then(|s| s.get(ENTRY)).map(|e| {
                        e.get("command")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned()
                    }))
                }),
        };
        out.push(HostEntry {
            host: t.host,
            file: t.path,
            command,
        });
    }
    Ok(out)
}

pub fn run(out: &Out, args: Args) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    for t in detected()? {
        rows.push(one(&t, &args)?);
    }
    let malformed = rows.iter().any(|r| r.action == "malformed");
    out.print(
        &json!({ "apply": args.apply, "remove": args.remove, "hosts": rows }),
        || prose(&rows, &args),
    );
    Ok(if malformed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn prose(rows: &[Row], args: &Args) -> String {
    let mut s = String::new();
    if rows.is_empty() {
        s.push_str("No MCP host found (Claude Code, Claude Desktop, Cursor, VS Code). Add this to your host's MCP servers by hand:\n  \"wire\": { \"command\": \"wire\", \"args\": [\"mcp\"] }\n");
        return s;
    }
    for r in rows {
        let what = match (r.action, r.applied) {
            ("add", true) => "added the wire server".to_owned(),
            ("add", false) => "would add the wire server".to_owned(),
            ("update", true) => "updated the wire server".to_owned(),
            ("update", false) => "would update the wire server".to_owned(),
            ("remove", true) => "removed the wire server".to_owned(),
            ("remove", false) => "would remove the wire server".to_owned(),
            ("unchanged", _) => "already set up".to_owned(),
            ("absent", _) => "has no wire server".to_owned(),
            _ => format!(
                "left untouched: {}",
                r.problem.as_deref().unwrap_or("cannot be read")
            ),
        };
        let _ = writeln!(s, "{}: {} ({})", r.host, what, r.file);
    }
    let pending = rows
        .iter()
        .any(|r| !r.applied && matches!(r.action, "add" | "update" | "remove"));
    if pending && !args.apply {
        let _ = writeln!(
            s,
            "Nothing was changed. `wire setup --apply{}` makes these changes (with a backup of each file).",
            if args.remove { " --remove" } else { "" }
        );
    }
    s
}

fn one(t: &Target, args: &Args) -> anyhow::Result<Row> {
    let mut row = Row {
        host: t.host,
        file: t.path.display().to_string(),
        action: "unchanged",
        applied: false,
        problem: None,
        backup: None,
    };
    let text = match std::fs::metadata(&t.path) {
        Ok(m) if m.len() > FILE_BYTES_MAX => {
            row.action = "malformed";
            row.problem = Some(format!("larger than {FILE_BYTES_MAX} bytes"));
            return Ok(row);
        }
        Ok(_) => match std::fs::read_to_string(&t.path) {
            Ok(s) => Some(s),
            Err(e) => {
                row.action = "malformed";
                row.problem = Some(format!("cannot read it: {e}"));
                return Ok(row);
            }
        },
        Err(_) => None,
    };
    let want = entry(t.typed)?;
    let plan = match plan(text.as_deref(), t, &want, args.remove) {
        Ok(p) => p,
        Err(e) => {
            row.action = "malformed";
            row.problem = Some(format!(
                "{e:#}; fix the file (or add the wire entry by hand) and run `wire setup` again"
            ));
            return Ok(row);
        }
    };
    row.action = plan.action;
    if let (true, Some(new)) = (args.apply, plan.text) {
        write(t, text.as_deref(), &new, &mut row)?;
        row.applied = true;
    }
    Ok(row)
}

/// Writes `new` over the file, after a backup of the old content, through a temporary file.
fn write(t: &Target, old: Option<&str>, new: &str, row: &mut Row) -> anyhow::Result<()> {
    if let Some(dir) = t.path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mode = std::fs::metadata(&t.path).ok().map(|m| m.permissions());
    if let Some(old) = old {
        let backup = PathBuf::from(format!("{}.wire-backup", t.path.display()));
        std::fs::write(&backup, old)
            .with_context(|| format!("cannot write the backup {}", backup.display()))?;
        if let Some(m) = &mode {
            let _ = std::fs::set_permissions(&backup, m.clone());
        }
        row.backup = Some(backup.display().to_string());
    }
    let tmp = PathBuf::from(format!("{}.wire-tmp", t.path.display()));
    std::fs::write(&tmp, new).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Some(m) = mode {
        let _ = std::fs::set_permissions(&tmp, m);
    }
    std::fs::rename(&tmp, &t.path)
        .with_context(|| format!("cannot replace {}", t.path.display()))?;
    Ok(())
}

#[derive(Debug)]
struct Plan {
    action: &'static str,
    /// The new text, when something changes.
    text: Option<String>,
}

/// What to do with one file's text; `Err` if it cannot be parsed or does not have the shape
/// its host expects.
fn plan(text: Option<&str>, t: &Target, want: &Value, remove: bool) -> anyhow::Result<Plan> {
    let blank = text.is_none_or(|s| s.trim().is_empty());
    if blank {
        if remove {
            return Ok(Plan {
                action: "absent",
                text: None,
            });
        }
        let doc = json!({ t.key: { ENTRY: want } });
        let mut s = serde_json::to_string_pretty(&doc)?;
        s.push('\n');
        return Ok(Plan {
            action: "add",
            text: Some(s),
        });
    }
    let text = text.unwrap_or_default();
    let top = parse(text, t.jsonc)?;
    let servers = top.members.iter().find(|m| m.key == t.key);
    let existing = servers
        .and_then(|m| m.obj.as_ref())
        .and_then(|o| o.members.iter().find(|m| m.key == ENTRY).map(|m| (o, m)));
    if let Some(m) = servers
        && m.obj.is_none()
    {
        bail!("`{}` is not an object", t.key);
    }
    let unit = indent_unit(text, &top);
    let new = match (existing, remove) {
        (None, true) => {
            return Ok(Plan {
                action: "absent",
                text: None,
            });
        }
        (Some((o, m)), true) => {
            let (i, _) = o
                .members
                .iter()
                .enumerate()
                .find(|(_, x)| x.key_start == m.key_start)
                .context("the entry vanished")?;
            let range = if i > 0 {
                o.members[i - 1].value.end..m.value.end
            } else if let Some(next) = o.members.get(1) {
                m.key_start..next.key_start
            } else {
                o.open + 1..o.close
            };
            splice(text, range, "")
        }
        (Some((_, m)), false) => {
            if m.parsed == *want {
                return Ok(Plan {
                    action: "unchanged",
                    text: None,
                });
            }
            let indent = line_indent(text, m.key_start);
            splice(text, m.value.clone(), &render(want, &unit, &indent)?)
        }
        (None, false) => match servers.and_then(|m| m.obj.as_ref()) {
            Some(o) => insert_member(text, o, ENTRY, want, &unit)?,
            None => {
                let wrapped = json!({ ENTRY: want });
                insert_member(text, &top, t.key, &wrapped, &unit)?
            }
        },
    };
    // Check the result before anyone sees it: it parses, the entry is as wanted, and every
    // other entry is exactly as it was.
    let before = strip_entry(&top.parsed, t.key);
    let after_doc = parse(&new, t.jsonc).context("the edited file would not parse (a bug)")?;
    if strip_entry(&after_doc.parsed, t.key) != before {
        bail!("the edit would change other entries (a bug); nothing was written");
    }
    let got = after_doc.parsed.get(t.key).and_then(|s| s.get(ENTRY));
    if got != (!remove).then_some(want) {
        bail!("the edit did not produce the wanted entry (a bug); nothing was written");
    }
    Ok(Plan {
        action: if remove {
            "remove"
        } else if existing.is_some() {
            "update"
        } else {
            "add"
        },
        text: Some(new),
    })
}

/// The document without our entry (and without an empty servers object we may have made).
fn strip_entry(doc: &Value, key: &str) -> Value {
    let mut d = doc.clone();
    if let Some(s) = d.get_mut(key).and_then(Value::as_object_mut) {
        s.remove(ENTRY);
        if s.is_empty()
            && let Some(o) = d.as_object_mut()
        {
            o.remove(key);
        }
    }
    d
}

fn splice(text: &str, range: Range<usize>, with: &str) -> String {
    let mut s = String::with_capacity(text.len() + with.len());
    s.push_str(&text[..range.start]);
    s.push_str(with);
    s.push_str(&text[range.end..]);
    s
}

/// Adds `"key": value` as the last member of `o`.
fn insert_member(
    text: &str,
    o: &Obj,
    key: &str,
    value: &Value,
    unit: &str,
) -> anyhow::Result<String> {
    let key_json = serde_json::to_string(key)?;
    Ok(match o.members.last() {
        Some(last) => {
            let indent = line_indent(text, last.key_start);
            let on_own_line = text[..last.key_start]
                .trim_end_matches([' ', '\t'])
                .ends_with('\n');
            let sep = if on_own_line {
                format!(",\n{indent}")
            } else {
                ", ".to_owned()
            };
            let v = render(value, unit, &indent)?;
            splice(
                text,
                last.value.end..last.value.end,
                &format!("{sep}{key_json}: {v}"),
            )
        }
        None => {
            let outer = line_indent(text, o.open);
            let inner = format!("{outer}{unit}");
            let v = render(value, unit, &inner)?;
            let interior = &text[o.open + 1..o.close];
            if interior.trim().is_empty() {
                splice(
                    text,
                    o.open + 1..o.close,
                    &format!("\n{inner}{key_json}: {v}\n{outer}"),
                )
            } else {
                splice(
                    text,
                    o.open + 1..o.open + 1,
                    &format!("\n{inner}{key_json}: {v}"),
                )
            }
        }
    })
}

/// `value` pretty-printed with `unit` per level, continuation lines indented by `base`.
fn render(value: &Value, unit: &str, base: &str) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(unit.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(value, &mut ser)?;
    let s = String::from_utf8(buf)?;
    Ok(s.replace('\n', &format!("\n{base}")))
}

/// The whitespace that starts the line `at` is on.
fn line_indent(text: &str, at: usize) -> String {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    text[start..at]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

/// The file's indentation step: that of the top object's first member, else two spaces.
fn indent_unit(text: &str, top: &Obj) -> String {
    top.members
        .first()
        .map(|m| line_indent(text, m.key_start))
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "  ".into())
}

// ---------------------------------------------------------------------------------------------
// A JSON (and JSONC) reader that keeps where every member is.

#[derive(Debug)]
struct Obj {
    open: usize,
    close: usize,
    members: Vec<Member>,
    parsed: Value,
}

#[derive(Debug)]
struct Member {
    key: String,
    key_start: usize,
    value: Range<usize>,
    parsed: Value,
    obj: Option<Obj>,
}

struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    jsonc: bool,
}

/// The top-level object of `text`.
fn parse(text: &str, jsonc: bool) -> anyhow::Result<Obj> {
    let mut r = Reader {
        s: text,
        b: text.as_bytes(),
        i: 0,
        jsonc,
    };
    r.skip()?;
    if r.peek() != Some(b'{') {
        bail!("{}: the file is not a JSON object", r.at());
    }
    let (_, _, obj) = r.value(0)?;
    r.skip()?;
    if r.i != r.b.len() {
        bail!("{}: unexpected text after the object", r.at());
    }
    obj.context("not an object")
}

impl Reader<'_> {
    fn at(&self) -> String {
        let line = self.s[..self.i.min(self.s.len())].matches('\n').count() + 1;
        format!("line {line}")
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Whitespace and, where allowed, comments.
    fn skip(&mut self) -> anyhow::Result<()> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.i += 1,
                Some(b'/') if matches!(self.b.get(self.i + 1), Some(b'/' | b'*')) => {
                    if !self.jsonc {
                        bail!(
                            "{}: a comment, which this host's JSON does not allow",
                            self.at()
                        );
                    }
                    if self.b[self.i + 1] == b'/' {
                        while self.peek().is_some_and(|c| c != b'\n') {
                            self.i += 1;
                        }
                    } else {
                        let end = self.s[self.i + 2..]
                            .find("*/")
                            .with_context(|| format!("{}: an unclosed comment", self.at()))?;
                        self.i += 2 + end + 2;
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self, depth: usize) -> anyhow::Result<(Range<usize>, Value, Option<Obj>)> {
        if depth > DEPTH_MAX {
            bail!("{}: nested deeper than {DEPTH_MAX}", self.at());
        }
        let start = self.i;
        match self.peek() {
            Some(b'{') => {
                let o = self.object(depth)?;
                let v = o.parsed.clone();
                Ok((start..self.i, v, Some(o)))
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip()?;
                    if self.peek() == Some(b']') {
                        if !items.is_empty()
                            && !self.jsonc
                            && self.b[..self.i].trim_ascii_end().ends_with(b",")
                        {
                            bail!("{}: a trailing comma", self.at());
                        }
                        self.i += 1;
                        break;
                    }
                    let (_, v, _) = self.value(depth + 1)?;
                    items.push(v);
                    self.skip()?;
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {}
                        _ => bail!("{}: expected , or ]", self.at()),
                    }
                }
                Ok((start..self.i, Value::Array(items), None))
            }
            Some(b'"') => {
                let s = self.string()?;
                Ok((start..self.i, Value::String(s), None))
            }
            Some(_) => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
                {
                    self.i += 1;
                }
                let lit = &self.s[start..self.i];
                if lit.is_empty() {
                    let found = self.s[self.i..].chars().next().unwrap_or(' ');
                    bail!("{}: expected a value, found `{found}`", self.at());
                }
                let v: Value = serde_json::from_str(lit).map_err(|_| {
                    let shown: String = lit.chars().take(20).collect();
                    anyhow::anyhow!(
                        "{}: `{}` is not a JSON value",
                        self.at(),
                        crate::cmd::printable(&shown)
                    )
                })?;
                Ok((start..self.i, v, None))
            }
            None => bail!("{}: the file ends too early", self.at()),
        }
    }

    fn string(&mut self) -> anyhow::Result<String> {
        let start = self.i;
        self.i += 1;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => self.i += 2,
                Some(b'\n') | None => bail!("{}: an unterminated string", self.at()),
                Some(_) => self.i += 1,
            }
        }
        let lit = self.s.get(start..self.i).context("bad string")?;
        serde_json::from_str(lit).map_err(|e| anyhow::anyhow!("{}: a bad string ({e})", self.at()))
    }

    fn object(&mut self, depth: usize) -> anyhow::Result<Obj> {
        let open = self.i;
        self.i += 1;
        let mut members = Vec::new();
        let mut map = Map::new();
        loop {
            self.skip()?;
            match self.peek() {
                Some(b'}') => {
                    if !members.is_empty()
                        && !self.jsonc
                        && self.b[..self.i].trim_ascii_end().ends_with(b",")
                    {
                        bail!(
                            "{}: a trailing comma, which this host's JSON does not allow",
                            self.at()
                        );
                    }
                    let close = self.i;
                    self.i += 1;
                    return Ok(Obj {
                        open,
                        close,
                        members,
                        parsed: Value::Object(map),
                    });
                }
                Some(b'"') => {}
                _ => bail!("{}: expected a key in quotes or }}", self.at()),
            }
            let key_start = self.i;
            let key = self.string()?;
            self.skip()?;
            if self.peek() != Some(b':') {
                bail!("{}: expected : after {key:?}", self.at());
            }
            self.i += 1;
            self.skip()?;
            let (value, parsed, obj) = self.value(depth + 1)?;
            map.insert(key.clone(), parsed.clone());
            members.push(Member {
                key,
                key_start,
                value,
                parsed,
                obj,
            });
            self.skip()?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => bail!("{}: expected , or }}", self.at()),
            }
        }
    }
}
