-- The service around the gateway: accounts people sign in to (GitHub or one-time
-- links), sessions, management keys, redemption codes and the ledger kinds they write.

-- Admins may use the admin routes. github_id finds an account at sign-in (never the
-- login, which its owner can change and someone else can then take); login, name,
-- avatar and email are display fields refreshed at each sign-in.
ALTER TABLE accounts ADD COLUMN is_admin     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN github_id    INTEGER;
ALTER TABLE accounts ADD COLUMN login        TEXT;
ALTER TABLE accounts ADD COLUMN display_name TEXT;
ALTER TABLE accounts ADD COLUMN avatar_url   TEXT;
ALTER TABLE accounts ADD COLUMN email        TEXT;
CREATE UNIQUE INDEX accounts_github_id ON accounts (github_id) WHERE github_id IS NOT NULL;

-- 'management' keys authenticate /api/* for their account and never /v1/*;
-- community = 0: never routed to community instances.
ALTER TABLE api_keys ADD COLUMN scope     TEXT    NOT NULL DEFAULT 'inference'
    CHECK (scope IN ('inference', 'management'));
ALTER TABLE api_keys ADD COLUMN community INTEGER NOT NULL DEFAULT 1;

-- Secrets (session tokens, link tokens, codes) are stored as SHA-256 only.
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE login_links (
    token_hash BLOB    PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

CREATE TABLE redemption_codes (
    code_hash   BLOB    PRIMARY KEY,
    amount_nano INTEGER NOT NULL CHECK (amount_nano > 0),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    redeemed_by INTEGER REFERENCES accounts(id),
    redeemed_at INTEGER
);

-- New ledger kinds: grant (an admin's credit), redemption (a code), earning (an
-- instance's payout). SQLite cannot change a CHECK in place: the table is rebuilt.
CREATE TABLE ledger_next (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    kind        TEXT    NOT NULL CHECK (kind IN ('credit', 'charge', 'refund', 'adjustment', 'grant', 'redemption', 'earning')),
    amount_nano INTEGER NOT NULL,
    request_id  TEXT,
    memo        TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
INSERT INTO ledger_next (id, account_id, kind, amount_nano, request_id, memo, created_at)
    SELECT id, account_id, kind, amount_nano, request_id, memo, created_at FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_next RENAME TO ledger;
CREATE INDEX ledger_account ON ledger (account_id, id);
CREATE UNIQUE INDEX ledger_request_kind ON ledger (request_id, kind) WHERE request_id IS NOT NULL;
