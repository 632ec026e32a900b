-- Async jobs (issue 15): requests queued at submission, with their funds already held,
-- and run later by whichever replica's worker claims them. The row is the job's state;
-- its hold (same request_id) carries the replica name '(job)' from the moment it exists.
--
-- lease_owner/lease_until: the replica running it and until when; an in_progress job
-- whose lease ran out (its replica died) may be claimed again (attempts counts claims).
-- completed_at is set when it reaches a final state. Usage columns are all set or all
-- NULL (not known yet); cost_nano is what the run was charged. Times are Unix seconds.
CREATE TABLE jobs (
    id                 TEXT    PRIMARY KEY,                    -- job_<uuid v7> or resp_<…>
    kind               TEXT    NOT NULL CHECK (kind IN ('chat', 'response')),
    account_id         INTEGER NOT NULL REFERENCES accounts(id),
    key_id             TEXT    NOT NULL,
    request_id         TEXT    NOT NULL UNIQUE,
    model              TEXT    NOT NULL,
    status             TEXT    NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'in_progress', 'completed', 'failed', 'cancelled', 'expired')),
    request            BLOB    NOT NULL,
    headers            TEXT    NOT NULL,
    hold_nano          INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    started_at         INTEGER,
    completed_at       INTEGER,
    attempts           INTEGER NOT NULL DEFAULT 0,
    lease_owner        TEXT,
    lease_until        INTEGER,
    result             TEXT,
    error              TEXT,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    cached_tokens      INTEGER,
    reasoning_tokens   INTEGER,
    cache_write_tokens INTEGER,
    cost_nano          INTEGER
);
-- Workers claim the oldest job that may run: only those rows are indexed.
CREATE INDEX jobs_claimable ON jobs (created_at, id) WHERE status IN ('queued', 'in_progress');
-- Each account's cap on unfinished jobs counts these few rows, not its whole history.
CREATE INDEX jobs_active_account ON jobs (account_id) WHERE status IN ('queued', 'in_progress');
-- The account's list, newest first.
CREATE INDEX jobs_account ON jobs (account_id, created_at DESC, id DESC);
-- The retention sweep: finished jobs, oldest first.
CREATE INDEX jobs_finished ON jobs (completed_at)
    WHERE status IN ('completed', 'failed', 'cancelled', 'expired');
