-- wire-relay on PostgreSQL, schema version 2: a group of appends in one statement, totals
-- in shards, rate-limit buckets shared by every instance.

-- Totals in 64 rows: a writer adds to one row picked at random, so that instances committing
-- at once do not queue on one row lock; a total is the sum of its column. A shard may go
-- negative (blobs added in one shard and acknowledged in another); the sum never does.
ALTER TABLE counters DROP CONSTRAINT counters_id_check;
ALTER TABLE counters ADD CONSTRAINT counters_shard CHECK (id BETWEEN 1 AND 64);
INSERT INTO counters SELECT g, 0, 0, 0, 0, 0 FROM generate_series(2, 64) AS g;

-- Token buckets of the rate limits (relay/src/limits.rs), one row per (limit, key), taken
-- with one UPSERT per limited request, on the database's clock, so that every instance
-- draws on the same bucket. Rows of buckets that have refilled are deleted now and then.
CREATE TABLE rate_buckets (
    limit_id smallint NOT NULL,
    key bytea NOT NULL,
    tokens float8 NOT NULL,
    at_ms bigint NOT NULL,
    taken boolean NOT NULL,
    PRIMARY KEY (limit_id, key)
);

-- One group of appends (the committer's), whole, in one call: the caller runs it outside
-- an explicit transaction, so the call is its own transaction and its reply (ReadyForQuery)
-- comes after the commit. Items are given as parallel arrays, in request order; an item's
-- credential is either an owner token hash (`i_owner`) or a capability hash (`i_cap`), the
-- other NULL. Returns one row per item, in order:
--   outcome 0 stored (seq), 1 duplicate (seq of the blob held), 2 unknown slot,
--   3 unauthorized, 4 slot full (blobs, bytes held).
-- The slots' rows are locked first, in id order (so two instances never deadlock), and
-- every later statement here takes a new snapshot (READ COMMITTED, a VOLATILE function), so
-- it sees whatever the previous holder of those locks committed: sequence numbers are
-- assigned by one transaction at a time per slot, without a gap, and a blob stored by
-- another instance a moment ago is found by its hash. The insert's ON CONFLICT would catch
-- anything that slipped past, and then nothing of the group is stored.
-- There is no NOTIFY in here: a transaction that notifies holds a lock on the notification
-- queue of the whole cluster from before its commit until after its WAL flush, which would
-- serialise the commits (and fsyncs) of every instance. The caller announces what this
-- stored once it has committed, from a connection of its own (relay/src/store/postgres.rs).
CREATE FUNCTION wire_append_v1(
    i_slot bytea[],
    i_owner bytea[],
    i_cap bytea[],
    i_hash bytea[],
    i_len bigint[],
    i_body bytea[],
    blobs_max bigint,
    bytes_max bigint,
    shard integer
) RETURNS TABLE (outcome smallint, seq bigint, held_blobs bigint, held_bytes bigint)
LANGUAGE plpgsql VOLATILE
-- Plans made once per connection, not again for each group's values: a group's cost is its
-- statements, not their planning (about 40% less time per call, measured).
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    n integer := coalesce(array_length(i_slot, 1), 0);
    r record;
    res_kind smallint[] := array_fill(0::smallint, ARRAY[n]);
    res_seq bigint[] := array_fill(0::bigint, ARRAY[n]);
    res_blobs bigint[] := array_fill(0::bigint, ARRAY[n]);
    res_bytes bigint[] := array_fill(0::bigint, ARRAY[n]);
    cur bytea := NULL;
    c_last bigint;
    c_blobs bigint;
    c_bytes bigint;
    c_first bigint;
    ins_ord bigint[] := '{}';
    ins_seq bigint[] := '{}';
    up_id bytea[] := '{}';
    up_last bigint[] := '{}';
    up_blobs bigint[] := '{}';
    up_bytes bigint[] := '{}';
    add_blobs bigint := 0;
    add_bytes bigint := 0;
    k bigint;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM slots WHERE id = ANY (i_slot) ORDER BY id FOR UPDATE;
    -- Capabilities under a share lock, so a revocation waits for this commit (decision (j)).
    PERFORM 1 FROM caps WHERE hash = ANY (i_cap) ORDER BY hash FOR SHARE;
    FOR r IN
        WITH q AS (
            SELECT q.ord, q.slot, q.hash, q.len,
                   s.id IS NOT NULL AS known,
                   s.last_seq, s.blobs, s.bytes,
                   coalesce(q.owner = s.owner, false)
                   OR (q.cap IS NOT NULL AND EXISTS (
                       SELECT 1 FROM caps c WHERE c.hash = q.cap AND c.slot = q.slot)) AS allowed,
                   (SELECT b.seq FROM blobs b WHERE b.slot = q.slot AND b.hash = q.hash) AS held
            FROM unnest(i_slot, i_owner, i_cap, i_hash, i_len)
                 WITH ORDINALITY AS q (slot, owner, cap, hash, len, ord)
            LEFT JOIN slots s ON s.id = q.slot
        )
        SELECT q.*, min(q.ord) OVER (PARTITION BY q.slot, q.hash, q.allowed) AS first_ord
        FROM q
        ORDER BY q.slot, q.ord
    LOOP
        IF cur IS DISTINCT FROM r.slot THEN
            IF c_first IS NOT NULL THEN
                up_id := array_append(up_id, cur);
                up_last := array_append(up_last, c_last);
                up_blobs := array_append(up_blobs, c_blobs);
                up_bytes := array_append(up_bytes, c_bytes);
            END IF;
            cur := r.slot;
            c_last := r.last_seq;
            c_blobs := r.blobs;
            c_bytes := r.bytes;
            c_first := NULL;
        END IF;
        IF NOT r.known THEN
            res_kind[r.ord] := 2;
        ELSIF NOT r.allowed THEN
            res_kind[r.ord] := 3;
        ELSIF r.held IS NOT NULL THEN
            res_kind[r.ord] := 1;
            res_seq[r.ord] := r.held;
        ELSIF r.first_ord < r.ord THEN
            -- The same bytes earlier in this group: what happened to them happens to these.
            IF res_kind[r.first_ord] = 4 THEN
                res_kind[r.ord] := 4;
                res_blobs[r.ord] := c_blobs;
                res_bytes[r.ord] := c_bytes;
            ELSE
                res_kind[r.ord] := 1;
                res_seq[r.ord] := res_seq[r.first_ord];
            END IF;
        ELSIF c_blobs + 1 > blobs_max OR c_bytes + r.len > bytes_max THEN
            res_kind[r.ord] := 4;
            res_blobs[r.ord] := c_blobs;
            res_bytes[r.ord] := c_bytes;
        ELSE
            c_last := c_last + 1;
            c_blobs := c_blobs + 1;
            c_bytes := c_bytes + r.len;
            c_first := coalesce(c_first, c_last);
            res_kind[r.ord] := 0;
            res_seq[r.ord] := c_last;
            ins_ord := array_append(ins_ord, r.ord);
            ins_seq := array_append(ins_seq, c_last);
            add_blobs := add_blobs + 1;
            add_bytes := add_bytes + r.len;
        END IF;
    END LOOP;
    IF c_first IS NOT NULL THEN
        up_id := array_append(up_id, cur);
        up_last := array_append(up_last, c_last);
        up_blobs := array_append(up_blobs, c_blobs);
        up_bytes := array_append(up_bytes, c_bytes);
    END IF;
    IF add_blobs > 0 THEN
        INSERT INTO blobs (slot, seq, hash, body)
        SELECT q.slot, t.seq, q.hash, q.body
        FROM unnest(i_slot, i_hash, i_body) WITH ORDINALITY AS q (slot, hash, body, ord)
        JOIN unnest(ins_ord, ins_seq) AS t (ord, seq) ON t.ord = q.ord
        ON CONFLICT (slot, hash) DO NOTHING;
        GET DIAGNOSTICS k = ROW_COUNT;
        IF k <> add_blobs THEN
            -- Every appender holds the slot's row lock, so no one else can have inserted these.
            RAISE EXCEPTION 'an append raced another writer on a locked slot; nothing was stored, retry';
        END IF;
        UPDATE slots SET last_seq = v.last_seq, blobs = v.blobs, bytes = v.bytes
        FROM unnest(up_id, up_last, up_blobs, up_bytes) AS v (id, last_seq, blobs, bytes)
        WHERE slots.id = v.id;
        UPDATE counters SET blobs = blobs + add_blobs, bytes = bytes + add_bytes
        WHERE id = shard;
    END IF;
    RETURN QUERY SELECT * FROM unnest(res_kind, res_seq, res_blobs, res_bytes);
END;
$$;

-- Pair slots of pairings by code (relay/src/pairs.rs, PROTOCOL.md §25.3), here so that any
-- instance serves any pairing: four write-once cells (NULL until written), times in Unix ms
-- on the database's clock. Expired rows are removed when met and when the table is full.
CREATE TABLE pair_slots (
    id bytea PRIMARY KEY,
    cells bytea[] NOT NULL,
    made_ms bigint NOT NULL,
    touched_ms bigint NOT NULL
);
