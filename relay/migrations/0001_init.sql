-- wire-relay on PostgreSQL, schema version 1: everything the relay keeps.
-- Sequence numbers, counts and times are u64 in the relay and bigint here (never negative).

CREATE TABLE slots (
    id bytea PRIMARY KEY,
    owner bytea NOT NULL,
    last_seq bigint NOT NULL DEFAULT 0,
    blobs bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    created_ms bigint NOT NULL,
    acked_through bigint NOT NULL DEFAULT 0,
    caps integer NOT NULL DEFAULT 0,
    handles integer NOT NULL DEFAULT 0
);

-- A capability: the hash of its secret, the slot it appends to, its public id.
CREATE TABLE caps (
    hash bytea PRIMARY KEY,
    slot bytea NOT NULL REFERENCES slots (id),
    cap_id bytea NOT NULL,
    UNIQUE (slot, cap_id)
);

-- Blobs in a slot, with the blake3 of their bytes: the unique index is the idempotency
-- by content hash (decision (k)), across every relay instance on this database.
CREATE TABLE blobs (
    slot bytea NOT NULL,
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (slot, seq)
);
CREATE UNIQUE INDEX blobs_slot_hash ON blobs (slot, hash);

-- The handle directory: FCFS is this primary key. `record` is the HandleRecord's JSON.
CREATE TABLE handles (
    nick text COLLATE "C" PRIMARY KEY,
    slot bytea NOT NULL,
    record text NOT NULL
);

-- Intro queues: per slot a counter, per sender at most one pending intro.
CREATE TABLE intro_slots (
    slot bytea PRIMARY KEY,
    last_seq bigint NOT NULL,
    pending bigint NOT NULL
);
CREATE TABLE intros (
    slot bytea NOT NULL,
    seq bigint NOT NULL,
    sender bytea NOT NULL,
    envelope bytea NOT NULL,
    PRIMARY KEY (slot, seq),
    UNIQUE (slot, sender)
);

-- Whole-store totals for /stats.json and /metrics: one row.
CREATE TABLE counters (
    id integer PRIMARY KEY CHECK (id = 1),
    slots bigint NOT NULL,
    blobs bigint NOT NULL,
    bytes bigint NOT NULL,
    handles bigint NOT NULL,
    intros bigint NOT NULL
);
INSERT INTO counters VALUES (1, 0, 0, 0, 0, 0);
