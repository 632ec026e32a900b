-- Holds and ledger rows no longer carry a foreign key to accounts. PostgreSQL checked it
-- with a query and a row lock for every row inserted: about a fifth of the database's CPU
-- per request at saturation (a hold row and a charge row each). Each writer establishes
-- the account in its own transaction instead, and no account is ever deleted:
-- - a hold is inserted only after the conditional UPDATE of its account found the row
--   (hold_funds, hold_funds_of_one_key, hold_funds_many);
-- - a settlement locks every account it writes a ledger row for (FOR UPDATE, in id order)
--   and refuses the whole batch when one is missing (store/src/postgres/usage.rs);
-- - a credit, an adjustment or a redemption locks or updates the account row first, and
--   fails when there is none.
ALTER TABLE holds DROP CONSTRAINT holds_account_id_fkey;
ALTER TABLE ledger DROP CONSTRAINT ledger_account_id_fkey;
