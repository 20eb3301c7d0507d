//! What instances on one database share beside the mailbox: pair slots (`pair_slots`,
//! decision (aj)), each a transaction on a worker's connection, and rate-limit token buckets
//! (`rate_buckets`, decision (ah)), one statement per limited request.

use std::time::Duration;

use bytes::Bytes;
use postgres::{Client, Transaction};

use super::pg;
use crate::limits::{Rate, wait_secs};
use crate::pairs::{Cell, PAIR_IDLE, PAIR_LIFETIME, PAIR_SLOTS_MAX, PairError, Written};
use crate::store::StoreError;

/// The database's clock, Unix ms (the same for every instance).
fn db_now_ms(txn: &mut Transaction<'_>) -> Result<i64, StoreError> {
    Ok(txn
        .query_one(
            "SELECT (extract(epoch FROM statement_timestamp()) * 1000)::int8",
            &[],
        )
        .map_err(pg)?
        .get(0))
}

/// `(idle, lifetime)` of a pair slot, ms.
fn pair_times() -> (i64, i64) {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    (ms(PAIR_IDLE), ms(PAIR_LIFETIME))
}

/// Drops `id` if it has expired at `now`; the cells if it is alive, locked.
fn pair_live_cells(
    txn: &mut Transaction<'_>,
    id: [u8; 16],
    now: i64,
) -> Result<Option<Vec<Option<Vec<u8>>>>, StoreError> {
    let (idle, life) = pair_times();
    txn.execute(
        "DELETE FROM pair_slots WHERE id = $1 AND (touched_ms <= $2::int8 - $3::int8 OR made_ms <= $2::int8 - $4::int8)",
        &[&&id[..], &now, &idle, &life],
    )
    .map_err(pg)?;
    let row = txn
        .query_opt(
            "SELECT cells FROM pair_slots WHERE id = $1 FOR UPDATE",
            &[&&id[..]],
        )
        .map_err(pg)?;
    Ok(row.map(|r| r.get(0)))
}

/// [`crate::pairs::PairSlots::put`] on the table `pair_slots` (one transaction).
pub(super) fn pair_put(
    txn: &mut Transaction<'_>,
    id: [u8; 16],
    cell: Cell,
    bytes: &[u8],
) -> Result<Result<Written, PairError>, StoreError> {
    let now = db_now_ms(txn)?;
    let at = cell.slot_index();
    let mut cells = pair_live_cells(txn, id, now)?;
    if cells.is_none() {
        if at != 0 {
            return Ok(Err(PairError::Unknown));
        }
        let (idle, life) = pair_times();
        let live = |txn: &mut Transaction<'_>| -> Result<i64, StoreError> {
            Ok(txn
                .query_one(
                    "SELECT count(*) FROM pair_slots WHERE touched_ms > $1::int8 - $2::int8 \
                     AND made_ms > $1::int8 - $3::int8",
                    &[&now, &idle, &life],
                )
                .map_err(pg)?
                .get(0))
        };
        let max = i64::try_from(PAIR_SLOTS_MAX).unwrap_or(i64::MAX);
        if live(txn)? >= max {
            txn.execute(
                "DELETE FROM pair_slots WHERE touched_ms <= $1::int8 - $2::int8 \
                 OR made_ms <= $1::int8 - $3::int8",
                &[&now, &idle, &life],
            )
            .map_err(pg)?;
            if live(txn)? >= max {
                return Ok(Err(PairError::Full));
            }
        }
        let empty: Vec<Option<&[u8]>> = vec![Some(bytes), None, None, None];
        let inserted = txn
            .execute(
                "INSERT INTO pair_slots (id, cells, made_ms, touched_ms) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (id) DO NOTHING",
                &[&&id[..], &empty, &now],
            )
            .map_err(pg)?;
        if inserted == 1 {
            return Ok(Ok(Written::Stored));
        }
        // Another instance made it a moment ago: compare with what it wrote.
        cells = pair_live_cells(txn, id, now)?;
    }
    let Some(cells) = cells else {
        return Ok(Err(PairError::Unknown));
    };
    txn.execute(
        "UPDATE pair_slots SET touched_ms = $2 WHERE id = $1",
        &[&&id[..], &now],
    )
    .map_err(pg)?;
    match cells.get(at).cloned().flatten() {
        Some(held) if held == bytes => Ok(Ok(Written::Unchanged)),
        Some(_) => Ok(Err(PairError::Taken)),
        None => {
            let index = i32::try_from(at + 1).unwrap_or(1);
            txn.execute(
                "UPDATE pair_slots SET cells[$2] = $3 WHERE id = $1",
                &[&&id[..], &index, &bytes],
            )
            .map_err(pg)?;
            Ok(Ok(Written::Stored))
        }
    }
}

/// A cell of `pair_slots`, without waiting.
pub(super) fn pair_get(
    txn: &mut Transaction<'_>,
    id: [u8; 16],
    cell: Cell,
    touch: bool,
) -> Result<Result<Option<Bytes>, PairError>, StoreError> {
    let now = db_now_ms(txn)?;
    if !touch {
        // A waiting read looking again: read only (no lock, nothing written, no flush).
        let (idle, life) = pair_times();
        let row = txn
            .query_opt(
                "SELECT cells FROM pair_slots WHERE id = $1 AND touched_ms > $2::int8 - $3::int8 \
                 AND made_ms > $2::int8 - $4::int8",
                &[&&id[..], &now, &idle, &life],
            )
            .map_err(pg)?;
        let Some(row) = row else {
            return Ok(Err(PairError::Unknown));
        };
        let cells: Vec<Option<Vec<u8>>> = row.get(0);
        return Ok(Ok(cells
            .get(cell.slot_index())
            .cloned()
            .flatten()
            .map(Bytes::from)));
    }
    let Some(cells) = pair_live_cells(txn, id, now)? else {
        return Ok(Err(PairError::Unknown));
    };
    txn.execute(
        "UPDATE pair_slots SET touched_ms = $2 WHERE id = $1",
        &[&&id[..], &now],
    )
    .map_err(pg)?;
    Ok(Ok(cells
        .get(cell.slot_index())
        .cloned()
        .flatten()
        .map(Bytes::from)))
}

/// The tokens a bucket holds at the database's clock (`$3` burst, `$4` per second), from its
/// row `b` and the time `now.ms`.
const REFILLED: &str = "least($3::float8, b.tokens + \
     greatest(now.ms - b.at_ms, 0)::float8 / 1000.0 * $4::float8)";

/// One token of a shared bucket, in one statement (its own transaction): the row is created
/// full less one, or refilled to the database's clock and spent when a whole token is there.
/// `taken` says which. Now and then, rows that have refilled entirely are deleted.
pub(super) fn take_token(
    client: &mut Client,
    limit: i16,
    key: &[u8],
    rate: Rate,
    peek: bool,
) -> Result<Result<(), u64>, StoreError> {
    let now = "(SELECT (extract(epoch FROM statement_timestamp()) * 1000)::int8 AS ms) AS now";
    let (burst, per_second) = (rate.burst, rate.per_second);
    if peek {
        let row = client
            .query_opt(
                &format!(
                    "SELECT {REFILLED} FROM rate_buckets b, {now} \
                     WHERE b.limit_id = $1 AND b.key = $2"
                ),
                &[&limit, &key, &burst, &per_second],
            )
            .map_err(pg)?;
        let tokens: f64 = row.map_or(burst, |r| r.get(0));
        return Ok(if tokens >= 1.0 {
            Ok(())
        } else {
            Err(wait_secs(tokens, rate))
        });
    }
    let row = client
        .query_one(
            &format!(
                "INSERT INTO rate_buckets AS b (limit_id, key, tokens, at_ms, taken) \
                 SELECT $1, $2, greatest($3::float8 - 1, 0), now.ms, $3::float8 >= 1 FROM {now} \
                 ON CONFLICT (limit_id, key) DO UPDATE SET \
                 tokens = (SELECT CASE WHEN r.t >= 1 THEN r.t - 1 ELSE r.t END FROM \
                     (SELECT {REFILLED} AS t FROM {now}) AS r), \
                 taken = (SELECT {REFILLED} >= 1 FROM {now}), \
                 at_ms = greatest(EXCLUDED.at_ms, b.at_ms) \
                 RETURNING taken, tokens"
            ),
            &[&limit, &key, &burst, &per_second],
        )
        .map_err(pg)?;
    let (taken, tokens): (bool, f64) = (row.get(0), row.get(1));
    // About one take in 256 sweeps the buckets of this limit that are full again.
    let mut dice = [0u8; 1];
    rand::fill(&mut dice[..]);
    if dice[0] == 0 {
        let full_ms = (burst / per_second.max(f64::MIN_POSITIVE) * 1000.0).ceil();
        let full_ms = if full_ms.is_finite() {
            full_ms as i64
        } else {
            i64::MAX
        };
        client
            .execute(
                "DELETE FROM rate_buckets WHERE limit_id = $1 AND at_ms < \
                 (extract(epoch FROM statement_timestamp()) * 1000)::int8 - $2",
                &[&limit, &full_ms],
            )
            .map_err(pg)?;
    }
    Ok(if taken {
        Ok(())
    } else {
        Err(wait_secs(tokens, rate))
    })
}
