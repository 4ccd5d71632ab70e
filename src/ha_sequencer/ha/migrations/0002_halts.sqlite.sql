-- ha-sequencer duty store, schema version 2 (SQLite): the fleet-wide halt of an attester.
-- A node that sees a signature of its attester that this store did not issue (a foreign signer: a copied
-- keystore, a replica on another store, a restored backup) writes a halt here; every guard call for that
-- attester then answers `Halted` until an operator resumes it. Halts are never pruned.
CREATE TABLE halts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    rollup         TEXT NOT NULL,
    attester       TEXT NOT NULL,
    slot           INTEGER NOT NULL,
    duty_type      TEXT NOT NULL,
    reason         TEXT NOT NULL,
    evidence       TEXT NOT NULL,
    node_id        TEXT NOT NULL,
    halted_at      REAL NOT NULL,
    resumed_at     REAL,
    resumed_by     TEXT,
    resume_reason  TEXT
);
-- At most one active halt per attester; the guard's statements probe this index.
CREATE UNIQUE INDEX halts_active ON halts (rollup, attester) WHERE resumed_at IS NULL;
