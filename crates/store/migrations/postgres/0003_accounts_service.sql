-- The service around the gateway: accounts people sign in to (GitHub or one-time
-- links), sessions, management keys, redemption codes and the ledger kinds they write.

-- Admins may use the admin routes. github_id finds an account at sign-in (never the
-- login, which its owner can change and someone else can then take); login, name,
-- avatar and email are display fields refreshed at each sign-in.
ALTER TABLE accounts ADD COLUMN is_admin     BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE accounts ADD COLUMN github_id    BIGINT;
ALTER TABLE accounts ADD COLUMN login        TEXT;
ALTER TABLE accounts ADD COLUMN display_name TEXT;
ALTER TABLE accounts ADD COLUMN avatar_url   TEXT;
ALTER TABLE accounts ADD COLUMN email        TEXT;
CREATE UNIQUE INDEX accounts_github_id ON accounts (github_id) WHERE github_id IS NOT NULL;

-- 'management' keys authenticate /api/* for their account and never /v1/*;
-- community = false: never routed to community instances.
ALTER TABLE api_keys ADD COLUMN scope     TEXT    NOT NULL DEFAULT 'inference'
    CHECK (scope IN ('inference', 'management'));
ALTER TABLE api_keys ADD COLUMN community BOOLEAN NOT NULL DEFAULT true;

-- Secrets (session tokens, link tokens, codes) are stored as SHA-256 only.
CREATE TABLE sessions (
    token_hash BYTEA  PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE login_links (
    token_hash BYTEA  PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

CREATE TABLE redemption_codes (
    code_hash   BYTEA  PRIMARY KEY,
    amount_nano BIGINT NOT NULL CHECK (amount_nano > 0),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    redeemed_by BIGINT REFERENCES accounts(id),
    redeemed_at BIGINT
);

-- New ledger kinds: grant (an admin's credit), redemption (a code), earning (an
-- instance's payout).
ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check
    CHECK (kind IN ('credit', 'charge', 'refund', 'adjustment', 'grant', 'redemption', 'earning'));
