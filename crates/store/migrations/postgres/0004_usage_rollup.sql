-- Usage per account, hour (UTC, Unix seconds of its start), model, key and provider,
-- maintained in the transaction that records usage, so that /api/usage reads a few rows
-- per hour instead of every request. cost_nano is what the ledger charged (after any
-- cap), so these totals equal the sum of the request log and of the ledger's charges.
CREATE TABLE usage_hourly (
    account_id        BIGINT NOT NULL,
    hour              BIGINT NOT NULL,
    model             TEXT   NOT NULL,
    key_id            TEXT   NOT NULL,
    provider          TEXT   NOT NULL,
    requests          BIGINT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost_nano         BIGINT NOT NULL,
    PRIMARY KEY (account_id, hour, model, key_id, provider)
);

-- What was recorded before this table existed.
INSERT INTO usage_hourly (account_id, hour, model, key_id, provider, requests, prompt_tokens, completion_tokens, cost_nano)
SELECT u.account_id, u.created_at - (u.created_at % 3600), u.model, u.key_id, u.provider,
       COUNT(*), SUM(u.prompt_tokens), SUM(u.completion_tokens), COALESCE(SUM(-l.amount_nano), 0)
  FROM usage u LEFT JOIN ledger l ON l.request_id = u.request_id AND l.kind = 'charge'
 GROUP BY u.account_id, u.created_at - (u.created_at % 3600), u.model, u.key_id, u.provider;

-- The request log pages by time within an account.
CREATE INDEX usage_account_request ON usage (account_id, created_at, request_id);
