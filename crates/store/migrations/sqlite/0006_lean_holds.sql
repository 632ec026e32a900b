-- Every request now inserts and deletes a hold: keep that to the table's own b-tree.
-- Nothing looks holds up by account (accounts.held_nano carries the sum) or by replica
-- often enough for an index (the sweeper reads the few open holds whole).
DROP INDEX holds_account;
DROP INDEX holds_replica;
