-- Hosted tool calls the provider ran and billed per call (web searches, web fetches):
-- counted in the request log beside the tokens.
ALTER TABLE usage ADD COLUMN web_search_calls BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN web_fetch_calls BIGINT NOT NULL DEFAULT 0;
