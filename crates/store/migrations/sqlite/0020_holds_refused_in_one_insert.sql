-- A hold is one plain `INSERT … VALUES` whose amount is NULL when the account or key
-- cannot cover it: `amount_nano` skips such a row (NOT NULL ON CONFLICT IGNORE), and the
-- statement changes nothing. The previous form, `INSERT … SELECT … WHERE`, made SQLite
-- copy the selected row into a temporary b-tree first (it does so for any INSERT … SELECT
-- into a table with triggers): opening, filling and closing that b-tree was about 5 % of
-- the gateway's instructions per request. The request id keeps its default conflict
-- resolution, so a request id held twice still fails the statement.
CREATE TABLE holds_refusable (
    request_id       TEXT    NOT NULL PRIMARY KEY,
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    key_id           TEXT    NOT NULL,
    amount_nano      INTEGER NOT NULL ON CONFLICT IGNORE,
    created_at       INTEGER NOT NULL,
    replica          TEXT    NOT NULL DEFAULT '',
    model            TEXT    NOT NULL DEFAULT '',
    endpoint         TEXT    NOT NULL DEFAULT '',
    stream           INTEGER NOT NULL DEFAULT 0,
    delivered_nano   INTEGER NOT NULL DEFAULT 0,
    provider         TEXT,
    earner_id        INTEGER,
    earner_share_ppb INTEGER
) WITHOUT ROWID;

INSERT INTO holds_refusable (request_id, account_id, key_id, amount_nano, created_at, replica, model,
                             endpoint, stream, delivered_nano, provider, earner_id, earner_share_ppb)
SELECT request_id, account_id, key_id, amount_nano, created_at, replica, model,
       endpoint, stream, delivered_nano, provider, earner_id, earner_share_ppb
FROM holds;

-- Dropping the table drops its triggers; the sums they keep are unchanged (the same rows).
DROP TABLE holds;
ALTER TABLE holds_refusable RENAME TO holds;

CREATE TRIGGER holds_open AFTER INSERT ON holds BEGIN
    UPDATE accounts SET held_nano = held_nano + NEW.amount_nano WHERE id = NEW.account_id;
    UPDATE api_keys SET held_nano = held_nano + NEW.amount_nano WHERE id = NEW.key_id;
END;

CREATE TRIGGER holds_close AFTER DELETE ON holds BEGIN
    UPDATE accounts SET held_nano = held_nano - OLD.amount_nano WHERE id = OLD.account_id;
    UPDATE api_keys SET held_nano = held_nano - OLD.amount_nano WHERE id = OLD.key_id;
END;
