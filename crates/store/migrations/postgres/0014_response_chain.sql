-- Kept responses as a chain (issue 17): a row keeps only what its turn added (its input
-- items and its output) and names the response it continued (`previous_id`); the
-- conversation is rebuilt by walking the links back. A row without a link starts its
-- conversation — rows kept before this migration hold the whole conversation, so the
-- walk stops at them and they keep working. An expired row stays while a later row of
-- its conversation still needs it (the sweep deletes expired rows nothing links to).
ALTER TABLE responses ADD COLUMN previous_id TEXT;
CREATE INDEX responses_previous ON responses (previous_id);
