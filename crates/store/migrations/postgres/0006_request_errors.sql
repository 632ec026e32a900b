-- Why a request failed or was refused (the error's code, e.g. insufficient_quota); NULL
-- for answered requests. Refused requests are recorded too, at no cost.
ALTER TABLE usage ADD COLUMN error_code TEXT;
