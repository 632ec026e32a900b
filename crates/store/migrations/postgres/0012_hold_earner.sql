-- A stream's checkpoint also records who serves it, so that a replica settling the hold
-- of a dead one credits an instance owner's earning on what was delivered.
ALTER TABLE holds ADD COLUMN provider TEXT, ADD COLUMN earner_id BIGINT, ADD COLUMN earner_share_ppb BIGINT;
