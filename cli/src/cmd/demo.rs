//! `wire demo`: two agents and a relay in temporary homes: start the relay, create alice and
//! bob, dial, accept, send both ways, and show bob's verified tail. Everything runs as real
//! processes of this binary, exactly as an operator would type it.

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::output::Out;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the temporary homes and print where they are.
    #[arg(long)]
    keep: bool,
}

struct Cleanup {
    relay: Option<Child>,
    homes: Vec<std::path::PathBuf>,
    exe: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for home in &self.homes {
            let _ = Command::new(&self.exe)
                .args(["daemon", "stop"])
                .env("WIRE_HOME", home)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut r) = self.relay.take() {
            let _ = r.kill();
            let _ = r.wait();
        }
    }
}

fn wire(exe: &std::path::Path, home: &std::path::Path, args: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new(exe)
        .args(args)
        .arg("--json")
        .env("WIRE_HOME", home)
        .env_remove("WIRE_SESSION")
        .env_remove("WIRE_NO_DAEMON")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run wire {}", args.join(" ")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !out.status.success() {
        bail!(
            "`wire {}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            if text.trim().is_empty() {
                String::new()
            } else {
                format!(" {text}")
            }
        );
    }
    Ok(value)
}

pub fn run(out: &Out, args: Args) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the wire executable")?;
    let root = tempfile::Builder::new()
        .prefix("wire-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let (alice_home, bob_home) = (root.path().join("alice"), root.path().join("bob"));
    let say = |s: &str| {
        if !out.json {
            out.write_stdout(format!("{s}\n").as_bytes());
        }
    };
    let relay = Command::new(&exe)
        .args([
            "relay-server",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(root.path().join("relay"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the relay")?;
    let _cleanup = Cleanup {
        relay: Some(relay),
        homes: vec![alice_home.clone(), bob_home.clone()],
        exe: exe.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the demo relay did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    say(&format!(
        "1. A relay runs at {url} (a blind mailbox: it stores sealed blobs)."
    ));
    let a = wire(&exe, &alice_home, &["init", "alice", "--relay", &url])?;
    let b = wire(&exe, &bob_home, &["init", "bob", "--relay", &url])?;
    let face = |v: &Value| {
        let id = &v["identity"];
        format!(
            "{} {}",
            if out.emoji {
                id["emoji"].as_str()
            } else {
                id["tag"].as_str()
            }
            .unwrap_or(""),
            id["nickname"].as_str().unwrap_or("")
        )
    };
    let bob_handle = b["claimed"]
        .as_str()
        .context("bob has no handle")?
        .to_owned();
    say(&format!(
        "2. Two agents, each with its own key and daemon: {} ({}) and {} ({}).",
        face(&a),
        a["claimed"].as_str().unwrap_or("?"),
        face(&b),
        bob_handle
    ));
    wire(&exe, &alice_home, &["dial", &bob_handle])?;
    say(&format!(
        "3. alice dials {bob_handle}: a sealed pair request waits in bob's intro queue."
    ));
    let pending = wire(&exe, &bob_home, &["pending"])?;
    let requester = pending["pending"][0]["nickname"]
        .as_str()
        .context("bob sees no pair request")?
        .to_owned();
    say(&format!(
        "4. bob runs `wire pending`: {requester} (alice) wants to pair."
    ));
    wire(&exe, &bob_home, &["accept", &requester])?;
    say("5. bob accepts: alice gets a capability for bob's mailbox, bob one for hers.");
    let bob_nick = b["identity"]["nickname"]
        .as_str()
        .unwrap_or("bob")
        .to_owned();
    // alice sees bob as paired once his acceptance has arrived.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let peers = wire(&exe, &alice_home, &["peers"])?;
        if peers["peers"][0]["state"] == "paired" {
            break;
        }
        if Instant::now() > deadline {
            bail!("bob's acceptance did not reach alice within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = wire(
        &exe,
        &alice_home,
        &["send", &bob_nick, "hello bob, training is done"],
    )?;
    say(&format!(
        "6. alice sends a message: {} at {}.",
        sent["outcome"].as_str().unwrap_or("?"),
        sent["relay"].as_str().unwrap_or("?")
    ));
    wire(
        &exe,
        &bob_home,
        &["send", &requester, "thanks alice, looking now"],
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let tail = loop {
        let t = wire(&exe, &bob_home, &["tail"])?;
        if t["messages"].as_array().is_some_and(|m| m.len() >= 2) {
            break t;
        }
        if Instant::now() > deadline {
            bail!("the messages did not arrive within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    say("7. bob's `wire tail` (every message signature-checked as it is read):");
    for m in tail["messages"].as_array().into_iter().flatten() {
        let who = if m["outgoing"] == true {
            "bob"
        } else {
            "alice"
        };
        say(&format!(
            "     {who}: {}",
            super::printable(m["body"].as_str().unwrap_or(""))
        ));
    }
    let verify_a = wire(&exe, &alice_home, &["verify"])?;
    let verify_b = wire(&exe, &bob_home, &["verify"])?;
    say("8. `wire verify` on both sides: every signature, chain link and projection checks out.");
    if args.keep {
        let kept = root.keep();
        say(&format!("Homes kept in {}.", kept.display()));
    }
    out.print(
        &serde_json::json!({
            "relay": url,
            "alice": a["identity"], "bob": b["identity"],
            "messages": tail["messages"],
            "verify": [verify_a, verify_b],
        }),
        || "Done: two agents paired with consent and talked over a relay that could read nothing.\n".into(),
    );
    Ok(ExitCode::SUCCESS)
}
