//! Pairing by a code read aloud (SPAKE2 + SAS), as real processes: a relay on loopback and a
//! daemon per agent. Both sides show the same SAS and pair only once both operators confirmed;
//! a wrong code on one side and a relay in the middle that swaps the two sides' messages (a
//! test double below) give different SAS values and no pairing; two pairings at once on one
//! relay stay apart; a relay restart mid-pairing fails both sides cleanly and a retry pairs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wire_log::pake::{Code, Exchange};

use crate::line::{Agent, EXE, POLL_DEADLINE, Rig, await_messages, poll};

/// `pair-host --detach`: the pairing's id and code.
fn host(agent: &Agent, extra: &[&str]) -> (String, String) {
    let mut args = vec!["pair-host", "--detach"];
    args.extend_from_slice(extra);
    let v = agent.json(&args);
    assert_eq!(v["phase"], "waiting", "{v}");
    (
        v["id"].as_str().expect("id").to_owned(),
        v["code"].as_str().expect("code").to_owned(),
    )
}

/// `pair-join <code> --detach`: the pairing as it stands after the host's message.
fn join(agent: &Agent, code: &str, extra: &[&str]) -> Value {
    let mut args = vec!["pair-join", "--detach"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", code]);
    agent.json(&args)
}

/// Polls `pair-check <id>` until its phase is `want`.
fn await_phase(agent: &Agent, id: &str, want: &str) -> Value {
    poll(
        &format!("{} pairing {id} to reach {want}", agent.handle),
        || {
            let v = agent.json(&["pair-check", id, "--wait-ms", "2000"]);
            if v["phase"] == want {
                Ok(v)
            } else {
                Err(v.to_string())
            }
        },
    )
}

fn confirm(agent: &Agent, id: &str, answer: &str) -> crate::line::Run {
    agent.run(&["pair-confirm", id, answer])
}

fn digits(v: &Value) -> String {
    v["sas"]["digits"].as_str().expect("sas digits").to_owned()
}

fn assert_paired(a: &Agent, b: &Agent) {
    for (x, y) in [(a, b), (b, a)] {
        poll(
            &format!("{} to see {} paired", x.handle, y.handle),
            || match x.peer_state(y).as_str() {
                "paired" => Ok(()),
                other => Err(other.to_owned()),
            },
        );
    }
}

#[test]
fn a_code_pairs_once_both_operators_confirm_the_same_sas() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("pakealice");
    let bob = rig.agent("pakebob");
    let (hid, code) = host(&alice, &[]);
    assert!(Code::parse(&code).is_ok(), "{code}");
    let joined = join(&bob, &code, &[]);
    assert_eq!(joined["phase"], "sas", "{joined}");
    let jid = joined["id"].as_str().expect("id").to_owned();
    assert!(
        joined.get("code").is_none(),
        "the joiner never shows the code: {joined}"
    );
    let hosted = await_phase(&alice, &hid, "sas");
    assert_eq!(hosted["sas"], joined["sas"], "both sides show the same SAS");
    assert_eq!(digits(&hosted).len(), 6);
    assert_eq!(hosted["sas"]["emoji"].as_array().map(Vec::len), Some(4));
    // Detached, the operator learns of the SAS waiting for them from `wire pending`.
    let pending = alice.json(&["pending"]);
    assert_eq!(pending["pairings"][0]["id"], hid.as_str(), "{pending}");
    assert_eq!(pending["pairings"][0]["sas"], hosted["sas"], "{pending}");
    let prose = crate::line::wire(&alice.home, &["pending"], &[("WIRE_NO_AUTO_JSON", "1")]).ok();
    assert!(
        prose
            .stdout
            .contains(&format!("wire pair-confirm {hid} yes")),
        "{}",
        prose.describe()
    );

    // One side confirming is not enough: nothing is pinned until both have.
    let r = confirm(&alice, &hid, &digits(&hosted)).ok();
    assert_eq!(r.json()["phase"], "confirmed", "{}", r.describe());
    assert!(alice.peers().is_empty() && bob.peers().is_empty());
    let r = confirm(&bob, &jid, "yes").ok();
    assert_ne!(r.json()["phase"], "failed", "{}", r.describe());
    let done = await_phase(&alice, &hid, "paired");
    assert_eq!(done["peer"]["did"], bob.did.as_str(), "{done}");
    let done = await_phase(&bob, &jid, "paired");
    assert_eq!(done["peer"]["did"], alice.did.as_str(), "{done}");
    assert_paired(&alice, &bob);
    alice.send_stored(&bob, "hello by code");
    bob.send_stored(&alice, "hello back by code");
    await_messages(
        &bob,
        &alice,
        "hello by",
        &["hello by code".into()],
        POLL_DEADLINE,
    );
    await_messages(
        &alice,
        &bob,
        "hello back",
        &["hello back by code".into()],
        POLL_DEADLINE,
    );
    alice.verify_clean();
    bob.verify_clean();
}

#[test]
fn require_sas_takes_the_digits_and_a_mismatch_aborts_for_good() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("pakealice");
    let bob = rig.agent("pakebob");
    let (hid, code) = host(&alice, &["--require-sas"]);
    let joined = join(&bob, &code, &[]);
    assert_eq!(
        joined["require_sas"], true,
        "the joiner learns it: {joined}"
    );
    let jid = joined["id"].as_str().expect("id").to_owned();
    let r = confirm(&bob, &jid, "yes");
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr.contains("requires the SAS digits"),
        "{}",
        r.describe()
    );
    // Wrong digits abort this pairing for good, on both sides.
    let wrong = if digits(&joined) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = confirm(&bob, &jid, wrong);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(r.stderr.contains("aborted for good"), "{}", r.describe());
    let again = confirm(&bob, &jid, &digits(&joined));
    assert_eq!(again.code, 2, "{}", again.describe());
    let failed = await_phase(&alice, &hid, "failed");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no longer holds this pairing"),
        "{failed}"
    );
    assert!(alice.peers().is_empty() && bob.peers().is_empty());
}

#[test]
fn a_wrong_code_on_one_side_shows_another_sas_and_fails_closed() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("pakealice");
    let bob = rig.agent("pakebob");
    let (hid, code) = host(&alice, &[]);
    // Same number (so the same pair slot), other words.
    let other = loop {
        let c = Code::generate();
        let spliced = format!("{}{}", &code[..4], &c.as_str()[4..]);
        if spliced != code {
            break spliced;
        }
    };
    let joined = join(&bob, &other, &[]);
    let jid = joined["id"].as_str().expect("id").to_owned();
    let hosted = await_phase(&alice, &hid, "sas");
    assert_ne!(
        hosted["sas"], joined["sas"],
        "a wrong code cannot show the same SAS"
    );
    // Even if both operators answer yes without comparing, nothing is paired.
    confirm(&alice, &hid, "yes").ok();
    confirm(&bob, &jid, "yes");
    for (a, id) in [(&alice, &hid), (&bob, &jid)] {
        let failed = await_phase(a, id, "failed");
        let reason = failed["reason"].as_str().unwrap_or("");
        assert!(
            reason.contains("does not open under our key") || reason.contains("no longer holds"),
            "{failed}"
        );
    }
    assert!(alice.peers().is_empty() && bob.peers().is_empty());
}

#[test]
fn a_relay_that_swaps_the_messages_gets_different_sas_and_no_pairing() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("pakealice");
    let bob = rig.agent("pakebob");
    let mitm = Mitm::start();
    let relay = mitm.url();
    let (hid, code) = host(&alice, &["--relay", &relay]);
    let joined = join(&bob, &code, &["--relay", &relay]);
    let jid = joined["id"].as_str().expect("id").to_owned();
    assert_eq!(joined["phase"], "sas", "{joined}");
    let hosted = await_phase(&alice, &hid, "sas");
    assert!(
        mitm.swapped() >= 2,
        "the double swapped both first messages"
    );
    assert_ne!(
        hosted["sas"]["digits"], joined["sas"]["digits"],
        "{hosted} {joined}"
    );
    // bob types the digits alice reads out: they do not match his, so he aborts for good.
    let r = confirm(&bob, &jid, &digits(&hosted));
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr.contains("someone in the middle"),
        "{}",
        r.describe()
    );
    let failed = await_phase(&alice, &hid, "failed");
    assert!(failed["reason"].is_string(), "{failed}");
    assert!(alice.peers().is_empty() && bob.peers().is_empty());

    // And if both confirm blindly, the card boxes do not open: still no pairing.
    let (hid, code) = host(&alice, &["--relay", &relay]);
    let joined = join(&bob, &code, &["--relay", &relay]);
    let jid = joined["id"].as_str().expect("id").to_owned();
    await_phase(&alice, &hid, "sas");
    confirm(&alice, &hid, "yes").ok();
    confirm(&bob, &jid, "yes");
    for (a, id) in [(&alice, &hid), (&bob, &jid)] {
        let failed = await_phase(a, id, "failed");
        assert!(
            failed["reason"]
                .as_str()
                .unwrap_or("")
                .contains("someone in the middle")
                || failed["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no longer holds"),
            "{failed}"
        );
    }
    assert!(alice.peers().is_empty() && bob.peers().is_empty());
}

#[test]
fn two_pairings_at_once_on_one_relay_never_cross() {
    let rig = Rig::new(&[]);
    let a = rig.agent("pakea");
    let b = rig.agent("pakeb");
    let c = rig.agent("pakec");
    let d = rig.agent("paked");
    let (ha, code_a) = host(&a, &[]);
    let (hc, code_c) = host(&c, &[]);
    let jb = join(&b, &code_a, &[]);
    let jd = join(&d, &code_c, &[]);
    let sa = await_phase(&a, &ha, "sas");
    let sc = await_phase(&c, &hc, "sas");
    assert_eq!(sa["sas"], jb["sas"]);
    assert_eq!(sc["sas"], jd["sas"]);
    let jb = jb["id"].as_str().expect("id").to_owned();
    let jd = jd["id"].as_str().expect("id").to_owned();
    for (agent, id) in [(&a, &ha), (&b, &jb), (&c, &hc), (&d, &jd)] {
        confirm(agent, id, "yes").ok();
    }
    assert_eq!(
        await_phase(&a, &ha, "paired")["peer"]["did"],
        b.did.as_str()
    );
    assert_eq!(
        await_phase(&c, &hc, "paired")["peer"]["did"],
        d.did.as_str()
    );
    assert_paired(&a, &b);
    assert_paired(&c, &d);
    assert_eq!(a.peers().len(), 1);
    assert_eq!(c.peers().len(), 1);
}

#[test]
fn a_relay_restart_mid_pairing_fails_cleanly_and_a_retry_pairs() {
    let mut rig = Rig::new(&[]);
    let alice = rig.agent("pakealice");
    let bob = rig.agent("pakebob");
    let (hid, code) = host(&alice, &[]);
    let joined = join(&bob, &code, &[]);
    let jid = joined["id"].as_str().expect("id").to_owned();
    await_phase(&alice, &hid, "sas");
    rig.kill_relay();
    rig.restart_relay();
    for (a, id) in [(&alice, &hid), (&bob, &jid)] {
        let failed = await_phase(a, id, "failed");
        assert!(
            failed["reason"]
                .as_str()
                .unwrap_or("")
                .contains("relay restarted"),
            "{failed}"
        );
    }
    assert!(alice.peers().is_empty() && bob.peers().is_empty());
    let (hid, code) = host(&alice, &[]);
    let joined = join(&bob, &code, &[]);
    let jid = joined["id"].as_str().expect("id").to_owned();
    await_phase(&alice, &hid, "sas");
    confirm(&alice, &hid, "yes").ok();
    confirm(&bob, &jid, "yes");
    await_phase(&alice, &hid, "paired");
    assert_paired(&alice, &bob);
}

#[test]
fn on_a_terminal_pair_host_shows_the_code_and_sas_and_asks() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("pakealice");
    let bob = rig.agent("pakebob");
    let mut child = Command::new(EXE)
        .arg("pair-host")
        .env_clear()
        .env("WIRE_HOME", &alice.home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .env("WIRE_NO_AUTO_JSON", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pair-host");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        // The prompt has no newline: read bytes, hand over what came so far.
        let mut r = BufReader::new(stdout);
        let mut buf = [0u8; 512];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let mut seen = String::new();
    let wait_for = |needle: &str, seen: &mut String| {
        let deadline = Instant::now() + POLL_DEADLINE;
        while !seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(s) => seen.push_str(&s),
                Err(_) => panic!("pair-host never printed {needle:?}; printed:\n{seen}"),
            }
        }
    };
    wait_for("wire pair-join ", &mut seen);
    let code = seen
        .split("wire pair-join ")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .expect("code")
        .to_owned();
    let joined = join(&bob, &code, &[]);
    let jid = joined["id"].as_str().expect("id").to_owned();
    wait_for("[y/N]", &mut seen);
    let d = digits(&joined);
    assert!(seen.contains(&format!("{} {}", &d[..3], &d[3..])), "{seen}");
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"y\n")
        .expect("answer");
    confirm(&bob, &jid, "yes");
    wait_for("Paired with", &mut seen);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{seen}");
    assert_paired(&alice, &bob);
}

// ---------------------------------------------------------------------------------------------
// A relay in the middle: it serves the pair-slot routes itself and hands each side a first
// message of its own (made with a code it guessed) instead of the other side's.

#[derive(Default)]
struct MitmState {
    cells: HashMap<String, Vec<u8>>,
    swapped: usize,
}

struct Mitm {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<MitmState>>,
}

impl Mitm {
    fn start() -> Mitm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(MitmState::default()));
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s);
                });
            }
        });
        Mitm { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn swapped(&self) -> usize {
        self.state.lock().expect("mitm lock").swapped
    }
}

fn respond(conn: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)
}

fn serve(mut conn: TcpStream, state: &Mutex<MitmState>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let path = target.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let gone =
        br#"{"error":"no pairing is waiting under this code here","code":"unknown_pair_slot"}"#;
    match (method.as_str(), segs.as_slice()) {
        ("PUT", ["v1", "pair", slot, side, index]) => {
            let mut st = state.lock().expect("mitm lock");
            let key = format!("{slot}/{side}/{index}");
            if *index == "0" && *side == "join" && !st.cells.contains_key(&format!("{slot}/host/0"))
            {
                return respond(&mut conn, "404 Not Found", "application/json", gone);
            }
            // Each side's first message is answered with one of ours, under a guessed code.
            if *index == "0" && *side == "host" {
                let guess = Code::generate();
                let host = Exchange::host(&guess, 0).hello().to_vec();
                let join = Exchange::join(&guess).hello().to_vec();
                st.cells.insert(format!("{slot}/host/0/fake"), host);
                st.cells.insert(format!("{slot}/join/0/fake"), join);
            }
            st.cells.insert(key, body);
            respond(
                &mut conn,
                "201 Created",
                "application/json",
                br#"{"stored":true}"#,
            )
        }
        ("GET", ["v1", "pair", slot, side, index]) => {
            let deadline = Instant::now() + Duration::from_millis(300);
            loop {
                {
                    let mut st = state.lock().expect("mitm lock");
                    if !st.cells.contains_key(&format!("{slot}/host/0")) {
                        return respond(&mut conn, "404 Not Found", "application/json", gone);
                    }
                    let real = st.cells.get(&format!("{slot}/{side}/{index}"));
                    let fake = st.cells.get(&format!("{slot}/{side}/{index}/fake"));
                    // The fake stands in only once the real one was sent.
                    if let (Some(_), Some(f)) = (real, fake) {
                        let f = f.clone();
                        st.swapped += 1;
                        return respond(&mut conn, "200 OK", "application/octet-stream", &f);
                    }
                    if let (Some(r), None) = (real, fake) {
                        return respond(&mut conn, "200 OK", "application/octet-stream", r);
                    }
                }
                if Instant::now() > deadline {
                    return respond(&mut conn, "204 No Content", "application/octet-stream", b"");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        ("DELETE", ["v1", "pair", slot]) => {
            let mut st = state.lock().expect("mitm lock");
            st.cells.retain(|k, _| !k.starts_with(&format!("{slot}/")));
            respond(
                &mut conn,
                "200 OK",
                "application/json",
                br#"{"closed":true}"#,
            )
        }
        _ => respond(
            &mut conn,
            "404 Not Found",
            "application/json",
            br#"{"error":"not here","code":"not_found"}"#,
        ),
    }
}

#[test]
fn without_a_daemon_the_pairing_runs_in_the_command_and_detach_is_refused() {
    let rig = Rig::new(&[]);
    let alice = rig.agent("pakealice");
    let bob = rig.agent_without_daemon("pakebob");
    let r = bob.run(&["pair-host", "--detach"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr
            .contains("--detach leaves the pairing to the daemon"),
        "{}",
        r.describe()
    );
    let (hid, code) = host(&alice, &[]);
    // bob joins on a "terminal" without a daemon: his answer is ready on stdin.
    let mut child = Command::new(EXE)
        .args(["pair-join", "--no-daemon", &code])
        .env_clear()
        .env("WIRE_HOME", &bob.home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .env("WIRE_NO_AUTO_JSON", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pair-join");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"yes\n")
        .expect("answer");
    await_phase(&alice, &hid, "sas");
    confirm(&alice, &hid, "yes").ok();
    let out = child.wait_with_output().expect("pair-join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("Paired with"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    await_phase(&alice, &hid, "paired");
    assert_eq!(alice.peer_state(&bob), "paired");
    assert_eq!(bob.peer_state(&alice), "paired");
}
