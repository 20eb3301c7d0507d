//! Many sessions on one machine, as real processes: one state root and its daemon hosting
//! several sessions, each created in (and bound to) its own project directory; resolution by
//! directory binding; the local mesh (`pair-all-local`, `send` to an unpaired sister); and
//! destroying one session without touching the others.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::line::{COMMAND_DEADLINE, Rig, Run, poll, run_wire_in};

/// A state root (registered with the rig, so its daemon is stopped) and project directories.
struct Machine {
    home: PathBuf,
    projects: tempfile::TempDir,
}

impl Machine {
    fn new(rig: &Rig) -> Machine {
        Machine {
            home: rig.home("machine"),
            projects: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A project directory (created, with parents).
    fn dir(&self, rel: &str) -> PathBuf {
        let d = self.projects.path().join(rel);
        std::fs::create_dir_all(&d).expect("project dir");
        d
    }

    fn run_in(&self, dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Run {
        run_wire_in(&self.home, Some(dir), args, vars, COMMAND_DEADLINE)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn json_in(&self, dir: &Path, args: &[&str]) -> Value {
        self.run_in(dir, args, &[]).ok().json()
    }
}

fn text(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no `{k}` in {v}"))
        .to_owned()
}

/// Waits until `dir`'s session has a message `body` in its tail.
fn await_body(m: &Machine, dir: &Path, body: &str) {
    poll(
        &format!("`{body}` in the tail under {}", dir.display()),
        || {
            let v = m.json_in(dir, &["tail", "-n", "50"]);
            let bodies: Vec<&str> = v["messages"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m["body"].as_str()).collect())
                .unwrap_or_default();
            if bodies.contains(&body) {
                Ok(())
            } else {
                Err(format!("{bodies:?}"))
            }
        },
    );
}

#[test]
fn three_projects_mesh_on_one_machine_without_a_federation_relay() {
    let mut rig = Rig::new(&["--local-only"]);
    let m = Machine::new(&rig);
    let url = rig.url();
    let dirs: Vec<PathBuf> = ["api", "web", "docs"].iter().map(|d| m.dir(d)).collect();
    let mut nicknames = Vec::new();
    let mut dids = Vec::new();
    for (dir, name) in dirs.iter().zip(["api", "web", "docs"]) {
        let v = m.json_in(
            dir,
            &["session", "new", "--local-only", "--local-relay", &url],
        );
        assert_eq!(v["session"], name, "the name comes from the directory: {v}");
        assert!(v["bound"].as_str().is_some(), "{v}");
        nicknames.push(text(&v["identity"], "nickname"));
        dids.push(text(&v["identity"], "did"));
        let me = m.json_in(dir, &["whoami"]);
        assert_eq!(me["session"]["name"], name, "{me}");
        assert_eq!(me["session"]["rule"], "binding", "{me}");
    }
    dids.sort();
    dids.dedup();
    assert_eq!(dids.len(), 3, "three distinct identities");

    // Sending to an unpaired sister by nickname pairs first.
    let first = m.json_in(
        &dirs[0],
        &["send", &nicknames[1], "api to web, before the mesh"],
    );
    assert_eq!(first["outcome"], "delivered", "{first}");
    await_body(&m, &dirs[1], "api to web, before the mesh");

    let local = m.json_in(&dirs[0], &["session", "list-local"]);
    let states: Vec<&str> = local["sisters"]
        .as_array()
        .expect("sisters")
        .iter()
        .map(|s| s["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states.len(), 2, "{local}");
    assert!(
        states.contains(&"paired") && states.contains(&"none"),
        "{local}"
    );

    let mesh = m.json_in(&dirs[2], &["session", "pair-all-local"]);
    assert_eq!(mesh["sessions"], 3, "{mesh}");
    assert_eq!(mesh["paired"], 2, "{mesh}");
    assert_eq!(mesh["already"], 1, "{mesh}");
    let again = m.json_in(&dirs[1], &["session", "pair-all-local"]);
    assert_eq!(again["paired"], 0, "a second run pairs none: {again}");
    assert_eq!(again["already"], 3, "{again}");

    // Every pair talks, both ways, and with the only relay gone: it is all in-process.
    rig.kill_relay();
    for (i, from) in dirs.iter().enumerate() {
        for (j, to) in dirs.iter().enumerate() {
            if i == j {
                continue;
            }
            let body = format!("{i} to {j}");
            let sent = m.json_in(from, &["send", &nicknames[j], &body]);
            assert_eq!(sent["outcome"], "delivered", "{sent}");
            await_body(&m, to, &body);
        }
    }
    for dir in &dirs {
        let peers = m.json_in(dir, &["peers"]);
        let paired = peers["peers"]
            .as_array()
            .expect("peers")
            .iter()
            .filter(|p| p["state"] == "paired")
            .count();
        assert_eq!(paired, 2, "{peers}");
        let verify = m.run_in(dir, &["verify"], &[]);
        assert_eq!(verify.code, 0, "{}", verify.describe());
    }
}

#[test]
fn the_nearest_binding_wins_and_destroy_leaves_the_others() {
    let rig = Rig::new(&["--local-only"]);
    let m = Machine::new(&rig);
    let url = rig.url();
    let outer = m.dir("src");
    let inner = m.dir("src/app");
    let sibling = m.dir("src/lib");
    m.json_in(
        &outer,
        &[
            "session",
            "new",
            "outer",
            "--local-only",
            "--local-relay",
            &url,
        ],
    );
    // The child uses the ancestor's binding, and says so.
    let me = m.json_in(&inner, &["whoami"]);
    assert_eq!(me["session"]["name"], "outer", "{me}");
    assert_eq!(me["session"]["rule"], "binding", "{me}");
    let outer_key = std::fs::canonicalize(&outer).expect("canonical");
    assert_eq!(
        me["session"]["binding"],
        outer_key.to_str().expect("utf-8"),
        "{me}"
    );
    let prose = m
        .run_in(&inner, &["whoami"], &[("WIRE_NO_AUTO_JSON", "1")])
        .ok();
    assert!(
        prose.stdout.contains("chosen by the binding of"),
        "{}",
        prose.describe()
    );

    let made = m.json_in(
        &inner,
        &[
            "session",
            "new",
            "inner",
            "--local-only",
            "--local-relay",
            &url,
            "--no-bind",
        ],
    );
    assert!(made["bound"].is_null(), "{made}");
    assert_eq!(m.json_in(&inner, &["whoami"])["session"]["name"], "outer");
    let bound = m.json_in(&inner, &["session", "bind", "inner"]);
    assert_eq!(bound["before"]["name"], "outer", "{bound}");
    assert_eq!(m.json_in(&inner, &["whoami"])["session"]["name"], "inner");
    assert_eq!(m.json_in(&outer, &["whoami"])["session"]["name"], "outer");
    assert_eq!(m.json_in(&sibling, &["whoami"])["session"]["name"], "outer");
    let deeper = m.dir("src/app/deep/er");
    assert_eq!(m.json_in(&deeper, &["whoami"])["session"]["name"], "inner");

    // The explicit rules beat the binding.
    let by_env = m
        .run_in(&inner, &["whoami"], &[("WIRE_SESSION", "outer")])
        .ok();
    assert_eq!(by_env.json()["session"]["rule"], "WIRE_SESSION");
    let by_flag = m.json_in(&inner, &["whoami", "--session", "outer"]);
    assert_eq!(by_flag["session"]["rule"], "--session", "{by_flag}");
    let inner_dir = m.home.join("sessions/inner");
    let by_home = run_wire_in(&inner_dir, Some(&outer), &["whoami"], &[], COMMAND_DEADLINE)
        .unwrap_or_else(|e| panic!("{e}"))
        .ok();
    assert_eq!(
        by_home.json()["session"]["name"],
        "inner",
        "{}",
        by_home.describe()
    );
    assert_eq!(by_home.json()["session"]["rule"], "WIRE_HOME");

    let current = m.json_in(&deeper, &["session", "current"]);
    assert_eq!(current["session"]["name"], "inner", "{current}");
    let env = m.json_in(&outer, &["session", "env"]);
    assert!(
        text(&env, "export").ends_with("WIRE_SESSION=outer"),
        "{env}"
    );
    let list = m.json_in(&outer, &["session", "list"]);
    let names: Vec<&str> = list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["session"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["inner", "outer"], "{list}");

    // Destroy asks first; without a terminal it needs --force.
    let refused = m.run_in(&outer, &["session", "destroy", "inner"], &[]);
    assert_ne!(refused.code, 0, "{}", refused.describe());
    assert!(refused.stderr.contains("--force"), "{}", refused.describe());
    assert!(inner_dir.exists());
    let gone = m.json_in(&outer, &["session", "destroy", "inner", "--force"]);
    assert_eq!(gone["session"], "inner", "{gone}");
    assert_eq!(gone["unbound"].as_array().map(Vec::len), Some(1), "{gone}");
    assert!(!inner_dir.exists(), "its files are removed");
    assert_eq!(
        m.json_in(&inner, &["whoami"])["session"]["name"],
        "outer",
        "the child falls back to the ancestor's binding"
    );
    let list = m.json_in(&outer, &["session", "list"]);
    assert_eq!(list["sessions"].as_array().map(Vec::len), Some(1), "{list}");
    let verify = m.run_in(&outer, &["verify"], &[]);
    assert_eq!(verify.code, 0, "{}", verify.describe());
    let status = m.run_in(&outer, &["status"], &[]);
    assert_eq!(status.code, 0, "{}", status.describe());
    let again = m.run_in(&outer, &["session", "destroy", "inner", "--force"], &[]);
    assert_ne!(again.code, 0, "{}", again.describe());
    assert!(again.stderr.contains("no session"), "{}", again.describe());
}

#[test]
fn session_names_and_missing_flags_get_clear_errors() {
    let rig = Rig::new(&["--local-only"]);
    let m = Machine::new(&rig);
    let dir = m.dir("Weird Name!");
    let url = rig.url();
    let v = m.json_in(
        &dir,
        &["session", "new", "--local-only", "--local-relay", &url],
    );
    assert_eq!(v["session"], "weird-name", "{v}");
    let taken = m.run_in(
        &dir,
        &[
            "session",
            "new",
            "weird-name",
            "--local-only",
            "--local-relay",
            &url,
        ],
        &[],
    );
    assert_ne!(taken.code, 0);
    assert!(
        taken.stderr.contains("already exists"),
        "{}",
        taken.describe()
    );
    let bad = m.run_in(&dir, &["session", "new", "Bad/Name", "--local-only"], &[]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("session name"), "{}", bad.describe());
    let lan = m.run_in(
        &dir,
        &["session", "new", "lan", "--with-lan", "--relay", &url],
        &[],
    );
    assert_ne!(lan.code, 0);
    assert!(lan.stderr.contains("--lan-relay"), "{}", lan.describe());
    let unknown = m.run_in(&dir, &["session", "bind", "nobody"], &[]);
    assert_ne!(unknown.code, 0);
    assert!(
        unknown.stderr.contains("no session `nobody`"),
        "{}",
        unknown.describe()
    );
    let unbound = m.run_in(&m.dir("elsewhere"), &["session", "unbind"], &[]);
    assert_ne!(unbound.code, 0);
    assert!(
        unbound.stderr.contains("no binding"),
        "{}",
        unbound.describe()
    );
    // A damaged bindings file is reported and left as it is.
    std::fs::write(m.home.join("bindings.json"), b"{not json").expect("damage");
    let damaged = m.run_in(&dir, &["session", "bind", "weird-name"], &[]);
    assert_ne!(damaged.code, 0);
    assert!(damaged.stderr.contains("damaged"), "{}", damaged.describe());
    assert_eq!(
        std::fs::read(m.home.join("bindings.json")).expect("read"),
        b"{not json"
    );
}

#[test]
fn service_install_writes_units_that_status_reads_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let home = root.path().join("state");
    let config = root.path().join("config");
    let config_str = config.to_str().expect("utf-8").to_owned();
    let vars = [
        ("XDG_CONFIG_HOME", config_str.as_str()),
        ("HOME", root.path().to_str().expect("utf-8")),
        // No service manager in CI: write the units, do not start them.
        ("WIRE_SERVICE_MANAGER", "none"),
    ];
    let run = |args: &[&str]| {
        run_wire_in(&home, None, args, &vars, COMMAND_DEADLINE).unwrap_or_else(|e| panic!("{e}"))
    };
    let exe = std::fs::canonicalize(crate::line::EXE).expect("canonical exe");
    let exe = exe.to_str().expect("utf-8");

    let before = run(&["service", "status"]).ok().json();
    assert!(
        before["units"]
            .as_array()
            .expect("units")
            .iter()
            .all(|u| u["installed"] == false),
        "{before}"
    );
    let installed = run(&["service", "install", "--local-relay"]).ok().json();
    let units = installed["units"].as_array().expect("units");
    assert_eq!(units.len(), 2, "{installed}");
    for u in units {
        assert_eq!(u["exe"], exe, "{installed}");
        assert!(
            u["note"]
                .as_str()
                .is_some_and(|n| n.contains("not started")),
            "without a service manager the reply says how to start it: {installed}"
        );
    }
    let daemon_unit = config.join("systemd/user/wire-daemon.service");
    let relay_unit = config.join("systemd/user/wire-relay.service");
    let text = std::fs::read_to_string(&daemon_unit).expect("daemon unit");
    assert!(
        text.contains(&format!("ExecStart={exe} daemon --foreground")),
        "{text}"
    );
    assert!(text.contains("Restart=on-failure"), "{text}");
    assert!(
        text.contains(&format!("Environment=WIRE_HOME={}", home.display())),
        "{text}"
    );
    let relay = std::fs::read_to_string(&relay_unit).expect("relay unit");
    assert!(
        relay.contains("relay-server --local-only --bind 127.0.0.1:8771"),
        "{relay}"
    );

    let status = run(&["service", "status"]).ok().json();
    for u in status["units"].as_array().expect("units") {
        assert_eq!(u["installed"], true, "{status}");
        assert_eq!(u["current"], true, "{status}");
    }

    // A unit left by an older binary is reported, and installing again rewrites it.
    std::fs::write(&daemon_unit, text.replace(exe, "/opt/old/wire")).expect("age the unit");
    let stale = run(&["service", "status"]).ok().json();
    let d = &stale["units"][0];
    assert_eq!(d["unit"], "daemon", "{stale}");
    assert_eq!(d["current"], false, "{stale}");
    assert_eq!(d["exe"], "/opt/old/wire", "{stale}");
    assert!(
        d["note"]
            .as_str()
            .is_some_and(|n| n.contains("/opt/old/wire")),
        "{stale}"
    );
    let upgraded = run(&["upgrade", "--local"]).ok().json();
    assert_eq!(
        upgraded["units"].as_array().map(Vec::len),
        Some(2),
        "{upgraded}"
    );
    let text = std::fs::read_to_string(&daemon_unit).expect("daemon unit");
    assert!(text.contains(&format!("ExecStart={exe} ")), "{text}");
    let relay = std::fs::read_to_string(&relay_unit).expect("relay unit");
    assert!(
        relay.contains("--bind 127.0.0.1:8771"),
        "the relay keeps its address: {relay}"
    );

    let removed = run(&["service", "uninstall"]).ok().json();
    assert_eq!(
        removed["removed"].as_array().map(Vec::len),
        Some(2),
        "{removed}"
    );
    assert!(!daemon_unit.exists() && !relay_unit.exists());
    let bare = run(&["upgrade"]);
    assert_ne!(bare.code, 0);
    assert!(bare.stderr.contains("--local"), "{}", bare.describe());
}

/// A non-loopback IPv4 address of this machine (the one its default route leaves from), which
/// the scope order ranks after loopback.
fn outward_ip() -> std::net::Ipv4Addr {
    for target in [
        "192.0.2.1:9",
        "10.255.255.255:9",
        "198.51.100.1:9",
        "8.8.8.8:53",
    ] {
        let Ok(sock) = std::net::UdpSocket::bind("0.0.0.0:0") else {
            continue;
        };
        if sock.connect(target).is_err() {
            continue;
        }
        if let Ok(std::net::SocketAddr::V4(a)) = sock.local_addr()
            && !a.ip().is_loopback()
            && !a.ip().is_unspecified()
        {
            return *a.ip();
        }
    }
    panic!("this test needs a non-loopback IPv4 address to play the federation relay on");
}

/// A relay on a non-loopback address, killed when dropped.
struct FarRelay {
    child: std::process::Child,
    url: String,
    _root: tempfile::TempDir,
}

impl FarRelay {
    fn start() -> FarRelay {
        let root = tempfile::tempdir().expect("tempdir");
        let bind = format!("{}:0", outward_ip());
        let (child, addr) =
            crate::line::spawn_relay(root.path(), &bind, &[]).unwrap_or_else(|e| panic!("{e}"));
        FarRelay {
            child,
            url: format!("http://{addr}"),
            _root: root,
        }
    }
}

impl Drop for FarRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sisters_of_two_daemons_prefer_loopback_and_fail_over_to_federation() {
    let mut rig = Rig::new(&["--local-only"]);
    let far = FarRelay::start();
    let local = rig.url();
    let cwd = tempfile::tempdir().expect("tempdir");
    let homes = [rig.home("alpha"), rig.home("beta")];
    let names = ["alpha", "beta"];
    let run = |i: usize, args: &[&str]| {
        run_wire_in(
            &homes[i],
            Some(cwd.path()),
            args,
            &[("WIRE_SESSION", names[i])],
            COMMAND_DEADLINE,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let mut ids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let v = run(
            i,
            &[
                "session",
                "new",
                name,
                "--relay",
                &far.url,
                "--with-local",
                "--local-relay",
                &local,
                "--no-bind",
            ],
        )
        .ok()
        .json();
        assert_eq!(v["relays"].as_array().map(Vec::len), Some(2), "{v}");
        assert_eq!(v["handles"].as_array().map(Vec::len), Some(2), "{v}");
        ids.push(v["identity"].clone());
    }
    // Pair through the loopback relay's directory.
    let beta_local = format!("beta@{}", rig.addr_str());
    run(0, &["dial", &beta_local]).ok();
    let alpha_nick = text(&ids[0], "nickname");
    poll("beta to see alpha's request", || {
        let v = run(1, &["pending"]).ok().json();
        if v["pending"].as_array().is_some_and(|p| !p.is_empty()) {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    run(1, &["accept", &alpha_nick]).ok();
    let beta_nick = text(&ids[1], "nickname");
    poll("alpha to see beta paired", || {
        let v = run(0, &["peers"]).ok().json();
        if v["peers"][0]["state"] == "paired" {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    let await_at = |i: usize, body: &str| {
        poll(&format!("`{body}` at {}", names[i]), || {
            let v = run(i, &["tail", "-n", "100"]).ok().json();
            let bodies: Vec<String> = v["messages"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m["body"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if bodies.iter().any(|b| b == body) {
                Ok(bodies)
            } else {
                Err(format!("{bodies:?}"))
            }
        })
    };

    // Both relays up: loopback is preferred, both ways.
    let sent = run(0, &["send", &beta_nick, "one, by loopback"])
        .ok()
        .json();
    assert_eq!(sent["outcome"], "stored", "{sent}");
    assert_eq!(sent["relay"], local.as_str(), "{sent}");
    await_at(1, "one, by loopback");
    let back = run(1, &["send", &alpha_nick, "two, by loopback"])
        .ok()
        .json();
    assert_eq!(back["relay"], local.as_str(), "{back}");
    await_at(0, "two, by loopback");

    // The loopback relay dies: the same sends fail over to federation, nothing is lost.
    rig.kill_relay();
    let sent = run(0, &["send", &beta_nick, "three, by federation"])
        .ok()
        .json();
    assert_eq!(sent["outcome"], "stored", "{sent}");
    assert_eq!(sent["relay"], far.url.as_str(), "{sent}");
    let back = run(1, &["send", &alpha_nick, "four, by federation"])
        .ok()
        .json();
    assert_eq!(back["relay"], far.url.as_str(), "{back}");
    // Each tail shows the whole conversation once (our own messages too), each side's
    // messages in the order they were sent; the two sides interleave by arrival.
    let all = [
        "one, by loopback",
        "two, by loopback",
        "three, by federation",
        "four, by federation",
    ];
    for (i, name) in names.iter().enumerate() {
        let mut seen = await_at(i, "three, by federation");
        if seen.len() < all.len() {
            seen = await_at(i, "four, by federation");
        }
        let mut sorted = seen.clone();
        sorted.sort();
        let mut want = all.map(str::to_owned).to_vec();
        want.sort();
        assert_eq!(sorted, want, "each message exactly once at {name}");
        let pos = |b: &str| seen.iter().position(|x| x == b).expect("present");
        assert!(
            pos(all[0]) < pos(all[2]) && pos(all[1]) < pos(all[3]),
            "{seen:?}"
        );
    }
}
