-- ha-sequencer duty store, schema version 1 (SQLite). Times are epoch seconds from the host clock.
CREATE TABLE ha_schema (
    version     INTEGER PRIMARY KEY,
    applied_at  REAL NOT NULL
);
-- One row per duty; the primary key is the unit of "never two different digests".
CREATE TABLE duties (
    rollup        TEXT NOT NULL,
    attester      TEXT NOT NULL,
    slot          INTEGER NOT NULL,
    duty_type     TEXT NOT NULL,
    digest        BLOB NOT NULL,
    payload       BLOB NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('signing', 'signed')),
    node_id       TEXT NOT NULL,
    lock_token    TEXT NOT NULL,
    signature     BLOB,
    claimed_at    REAL NOT NULL,
    lease_until   REAL NOT NULL,
    signed_at     REAL,
    adopted_from  TEXT,
    PRIMARY KEY (rollup, attester, slot, duty_type)
);
-- High-water slot per (rollup, attester, duty type): nothing at or below it without a row is ever signed.
CREATE TABLE watermarks (
    rollup      TEXT NOT NULL,
    attester    TEXT NOT NULL,
    duty_type   TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (rollup, attester, duty_type)
);
CREATE TABLE publishes (
    rollup        TEXT NOT NULL,
    attester      TEXT NOT NULL,
    slot          INTEGER NOT NULL,
    node_id       TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    claimed_at    REAL NOT NULL,
    deadline_at   REAL NOT NULL,
    tx_hash       TEXT,
    submitted_at  REAL,
    mined         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rollup, attester, slot)
);
CREATE TABLE nodes (
    node_id       TEXT PRIMARY KEY,
    instance      TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    REAL NOT NULL,
    heartbeat_at  REAL NOT NULL
);
