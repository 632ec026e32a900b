-- State for several gateway processes on one database, and money decided by it:
-- a hold is a row here and a sum on its account and key, taken by one conditional
-- statement (INSERT … SELECT … WHERE funds suffice; the triggers below move the sums),
-- so no process's memory decides whether money can be spent.

-- What is held for requests in flight. A CHECK keeps balance − held ≥ 0 while anything
-- is held (a balance may still go below zero when usage beats a hold and nothing else
-- is held, or with billing off, where holds are 0).
ALTER TABLE accounts ADD COLUMN held_nano INTEGER NOT NULL DEFAULT 0
    CHECK (held_nano >= 0 AND (held_nano = 0 OR balance_nano >= held_nano));
-- A disabled account's keys stop working (on every process within a second).
ALTER TABLE accounts ADD COLUMN disabled_at INTEGER;
ALTER TABLE api_keys ADD COLUMN held_nano INTEGER NOT NULL DEFAULT 0 CHECK (held_nano >= 0);

-- Who holds it (the replica that serves the request) and enough to record the request
-- if that replica dies: any live one then settles the hold at `delivered_nano` (what
-- the client had received by the last checkpoint) and releases the rest.
ALTER TABLE holds ADD COLUMN replica TEXT NOT NULL DEFAULT '';
ALTER TABLE holds ADD COLUMN model TEXT NOT NULL DEFAULT '';
ALTER TABLE holds ADD COLUMN endpoint TEXT NOT NULL DEFAULT '';
ALTER TABLE holds ADD COLUMN stream INTEGER NOT NULL DEFAULT 0;
ALTER TABLE holds ADD COLUMN delivered_nano INTEGER NOT NULL DEFAULT 0;
CREATE INDEX holds_replica ON holds (replica);

-- Holds already open were taken before sums existed: count them in.
UPDATE accounts SET held_nano = (SELECT COALESCE(SUM(amount_nano), 0) FROM holds WHERE holds.account_id = accounts.id);
UPDATE api_keys SET held_nano = (SELECT COALESCE(SUM(amount_nano), 0) FROM holds WHERE holds.key_id = api_keys.id);

CREATE TRIGGER holds_open AFTER INSERT ON holds BEGIN
    UPDATE accounts SET held_nano = held_nano + NEW.amount_nano WHERE id = NEW.account_id;
    UPDATE api_keys SET held_nano = held_nano + NEW.amount_nano WHERE id = NEW.key_id;
END;

CREATE TRIGGER holds_close AFTER DELETE ON holds BEGIN
    UPDATE accounts SET held_nano = held_nano - OLD.amount_nano WHERE id = OLD.account_id;
    UPDATE api_keys SET held_nano = held_nano - OLD.amount_nano WHERE id = OLD.key_id;
END;

-- Prompt tokens written to a provider's cache (priced at the cache-write price).
ALTER TABLE usage ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;

-- Gateway processes, each beating every few seconds; one that stopped beating is dead
-- and its holds are ended by another.
CREATE TABLE replicas (
    id         TEXT    PRIMARY KEY,
    host       TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);

-- Background work that one process at a time does (sweepers): whoever holds the lease.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);

-- The balance poll of the in-memory book is gone: the database decides.
DROP INDEX ledger_movements;
