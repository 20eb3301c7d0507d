//! A2A (Agent2Agent protocol, spec v1.0) AgentCard for a claimed handle.
//!
//! The relay serves `GET /.well-known/agent-card.json?handle=NICK` so that A2A tooling can
//! discover a wire agent. Wire itself does **not** speak A2A: peers talk wire's own protocol
//! (end-to-end sealed blobs exchanged through the relay). The card is therefore a *discovery*
//! card: its single interface declares a custom protocol binding ([`WIRE_BINDING_URI`]) that
//! points at the wire coordinates of the handle, and the wire identity (handle, DID, X25519 key,
//! Character and the signed wire card) rides along as an A2A extension
//! ([`WIRE_IDENTITY_EXTENSION_URI`]) in `capabilities.extensions`. An A2A client that only knows
//! the standard bindings (`JSONRPC`, `GRPC`, `HTTP+JSON`) finds no transport it supports, which is
//! the honest answer; a wire-aware client reads the extension.
//!
//! Caveat for consumers: extension `params` is a `google.protobuf.Struct`, so protobuf-based A2A
//! SDKs turn every JSON number into a double (`"v": 1` comes back as `1.0`). Verify the embedded
//! wire card's signature over the raw HTTP JSON, not over a re-serialized SDK object.
//!
//! The shape follows the v1.0 `lf.a2a.v1.AgentCard` message in its proto3 JSON form
//! (camelCase keys) and is checked against the official `a2a-sdk` Python package by
//! `relay/tests/python/validate_a2a_card.py` (pinned in `requirements-test.txt`). Fields the
//! spec marks REQUIRED: `name`, `description`, `supportedInterfaces[]` (each with `url`,
//! `protocolBinding`, `protocolVersion`), `version`, `capabilities`, `defaultInputModes[]`,
//! `defaultOutputModes[]`, `skills[]` (each with `id`, `name`, `description`, `tags[]`).

use serde_json::{Value, json};

/// A2A protocol version the card (and its interface) declares.
pub const A2A_PROTOCOL_VERSION: &str = "1.0";

/// Custom A2A protocol binding identifier for wire's own protocol (A2A v1.0 asks custom bindings
/// to be identified by a URI).
pub const WIRE_BINDING_URI: &str = "https://wire.invalid/binding/v1";

/// URI of the A2A extension that carries the wire identity.
pub const WIRE_IDENTITY_EXTENSION_URI: &str = "https://wire.invalid/ext/identity/v1";

/// Inputs for the A2A card of one claimed handle.
#[derive(Debug, Clone)]
pub struct A2aCardInput<'a> {
    /// The nick part of the handle, e.g. `"alice"`.
    pub nick: &'a str,
    /// The full handle, e.g. `"alice@relay.example"`.
    pub handle: &'a str,
    /// The agent's DID, e.g. `"did:key:z6Mk..."`.
    pub did: &'a str,
    /// The agent's X25519 public key, 64 hex chars.
    pub x25519_hex: &'a str,
    /// Relay base URL without trailing slash, e.g. `"http://127.0.0.1:8771"`.
    pub public_url: &'a str,
    /// The agent's Character, e.g. `"🐅 winter-bay"`.
    pub character: &'a str,
    /// The signed wire card object, embedded verbatim in the extension params.
    pub wire_card: &'a Value,
}

/// The wire coordinates of a handle on this relay:
/// `{public_url}/.well-known/wire/agent?handle={nick}` (nick percent-encoded).
pub fn wire_agent_url(public_url: &str, nick: &str) -> String {
    format!(
        "{}/.well-known/wire/agent?handle={}",
        public_url.trim_end_matches('/'),
        percent_encode(nick)
    )
}

/// Builds the A2A v1.0 AgentCard (proto3 JSON form) for one claimed handle.
///
/// Pure: no I/O, no clock. The result is a discovery card (see the module docs): one interface
/// with the custom wire binding, no A2A skills beyond "reach me over wire", and the wire identity
/// in the `capabilities.extensions` entry with uri [`WIRE_IDENTITY_EXTENSION_URI`]
/// (`required: false`, `params`: `handle`, `nick`, `did`, `x25519`, `character`, `relay`,
/// `wireCard`).
pub fn agent_card(input: &A2aCardInput<'_>) -> Value {
    let url = wire_agent_url(input.public_url, input.nick);
    let relay = input.public_url.trim_end_matches('/');
    let name = if input.character.is_empty() {
        input.handle.to_owned()
    } else {
        format!("{} ({})", input.character, input.handle)
    };
    json!({
        "name": name,
        "description": format!(
            "wire agent {handle} ({did}). Reachable over wire, a phone line for AI agents: \
             consented, end-to-end sealed messages relayed by {relay}. This card is for \
             discovery; the wire identity is in the {ext} extension.",
            handle = input.handle,
            did = input.did,
            relay = relay,
            ext = WIRE_IDENTITY_EXTENSION_URI,
        ),
        "supportedInterfaces": [{
            "url": url,
            "protocolBinding": WIRE_BINDING_URI,
            "protocolVersion": A2A_PROTOCOL_VERSION,
        }],
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": {
            "streaming": false,
            "pushNotifications": false,
            "extendedAgentCard": false,
            "extensions": [{
                "uri": WIRE_IDENTITY_EXTENSION_URI,
                "description": "wire identity: handle, DID (Ed25519), X25519 sealing key, \
                                Character and the self-signed wire card. Verify the card's \
                                signature against the DID before trusting any of it.",
                "required": false,
                "params": {
                    "handle": input.handle,
                    "nick": input.nick,
                    "did": input.did,
                    "x25519": input.x25519_hex,
                    "character": input.character,
                    "relay": relay,
                    "wireCard": input.wire_card,
                },
            }],
        },
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/plain", "application/json"],
        "skills": [{
            "id": "wire.dial",
            "name": "Dial over wire",
            "description": format!(
                "Pair with {} and exchange end-to-end sealed messages over wire \
                 (dial the handle; the agent must consent).",
                input.handle
            ),
            "tags": ["wire", "messaging", "e2e-encrypted", "identity"],
            "examples": [format!("wire dial {}", input.handle)],
        }],
    })
}

/// Percent-encodes everything outside RFC 3986 "unreserved" so a nick is safe in a query value.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_wire_card() -> Value {
        json!({
            "v": 1,
            "handle": "alice@relay.example",
            "did": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            "x25519": "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
            "sig": "c2lnbmF0dXJl",
        })
    }

    fn with_card<R>(f: impl FnOnce(&Value) -> R) -> R {
        let wire_card = sample_wire_card();
        let input = A2aCardInput {
            nick: "alice",
            handle: "alice@relay.example",
            did: "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            x25519_hex: "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
            public_url: "http://127.0.0.1:8771",
            character: "🐅 winter-bay",
            wire_card: &wire_card,
        };
        f(&agent_card(&input))
    }

    fn non_empty_str(v: &Value, key: &str) {
        let s = v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing or not a string"));
        assert!(!s.is_empty(), "{key} is empty");
    }

    fn non_empty_array<'v>(v: &'v Value, key: &str) -> &'v Vec<Value> {
        let a = v[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} missing or not an array"));
        assert!(!a.is_empty(), "{key} is empty");
        a
    }

    #[test]
    fn required_fields_present_and_non_empty() {
        with_card(|card| {
            for key in ["name", "description", "version"] {
                non_empty_str(card, key);
            }
            assert!(card["capabilities"].is_object());
            for key in ["defaultInputModes", "defaultOutputModes"] {
                non_empty_array(card, key);
            }
            for iface in non_empty_array(card, "supportedInterfaces") {
                for key in ["url", "protocolBinding", "protocolVersion"] {
                    non_empty_str(iface, key);
                }
            }
            for skill in non_empty_array(card, "skills") {
                for key in ["id", "name", "description"] {
                    non_empty_str(skill, key);
                }
                non_empty_array(skill, "tags");
            }
        });
    }

    #[test]
    fn no_legacy_v03_keys() {
        with_card(|card| {
            for key in [
                "url",
                "preferredTransport",
                "protocolVersion",
                "additionalInterfaces",
            ] {
                assert!(card.get(key).is_none(), "v0.3 key {key} present");
            }
        });
    }

    #[test]
    fn interface_points_at_wire_coordinates() {
        with_card(|card| {
            let iface = &card["supportedInterfaces"][0];
            assert_eq!(
                iface["url"],
                "http://127.0.0.1:8771/.well-known/wire/agent?handle=alice"
            );
            assert_eq!(iface["protocolBinding"], WIRE_BINDING_URI);
            assert_eq!(iface["protocolVersion"], "1.0");
        });
    }

    #[test]
    fn extension_carries_wire_identity() {
        with_card(|card| {
            let exts = non_empty_array(&card["capabilities"], "extensions");
            let ext = exts
                .iter()
                .find(|e| e["uri"] == WIRE_IDENTITY_EXTENSION_URI)
                .expect("wire identity extension");
            assert_eq!(ext["required"], false);
            let p = &ext["params"];
            assert_eq!(
                p["did"],
                "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
            );
            assert_eq!(p["handle"], "alice@relay.example");
            assert_eq!(
                p["x25519"],
                "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
            );
            assert_eq!(p["character"], "🐅 winter-bay");
            assert_eq!(p["wireCard"], sample_wire_card());
        });
    }

    #[test]
    fn url_encodes_nick_and_trims_slash() {
        assert_eq!(
            wire_agent_url("https://r.example/", "a b&c"),
            "https://r.example/.well-known/wire/agent?handle=a%20b%26c"
        );
    }

    /// Prints the sample card as one JSON line. Pipe it to the SDK validator:
    /// `cargo test -p wire-relay --lib a2a::tests::print_sample_card -- --nocapture --quiet |
    ///  grep '^{' | python relay/tests/python/validate_a2a_card.py`
    #[test]
    fn print_sample_card() {
        with_card(|card| {
            let line = serde_json::to_string(card).expect("serialize card");
            assert!(!line.contains('\n'));
            println!("{line}");
        });
    }
}
