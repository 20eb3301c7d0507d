//! The bench's HTTP client, its load generation and what it reads of the relay while a load
//! runs (CPU, writes, `/metrics`).

use super::*;

// ---------------------------------------------------------------------------------------------
// The HTTP client

/// One keep-alive HTTP/1.1 connection.
pub(super) struct Client {
    pub(super) send: SendRequest<Full<Bytes>>,
    pub(super) host: String,
}

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

pub(super) fn expect(r: &Reply, status: StatusCode, what: &str) -> anyhow::Result<()> {
    if r.status == status {
        Ok(())
    } else {
        bail!(
            "{what}: expected {status}, got {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
        )
    }
}

impl Client {
    pub(super) async fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to the relay at {addr}"))?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client {
            send,
            host: addr.to_string(),
        })
    }

    pub(super) async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(Full::new(body))?;
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers: parts.headers,
            body,
        })
    }

    pub(super) async fn alloc_slot(&mut self) -> anyhow::Result<(String, String)> {
        let r = self
            .call(Method::POST, "/v1/slots", None, None, Bytes::new())
            .await?;
        expect(&r, StatusCode::CREATED, "POST /v1/slots")?;
        let v: serde_json::Value = serde_json::from_slice(&r.body)?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|s| s.as_str())
                .map(str::to_owned)
                .with_context(|| format!("POST /v1/slots: no {k:?} in the reply"))
        };
        Ok((field("slot")?, field("token")?))
    }

    pub(super) async fn append_one(
        &mut self,
        slot: &str,
        token: &str,
        blob: Bytes,
    ) -> anyhow::Result<()> {
        let r = self
            .call(
                Method::POST,
                &format!("/v1/slots/{slot}/blobs"),
                Some(token),
                Some("application/octet-stream"),
                blob,
            )
            .await?;
        expect(&r, StatusCode::CREATED, "POST blobs")
    }

    /// Appends a batch body; the number of blobs the relay stored.
    pub(super) async fn append_batch(
        &mut self,
        slot: &str,
        token: &str,
        body: Bytes,
    ) -> anyhow::Result<u64> {
        let r = self
            .call(
                Method::POST,
                &format!("/v1/slots/{slot}/batch"),
                Some(token),
                Some(wire_relay::frames::BLOBS_CONTENT_TYPE),
                body,
            )
            .await?;
        expect(&r, StatusCode::OK, "POST batch")?;
        Ok(count(&r.body, b"\"stored\":true"))
    }

    pub(super) async fn slot_json(
        &mut self,
        slot: &str,
        token: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let r = self
            .call(
                Method::GET,
                &format!("/v1/slots/{slot}"),
                Some(token),
                None,
                Bytes::new(),
            )
            .await?;
        expect(&r, StatusCode::OK, "GET slot")?;
        Ok(serde_json::from_slice(&r.body)?)
    }

    pub(super) async fn slot_last_seq(&mut self, slot: &str, token: &str) -> anyhow::Result<u64> {
        let v = self.slot_json(slot, token).await?;
        v.get("last_seq")
            .and_then(serde_json::Value::as_u64)
            .context("GET slot: no last_seq")
    }

    pub(super) async fn slot_blobs(&mut self, slot: &str, token: &str) -> anyhow::Result<u64> {
        let v = self.slot_json(slot, token).await?;
        v.get("blobs")
            .and_then(serde_json::Value::as_u64)
            .context("GET slot: no blobs")
    }

    pub(super) async fn read_one(
        &mut self,
        slot: &str,
        token: &str,
        after: u64,
    ) -> anyhow::Result<()> {
        let r = self
            .call(
                Method::GET,
                &format!("/v1/slots/{slot}/blobs?after={after}&limit=1"),
                Some(token),
                None,
                Bytes::new(),
            )
            .await?;
        expect(&r, StatusCode::OK, "GET blobs")?;
        if r.body.len() < 13 {
            bail!("GET blobs after {after}: no record in the reply");
        }
        Ok(())
    }

    /// Reads a whole slot page by page; the number of blobs read.
    pub(super) async fn read_all(&mut self, slot: &str, token: &str) -> anyhow::Result<usize> {
        let mut after = 0u64;
        let mut n = 0;
        loop {
            let r = self
                .call(
                    Method::GET,
                    &format!("/v1/slots/{slot}/blobs?after={after}"),
                    Some(token),
                    None,
                    Bytes::new(),
                )
                .await?;
            expect(&r, StatusCode::OK, "GET blobs")?;
            let records = wire_relay::frames::decode_records(&r.body, 1 << 20)
                .map_err(|e| anyhow::anyhow!("GET blobs: {e}"))?;
            n += records.len();
            let more = r.headers.get("wire-more").is_some_and(|v| v == "1");
            match records.last() {
                Some((seq, _)) if more => after = *seq,
                _ => return Ok(n),
            }
        }
    }
}

pub(super) fn count(hay: &[u8], needle: &[u8]) -> u64 {
    hay.windows(needle.len()).filter(|w| *w == needle).count() as u64
}

// ---------------------------------------------------------------------------------------------
// Load generation

/// A small, fast PRNG (splitmix64): distinct, incompressible blob contents without a dependency.
pub(super) struct Mix(u64);

impl Mix {
    pub(super) fn new(a: u64, b: u64) -> Mix {
        Mix(a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.rotate_left(32) ^ 0xD1B5_4A32_D192_ED03)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

pub(super) fn nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A blob whose first 16 bytes are (stream, counter), so no two blobs of one run are equal; the
/// rest is random.
pub(super) fn random_blob(stream: u64, counter: u64, len: usize) -> Bytes {
    let mut b = vec![0u8; len.max(16)];
    Mix::new(stream ^ nanos_now(), counter).fill(&mut b[16..]);
    b[..8].copy_from_slice(&stream.to_be_bytes());
    b[8..16].copy_from_slice(&counter.to_be_bytes());
    b.truncate(len.max(1));
    Bytes::from(b)
}

/// A batch body (`application/vnd.wire.blobs`) of `n` distinct random blobs.
pub(super) fn random_batch(stream: u64, request: u64, n: usize, len: usize) -> Bytes {
    let mut mix = Mix::new(stream ^ nanos_now(), request);
    let mut out = Vec::with_capacity(n * (len + 4));
    let mut blob = vec![0u8; len.max(1)];
    for i in 0..n as u64 {
        mix.fill(&mut blob);
        let head = (request << 24 | i).to_be_bytes();
        let k = head.len().min(blob.len());
        blob[..k].copy_from_slice(&head[..k]);
        out.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        out.extend_from_slice(&blob);
    }
    Bytes::from(out)
}

/// Fills one slot with `n` more blobs in big batches from a few connections.
pub(super) async fn fill(
    addr: SocketAddr,
    slot: &str,
    token: &str,
    n: u64,
    blob_bytes: usize,
    stream: u64,
) -> anyhow::Result<()> {
    let requests = n.div_ceil(FILL_BATCH) as usize;
    let (slot, token) = (Arc::new(slot.to_owned()), Arc::new(token.to_owned()));
    let stored = parallel(addr, FILL_CLIENTS, requests, move |mut c, i| {
        let (slot, token) = (slot.clone(), token.clone());
        async move {
            let size = FILL_BATCH.min(n - i as u64 * FILL_BATCH) as usize;
            let body = random_batch(stream, i as u64, size, blob_bytes);
            let stored = c.append_batch(&slot, &token, body).await?;
            Ok((c, stored))
        }
    })
    .await?;
    let total: u64 = stored.iter().sum();
    if total != n {
        bail!("filling stored {total} blobs of {n}");
    }
    Ok(())
}

/// Runs `n` jobs over `clients` connections, each job taking the next index; results in order.
pub(super) async fn parallel<R, F, Fut>(
    addr: SocketAddr,
    clients: usize,
    n: usize,
    f: F,
) -> anyhow::Result<Vec<R>>
where
    R: Send + 'static,
    F: Fn(Client, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<(Client, R)>> + Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients.min(n.max(1)) {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= n {
                    return anyhow::Ok(out);
                }
                let (back, r) = f(c, i).await?;
                c = back;
                out.push((i, r));
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

/// What to watch on the relay during a timed run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    pub(super) pid: u32,
    /// The relay's commit threads (one, or with several append lanes one that starts them
    /// and one per lane).
    pub(super) commit_tids: [Option<u32>; COMMIT_THREADS_MAX],
    pub(super) clk: f64,
}

impl Probe {
    pub(super) fn of(relay: &Relay, clk: f64) -> Probe {
        Probe {
            pid: relay.pid,
            commit_tids: commit_threads(relay.pid),
            clk,
        }
    }
}

/// Most commit threads a relay runs (one, plus one per append lane, at most 8).
pub(super) const COMMIT_THREADS_MAX: usize = 9;

/// The relay's group-commit threads (named `wire-relay-commit…`, shown cut to 15 bytes).
pub(super) fn commit_threads(pid: u32) -> [Option<u32>; COMMIT_THREADS_MAX] {
    let mut tids = [None; COMMIT_THREADS_MAX];
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return tids;
    };
    let found = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|c| c.starts_with("wire-relay-com"))
        });
    for (slot, tid) in tids.iter_mut().zip(found) {
        *slot = Some(tid);
    }
    tids
}

/// The relay's counters, I/O and both processes' CPU at one moment.
pub(super) struct Snapshot {
    pub(super) metrics: HashMap<String, f64>,
    pub(super) relay_ticks: u64,
    pub(super) commit_ticks: u64,
    pub(super) self_ticks: u64,
    /// `wchar` and `write_bytes` of the relay, from `/proc/<pid>/io`.
    pub(super) relay_io: (u64, u64),
    pub(super) at: Instant,
}

impl Snapshot {
    pub(super) async fn take(c: &mut Client, probe: Probe) -> anyhow::Result<Snapshot> {
        let pid = probe.pid.to_string();
        let (relay_ticks, self_ticks, relay_io) = (cpu_ticks(&pid), cpu_ticks("self"), io(&pid));
        let commit_ticks = probe
            .commit_tids
            .iter()
            .flatten()
            .map(|tid| cpu_ticks(&format!("{pid}/task/{tid}")))
            .sum();
        let at = Instant::now();
        let metrics = c.metrics().await?;
        Ok(Snapshot {
            metrics,
            relay_ticks,
            commit_ticks,
            self_ticks,
            relay_io,
            at,
        })
    }
}

/// What happened on the relay between two snapshots.
pub(super) struct Delta {
    pub(super) secs: f64,
    pub(super) commits: f64,
    pub(super) appends_per_commit: f64,
    pub(super) commit_s: f64,
    pub(super) queued_s: f64,
    pub(super) relay_cpu: f64,
    pub(super) commit_cpu: f64,
    pub(super) self_cpu: f64,
    pub(super) wchar_per_commit: f64,
    pub(super) written_per_commit: f64,
}

impl Delta {
    pub(super) fn between(a: &Snapshot, b: &Snapshot, probe: Probe) -> Delta {
        let d = |name: &str| {
            b.metrics.get(name).copied().unwrap_or(0.0)
                - a.metrics.get(name).copied().unwrap_or(0.0)
        };
        let secs = (b.at - a.at).as_secs_f64().max(1e-9);
        let commits = d("wire_relay_commit_batch_size_count");
        let per = commits.max(1.0);
        Delta {
            secs,
            commits,
            appends_per_commit: d("wire_relay_commit_batch_size_sum") / per,
            commit_s: d("wire_relay_commit_seconds_sum") / per,
            queued_s: d("wire_relay_append_seconds_sum")
                / d("wire_relay_append_seconds_count").max(1.0),
            relay_cpu: b.relay_ticks.saturating_sub(a.relay_ticks) as f64 / probe.clk / secs,
            commit_cpu: b.commit_ticks.saturating_sub(a.commit_ticks) as f64 / probe.clk / secs,
            self_cpu: b.self_ticks.saturating_sub(a.self_ticks) as f64 / probe.clk / secs,
            wchar_per_commit: b.relay_io.0.saturating_sub(a.relay_io.0) as f64 / per,
            written_per_commit: b.relay_io.1.saturating_sub(a.relay_io.1) as f64 / per,
        }
    }

    /// A row on the commits behind the row above it.
    pub(super) fn row(&self, what: &str) {
        row(
            &format!(
                "  {what}: appends per commit; commit time; commits/s; queue-to-durable (means, /metrics); relay writes per commit (/proc io: write() / to storage); CPU (100% = one core)"
            ),
            &format!(
                "{:.1}; {}; {}/s; {}; {} / {}; relay {:.0}% (its commit threads {:.0}%), bench client {:.0}%",
                self.appends_per_commit,
                ms_f(self.commit_s),
                thousands(self.commits / self.secs),
                ms_f(self.queued_s),
                kib(self.wchar_per_commit),
                kib(self.written_per_commit),
                self.relay_cpu * 100.0,
                self.commit_cpu * 100.0,
                self.self_cpu * 100.0
            ),
            &format!("{} cores", cores()),
        );
    }
}

pub(super) struct Load {
    pub(super) items: u64,
    /// Sorted.
    pub(super) lat: Vec<Duration>,
    pub(super) elapsed: Duration,
    pub(super) window: Option<Delta>,
}

impl Load {
    pub(super) fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }

    pub(super) fn pct(&self, p: f64) -> Duration {
        pick(&self.lat, p)
    }
}

pub(super) fn pick(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The floor of a run: `GET /healthz` from `clients` keep-alive connections for half the
/// window, reported as a row (`on` names the instance, if any); returns the rate.
pub(super) async fn healthz_floor(
    addr: SocketAddr,
    clients: usize,
    warmup: Duration,
    window: Duration,
    on: &str,
) -> anyhow::Result<f64> {
    let health = timed(
        addr,
        clients,
        warmup,
        window / 2,
        None,
        |mut c, _, _| async {
            let r = c
                .call(Method::GET, "/healthz", None, None, Bytes::new())
                .await?;
            expect(&r, StatusCode::OK, "GET /healthz")?;
            Ok((c, 1))
        },
    )
    .await?;
    let rate = health.rate();
    row(
        &format!("floor: GET /healthz{on}, {clients} clients, keep-alive (p50 / p99)"),
        &format!(
            "{} req/s ({} / {})",
            thousands(rate),
            ms(health.pct(0.5)),
            ms(health.pct(0.99))
        ),
        "",
    );
    Ok(rate)
}

/// `clients` connections each repeat `f` for `warmup + dur`; requests that start and finish
/// inside the last `dur` count. `f` gets the connection, the worker index and an iteration
/// number, and returns how many items the request carried.
pub(super) async fn timed<F, Fut>(
    addr: SocketAddr,
    clients: usize,
    warmup: Duration,
    dur: Duration,
    probe: Option<Probe>,
    f: F,
) -> anyhow::Result<Load>
where
    F: Fn(Client, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<(Client, u64)>> + Send + 'static,
{
    timed_on(&[addr], clients, warmup, dur, probe, f).await
}

/// [`timed`] with client `i` connected to `addrs[i % addrs.len()]` (the probe reads the first).
pub(super) async fn timed_on<F, Fut>(
    addrs: &[SocketAddr],
    clients: usize,
    warmup: Duration,
    dur: Duration,
    probe: Option<Probe>,
    f: F,
) -> anyhow::Result<Load>
where
    F: Fn(Client, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<(Client, u64)>> + Send + 'static,
{
    let Some(&addr) = addrs.first() else {
        bail!("no relay to measure");
    };
    let f = Arc::new(f);
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        conns.push(Client::connect(addrs[i % addrs.len()]).await?);
    }
    let start = Instant::now() + warmup;
    let end = start + dur;
    let watcher = probe.map(|p| {
        tokio::spawn(async move {
            let mut m = Client::connect(addr).await?;
            tokio::time::sleep_until(start.into()).await;
            let before = Snapshot::take(&mut m, p).await?;
            tokio::time::sleep_until(end.into()).await;
            let after = Snapshot::take(&mut m, p).await?;
            anyhow::Ok(Delta::between(&before, &after, p))
        })
    });
    let mut tasks = Vec::with_capacity(clients);
    for (worker, conn) in conns.into_iter().enumerate() {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = conn;
            let mut items = 0u64;
            let mut lat = Vec::new();
            let mut i = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    return anyhow::Ok((items, lat));
                }
                let (back, n) = f(c, worker, i).await?;
                c = back;
                i += 1;
                let t1 = Instant::now();
                if t0 >= start && t1 <= end {
                    items += n;
                    lat.push(t1 - t0);
                }
            }
        }));
    }
    let mut items = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (n, l) = t.await??;
        items += n;
        lat.extend(l);
    }
    lat.sort();
    let window = match watcher {
        Some(w) => Some(w.await??),
        None => None,
    };
    Ok(Load {
        items,
        lat,
        elapsed: dur,
        window,
    })
}

impl Client {
    /// `/metrics` samples without labels, by name.
    pub(super) async fn metrics(&mut self) -> anyhow::Result<HashMap<String, f64>> {
        let r = self
            .call(Method::GET, "/metrics", None, None, Bytes::new())
            .await?;
        expect(&r, StatusCode::OK, "GET /metrics")?;
        let text = String::from_utf8_lossy(&r.body);
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.contains('{'))
            .filter_map(|l| {
                let (name, v) = l.rsplit_once(' ')?;
                Some((name.to_owned(), v.parse().ok()?))
            })
            .collect())
    }
}
