-- Responses kept so that a later request can continue from one (`previous_response_id`).
-- `record` is opaque to the store: what the Responses translation asked to keep;
-- `answer` is the Response object as the client received it (for GET /v1/responses/{id}).
CREATE TABLE responses (
    id          TEXT PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    record      BLOB NOT NULL,
    answer      BLOB NOT NULL
);
CREATE INDEX responses_expiry ON responses(expires_at);
