-- An instance that reported more usage than the gateway counted keeps the flag here, apart
-- from `status_detail` (which every probe rewrites): when it was last caught, and what it
-- reported against what was charged.
ALTER TABLE instances ADD COLUMN usage_flagged_at BIGINT, ADD COLUMN usage_flag_detail TEXT;
