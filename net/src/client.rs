//! [`RelayClient`]: every route of the relay HTTP API (PROTOCOL.md §18) as one async call, and
//! [`RecordStream`] for a slot's live stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::Incoming;
use hyper::header::{self, HeaderName};
use serde::de::DeserializeOwned;

use crate::endpoint::Endpoint;
use crate::error::{NetError, RelayError};
use crate::frames::{self, RECORDS_CONTENT_TYPE, RecordReader};
use crate::http::{self, Answer, Call, ClientOptions, Transport};
use crate::types::{
    Acked, Appended, CapGrant, Claimed, IntroQueued, Page, Record, RelayInfo, Resolved,
    ResolvedWire, SlotGrant, SlotInfo,
};

/// Cap on a JSON answer.
pub const JSON_BYTES_MAX: usize = 1 << 20;
/// Cap on a page of records (the relay sends about 4 MiB).
pub const PAGE_BYTES_MAX: usize = 32 << 20;
/// The content type of an intro envelope (PROTOCOL.md §17).
pub const INTRO_CONTENT_TYPE: &str = "application/vnd.wire.intro";

/// A client for one relay; cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct RelayClient {
    t: Arc<Transport>,
}

impl std::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayClient")
            .field("base_url", &self.t.endpoint.base_url)
            .finish_non_exhaustive()
    }
}

impl RelayClient {
    /// A client for the relay at `base_url` (`http://host[:port]`, `https://host[:port]`, or
    /// `unix:/absolute/path.sock`; a path prefix after the host is kept). Checks the URL; opens
    /// no connection.
    pub fn new(base_url: &str) -> Result<RelayClient, NetError> {
        RelayClient::with_options(base_url, ClientOptions::default())
    }

    pub fn with_options(base_url: &str, options: ClientOptions) -> Result<RelayClient, NetError> {
        let endpoint = Endpoint::parse(base_url)?;
        Ok(RelayClient {
            t: Arc::new(Transport::new(endpoint, options)?),
        })
    }

    /// The base URL, normalised (lower-case scheme and host, no trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.t.endpoint.base_url
    }

    /// The base URL's `host[:port]`, lower-cased; `None` for a `unix:` URL. This is the
    /// relay's domain (PROTOCOL.md §18) when the client uses the relay's public URL; the
    /// relay's own word is [`RelayInfo::domain`] from [`RelayClient::info`].
    pub fn domain(&self) -> Option<&str> {
        self.t.endpoint.domain.as_deref()
    }

    /// `GET /v1/relay`: what the relay is, its domain and its limits.
    pub async fn info(&self) -> Result<RelayInfo, NetError> {
        self.json(Call::new(Method::GET, "/v1/relay".into())).await
    }

    /// `GET /healthz`.
    pub async fn healthz(&self) -> Result<(), NetError> {
        self.ok(Call::new(Method::GET, "/healthz".into()), JSON_BYTES_MAX)
            .await
            .map(drop)
    }

    /// `POST /v1/slots`: a new slot and its owner token. Not retried on a broken connection
    /// (a retry could allocate a second slot).
    pub async fn allocate_slot(&self) -> Result<SlotGrant, NetError> {
        self.json(Call::new(Method::POST, "/v1/slots".into())).await
    }

    /// `GET /v1/slots/{slot}` with the owner token.
    pub async fn slot_info(&self, slot: &str, token: &str) -> Result<SlotInfo, NetError> {
        let call = Call::new(Method::GET, format!("/v1/slots/{}", id(slot)?)).bearer(token)?;
        self.json(call).await
    }

    /// `POST /v1/slots/{slot}/caps`: a new append capability. Not retried on a broken
    /// connection.
    pub async fn mint_cap(&self, slot: &str, token: &str) -> Result<CapGrant, NetError> {
        let call =
            Call::new(Method::POST, format!("/v1/slots/{}/caps", id(slot)?)).bearer(token)?;
        self.json(call).await
    }

    /// `DELETE /v1/slots/{slot}/caps/{cap_id}`: the capability fails from the next append on.
    pub async fn revoke_cap(&self, slot: &str, token: &str, cap_id: &str) -> Result<(), NetError> {
        let call = Call::new(
            Method::DELETE,
            format!("/v1/slots/{}/caps/{}", id(slot)?, id(cap_id)?),
        )
        .bearer(token)?;
        self.ok(call, JSON_BYTES_MAX).await.map(drop)
    }

    /// `POST /v1/slots/{slot}/blobs` with a capability or the owner token. Success means the
    /// blob is on the relay's disk. Safe to repeat: the relay answers the same `seq` with
    /// `stored: false` for bytes it already holds.
    pub async fn append(
        &self,
        slot: &str,
        credential: &str,
        blob: Bytes,
    ) -> Result<Appended, NetError> {
        let call = Call::new(Method::POST, format!("/v1/slots/{}/blobs", id(slot)?))
            .bearer(credential)?
            .body("application/octet-stream", blob)
            .idempotent(true);
        self.json(call).await
    }

    /// `POST /v1/slots/{slot}/batch`: one result per blob, in order. The whole call fails
    /// (`NetError::Relay`) when the batch is malformed or no blob was accepted.
    pub async fn append_batch(
        &self,
        slot: &str,
        credential: &str,
        blobs: &[Bytes],
    ) -> Result<Vec<Result<Appended, RelayError>>, NetError> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Item {
            Ok(Appended),
            Err(RelayError),
        }
        #[derive(serde::Deserialize)]
        struct Results {
            results: Vec<Item>,
        }
        if blobs.is_empty() {
            return Err(NetError::BadInput("a batch needs at least one blob".into()));
        }
        let body = frames::encode_blobs(blobs.iter().map(|b| b.as_ref()));
        let call = Call::new(Method::POST, format!("/v1/slots/{}/batch", id(slot)?))
            .bearer(credential)?
            .body(frames::BLOBS_CONTENT_TYPE, Bytes::from(body))
            .idempotent(true);
        let results: Results = self.json(call).await?;
        if results.results.len() != blobs.len() {
            return Err(self.t.protocol(format!(
                "a batch of {} blobs got {} results",
                blobs.len(),
                results.results.len()
            )));
        }
        Ok(results
            .results
            .into_iter()
            .map(|item| match item {
                Item::Ok(a) => Ok(a),
                Item::Err(e) => Err(e),
            })
            .collect())
    }

    /// `GET /v1/slots/{slot}/blobs?after=N&limit=M` with the owner token: blobs with
    /// `seq > after`, at most `limit` (the relay caps it too).
    pub async fn read(
        &self,
        slot: &str,
        token: &str,
        after: u64,
        limit: u32,
    ) -> Result<Page, NetError> {
        let path = format!("/v1/slots/{}/blobs?after={after}&limit={limit}", id(slot)?);
        self.page(Call::new(Method::GET, path).bearer(token)?, after)
            .await
    }

    /// `POST /v1/slots/{slot}/ack`: deletes every blob with `seq <= through`.
    pub async fn ack(&self, slot: &str, token: &str, through: u64) -> Result<Acked, NetError> {
        self.ack_at(format!("/v1/slots/{}/ack", id(slot)?), token, through)
            .await
    }

    /// `GET /v1/slots/{slot}/stream?after=N`: the backlog after `after`, then each blob as it
    /// commits. Only reaching the headers is timed; then the stream lasts until the relay ends
    /// it or it carries nothing, not even a heartbeat, for
    /// [`ClientOptions::stream_idle_timeout`].
    pub async fn stream(
        &self,
        slot: &str,
        token: &str,
        after: u64,
    ) -> Result<RecordStream, NetError> {
        let call = Call::new(
            Method::GET,
            format!("/v1/slots/{}/stream?after={after}", id(slot)?),
        )
        .bearer(token)?;
        let opened = self.t.open_stream(&call).await?;
        let (parts, body) = opened.response.into_parts();
        if !parts.status.is_success() {
            let body = self.t.collect(body, &parts.headers, JSON_BYTES_MAX).await?;
            return Err(http::relay_error(&Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            }));
        }
        self.expect_records(&parts.headers)?;
        let options = self.t.options();
        Ok(RecordStream {
            body,
            _sender: opened.sender,
            reader: RecordReader::new(options.record_bytes_max),
            last_seq: after,
            idle_timeout: options.stream_idle_timeout,
            url: self.t.endpoint.base_url.clone(),
            done: false,
        })
    }

    /// `GET /v1/slots/{slot}/intros?after=N&limit=M`: records whose bytes are intro envelopes.
    pub async fn intros(
        &self,
        slot: &str,
        token: &str,
        after: u64,
        limit: u32,
    ) -> Result<Page, NetError> {
        let path = format!("/v1/slots/{}/intros?after={after}&limit={limit}", id(slot)?);
        self.page(Call::new(Method::GET, path).bearer(token)?, after)
            .await
    }

    /// `POST /v1/slots/{slot}/intros/ack`.
    pub async fn ack_intros(
        &self,
        slot: &str,
        token: &str,
        through: u64,
    ) -> Result<Acked, NetError> {
        self.ack_at(
            format!("/v1/slots/{}/intros/ack", id(slot)?),
            token,
            through,
        )
        .await
    }

    /// `PUT /v1/handles/{nick}` with the slot's owner token; `card_json` is the signed card
    /// (PROTOCOL.md §16) as JSON text, sent as it is. The handle is not listed in the
    /// relay's phonebook (a listed one becomes unlisted).
    pub async fn claim(
        &self,
        nick: &str,
        slot: &str,
        token: &str,
        card_json: &str,
    ) -> Result<Claimed, NetError> {
        self.claim_as(nick, slot, token, card_json, None).await
    }

    /// As [`claim`](Self::claim), and lists the handle in the relay's phonebook with a
    /// one-line `profile` (PROTOCOL.md §18.4, "Listing"). A relay older than the phonebook
    /// refuses the claim with `bad_json`.
    pub async fn claim_listed(
        &self,
        nick: &str,
        slot: &str,
        token: &str,
        card_json: &str,
        profile: &str,
    ) -> Result<Claimed, NetError> {
        self.claim_as(nick, slot, token, card_json, Some(profile))
            .await
    }

    async fn claim_as(
        &self,
        nick: &str,
        slot: &str,
        token: &str,
        card_json: &str,
        profile: Option<&str>,
    ) -> Result<Claimed, NetError> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            slot: &'a str,
            card: &'a serde_json::value::RawValue,
            // Sent only when listing, so unlisted claims still suit relays that predate it.
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            listed: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            profile: Option<&'a str>,
        }
        let card: &serde_json::value::RawValue = serde_json::from_str(card_json)
            .map_err(|e| NetError::BadInput(format!("the card is not JSON: {e}")))?;
        let body = serde_json::to_vec(&Body {
            slot: id(slot)?,
            card,
            listed: profile.is_some(),
            profile: profile.filter(|p| !p.is_empty()),
        })
        .map_err(|e| NetError::BadInput(format!("cannot encode the claim: {e}")))?;
        let call = Call::new(Method::PUT, format!("/v1/handles/{}", nick_of(nick)?))
            .bearer(token)?
            .body("application/json", Bytes::from(body));
        self.json(call).await
    }

    /// `POST /v1/handles/{nick}/intro`: leaves a signed intro envelope (PROTOCOL.md §17). Safe
    /// to repeat: a sender has one pending intro per slot, and a repeat replaces it.
    pub async fn send_intro(&self, nick: &str, envelope: Bytes) -> Result<IntroQueued, NetError> {
        let call = Call::new(
            Method::POST,
            format!("/v1/handles/{}/intro", nick_of(nick)?),
        )
        .body(INTRO_CONTENT_TYPE, envelope)
        .idempotent(true);
        self.json(call).await
    }

    /// `PUT /v1/pair/{slot}/{side}/{index}`: writes one message of a pairing by code (write
    /// once; the same bytes again are a no-op, so the call is safe to repeat).
    pub async fn pair_put(
        &self,
        slot: &str,
        side: &str,
        index: u8,
        bytes: Bytes,
    ) -> Result<(), NetError> {
        let call = Call::new(
            Method::PUT,
            format!("/v1/pair/{}/{}/{index}", id(slot)?, id(side)?),
        )
        .body("application/octet-stream", bytes)
        .idempotent(true);
        self.ok(call, JSON_BYTES_MAX).await.map(drop)
    }

    /// `GET /v1/pair/{slot}/{side}/{index}?wait_ms=N`: the message if written, waiting up to
    /// `wait_ms` (the relay caps it at 25 s); `None` when it is not there yet.
    pub async fn pair_get(
        &self,
        slot: &str,
        side: &str,
        index: u8,
        wait_ms: u64,
    ) -> Result<Option<Bytes>, NetError> {
        let call = Call::new(
            Method::GET,
            format!(
                "/v1/pair/{}/{}/{index}?wait_ms={wait_ms}",
                id(slot)?,
                id(side)?
            ),
        )
        .idempotent(true);
        let answer = self.ok(call, 64 * 1024).await?;
        if answer.status == hyper::StatusCode::NO_CONTENT {
            Ok(None)
        } else {
            Ok(Some(answer.body))
        }
    }

    /// `DELETE /v1/pair/{slot}`: gives up a pairing, so the other side stops waiting.
    pub async fn pair_close(&self, slot: &str) -> Result<(), NetError> {
        let call = Call::new(Method::DELETE, format!("/v1/pair/{}", id(slot)?)).idempotent(true);
        self.ok(call, JSON_BYTES_MAX).await.map(drop)
    }

    /// `GET /.well-known/wire/agent?handle=NICK`: who holds `nick` on this relay, with the
    /// signed card verbatim. Verify the card before trusting any of it.
    pub async fn resolve(&self, nick: &str) -> Result<Resolved, NetError> {
        let call = Call::new(
            Method::GET,
            format!("/.well-known/wire/agent?handle={}", nick_of(nick)?),
        );
        let wire: ResolvedWire = self.json(call).await?;
        Ok(wire.into())
    }

    // -----------------------------------------------------------------------------------------

    /// Sends and returns the answer if its status is 2xx, else the relay's error.
    async fn ok(&self, call: Call, body_bytes_max: usize) -> Result<Answer, NetError> {
        let answer = self.t.send(&call, body_bytes_max).await?;
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(http::relay_error(&answer))
        }
    }

    async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, NetError> {
        let answer = self.ok(call.clone(), JSON_BYTES_MAX).await?;
        serde_json::from_slice(&answer.body).map_err(|e| {
            self.t.protocol(format!(
                "{} {} answered JSON of another shape ({e})",
                call.method,
                route(&call.path)
            ))
        })
    }

    async fn ack_at(&self, path: String, token: &str, through: u64) -> Result<Acked, NetError> {
        let body = format!("{{\"through\":{through}}}");
        let call = Call::new(Method::POST, path)
            .bearer(token)?
            .body("application/json", Bytes::from(body))
            .idempotent(true);
        self.json(call).await
    }

    async fn page(&self, call: Call, after: u64) -> Result<Page, NetError> {
        let answer = self.ok(call, PAGE_BYTES_MAX).await?;
        self.expect_records(&answer.headers)?;
        let number = |name: &'static str| {
            http::header_str(&answer.headers, &HeaderName::from_static(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    self.t
                        .protocol(format!("a page came without a numeric {name} header"))
                })
        };
        let last_seq = number("wire-last-seq")?;
        let more = match number("wire-more")? {
            0 => false,
            1 => true,
            n => return Err(self.t.protocol(format!("wire-more is {n}, not 0 or 1"))),
        };
        let items = frames::decode_records(&answer.body, self.t.options().record_bytes_max)
            .map_err(|e| self.t.protocol(format!("a page does not decode: {e}")))?;
        if let Some((seq, _)) = items
            .iter()
            .find(|(seq, _)| *seq <= after || *seq > last_seq)
        {
            return Err(self.t.protocol(format!(
                "a page asked for after {after} holds seq {seq} (the relay's last is {last_seq})"
            )));
        }
        Ok(Page {
            records: items
                .into_iter()
                .map(|(seq, bytes)| Record { seq, bytes })
                .collect(),
            last_seq,
            more,
        })
    }

    fn expect_records(&self, headers: &hyper::HeaderMap) -> Result<(), NetError> {
        let ct = http::header_str(headers, &header::CONTENT_TYPE).unwrap_or_default();
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case(RECORDS_CONTENT_TYPE) {
            Ok(())
        } else {
            Err(self.t.protocol(format!(
                "expected {RECORDS_CONTENT_TYPE}, got content type {ct:?}"
            )))
        }
    }
}

/// The route of a path, for messages: no query, no ids.
fn route(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    path.split('/')
        .map(|seg| {
            if seg.len() >= 16 && seg.bytes().all(|b| b.is_ascii_hexdigit()) {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A slot or capability id as a path segment: refuses anything a path cannot carry as is.
/// The relay checks the exact form (PROTOCOL.md §18.1).
fn id(s: &str) -> Result<&str, NetError> {
    if !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(s)
    } else {
        Err(NetError::BadInput(format!(
            "{s:?} is not a slot or capability id (lower-case hex)"
        )))
    }
}

fn nick_of(nick: &str) -> Result<&str, NetError> {
    wire_log::identity::check_handle(nick)
        .map_err(|e| NetError::BadInput(format!("{nick:?} is not a nick: {e}")))?;
    Ok(nick)
}

/// A slot's live stream of records (`GET …/stream`). Holds its own connection; dropping it
/// closes the connection.
pub struct RecordStream {
    body: Incoming,
    /// Keeps the connection's request side alive while the body is read.
    _sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
    reader: RecordReader,
    last_seq: u64,
    idle_timeout: Duration,
    url: String,
    done: bool,
}

impl std::fmt::Debug for RecordStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream")
            .field("url", &self.url)
            .field("last_seq", &self.last_seq)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl RecordStream {
    /// The next record, skipping heartbeats. `None` once the relay has ended the stream cleanly
    /// (it was cut off or the relay is shutting down: reconnect with `after` =
    /// [`RecordStream::last_seq`]) or after an error has been returned. Cancel-safe: dropping
    /// the future loses nothing.
    pub async fn next(&mut self) -> Option<Result<Record, NetError>> {
        if self.done {
            return None;
        }
        let r = self.next_inner().await;
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }

    /// The sequence number of the last record returned (or the `after` the stream started at).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    async fn next_inner(&mut self) -> Option<Result<Record, NetError>> {
        loop {
            match self.reader.next_record() {
                Ok(Some((seq, bytes))) => {
                    if seq <= self.last_seq {
                        return Some(Err(self.protocol(format!(
                            "the stream sent seq {seq} after {}",
                            self.last_seq
                        ))));
                    }
                    self.last_seq = seq;
                    return Some(Ok(Record { seq, bytes }));
                }
                Ok(None) => {}
                Err(e) => return Some(Err(self.protocol(format!("bad record: {e}")))),
            }
            let frame = match tokio::time::timeout(self.idle_timeout, self.body.frame()).await {
                Err(_) => {
                    return Some(Err(NetError::Timeout {
                        url: self.url.clone(),
                        after_ms: u64::try_from(self.idle_timeout.as_millis()).unwrap_or(u64::MAX),
                    }));
                }
                Ok(None) if self.reader.is_clean() => return None,
                Ok(None) => {
                    return Some(Err(
                        self.protocol("the stream ended in the middle of a record")
                    ));
                }
                Ok(Some(Err(e))) => {
                    return Some(Err(NetError::ConnectionLost {
                        url: self.url.clone(),
                        reason: e.to_string(),
                    }));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.reader.feed(&data);
            }
        }
    }

    fn protocol(&self, problem: impl Into<String>) -> NetError {
        NetError::Protocol {
            url: self.url.clone(),
            problem: problem.into(),
        }
    }
}
