-- Failed attempts of jobs, kept after the job itself is done or deleted, so the operations
-- console can show each message's path: when an attempt failed, why, and what came next
-- (`retry`, `dead`, or `requeued` by an admin). Written only on failure: the happy path
-- writes nothing here. Purged with the delivered messages' bodies.
CREATE TABLE job_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    job_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    app_id TEXT REFERENCES apps (id) ON DELETE CASCADE,
    ordering_key TEXT,
    message_id BIGINT,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('retry', 'dead', 'requeued')),
    error TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX job_attempts_ordering_key ON job_attempts (ordering_key, id);
CREATE INDEX job_attempts_at ON job_attempts (at);
