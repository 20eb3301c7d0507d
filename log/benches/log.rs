//! Microbenchmarks of the log, each beside its floor measured in the same run: an fsync, a
//! signature, a verification. `cargo bench -p wire-log`; results in docs/BENCHMARKS.md.

use std::hint::black_box;
use std::io::Write;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wire_log::{Event, EventStore, Kind, LogId, SecretKey, SignedEvent, verify_all};

fn chain(key: &SecretKey, n: u64, body: usize) -> Vec<Vec<u8>> {
    let mut prev = None;
    (1..=n)
        .map(|seq| {
            let e = Event {
                author: key.author(),
                log: LogId::self_log(&key.author()),
                seq,
                prev,
                ts_ms: seq,
                kind: Kind::MESSAGE,
                body: vec![b'x'; body],
            }
            .sign(key)
            .expect("sign");
            prev = Some(e.id());
            e.signed_bytes().to_vec()
        })
        .collect()
}

fn floors(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut f = std::fs::File::create(dir.path().join("probe")).expect("file");
    c.bench_function("floor/fsync_4KiB", |b| {
        b.iter(|| {
            f.write_all(&[0u8; 4096]).expect("write");
            f.sync_data().expect("fsync");
        })
    });
    let key = SecretKey::from_seed(&[1; 32]);
    let event = chain(&key, 1, 100).remove(0);
    c.bench_function("floor/sign_event_100B", |b| {
        b.iter_batched(
            || SignedEvent::decode(&event).expect("decode").event,
            |e| black_box(e.sign(&key)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("floor/decode_verify_one", |b| {
        b.iter(|| {
            black_box(
                SignedEvent::decode(&event)
                    .expect("decode")
                    .verify()
                    .expect("verify"),
            )
        })
    });
}

fn appends(c: &mut Criterion) {
    let key = SecretKey::from_seed(&[2; 32]);
    let events = chain(&key, 60_000, 100);

    let mut g = c.benchmark_group("store");
    g.sample_size(20);
    g.bench_function("append_single_durable", |b| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EventStore::create(&dir.path().join("s.redb"), key.author()).expect("create");
        let mut next = 0usize;
        b.iter(|| {
            // The chain only grows; start a fresh store when it is used up.
            if next == events.len() {
                panic!("bench needs a longer chain");
            }
            store.append(&events[next]).expect("append");
            next += 1;
        })
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append_batch_1000", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let store =
                    EventStore::create(&dir.path().join("s.redb"), key.author()).expect("create");
                (dir, store)
            },
            |(_dir, store)| {
                let refs: Vec<&[u8]> = events[..1000].iter().map(Vec::as_slice).collect();
                store.append_batch(&refs).expect("append");
            },
            BatchSize::PerIteration,
        )
    });
    let decoded: Vec<SignedEvent> = events[..1000]
        .iter()
        .map(|b| SignedEvent::decode(b).expect("decode"))
        .collect();
    g.bench_function("verify_all_1000", |b| {
        b.iter_batched(
            || decoded.clone(),
            |d| black_box(verify_all(d).expect("verify")),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, floors, appends);
criterion_main!(benches);
