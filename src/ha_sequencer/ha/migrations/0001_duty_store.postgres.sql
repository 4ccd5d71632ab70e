-- ha-sequencer duty store, schema version 1 (PostgreSQL). Times are epoch seconds from the server clock.
CREATE TABLE ha_schema (
    version     INTEGER PRIMARY KEY,
    applied_at  DOUBLE PRECISION NOT NULL
);
-- One row per duty; the primary key is the unit of "never two different digests".
CREATE TABLE duties (
    rollup        TEXT NOT NULL,
    attester      TEXT NOT NULL,
    slot          BIGINT NOT NULL,
    duty_type     TEXT NOT NULL,
    digest        BYTEA NOT NULL,
    payload       BYTEA NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('signing', 'signed')),
    node_id       TEXT NOT NULL,
    lock_token    TEXT NOT NULL,
    signature     BYTEA,
    claimed_at    DOUBLE PRECISION NOT NULL,
    lease_until   DOUBLE PRECISION NOT NULL,
    signed_at     DOUBLE PRECISION,
    adopted_from  TEXT,
    PRIMARY KEY (rollup, attester, slot, duty_type)
);
-- High-water slot per (rollup, attester, duty type): nothing at or below it without a row is ever signed.
CREATE TABLE watermarks (
    rollup      TEXT NOT NULL,
    attester    TEXT NOT NULL,
    duty_type   TEXT NOT NULL,
    slot        BIGINT NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (rollup, attester, duty_type)
);
CREATE TABLE publishes (
    rollup        TEXT NOT NULL,
    attester      TEXT NOT NULL,
    slot          BIGINT NOT NULL,
    node_id       TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    claimed_at    DOUBLE PRECISION NOT NULL,
    deadline_at   DOUBLE PRECISION NOT NULL,
    tx_hash       TEXT,
    submitted_at  DOUBLE PRECISION,
    mined         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (rollup, attester, slot)
);
CREATE TABLE nodes (
    node_id       TEXT PRIMARY KEY,
    instance      TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    DOUBLE PRECISION NOT NULL,
    heartbeat_at  DOUBLE PRECISION NOT NULL
);
