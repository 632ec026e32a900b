-- How long the client waited for the first byte of the answer (NULL: none came).
ALTER TABLE usage ADD COLUMN ttfb_ms BIGINT;
