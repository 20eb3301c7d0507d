//! HTTP/1.1 transport to one relay: connecting (TCP, TLS, Unix socket), a bounded pool of
//! kept-alive connections, one safe retry, timeouts and size-capped bodies.
//!
//! Each connection is a hyper `SendRequest` whose connection task is spawned on the caller's
//! runtime. That task owns only the socket and ends as soon as its `SendRequest` is dropped
//! and the connection is idle, so dropping the client (and with it the pool) closes every
//! connection; nothing else needs to track the tasks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::endpoint::{Endpoint, Target};
use crate::error::NetError;

type Sender = http1::SendRequest<Full<Bytes>>;

/// An idle connection older than this is closed rather than reused: middleboxes drop idle
/// connections silently after a few minutes, and a request sent into one would only find out
/// at its timeout.
const IDLE_MAX: Duration = Duration::from_secs(60);

/// How a client connects and how long it waits.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time to open a connection, TLS handshake included (default 5 s).
    pub connect_timeout: Duration,
    /// Time for a whole request, from waiting for a connection to the last byte of the answer
    /// (default 30 s). A stream only gets this long to answer with its headers.
    pub request_timeout: Duration,
    /// A stream that carries nothing, not even a heartbeat (sent after 15 s of quiet), for this
    /// long is taken as dead (default 60 s).
    pub stream_idle_timeout: Duration,
    /// Largest record accepted in a page or stream (default 1 MiB, the relay's blob cap).
    pub record_bytes_max: usize,
    /// Connections open at once for requests; more concurrent requests wait (default 32).
    /// Streams hold their own connection outside this bound.
    pub connections_max: usize,
    /// TLS settings for `https://` relays; `None` is [`crate::tls::default_client_config`]:
    /// the system roots plus `WIRE_CA_FILE`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            stream_idle_timeout: Duration::from_secs(60),
            record_bytes_max: 1 << 20,
            connections_max: 32,
            tls: None,
        }
    }
}

/// One request, kept whole so that it can be sent a second time.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    /// Route and query, e.g. `/v1/slots/{id}/blobs?after=0`.
    pub path: String,
    pub bearer: Option<HeaderValue>,
    pub content_type: Option<&'static str>,
    pub body: Bytes,
    /// Safe to send twice: the relay gives the same outcome (GET, PUT, DELETE; appends, which
    /// it dedupes by content hash; acknowledgements; intros, one pending per sender).
    pub idempotent: bool,
}

impl Call {
    pub fn new(method: Method, path: String) -> Call {
        let idempotent = matches!(method, Method::GET | Method::PUT | Method::DELETE);
        Call {
            method,
            path,
            bearer: None,
            content_type: None,
            body: Bytes::new(),
            idempotent,
        }
    }

    pub fn bearer(mut self, secret: &str) -> Result<Call, NetError> {
        let value = HeaderValue::try_from(format!("Bearer {secret}")).map_err(|_| {
            NetError::BadInput(
                "the token has characters an HTTP header cannot carry; copy it again".into(),
            )
        })?;
        self.bearer = Some(value);
        Ok(self)
    }

    pub fn body(mut self, content_type: &'static str, body: Bytes) -> Call {
        self.content_type = Some(content_type);
        self.body = body;
        self
    }

    pub fn idempotent(mut self, yes: bool) -> Call {
        self.idempotent = yes;
        self
    }
}

/// A response with its body read in full.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// A response whose body is still coming, with the connection it arrives on.
#[derive(Debug)]
pub(crate) struct Streaming {
    pub response: Response<Incoming>,
    /// Held so the connection stays up for as long as the body is read.
    pub sender: Sender,
}

/// Connections to one relay.
#[derive(Debug)]
pub(crate) struct Transport {
    pub endpoint: Endpoint,
    options: ClientOptions,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// Idle connections, each with the time it was last used; the most recent last.
    idle: Mutex<Vec<(Sender, Instant)>>,
    /// One permit per connection in use by a request: bounds connections (in use + idle).
    permits: Arc<Semaphore>,
    user_agent: HeaderValue,
    host: HeaderValue,
}

impl Transport {
    pub fn new(endpoint: Endpoint, options: ClientOptions) -> Result<Transport, NetError> {
        let tls = match &endpoint.target {
            Target::Tcp {
                host, tls: true, ..
            } => {
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                    NetError::BadUrl(format!(
                        "{host:?} cannot be checked against a certificate: {e}"
                    ))
                })?;
                let config = match options.tls.clone() {
                    Some(config) => config,
                    None => crate::tls::default_client_config()?,
                };
                Some((config, name))
            }
            _ => None,
        };
        let host = HeaderValue::try_from(endpoint.authority.as_str()).map_err(|_| {
            NetError::BadUrl(format!("{:?} cannot be a Host header", endpoint.authority))
        })?;
        Ok(Transport {
            permits: Arc::new(Semaphore::new(options.connections_max.max(1))),
            idle: Mutex::new(Vec::new()),
            tls,
            user_agent: HeaderValue::from_static(concat!("wire-net/", env!("CARGO_PKG_VERSION"))),
            host,
            endpoint,
            options,
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    fn url(&self) -> String {
        self.endpoint.base_url.clone()
    }

    fn unreachable(&self, reason: impl Into<String>) -> NetError {
        NetError::Unreachable {
            url: self.url(),
            reason: reason.into(),
        }
    }

    pub fn protocol(&self, problem: impl Into<String>) -> NetError {
        NetError::Protocol {
            url: self.url(),
            problem: problem.into(),
        }
    }

    fn lost(&self, reason: impl std::fmt::Display) -> NetError {
        NetError::ConnectionLost {
            url: self.url(),
            reason: reason.to_string(),
        }
    }

    fn timeout(&self, after: Duration) -> NetError {
        NetError::Timeout {
            url: self.url(),
            after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Sends `call` and reads the whole answer, at most `body_bytes_max` bytes of it, within
    /// the request timeout.
    pub async fn send(&self, call: &Call, body_bytes_max: usize) -> Result<Answer, NetError> {
        let limit = self.options.request_timeout;
        match tokio::time::timeout(limit, self.send_inner(call, body_bytes_max)).await {
            Ok(r) => r,
            Err(_) => Err(self.timeout(limit)),
        }
    }

    async fn send_inner(&self, call: &Call, body_bytes_max: usize) -> Result<Answer, NetError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| self.unreachable("the client is shutting down"))?;
        let (response, sender) = self.exchange(call).await?;
        let (parts, body) = response.into_parts();
        let body = self.collect(body, &parts.headers, body_bytes_max).await?;
        // The answer was read to its end, so the connection is ready for the next request.
        self.put_back(sender, permit);
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends on a pooled connection, or a new one. A pooled connection that turns out to be
    /// broken is dropped, and the request sent again on a new connection, but only if it is
    /// idempotent or provably never left (hyper hands an unsent request back).
    async fn exchange(&self, call: &Call) -> Result<(Response<Incoming>, Sender), NetError> {
        if let Some(mut sender) = self.take_idle().await {
            match sender.try_send_request(self.request(call)).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut e) => {
                    let unsent = e.take_message().is_some();
                    if !(unsent || call.idempotent) {
                        return Err(self.lost(e.into_error()));
                    }
                }
            }
        }
        let mut sender = self.connect().await?;
        match sender.send_request(self.request(call)).await {
            Ok(response) => Ok((response, sender)),
            Err(e) => Err(self.lost(e)),
        }
    }

    /// A stream: a fresh connection of its own, outside the pool, with the request timeout
    /// applying only until the headers arrive.
    pub async fn open_stream(&self, call: &Call) -> Result<Streaming, NetError> {
        let limit = self.options.request_timeout;
        let opened = async {
            let mut sender = self.connect().await?;
            let response = sender
                .send_request(self.request(call))
                .await
                .map_err(|e| self.lost(e))?;
            Ok::<_, NetError>(Streaming { response, sender })
        };
        match tokio::time::timeout(limit, opened).await {
            Ok(r) => r,
            Err(_) => Err(self.timeout(limit)),
        }
    }

    fn request(&self, call: &Call) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(call.body.clone()));
        *req.method_mut() = call.method.clone();
        let path = format!("{}{}", self.endpoint.path_prefix, call.path);
        *req.uri_mut() = path
            .parse()
            .expect("paths are built from checked ids and ASCII route text");
        let h = req.headers_mut();
        h.insert(header::HOST, self.host.clone());
        h.insert(header::USER_AGENT, self.user_agent.clone());
        if let Some(bearer) = &call.bearer {
            h.insert(header::AUTHORIZATION, bearer.clone());
        }
        if let Some(ct) = call.content_type {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        if call.method == Method::POST || call.method == Method::PUT {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(call.body.len()));
        }
        req
    }

    /// The most recently used idle connection that is still open and not too old.
    async fn take_idle(&self) -> Option<Sender> {
        loop {
            let (mut sender, _) = {
                let mut idle = self.idle.lock().ok()?;
                // Closed or too old: dropped (which closes them), all in one pass.
                idle.retain(|(s, since)| since.elapsed() < IDLE_MAX && !s.is_closed());
                idle.pop()?
            };
            // Resolves at once on an idle connection; errors if it closed meanwhile.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn put_back(&self, sender: Sender, permit: OwnedSemaphorePermit) {
        if !sender.is_closed()
            && let Ok(mut idle) = self.idle.lock()
        {
            idle.push((sender, Instant::now()));
        }
        drop(permit);
    }

    /// Opens a connection (TCP with TCP_NODELAY, TLS or Unix socket) and starts its task.
    async fn connect(&self) -> Result<Sender, NetError> {
        let limit = self.options.connect_timeout;
        match tokio::time::timeout(limit, self.connect_inner()).await {
            Ok(r) => r,
            Err(_) => {
                Err(self.unreachable(format!("no connection within {} ms", limit.as_millis())))
            }
        }
    }

    async fn connect_inner(&self) -> Result<Sender, NetError> {
        match &self.endpoint.target {
            Target::Unix { path } => {
                let stream = UnixStream::connect(path)
                    .await
                    .map_err(|e| self.unreachable(format!("socket {}: {e}", path.display())))?;
                self.handshake(stream).await
            }
            Target::Tcp { host, port, .. } => {
                let tcp = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| self.unreachable(e.to_string()))?;
                tcp.set_nodelay(true)
                    .map_err(|e| self.unreachable(format!("cannot set TCP_NODELAY: {e}")))?;
                match &self.tls {
                    None => self.handshake(tcp).await,
                    Some((config, name)) => {
                        let tls = tokio_rustls::TlsConnector::from(config.clone())
                            .connect(name.clone(), tcp)
                            .await
                            .map_err(|e| crate::tls::handshake_error(&self.url(), &e))?;
                        self.handshake(tls).await
                    }
                }
            }
        }
    }

    async fn handshake<T>(&self, io: T) -> Result<Sender, NetError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, connection) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| self.unreachable(format!("HTTP handshake failed: {e}")))?;
        tokio::spawn(async move {
            // Errors here surface on the request that was in flight; an idle connection that
            // the relay closed simply ends.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Reads a whole body, refusing one that declares or grows past `max` bytes.
    pub async fn collect(
        &self,
        mut body: Incoming,
        headers: &hyper::HeaderMap,
        max: usize,
    ) -> Result<Bytes, NetError> {
        let too_large = || {
            self.protocol(format!(
                "the answer is over this client's cap of {max} bytes"
            ))
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut len = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.lost(e))?;
            if let Ok(data) = frame.into_data() {
                len += data.len();
                if len > max {
                    return Err(too_large());
                }
                chunks.push(data);
            }
        }
        Ok(match chunks.len() {
            // The common case: the whole body in one chunk, kept without a copy.
            1 => chunks.pop().unwrap_or_default(),
            _ => {
                let mut out = BytesMut::with_capacity(len);
                for c in chunks {
                    out.extend_from_slice(&c);
                }
                out.freeze()
            }
        })
    }
}

/// The relay's error answer as a [`NetError::Relay`]: `{"error", "code"}` when it is the
/// relay's JSON, else the status with a prefix of the body.
pub(crate) fn relay_error(answer: &Answer) -> NetError {
    #[derive(serde::Deserialize)]
    struct Body {
        error: String,
        code: String,
    }
    let retry_after = answer
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let status = answer.status.as_u16();
    if answer.status.is_redirection()
        && let Some(to) = header_str(&answer.headers, &header::LOCATION)
    {
        return NetError::Relay {
            status,
            code: format!("http_{status}"),
            message: format!("the relay URL redirects to {to}; use the relay's own URL"),
            retry_after,
        };
    }
    match serde_json::from_slice::<Body>(&answer.body) {
        Ok(b) => NetError::Relay {
            status,
            code: b.code,
            message: b.error,
            retry_after,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(&answer.body);
            let text: String = text.chars().take(200).collect();
            let reason = answer.status.canonical_reason().unwrap_or("error");
            NetError::Relay {
                status,
                code: format!("http_{status}"),
                message: if text.trim().is_empty() {
                    format!("{status} {reason}")
                } else {
                    format!("{status} {reason}: {}", text.trim())
                },
                retry_after,
            }
        }
    }
}

/// A header's value as text, if present.
pub(crate) fn header_str<'a>(headers: &'a hyper::HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
