-- The gateway polls for balance movements it did not make (credits, refunds,
-- adjustments); this partial index lets that poll skip the charge rows entirely.
CREATE INDEX ledger_movements ON ledger (id) WHERE kind <> 'charge';
