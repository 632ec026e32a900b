-- Accounts, their append-only money ledger, API keys, per-request usage, and
-- the keys_version counter that lets a gateway notice key changes cheaply.

CREATE TABLE accounts (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    balance_nano INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);

-- Rows are never updated or deleted. amount_nano is signed: credits positive, charges negative.
CREATE TABLE ledger (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    kind        TEXT    NOT NULL CHECK (kind IN ('credit', 'charge', 'refund', 'adjustment')),
    amount_nano INTEGER NOT NULL,
    request_id  TEXT,
    memo        TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE INDEX ledger_account ON ledger (account_id, id);

-- At most one row of each kind per request: settlement is idempotent.
CREATE UNIQUE INDEX ledger_request_kind ON ledger (request_id, kind) WHERE request_id IS NOT NULL;

CREATE TABLE api_keys (
    id               TEXT    PRIMARY KEY,                     -- public id
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    name             TEXT    NOT NULL DEFAULT '',
    secret_hash      BLOB    NOT NULL,                        -- 32 bytes, sha-256
    models           TEXT    NOT NULL DEFAULT '[]',           -- JSON array of strings
    ips              TEXT    NOT NULL DEFAULT '[]',           -- JSON array of strings
    rpm              INTEGER,
    tpm              INTEGER,
    spend_limit_nano INTEGER,
    spent_nano       INTEGER NOT NULL DEFAULT 0,
    expires_at       INTEGER,
    created_at       INTEGER NOT NULL,
    revoked_at       INTEGER
);

CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE usage (
    request_id          TEXT    PRIMARY KEY,
    key_id              TEXT    NOT NULL,
    account_id          INTEGER NOT NULL,
    model               TEXT    NOT NULL,
    provider            TEXT    NOT NULL,
    upstream_model      TEXT    NOT NULL,
    endpoint            TEXT    NOT NULL,
    stream              INTEGER NOT NULL,
    status              INTEGER NOT NULL,                     -- HTTP status returned to the client
    prompt_tokens       INTEGER NOT NULL,
    completion_tokens   INTEGER NOT NULL,
    cached_tokens       INTEGER NOT NULL,
    reasoning_tokens    INTEGER NOT NULL,
    cost_nano           INTEGER NOT NULL,
    usage_source        TEXT    NOT NULL,                     -- 'upstream' | 'counted' | 'none'
    client_disconnected INTEGER NOT NULL,
    latency_ms          INTEGER NOT NULL,
    created_at          INTEGER NOT NULL
);

CREATE INDEX usage_account_time ON usage (account_id, created_at);

CREATE TABLE meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);

INSERT INTO meta (name, value) VALUES ('keys_version', 0);
