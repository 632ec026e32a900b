-- The request log filtered by a status other than 200 (failures, refusals: rare) reads
-- this index instead of walking the whole log for a status that may never occur. Partial:
-- answered requests (nearly all rows) are not written to it. The query repeats
-- `status <> 200` so both planners can prove the index applies.
CREATE INDEX usage_account_status ON usage (account_id, status, created_at, request_id) WHERE status <> 200;
