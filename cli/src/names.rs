//! Naming peers: by Character nickname, handle (`nick@domain` or just `nick`), DID or key; a
//! miss suggests up to three names within edit distance 3.

use wire_engine::{MemState, Peer, Pending};

/// Largest edit distance a suggestion may have.
const SUGGEST_DISTANCE_MAX: usize = 3;

/// What a name resolved to.
#[derive(Debug, Clone)]
pub enum Found {
    Peer(Box<Peer>),
    Pending(Box<Pending>),
}

/// A name that matched nothing, with the closest names we know.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", miss_message(.name, .candidates))]
pub struct Miss {
    pub name: String,
    pub candidates: Vec<String>,
}

/// A name that matched more than one entry.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{name}` names more than one peer ({}); use a handle or DID", .matches.join(", "))]
pub struct Ambiguous {
    pub name: String,
    pub matches: Vec<String>,
}

fn miss_message(name: &str, candidates: &[String]) -> String {
    if candidates.is_empty() {
        format!(
            "no peer or pending request is called `{name}`; `wire peers` and `wire pending` list them, `wire dial nick@relay` asks someone new"
        )
    } else {
        format!(
            "no peer or pending request is called `{name}`; did you mean {}?",
            candidates.join(", ")
        )
    }
}

fn names_of(nickname: &str, handle: &str, did: &str, key_hex: &str) -> Vec<String> {
    let mut v = vec![
        nickname.to_owned(),
        handle.to_owned(),
        did.to_owned(),
        key_hex.to_owned(),
    ];
    if let Some((nick, _)) = handle.split_once('@') {
        v.push(nick.to_owned());
    }
    v
}

/// Resolves `name` against peers (first) and pending requests.
pub fn resolve(state: &MemState, name: &str) -> Result<Found, anyhow::Error> {
    let wanted = name.trim();
    let mut hits: Vec<Found> = Vec::new();
    for p in state.peers.values() {
        let names = names_of(&p.character.nickname, &p.handle, &p.did, &p.key.to_hex());
        if names.iter().any(|n| n.eq_ignore_ascii_case(wanted)) {
            hits.push(Found::Peer(Box::new(p.clone())));
        }
    }
    for p in state.pending.values() {
        if state.peers.contains_key(&p.key) {
            continue;
        }
        let names = names_of(&p.character.nickname, &p.handle, &p.did, &p.key.to_hex());
        if names.iter().any(|n| n.eq_ignore_ascii_case(wanted)) {
            hits.push(Found::Pending(Box::new(p.clone())));
        }
    }
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => Err(Miss {
            name: wanted.to_owned(),
            candidates: suggest(state, wanted),
        }
        .into()),
        _ => Err(Ambiguous {
            name: wanted.to_owned(),
            matches: hits
                .iter()
                .map(|h| match h {
                    Found::Peer(p) => p.handle.clone(),
                    Found::Pending(p) => p.handle.clone(),
                })
                .collect(),
        }
        .into()),
    }
}

/// Up to three known names within edit distance 3 of `name`, closest first.
pub fn suggest(state: &MemState, name: &str) -> Vec<String> {
    suggest_with(state, name, Vec::new())
}

/// [`suggest`], with `more` names (the sister sessions of this machine) in the pool.
pub fn suggest_with(state: &MemState, name: &str, more: Vec<String>) -> Vec<String> {
    let mut pool: Vec<String> = more;
    for p in state.peers.values() {
        pool.push(p.character.nickname.clone());
        pool.push(p.handle.clone());
    }
    for p in state.pending.values() {
        pool.push(p.character.nickname.clone());
        pool.push(p.handle.clone());
    }
    let lower = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, String)> = pool
        .into_iter()
        .map(|n| (strsim::levenshtein(&lower, &n.to_ascii_lowercase()), n))
        .filter(|(d, _)| *d <= SUGGEST_DISTANCE_MAX)
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}
