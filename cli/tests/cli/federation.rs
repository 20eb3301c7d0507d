//! Federation over HTTPS between two hosts: two network namespaces made by the test, joined by
//! a veth pair (10.77.0.1/24 and 10.77.0.2/24), a relay in each serving TLS with a
//! certificate for its own address (IP SAN) from a CA the test makes, and an agent in each
//! whose daemon runs in that namespace and trusts the test CA through `WIRE_CA_FILE`. The
//! agents pair by handle and talk both ways; a relay whose certificate comes from another CA
//! is refused with an error that names it and says what to do.
//!
//! Namespaces need root and iproute2 (`ip`); the test fails, saying so, without them. A
//! [`Netns`] deletes its namespaces (and with them the veth pair) when dropped, also when a
//! test panics; it is declared before the relays and agents so that it is dropped after them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::line::{self, COMMAND_DEADLINE, Run, poll};

/// Port every relay listens on: each namespace has its own ports, so tests running at once
/// do not collide.
const PORT: u16 = 8443;
const ADDR_A: &str = "10.77.0.1";
const ADDR_B: &str = "10.77.0.2";

// ---------------------------------------------------------------------------------------------
// Network namespaces

/// Two network namespaces joined by a veth pair, `ADDR_A` in the first and `ADDR_B` in the
/// second, each with its loopback up. Deleted on drop.
#[derive(Debug)]
struct Netns {
    a: String,
    b: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let base = format!("wire-fed-{}-{n}", std::process::id());
        let ns = Netns {
            a: format!("{base}-a"),
            b: format!("{base}-b"),
        };
        if let Err(e) = ns.build() {
            panic!(
                "cannot make the test's network namespaces ({e}); this test needs root and iproute2 (`ip netns`, `ip link … type veth`)"
            );
        }
        ns
    }

    fn build(&self) -> Result<(), String> {
        let (a, b) = (self.a.as_str(), self.b.as_str());
        ip(&["netns", "add", a])?;
        ip(&["netns", "add", b])?;
        // Interface names are per namespace, so fixed names cannot clash with another test's.
        ip(&[
            "-n", a, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", b,
        ])?;
        for (ns, dev, addr) in [(a, "veth-a", ADDR_A), (b, "veth-b", ADDR_B)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The wrapper that runs a command in namespace `ns`.
    fn exec(ns: &str) -> [&str; 4] {
        ["ip", "netns", "exec", ns]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and so the pair. Never panics.
        for ns in [&self.a, &self.b] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// A certificate authority made for one test.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca certificate");
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// A server certificate for `san` (an IP address or a DNS name) and its key, as PEM.
    fn leaf(&self, san: &str) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec![san.to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, san);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    }
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_owned()
}

// ---------------------------------------------------------------------------------------------
// Relays and agents in namespaces

/// A relay serving HTTPS on `addr:PORT` inside namespace `ns`, killed on drop.
struct Relay {
    child: Option<Child>,
    url: String,
    root: PathBuf,
}

impl Relay {
    /// Starts a relay in `ns` with a certificate for `addr` from `ca`, data under `root`.
    fn start(ns: &str, addr: &str, ca: &TestCa, root: &Path) -> Relay {
        std::fs::create_dir_all(root).expect("relay root");
        let (cert, key) = ca.leaf(addr);
        let cert = write(&root.join("relay.crt"), &cert);
        let key = write(&root.join("relay.key"), &key);
        let url = format!("https://{addr}:{PORT}");
        let args: Vec<String> = [
            "--tls-cert",
            crate::path_str(&cert),
            "--tls-key",
            crate::path_str(&key),
            "--public-url",
            &url,
            "--no-rate-limits",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let bind = format!("{addr}:{PORT}");
        let (child, bound) = line::spawn_relay_via(&Netns::exec(ns), root, &bind, &args)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bound.to_string(), bind);
        Relay {
            child: Some(child),
            url,
            root: root.to_owned(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("relay.log")).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An agent whose every command (and so its daemon) runs in namespace `ns` with
/// `WIRE_CA_FILE` set. Its daemon is stopped on drop.
struct Fed {
    ns: String,
    home: PathBuf,
    ca_file: PathBuf,
    handle: String,
    key: String,
    did: String,
}

impl Fed {
    fn new(ns: &str, home: PathBuf, ca_file: &Path) -> Fed {
        Fed {
            ns: ns.to_owned(),
            home,
            ca_file: ca_file.to_owned(),
            handle: String::new(),
            key: String::new(),
            did: String::new(),
        }
    }

    fn try_run(&self, args: &[&str]) -> Run {
        line::run_wire_via(
            &Netns::exec(&self.ns),
            &self.home,
            None,
            args,
            &[("WIRE_CA_FILE", crate::path_str(&self.ca_file))],
            COMMAND_DEADLINE,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn json(&self, args: &[&str]) -> Value {
        self.try_run(args).ok().json()
    }

    /// `wire init <nick> --relay <url>`: claims `nick@<relay domain>`.
    fn init(&mut self, nick: &str, relay: &Relay) {
        let v = self.json(&["init", nick, "--relay", &relay.url]);
        let domain = relay.url.trim_start_matches("https://");
        self.handle = format!("{nick}@{domain}");
        assert_eq!(v["claimed"], self.handle.as_str(), "{v}");
        assert_eq!(v["relay"], relay.url.as_str(), "{v}");
        self.key = v["identity"]["key"].as_str().expect("key").to_owned();
        self.did = v["identity"]["did"].as_str().expect("did").to_owned();
    }

    fn peer_state(&self, other: &Fed) -> String {
        let v = self.json(&["peers"]);
        v["peers"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["key"] == other.key.as_str()))
            .map_or_else(
                || "absent".to_owned(),
                |p| p["state"].as_str().unwrap_or("?").to_owned(),
            )
    }

    fn bodies_from(&self, from: &Fed) -> Vec<String> {
        let v = self.json(&["tail", "-n", "50"]);
        v["messages"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter(|m| m["from"] == from.did.as_str())
                    .filter_map(|m| m["body"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Fed {
    fn drop(&mut self) {
        line::stop_daemon(&self.home);
    }
}

/// `a` dials `b` by handle, `b` accepts, and `a` sees `b` paired.
fn pair(a: &Fed, b: &Fed) {
    let dialed = a.json(&["dial", &b.handle]);
    assert_eq!(dialed["status"], "dialed", "{dialed}");
    let nick = poll(
        &format!("{} to see {}'s request", b.handle, a.handle),
        || {
            let v = b.json(&["pending"]);
            v["pending"]
                .as_array()
                .and_then(|p| p.iter().find(|r| r["key"] == a.key.as_str()))
                .and_then(|r| r["nickname"].as_str().map(str::to_owned))
                .ok_or_else(|| v.to_string())
        },
    );
    let accepted = b.json(&["accept", &nick]);
    assert_eq!(accepted["status"], "paired", "{accepted}");
    poll(
        &format!("{} to see {} paired", a.handle, b.handle),
        || match a.peer_state(b).as_str() {
            "paired" => Ok(()),
            other => Err(other.to_owned()),
        },
    );
}

fn send_stored(from: &Fed, to: &Fed, body: &str) {
    let r = from.try_run(&["send", &to.handle, body]).ok();
    assert_eq!(r.json()["outcome"], "stored", "{}", r.describe());
}

fn await_body(reader: &Fed, from: &Fed, body: &str) {
    poll(
        &format!("{body:?} from {} at {}", from.handle, reader.handle),
        || {
            let got = reader.bodies_from(from);
            if got.iter().any(|b| b == body) {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn agents_on_two_relays_in_two_namespaces_pair_by_handle_and_talk_over_https() {
    let ns = Netns::new();
    let root = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("wire federation test CA");
    let ca_file = write(&root.path().join("ca.pem"), &ca.pem);
    let mut x = Relay::start(&ns.a, ADDR_A, &ca, &root.path().join("relay-x"));
    let _y = Relay::start(&ns.b, ADDR_B, &ca, &root.path().join("relay-y"));

    let mut alice = Fed::new(&ns.a, root.path().join("alice"), &ca_file);
    alice.init("alice", &x);
    let mut bob = Fed::new(&ns.b, root.path().join("bob"), &ca_file);
    bob.init("bob", &_y);
    assert_eq!(alice.handle, format!("alice@{ADDR_A}:{PORT}"));
    assert_eq!(bob.handle, format!("bob@{ADDR_B}:{PORT}"));

    pair(&alice, &bob);
    send_stored(&alice, &bob, "hello bob, from the other host");
    await_body(&bob, &alice, "hello bob, from the other host");
    send_stored(&bob, &alice, "hello alice, over https");
    await_body(&alice, &bob, "hello alice, over https");

    // A relay serving TLS stops cleanly on SIGTERM while alice's daemon holds a stream open
    // to it: the stream is ended and the relay exits 0 well within its drain time.
    let mut child = x.child.take().expect("relay x runs");
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let until = Instant::now() + Duration::from_secs(8);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the TLS relay did not stop within 8 s of SIGTERM; log:\n{}",
                x.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "relay exit {status}; log:\n{}", x.log());
}

#[test]
fn a_relay_with_a_certificate_from_an_unknown_ca_is_refused_with_a_clear_error() {
    let ns = Netns::new();
    let root = tempfile::tempdir().expect("tempdir");
    let ours = TestCa::new("wire test CA (ours)");
    let theirs = TestCa::new("wire test CA (theirs)");
    let ours_file = write(&root.path().join("ours.pem"), &ours.pem);
    let both_file = write(
        &root.path().join("both.pem"),
        &format!("{}{}", ours.pem, theirs.pem),
    );
    let x = Relay::start(&ns.a, ADDR_A, &ours, &root.path().join("relay-x"));
    let y = Relay::start(&ns.b, ADDR_B, &theirs, &root.path().join("relay-y"));
    let refused = |r: &Run| {
        let text = format!("{}{}", r.stdout, r.stderr);
        let url = format!("https://{ADDR_B}:{PORT}");
        assert!(
            text.contains(&format!("the certificate of {url} is not signed by a certificate authority this machine trusts"))
                && text.contains("WIRE_CA_FILE="),
            "the refusal does not name the relay and what to do: {}",
            r.describe()
        );
    };

    // Bob on relay Y trusts both CAs (so that he can answer alice below); alice only ours.
    let mut bob = Fed::new(&ns.b, root.path().join("bob"), &both_file);
    bob.init("bob", &y);
    let mut alice = Fed::new(&ns.a, root.path().join("alice"), &ours_file);
    alice.init("alice", &x);

    // `wire dial` to a handle on Y: refused, nothing dialed.
    let r = alice.try_run(&["dial", &bob.handle]);
    assert_ne!(r.code, 0, "{}", r.describe());
    refused(&r);
    assert_eq!(alice.peer_state(&bob), "absent");

    // `wire init --relay` on Y from a fresh home that trusts only ours: refused.
    let carol = Fed::new(&ns.a, root.path().join("carol"), &ours_file);
    let r = carol.try_run(&["init", "carol", "--relay", &y.url]);
    assert_ne!(r.code, 0, "{}", r.describe());
    refused(&r);

    // A WIRE_CA_FILE that cannot be read, or holds no certificate, is an error that says so.
    let mut dave = Fed::new(
        &ns.a,
        root.path().join("dave"),
        &root.path().join("missing.pem"),
    );
    let r = dave.try_run(&["init", "dave", "--relay", &x.url]);
    assert_ne!(r.code, 0, "{}", r.describe());
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(
        text.contains("WIRE_CA_FILE=") && text.contains("cannot read it"),
        "{}",
        r.describe()
    );
    // The daemon that first `init` started read the old value; a new one reads the new.
    line::stop_daemon(&dave.home);
    dave.ca_file = write(&root.path().join("empty.pem"), "not a certificate\n");
    let r = dave.try_run(&["init", "dave", "--relay", &x.url]);
    assert_ne!(r.code, 0, "{}", r.describe());
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(text.contains("holds no certificate"), "{}", r.describe());

    // `wire send`: alice trusts both CAs long enough to pair with bob, then her daemon is
    // restarted trusting only ours; a send to bob is queued, and the reason names Y's
    // certificate and what to do.
    alice.ca_file = both_file.clone();
    line::stop_daemon(&alice.home);
    pair(&alice, &bob);
    send_stored(&alice, &bob, "while we trusted them");
    await_body(&bob, &alice, "while we trusted them");
    line::stop_daemon(&alice.home);
    alice.ca_file = ours_file;
    let r = alice.try_run(&["send", &bob.handle, "after we stopped"]);
    assert_eq!(r.json()["outcome"], "queued", "{}", r.describe());
    refused(&r);
    // `wire doctor` names the certificate as the problem and trust as the fix, not the network.
    let r = alice.try_run(&["doctor"]);
    let check = r.json()["checks"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["detail"].as_str().is_some_and(|d| d.contains(ADDR_B)))
                .cloned()
        })
        .unwrap_or_else(|| panic!("no check names relay Y: {}", r.describe()));
    assert!(
        check["detail"]
            .as_str()
            .is_some_and(|d| d.contains("is not signed by a certificate authority"))
            && check["fix"]
                .as_str()
                .is_some_and(|f| f.contains("WIRE_CA_FILE=")),
        "{check}"
    );
}

/// `GET /healthz` on `url` from a client that trusts only `ca_pem` (and the system roots).
fn healthz_trusting(dir: &Path, ca_pem: &str, url: &str) -> Result<(), wire_net::NetError> {
    let file = write(&dir.join("trust.pem"), ca_pem);
    let options = wire_net::ClientOptions {
        tls: Some(wire_net::tls::client_config(Some(&file))?),
        ..wire_net::ClientOptions::default()
    };
    let client = wire_net::RelayClient::with_options(url, options)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(client.healthz())
        .map(|_| ())
}

#[test]
fn sighup_makes_a_tls_relay_serve_new_certificate_files_without_a_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    let first = TestCa::new("wire test CA (first)");
    let second = TestCa::new("wire test CA (second)");
    let (cert, key) = first.leaf("127.0.0.1");
    let cert_file = write(&root.path().join("relay.crt"), &cert);
    let key_file = write(&root.path().join("relay.key"), &key);
    let args: Vec<String> = [
        "--tls-cert",
        crate::path_str(&cert_file),
        "--tls-key",
        crate::path_str(&key_file),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let (child, addr) =
        line::spawn_relay(root.path(), "127.0.0.1:0", &args).unwrap_or_else(|e| panic!("{e}"));
    let mut relay = Relay {
        child: Some(child),
        url: format!("https://{addr}"),
        root: root.path().to_owned(),
    };
    let pid = relay.child.as_ref().expect("runs").id().to_string();
    healthz_trusting(root.path(), &first.pem, &relay.url).expect("the first certificate");

    let hup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill -HUP");
        assert!(ok.success());
    };
    // New files, SIGHUP: the relay (the same process) serves the new certificate.
    let (cert, key) = second.leaf("127.0.0.1");
    write(&cert_file, &cert);
    write(&key_file, &key);
    hup();
    poll("the relay to serve the second certificate", || {
        healthz_trusting(root.path(), &second.pem, &relay.url).map_err(|e| e.to_string())
    });
    let e = healthz_trusting(root.path(), &first.pem, &relay.url).expect_err("first no longer");
    assert!(matches!(e, wire_net::NetError::Certificate { .. }), "{e:?}");

    // A key that does not match: the reload is refused, said so on stderr, and the relay
    // keeps serving the second certificate.
    let (_, other_key) = second.leaf("127.0.0.1");
    write(&key_file, &other_key);
    hup();
    poll("the refused reload to be logged", || {
        let log = relay.log();
        if log.contains("does not belong to the certificate")
            && log.contains("still serving the previous certificate")
        {
            Ok(())
        } else {
            Err(log)
        }
    });
    healthz_trusting(root.path(), &second.pem, &relay.url).expect("still the second");
    let child = relay.child.as_mut().expect("runs");
    assert!(child.try_wait().expect("wait").is_none(), "the relay died");
}

#[test]
fn relay_server_refuses_tls_files_it_cannot_use_before_it_binds() {
    let root = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("wire test CA");
    let (cert, key) = ca.leaf("127.0.0.1");
    let cert_file = write(&root.path().join("relay.crt"), &cert);
    let key_file = write(&root.path().join("relay.key"), &key);
    let (_, other_key) = ca.leaf("127.0.0.1");
    let other_key = write(&root.path().join("other.key"), &other_key);
    let missing = root.path().join("missing.pem");
    let home = root.path().join("home");
    let relay = |args: &[&str]| {
        let mut all = vec!["relay-server", "--bind", "127.0.0.1:0", "--data"];
        let data = root.path().join("data");
        all.push(crate::path_str(&data));
        all.extend_from_slice(args);
        line::wire(&home, &all, &[])
    };
    let p = crate::path_str;
    for (args, want) in [
        (
            vec!["--tls-cert", p(&missing), "--tls-key", p(&key_file)],
            "cannot read the TLS certificate file",
        ),
        (
            vec!["--tls-cert", p(&cert_file), "--tls-key", p(&missing)],
            "cannot read the TLS key file",
        ),
        (
            vec!["--tls-cert", p(&key_file), "--tls-key", p(&key_file)],
            "holds no certificate",
        ),
        (
            vec!["--tls-cert", p(&cert_file), "--tls-key", p(&other_key)],
            "does not belong to the certificate",
        ),
        (
            vec![
                "--tls-cert",
                p(&cert_file),
                "--tls-key",
                p(&key_file),
                "--public-url",
                "http://127.0.0.1:8771",
            ],
            "use https://",
        ),
        (vec!["--tls-cert", p(&cert_file)], "--tls-key"),
    ] {
        let r = relay(&args);
        assert_ne!(r.code, 0, "{}", r.describe());
        assert!(r.stderr.contains(want), "want {want:?}: {}", r.describe());
    }
}
