-- wire-relay on PostgreSQL, schema version 3: who streams what, so that an instance announces
-- an append only to the instances that wait for it (ARCHITECTURE decision (aq)).

-- A slot streamed on an instance: written (under a share lock on the slot's row, which every
-- append's FOR UPDATE waits for) before the stream reads what is stored, and read by every
-- append group after its slot locks. Refreshed by its instance every minute while the slot is
-- streamed there; rows not refreshed for ten minutes are swept by any instance.
CREATE TABLE watches (
    slot bytea NOT NULL,
    instance text NOT NULL,
    seen_ms bigint NOT NULL,
    PRIMARY KEY (slot, instance)
);
CREATE INDEX watches_seen ON watches (seen_ms);

-- The listener connections that register their streams here (by server pid): a listener that
-- is not in this table (its pid and backend_start) belongs to an instance of an older build, which is announced every
-- append as before.
CREATE TABLE watch_listeners (
    pid integer NOT NULL,
    started timestamptz NOT NULL,
    instance text NOT NULL,
    seen_ms bigint NOT NULL,
    PRIMARY KEY (pid, started)
);
