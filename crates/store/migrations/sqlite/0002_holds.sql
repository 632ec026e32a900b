-- Reservations in flight: a request's cost ceiling, held against its account's balance
-- and its key's spend limit from before the upstream call until settlement. A row here
-- after a crash is a hold that never settled; the gateway releases it on start.
CREATE TABLE holds (
    request_id  TEXT    PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    key_id      TEXT    NOT NULL,
    amount_nano INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE INDEX holds_account ON holds (account_id);
