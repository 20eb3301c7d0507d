//! The relay over TLS (`wire_relay::tls` behind `server::serve`) and the client's
//! verification (`wire_net::tls`): the API and a stream over HTTPS with a certificate from a
//! test CA, shutdown ending the stream, refusals that say what to do (unknown CA, another
//! name, no TLS at all), CA files and certificate/key files that are wrong, and a reload that
//! swaps the certificate for new handshakes or, when the files are bad, keeps the old one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wire_net::tls::client_config;
use wire_net::{ClientOptions, NetError, RelayClient};
use wire_relay::app::{App, Rates};
use wire_relay::server;
use wire_relay::tls::{ServerTls, TlsError, TlsFiles};

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

    /// A server certificate for `san` and its PKCS#8 key, as PEM.
    fn leaf(&self, san: &str) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec![san.to_owned()]).expect("params");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a leaf for `san` into `dir` as `relay.crt` and `relay.key`.
    fn leaf_files(&self, dir: &Path, san: &str) -> TlsFiles {
        let (cert, key) = self.leaf(san);
        let files = TlsFiles {
            cert: dir.join("relay.crt"),
            key: dir.join("relay.key"),
        };
        write(&files.cert, &cert);
        write(&files.key, &key);
        files
    }

    /// A client that trusts this CA (and the system roots).
    fn client(&self, dir: &Path, url: &str) -> RelayClient {
        let file = dir.join(format!("ca-{}.pem", blake3::hash(self.pem.as_bytes())));
        write(&file, &self.pem);
        let options = ClientOptions {
            tls: Some(client_config(Some(&file)).expect("client config")),
            ..ClientOptions::default()
        };
        RelayClient::with_options(url, options).expect("client")
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A relay served over TLS by `server::serve` on 127.0.0.1; dropping it starts its shutdown.
struct TlsRelay {
    port: u16,
    tls: Arc<ServerTls>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), server::ServeError>>>,
    dir: tempfile::TempDir,
}

impl TlsRelay {
    /// `name` is the host in the relay's public URL (`localhost` or `127.0.0.1`). Rate limits
    /// are off.
    async fn start(ca: &TestCa, san: &str, name: &str) -> TlsRelay {
        TlsRelay::start_with(ca, san, name, false).await
    }

    /// With `limited`, the default rate limits and a plain Unix socket `relay.sock` beside TLS.
    async fn start_with(ca: &TestCa, san: &str, name: &str, limited: bool) -> TlsRelay {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = ca.leaf_files(dir.path(), san);
        let tls = Arc::new(ServerTls::new(files).expect("certificate loads"));
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let sock = dir.path().join("relay.sock");
        let mut bound = server::bind(any, limited.then_some(sock.as_path()), false)
            .await
            .expect("bind");
        bound.tls = Some(tls.clone());
        let port = bound.addr.port();
        assert_eq!(bound.listening_url(), format!("https://127.0.0.1:{port}"));
        let mut config =
            crate::harness::config(&format!("https://{name}:{port}"), dir.path().join("data"));
        if !limited {
            config.rates = Rates::unlimited();
        }
        let (app, _commit_thread) = App::open(config).expect("open relay");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server::serve(app, bound, async move {
            let _ = stopped.await;
        }));
        TlsRelay {
            port,
            tls,
            stop: Some(stop),
            served: Some(served),
            dir,
        }
    }

    fn url(&self, name: &str) -> String {
        format!("https://{name}:{}", self.port)
    }
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn certificate_problem(e: &NetError) -> &str {
    match e {
        NetError::Certificate { problem, .. } => problem,
        other => panic!("expected a certificate refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_relay_serves_its_api_and_streams_over_tls_and_shutdown_ends_the_stream() {
    let ca = TestCa::new("wire test CA");
    let mut relay = TlsRelay::start(&ca, "localhost", "localhost").await;
    // By DNS name, so the client sends SNI and checks the name against the certificate.
    let url = relay.url("localhost");
    let client = ca.client(relay.dir.path(), &url);
    let info = client.info().await.expect("info");
    assert_eq!(info.domain, format!("localhost:{}", relay.port));
    assert_eq!(info.public_url, url);
    let grant = client.allocate_slot().await.expect("slot");
    let mut stream = client
        .stream(&grant.slot, &grant.token, 0)
        .await
        .expect("stream");
    let a = client
        .append(&grant.slot, &grant.token, Bytes::from_static(b"over tls"))
        .await
        .expect("append");
    let got = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stream delivers within 10 s")
        .expect("a record")
        .expect("not an error");
    assert_eq!((got.seq, &got.bytes[..]), (a.seq, &b"over tls"[..]));
    let page = client
        .read(&grant.slot, &grant.token, 0, 10)
        .await
        .expect("read");
    assert_eq!(page.records[0].seq, a.seq);

    // Shutdown ends the open stream cleanly, and serving stops well within the drain time.
    let _ = relay.stop.take().expect("running").send(());
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the stream ends within 5 s of shutdown");
    assert!(end.is_none(), "the stream ended with {end:?}");
    let served = relay.served.take().expect("serving");
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("serving stops within 5 s")
        .expect("the serve task")
        .expect("serve ends cleanly");
}

/// Rate limits over TLS are charged to the peer's address, as over plain TCP, not to the one
/// budget that requests without an address (the Unix socket) share: a TLS connection whose
/// address axum did not hand on would look "local".
#[tokio::test]
async fn over_tls_rate_limits_see_the_peer_address() {
    let ca = TestCa::new("wire test CA");
    let relay = TlsRelay::start_with(&ca, "localhost", "localhost", true).await;
    let local = RelayClient::new(&format!(
        "unix:{}",
        relay.dir.path().join("relay.sock").display()
    ))
    .expect("unix client");
    let mut spent = false;
    for _ in 0..200 {
        match local.allocate_slot().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("rate_limited") => {
                spent = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(spent, "the local budget never ran out");
    ca.client(relay.dir.path(), &relay.url("localhost"))
        .allocate_slot()
        .await
        .expect("over TLS, 127.0.0.1 has its own budget");
}

#[tokio::test]
async fn unknown_cas_other_names_and_plain_http_are_refused_saying_what_to_do() {
    let ours = TestCa::new("wire test CA (ours)");
    let theirs = TestCa::new("wire test CA (theirs)");
    let relay = TlsRelay::start(&theirs, "localhost", "localhost").await;
    let url = relay.url("localhost");

    // A CA this client does not trust (its own plus the system roots).
    let e = ours
        .client(relay.dir.path(), &url)
        .healthz()
        .await
        .expect_err("a certificate from an unknown CA");
    assert!(!e.is_transient(), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "the certificate of {url} is not signed by a certificate authority this machine trusts"
        )) && text.contains("set WIRE_CA_FILE="),
        "{text}"
    );
    // The default trust (system roots, WIRE_CA_FILE unset in the test) refuses it as well.
    let e = RelayClient::new(&url)
        .expect("client")
        .healthz()
        .await
        .expect_err("the test CA is not a system root");
    assert!(certificate_problem(&e).contains("not signed by"), "{e}");

    // A trusted certificate for another name than the URL's.
    let e = theirs
        .client(relay.dir.path(), &relay.url("127.0.0.1"))
        .healthz()
        .await
        .expect_err("the certificate is for localhost, not 127.0.0.1");
    assert!(certificate_problem(&e).contains("for another name"), "{e}");

    // https:// to a relay that serves plain HTTP.
    let dir = tempfile::tempdir().expect("tempdir");
    let bound = server::bind("127.0.0.1:0".parse().expect("addr"), None, false)
        .await
        .expect("bind");
    let plain = format!("https://127.0.0.1:{}", bound.addr.port());
    let config = crate::harness::config(&format!("http://{}", bound.addr), dir.path().join("data"));
    let (app, _commit_thread) = App::open(config).expect("open");
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(app, bound, async move {
        let _ = stopped.await;
    }));
    let e = theirs
        .client(dir.path(), &plain)
        .healthz()
        .await
        .expect_err("no TLS there");
    assert!(
        matches!(&e, NetError::Unreachable { reason, .. } if reason.contains("does not speak TLS")),
        "{e:?}"
    );
}

#[test]
fn ca_files_that_cannot_be_read_or_hold_no_certificate_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |path: &Path, want: &str| match client_config(Some(path)) {
        Err(NetError::Trust(msg)) => {
            assert!(
                msg.starts_with(&format!("WIRE_CA_FILE={}: ", path.display()))
                    && msg.contains(want),
                "{msg}"
            );
        }
        other => panic!("{}: expected a trust error, got {other:?}", path.display()),
    };
    check(&dir.path().join("missing.pem"), "cannot read it");
    let empty = dir.path().join("empty.pem");
    write(&empty, "");
    check(&empty, "holds no certificate");
    let text = dir.path().join("text.pem");
    write(&text, "just some text\n");
    check(&text, "holds no certificate");
    let broken = dir.path().join("broken.pem");
    write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    check(&broken, "not a valid PEM file");
    let good = dir.path().join("good.pem");
    write(&good, &TestCa::new("wire test CA").pem);
    assert!(client_config(Some(&good)).is_ok());
}

#[test]
fn certificate_and_key_files_are_checked_when_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("wire test CA");
    let files = ca.leaf_files(dir.path(), "localhost");
    files.load().expect("a PKCS#8 key and its certificate load");
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/relay/tls");
    for kind in ["rsa", "ec"] {
        // PKCS#1 (`RSA PRIVATE KEY`) and SEC1 (`EC PRIVATE KEY`), made with openssl.
        TlsFiles {
            cert: fixtures.join(format!("{kind}.crt")),
            key: fixtures.join(format!("{kind}.key")),
        }
        .load()
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
    let with = |cert: &Path, key: &Path| {
        TlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }
        .load()
        .expect_err("refused")
    };
    let missing = dir.path().join("missing.pem");
    let text = dir.path().join("text.pem");
    write(&text, "no pem here\n");
    let e = with(&missing, &files.key);
    assert!(
        matches!(
            &e,
            TlsError::Read {
                what: "certificate file",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("check the path"), "{e}");
    let e = with(&files.cert, &missing);
    assert!(
        matches!(
            &e,
            TlsError::Read {
                what: "key file",
                ..
            }
        ),
        "{e:?}"
    );
    let e = with(&text, &files.key);
    assert!(matches!(&e, TlsError::NoCertificate(_)), "{e:?}");
    let e = with(&files.cert, &text);
    assert!(matches!(&e, TlsError::NoKey(_)), "{e:?}");
    // The key file holding a certificate only: no key in it.
    let e = with(&files.cert, &files.cert);
    assert!(matches!(&e, TlsError::NoKey(_)), "{e:?}");
    // Another certificate's key.
    let other = tempfile::tempdir().expect("tempdir");
    let other = ca.leaf_files(other.path(), "localhost");
    let e = with(&files.cert, &other.key);
    assert!(matches!(&e, TlsError::Mismatch { .. }), "{e:?}");
    assert!(
        e.to_string().contains("does not belong to the certificate"),
        "{e}"
    );
}

#[tokio::test]
async fn a_reload_serves_new_files_to_new_handshakes_and_a_bad_one_keeps_the_old() {
    let first = TestCa::new("wire test CA (first)");
    let second = TestCa::new("wire test CA (second)");
    let relay = TlsRelay::start(&first, "localhost", "localhost").await;
    let url = relay.url("localhost");
    let old_leaf = relay.tls.leaf().expect("a leaf");
    first
        .client(relay.dir.path(), &url)
        .healthz()
        .await
        .expect("the first CA's certificate is served");

    // New files from another CA, then a reload: new connections get the new certificate.
    let files = relay.tls.files().clone();
    let (cert, key) = second.leaf("localhost");
    write(&files.cert, &cert);
    write(&files.key, &key);
    relay.tls.reload().expect("reload");
    assert_ne!(relay.tls.leaf(), Some(old_leaf));
    second
        .client(relay.dir.path(), &url)
        .healthz()
        .await
        .expect("the second CA's certificate is served after the reload");
    let e = first
        .client(relay.dir.path(), &url)
        .healthz()
        .await
        .expect_err("the first CA's certificate is no longer served");
    assert!(certificate_problem(&e).contains("not signed by"), "{e}");

    // A half-written key: the reload fails and the certificate in use stays.
    let current = relay.tls.leaf();
    write(&files.key, "-----BEGIN PRIVATE KEY-----\n");
    let e = relay.tls.reload().expect_err("a broken key file");
    assert!(
        matches!(e, TlsError::BadPem { .. } | TlsError::NoKey(_)),
        "{e:?}"
    );
    assert_eq!(relay.tls.leaf(), current);
    second
        .client(relay.dir.path(), &url)
        .healthz()
        .await
        .expect("still served after a failed reload");
}
