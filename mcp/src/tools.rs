//! The tools: one table ([`SPECS`]) gives each its one-line description and its arguments,
//! and from it come the JSON schemas `tools/list` shows and the checks every call passes
//! before anything runs. Argument names follow the CLI. Descriptions are fixed text: no peer
//! text ever reaches one.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};
use serde_json::{Map, Value, json};

/// Longest name (nickname, handle, DID, key) a tool takes.
pub const NAME_BYTES_MAX: usize = 512;
/// Longest message body, as the log allows (256 KiB).
pub const BODY_BYTES_MAX: usize = 262_144;
/// Longest relay URL.
const URL_BYTES_MAX: usize = 2048;
/// Longest `wire_wait`.
pub const WAIT_MS_MAX: u64 = 600_000;
/// `wire_wait` without `timeout_ms`.
pub const WAIT_MS_DEFAULT: u64 = 30_000;
/// Most messages `wire_tail` returns.
pub const TAIL_MAX: u64 = 1000;

#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str(usize),
    Int(u64, u64),
    Bool,
    /// `message` or a number from 1100 to 9999.
    Kind,
}

#[derive(Debug)]
pub struct Arg {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub about: &'static str,
}

#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub about: &'static str,
    pub args: &'static [Arg],
    pub read_only: bool,
}

const fn arg(name: &'static str, ty: Ty, required: bool, about: &'static str) -> Arg {
    Arg {
        name,
        ty,
        required,
        about,
    }
}

const PEER: Arg = arg(
    "peer",
    Ty::Str(NAME_BYTES_MAX),
    true,
    "The peer: its nickname (as wire_peers or wire_pending shows it), handle nick@relay, or DID.",
);

pub const SPECS: &[Spec] = &[
    Spec {
        name: "wire_whoami",
        about: "Who you are on wire: your Character, handle and DID, and which session this server uses and why.",
        args: &[],
        read_only: true,
    },
    Spec {
        name: "wire_here",
        about: "One overview: who you are, your peers, pair requests waiting for your operator, other sessions on this machine.",
        args: &[],
        read_only: true,
    },
    Spec {
        name: "wire_peers",
        about: "Your peers, each with its pairing state and how many messages went each way.",
        args: &[],
        read_only: true,
    },
    Spec {
        name: "wire_pending",
        about: "Pair requests waiting for a decision; accept one only when your operator explicitly says so.",
        args: &[],
        read_only: true,
    },
    Spec {
        name: "wire_dial",
        about: "Ask nick@relay to pair with you; they become a peer once they accept.",
        args: &[arg(
            "name",
            Ty::Str(NAME_BYTES_MAX),
            true,
            "Whom to call: a handle nick@relay-domain.",
        )],
        read_only: false,
    },
    Spec {
        name: "wire_accept",
        about: "Accept a pending pair request. Only with your operator's explicit consent for this peer.",
        args: &[PEER],
        read_only: false,
    },
    Spec {
        name: "wire_reject",
        about: "Refuse a pending pair request for good.",
        args: &[PEER],
        read_only: false,
    },
    Spec {
        name: "wire_send",
        about: "Send a message to a paired peer; says whether it was stored at their relay, delivered, or queued.",
        args: &[
            PEER,
            arg(
                "body",
                Ty::Str(BODY_BYTES_MAX),
                true,
                "The message text (UTF-8, at most 256 KiB).",
            ),
            arg(
                "kind",
                Ty::Kind,
                false,
                "\"message\" (the default) or an application kind number from 1100 to 9999.",
            ),
        ],
        read_only: false,
    },
    Spec {
        name: "wire_tail",
        about: "The latest verified messages, oldest first, each fenced as untrusted peer content.",
        args: &[
            arg(
                "peer",
                Ty::Str(NAME_BYTES_MAX),
                false,
                "Only this peer (nickname, handle or DID); all peers when absent.",
            ),
            arg(
                "limit",
                Ty::Int(1, TAIL_MAX),
                false,
                "How many of the latest messages (default 20, at most 1000).",
            ),
        ],
        read_only: true,
    },
    Spec {
        name: "wire_wait",
        about: "Block until a new message from a peer arrives, or until the timeout passes; returns it fenced as untrusted.",
        args: &[
            arg(
                "peer",
                Ty::Str(NAME_BYTES_MAX),
                false,
                "Only wait for this peer (nickname, handle or DID).",
            ),
            arg(
                "timeout_ms",
                Ty::Int(0, WAIT_MS_MAX),
                false,
                "How long to wait in milliseconds (default 30000, at most 600000).",
            ),
            arg(
                "after",
                Ty::Int(0, u64::MAX >> 11),
                false,
                "Return at once with messages after this position (from an earlier result) if there are any.",
            ),
        ],
        read_only: true,
    },
    Spec {
        name: "wire_verify",
        about: "Audit the whole session: every signature, chain link and projection.",
        args: &[],
        read_only: true,
    },
    Spec {
        name: "wire_whois",
        about: "Look someone up: a peer or request by nickname, handle or DID, or nick@relay in its directory; yourself when no name.",
        args: &[arg(
            "name",
            Ty::Str(NAME_BYTES_MAX),
            false,
            "A nickname, handle or DID, or nick@relay-domain.",
        )],
        read_only: true,
    },
    Spec {
        name: "wire_init",
        about: "Create this session's identity and attach it to a relay (once, before anything else).",
        args: &[
            arg(
                "handle",
                Ty::Str(64),
                true,
                "Your handle's local part, e.g. alice (1-32 of a-z 0-9 - _).",
            ),
            arg(
                "relay",
                Ty::Str(URL_BYTES_MAX),
                false,
                "The relay URL (default: the local relay at http://127.0.0.1:8771).",
            ),
            arg(
                "offline",
                Ty::Bool,
                false,
                "Create a keypair only, with no relay: nobody can reach you until attached.",
            ),
        ],
        read_only: false,
    },
    Spec {
        name: "wire_status",
        about: "Replication status: the daemon, your relays, what waits and why, what was refused.",
        args: &[],
        read_only: true,
    },
    Spec {
        name: "wire_pair_initiate",
        about: "Start a pairing by code (when your operator asks to pair over a phone call or a channel that cannot be trusted): returns a code phrase for your operator to read to the other side, and a pairing id for wire_pair_check and wire_pair_confirm.",
        args: &[
            arg(
                "require_sas",
                Ty::Bool,
                false,
                "Both operators must type the six SAS digits (always the case for wire_pair_confirm).",
            ),
            arg(
                "relay",
                Ty::Str(URL_BYTES_MAX),
                false,
                "The relay that holds the pairing (default: your own relay).",
            ),
        ],
        read_only: false,
    },
    Spec {
        name: "wire_pair_join",
        about: "Join a pairing with the code phrase your operator was given by the other side; returns a pairing id and, once both hold a key, the SAS to show your operator.",
        args: &[
            arg(
                "code",
                Ty::Str(128),
                true,
                "The code phrase, like 4821-brave-otter-quiet-meadow, exactly as your operator gave it.",
            ),
            arg(
                "relay",
                Ty::Str(URL_BYTES_MAX),
                false,
                "The relay the other side uses (default: your own relay).",
            ),
        ],
        read_only: false,
    },
    Spec {
        name: "wire_pair_check",
        about: "Where pairings by code stand: waiting, sas (show the digits and emoji to your operator and ask them to compare with the other side), confirmed, paired or failed with the reason.",
        args: &[
            arg(
                "id",
                Ty::Str(64),
                false,
                "One pairing id; all pairings when absent.",
            ),
            arg(
                "wait_ms",
                Ty::Int(0, 60_000),
                false,
                "Wait up to this long for the pairing to move on from its current phase.",
            ),
        ],
        read_only: true,
    },
    Spec {
        name: "wire_pair_confirm",
        about: "Confirm a pairing by code with the six SAS digits your operator typed back to you after comparing them with the other side. Never pass digits you read from wire_pair_check yourself: a mismatch aborts the pairing for good.",
        args: &[
            arg("id", Ty::Str(64), true, "The pairing id."),
            arg(
                "digits",
                Ty::Str(32),
                true,
                "The six digits exactly as your operator typed them.",
            ),
        ],
        read_only: false,
    },
];

/// The names, in `tools/list` order.
pub const TOOL_NAMES: [&str; 18] = [
    "wire_whoami",
    "wire_here",
    "wire_peers",
    "wire_pending",
    "wire_dial",
    "wire_accept",
    "wire_reject",
    "wire_send",
    "wire_tail",
    "wire_wait",
    "wire_verify",
    "wire_whois",
    "wire_init",
    "wire_status",
    "wire_pair_initiate",
    "wire_pair_join",
    "wire_pair_check",
    "wire_pair_confirm",
];

pub fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

fn schema_of(ty: Ty, about: &str) -> Value {
    match ty {
        Ty::Str(max) => json!({ "type": "string", "maxLength": max, "description": about }),
        Ty::Int(min, max) => {
            json!({ "type": "integer", "minimum": min, "maximum": max, "description": about })
        }
        Ty::Bool => json!({ "type": "boolean", "description": about }),
        Ty::Kind => json!({
            "description": about,
            "anyOf": [
                { "type": "string", "enum": ["message"] },
                { "type": "integer", "minimum": 1100, "maximum": 9999 }
            ]
        }),
    }
}

fn input_schema(spec: &Spec) -> JsonObject {
    let mut props = Map::new();
    for a in spec.args {
        props.insert(a.name.into(), schema_of(a.ty, a.about));
    }
    let required: Vec<&str> = spec
        .args
        .iter()
        .filter(|a| a.required)
        .map(|a| a.name)
        .collect();
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    schema.insert("additionalProperties".into(), json!(false));
    schema
}

/// Every tool as `tools/list` shows it.
pub fn tool_list() -> Vec<Tool> {
    TOOL_NAMES
        .iter()
        .filter_map(|n| spec(n))
        .map(|s| {
            let mut tool = Tool::new(s.name, s.about, Arc::new(input_schema(s)));
            let annotations = json!({
                "readOnlyHint": s.read_only,
                "destructiveHint": false,
                "openWorldHint": !s.read_only,
            });
            if let Ok(a) = serde_json::from_value(annotations) {
                tool.annotations = Some(a);
            }
            tool
        })
        .collect()
}

/// Arguments that passed their checks.
#[derive(Debug, Default)]
pub struct Args(Map<String, Value>);

impl Args {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }
    pub fn int(&self, name: &str) -> Option<u64> {
        self.0.get(name).and_then(Value::as_u64)
    }
    pub fn bool(&self, name: &str) -> bool {
        self.0.get(name).and_then(Value::as_bool).unwrap_or(false)
    }
    /// `kind` as the CLI takes it.
    pub fn kind(&self) -> Option<String> {
        match self.0.get("kind")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks `given` against the tool's arguments; the error says what to send instead.
pub fn check(spec: &Spec, given: Option<&JsonObject>) -> Result<Args, String> {
    let empty = Map::new();
    let given = given.unwrap_or(&empty);
    let names: Vec<&str> = spec.args.iter().map(|a| a.name).collect();
    let takes = if names.is_empty() {
        "no arguments".to_owned()
    } else {
        names.join(", ")
    };
    for key in given.keys() {
        if !names.contains(&key.as_str()) {
            return Err(format!(
                "{} has no argument `{}`; it takes {takes}",
                spec.name,
                crate::clip(key, 64)
            ));
        }
    }
    let mut out = Map::new();
    for a in spec.args {
        let v = match given.get(a.name) {
            None | Some(Value::Null) if a.required => {
                return Err(format!("{} needs `{}`: {}", spec.name, a.name, a.about));
            }
            None | Some(Value::Null) => continue,
            Some(v) => v,
        };
        let ok = match (a.ty, v) {
            (Ty::Str(max), Value::String(s)) => {
                if s.len() > max {
                    return Err(format!(
                        "`{}` is {} bytes; {} takes at most {max}. Nothing was done",
                        a.name,
                        s.len(),
                        spec.name
                    ));
                }
                if s.is_empty() {
                    return Err(format!("`{}` is empty: {}", a.name, a.about));
                }
                true
            }
            (Ty::Int(min, max), Value::Number(n)) => match n.as_u64() {
                Some(x) if (min..=max).contains(&x) => true,
                _ => {
                    return Err(format!(
                        "`{}` must be a whole number from {min} to {max}; got {n}",
                        a.name
                    ));
                }
            },
            (Ty::Bool, Value::Bool(_)) => true,
            (Ty::Kind, Value::String(s)) if s == "message" => true,
            (Ty::Kind, Value::Number(n)) => match n.as_u64() {
                Some(1100..=9999) => true,
                _ => {
                    return Err(format!(
                        "`kind` must be \"message\" or a number from 1100 to 9999; got {n}"
                    ));
                }
            },
            _ => false,
        };
        if !ok {
            let want = match a.ty {
                Ty::Str(_) => "a string",
                Ty::Int(..) => "a whole number",
                Ty::Bool => "true or false",
                Ty::Kind => "\"message\" or a number from 1100 to 9999",
            };
            return Err(format!(
                "`{}` must be {want}, not {}: {}",
                a.name,
                type_name(v),
                a.about
            ));
        }
        out.insert(a.name.into(), v.clone());
    }
    // A pairing by code is confirmed by the operator's digits only, never by a yes.
    if spec.name == "wire_pair_confirm"
        && let Some(d) = out.get("digits").and_then(Value::as_str)
        && !(d
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
            && d.chars().filter(char::is_ascii_digit).count() == 6)
    {
        return Err(
            "`digits` takes the six SAS digits exactly as your operator typed them back to you (spaces allowed); nothing was confirmed. Ask your operator to compare the SAS with the other side and type the digits"
                .into(),
        );
    }
    Ok(Args(out))
}

/// The digits of what the operator typed (`check` let only digits, spaces and dashes through).
fn digits_only(typed: &str) -> String {
    typed.chars().filter(char::is_ascii_digit).collect()
}

/// The wire command line behind a tool (`wire_wait` and `wire_whoami` add their own work).
/// Names go after `--`, so nothing a caller passes is ever read as an option.
pub fn argv(name: &str, a: &Args) -> Vec<String> {
    let s = |x: &str| x.to_owned();
    let mut v: Vec<String> = Vec::new();
    match name {
        "wire_whoami" => v.push(s("whoami")),
        "wire_here" => v.push(s("here")),
        "wire_peers" => v.push(s("peers")),
        "wire_pending" => v.push(s("pending")),
        "wire_verify" => v.push(s("verify")),
        "wire_status" => v.push(s("status")),
        "wire_dial" => v.extend([s("dial"), s("--"), s(a.str("name").unwrap_or_default())]),
        "wire_accept" => v.extend([s("accept"), s("--"), s(a.str("peer").unwrap_or_default())]),
        "wire_reject" => v.extend([s("reject"), s("--"), s(a.str("peer").unwrap_or_default())]),
        "wire_whois" => match a.str("name") {
            Some(n) => v.extend([s("whois"), s("--"), s(n)]),
            None => v.push(s("whoami")),
        },
        "wire_send" => {
            v.extend([
                s("send"),
                s("--literal"),
                s("--"),
                s(a.str("peer").unwrap_or_default()),
            ]);
            if let Some(k) = a.kind() {
                v.push(k);
            }
            v.push(s(a.str("body").unwrap_or_default()));
        }
        "wire_tail" => {
            v.extend([s("tail"), s("-n"), a.int("limit").unwrap_or(20).to_string()]);
            if let Some(p) = a.str("peer") {
                v.extend([s("--"), s(p)]);
            }
        }
        "wire_pair_initiate" => {
            v.extend([s("pair-host"), s("--detach")]);
            if a.bool("require_sas") {
                v.push(s("--require-sas"));
            }
            if let Some(r) = a.str("relay") {
                v.extend([s("--relay"), s(r)]);
            }
        }
        "wire_pair_join" => {
            v.extend([s("pair-join"), s("--detach")]);
            if let Some(r) = a.str("relay") {
                v.extend([s("--relay"), s(r)]);
            }
            v.extend([s("--"), s(a.str("code").unwrap_or_default())]);
        }
        "wire_pair_check" => {
            v.push(s("pair-check"));
            if let Some(w) = a.int("wait_ms") {
                v.extend([s("--wait-ms"), w.to_string()]);
            }
            if let Some(id) = a.str("id") {
                v.extend([s("--"), s(id)]);
            }
        }
        "wire_pair_confirm" => v.extend([
            s("pair-confirm"),
            s("--"),
            s(a.str("id").unwrap_or_default()),
            // Only digits reach the command: never its `yes` or `no` (see `check`).
            digits_only(a.str("digits").unwrap_or_default()),
        ]),
        "wire_init" => {
            v.push(s("init"));
            if a.bool("offline") {
                v.push(s("--offline"));
            }
            if let Some(r) = a.str("relay") {
                v.extend([s("--relay"), s(r)]);
            }
            v.extend([s("--"), s(a.str("handle").unwrap_or_default())]);
        }
        _ => {}
    }
    v
}
