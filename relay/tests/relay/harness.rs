//! A relay on temporary storage, and a small client for in-process requests.

use std::sync::Arc;
use std::thread::JoinHandle;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use wire_relay::api::router;
use wire_relay::app::{App, Config};

pub const URL: &str = "http://relay.test:8771";
pub const DOMAIN: &str = "relay.test:8771";

/// One relay and its storage; dropping it stops the commit thread.
pub struct Relay {
    live: Option<(Arc<App>, Router, JoinHandle<()>)>,
    pub dir: tempfile::TempDir,
}

/// A relay's configuration for the tests: the defaults, on the store the tests run on (redb in
/// `data_dir`, or with `WIRE_RELAY_TEST_STORE=postgres` a database of the test server named
/// after `data_dir`, so that reopening the same directory reopens the same data).
pub fn config(url: &str, data_dir: std::path::PathBuf) -> Config {
    let mut config = Config::new(url, data_dir).expect("config");
    if crate::pg::enabled() {
        config.store_url = Some(crate::pg::database_for(&config.data_dir));
    }
    config
}

impl Relay {
    pub fn new() -> Relay {
        Relay::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut Config)) -> Relay {
        let dir = tempfile::tempdir().expect("tempdir");
        Relay::open_in(dir, tweak)
    }

    pub fn open_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Relay {
        let mut config = config(URL, dir.path().join("data"));
        tweak(&mut config);
        let (app, thread) = App::open(config).expect("open relay");
        Relay {
            live: Some((app.clone(), router(app), thread)),
            dir,
        }
    }

    pub fn app(&self) -> &Arc<App> {
        &self.live.as_ref().expect("relay is running").0
    }

    /// Stops this relay (joining its commit thread) and opens a new one on the same files.
    pub fn restart(mut self) -> Relay {
        self.stop();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        Relay::open_in(dir, |_| {})
    }

    fn stop(&mut self) {
        if let Some((app, router, thread)) = self.live.take() {
            drop(router);
            drop(app);
            thread.join().expect("commit thread");
        }
    }

    pub async fn call(&self, req: Request<Body>) -> Resp {
        send(&self.live.as_ref().expect("relay is running").1, req).await
    }

    pub fn req(&self, method: Method, path: &str) -> Req {
        Req {
            builder: Request::builder().method(method).uri(path),
            body: Body::empty(),
        }
    }

    /// Allocates a slot: (slot id, owner token).
    pub async fn slot(&self) -> (String, String) {
        let r = self.req(Method::POST, "/v1/slots").send(self).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let v = r.json();
        (
            v["slot"].as_str().expect("slot").to_owned(),
            v["token"].as_str().expect("token").to_owned(),
        )
    }

    /// Mints a capability: (cap id, cap).
    pub async fn cap(&self, slot: &str, owner: &str) -> (String, String) {
        let r = self
            .req(Method::POST, &format!("/v1/slots/{slot}/caps"))
            .bearer(owner)
            .send(self)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let v = r.json();
        (
            v["cap_id"].as_str().expect("cap_id").to_owned(),
            v["cap"].as_str().expect("cap").to_owned(),
        )
    }

    pub async fn append(&self, slot: &str, cap: &str, blob: &[u8]) -> Resp {
        self.req(Method::POST, &format!("/v1/slots/{slot}/blobs"))
            .bearer(cap)
            .octets(blob.to_vec())
            .send(self)
            .await
    }

    /// Every blob after `after`, following `wire-more`.
    pub async fn read_all(&self, slot: &str, owner: &str, after: u64) -> Vec<(u64, Bytes)> {
        let mut out = Vec::new();
        let mut after = after;
        loop {
            let r = self
                .req(
                    Method::GET,
                    &format!("/v1/slots/{slot}/blobs?after={after}"),
                )
                .bearer(owner)
                .send(self)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let page = wire_relay::frames::decode_records(&r.body, 1 << 20).expect("records");
            let more = r.headers.get("wire-more").is_some_and(|v| v == "1");
            if let Some((last, _)) = page.last() {
                after = *last;
            }
            out.extend(page);
            if !more {
                return out;
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A request under construction.
pub struct Req {
    builder: axum::http::request::Builder,
    body: Body,
}

impl Req {
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn bearer(self, token: &str) -> Req {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn source_ip(mut self, ip: &str) -> Req {
        let addr: std::net::SocketAddr = format!("{ip}:40000").parse().expect("addr");
        self.builder = self.builder.extension(ConnectInfo(addr));
        self
    }

    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Req {
        self.builder = self
            .builder
            .header("content-type", content_type)
            .header("content-length", body.len());
        self.body = Body::from(body);
        self
    }

    pub fn octets(self, body: Vec<u8>) -> Req {
        self.body("application/octet-stream", body)
    }

    pub fn json(self, value: &Value) -> Req {
        self.body("application/json", serde_json::to_vec(value).expect("json"))
    }

    pub fn build(self) -> Request<Body> {
        self.builder.body(self.body).expect("request")
    }

    pub async fn send(self, relay: &Relay) -> Resp {
        relay.call(self.build()).await
    }
}

/// A whole response.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a JSON error with this status and code, and returns its body.
    pub fn error(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        let v = self.json();
        assert_eq!(v["code"], code, "body: {v}");
        assert!(
            v["error"].as_str().is_some_and(|s| !s.is_empty()),
            "error message missing: {v}"
        );
        v
    }
}

pub async fn send(router: &Router, req: Request<Body>) -> Resp {
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}
