-- Refusals say how much is left in the same call (no second round trip on the refusal
-- path, and nothing that can fail after the batch committed), a key is only ever held
-- under its own account, and a negative hold is an error.

-- hold_funds, and when it refuses, what the account has available ('balance:N') or the
-- key has left of its spend limit ('spend_limit:N'), read in the same transaction.
CREATE FUNCTION hold_funds_told(
    p_request_id TEXT, p_account_id BIGINT, p_key_id TEXT, p_amount BIGINT, p_enforce BOOLEAN,
    p_replica TEXT, p_model TEXT, p_endpoint TEXT, p_stream BOOLEAN, p_created_at BIGINT
) RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    outcome TEXT;
    remaining BIGINT;
BEGIN
    IF p_amount < 0 THEN
        RAISE EXCEPTION 'hold_funds_told: a hold cannot be negative';
    END IF;
    outcome := hold_funds(p_request_id, p_account_id, p_key_id, p_amount, p_enforce,
                          p_replica, p_model, p_endpoint, p_stream, p_created_at);
    IF outcome = 'balance' THEN
        SELECT balance_nano - held_nano INTO remaining FROM accounts WHERE id = p_account_id;
        RETURN 'balance:' || GREATEST(coalesce(remaining, 0), 0);
    ELSIF outcome = 'spend_limit' THEN
        SELECT spend_limit_nano - spent_nano - held_nano INTO remaining FROM api_keys WHERE id = p_key_id;
        RETURN 'spend_limit:' || GREATEST(coalesce(remaining, 0), 0);
    END IF;
    RETURN outcome;
END
$$;

CREATE OR REPLACE FUNCTION hold_funds_of_one_key(
    p_request_ids TEXT[], p_account_ids BIGINT[], p_key_ids TEXT[], p_amounts BIGINT[],
    p_enforce BOOLEAN[], p_replicas TEXT[], p_models TEXT[], p_endpoints TEXT[],
    p_streams BOOLEAN[], p_created_at BIGINT[]
) RETURNS TEXT[] LANGUAGE plpgsql AS $$
DECLARE
    n INT := array_length(p_request_ids, 1);
    total BIGINT := 0;
    enforce BOOLEAN := false;
    outcomes TEXT[];
BEGIN
    FOR i IN 1 .. n LOOP
        IF p_amounts[i] < 0 THEN
            RAISE EXCEPTION 'hold_funds_many: a hold cannot be negative';
        END IF;
        IF p_enforce[i] THEN
            total := total + p_amounts[i];
            enforce := true;
        END IF;
    END LOOP;
    UPDATE accounts SET held_nano = held_nano + total
     WHERE id = p_account_ids[1] AND (NOT enforce OR balance_nano - held_nano >= total);
    IF FOUND THEN
        UPDATE api_keys SET held_nano = held_nano + total
         WHERE id = p_key_ids[1] AND account_id = p_account_ids[1] AND (NOT enforce OR spend_limit_nano IS NULL
               OR spend_limit_nano - spent_nano - held_nano >= total);
        IF FOUND THEN
            INSERT INTO holds (request_id, account_id, key_id, amount_nano, created_at, replica, model, endpoint, stream)
            SELECT t.request_id, p_account_ids[1], p_key_ids[1], CASE WHEN t.enforce THEN t.amount ELSE 0 END,
                   t.created_at, t.replica, t.model, t.endpoint, t.stream
              FROM unnest(p_request_ids, p_amounts, p_enforce, p_created_at, p_replicas, p_models, p_endpoints, p_streams)
                   AS t(request_id, amount, enforce, created_at, replica, model, endpoint, stream);
            RETURN array_fill('held'::TEXT, ARRAY[n]);
        END IF;
        -- Undone inside the same transaction: no other session ever saw it.
        UPDATE accounts SET held_nano = held_nano - total WHERE id = p_account_ids[1];
    END IF;
    outcomes := '{}';
    FOR i IN 1 .. n LOOP
        outcomes := outcomes || hold_funds_told(
            p_request_ids[i], p_account_ids[i], p_key_ids[i], p_amounts[i], p_enforce[i],
            p_replicas[i], p_models[i], p_endpoints[i], p_streams[i], p_created_at[i]);
    END LOOP;
    RETURN outcomes;
END
$$;

CREATE OR REPLACE FUNCTION hold_funds_many(
    p_request_ids TEXT[], p_account_ids BIGINT[], p_key_ids TEXT[], p_amounts BIGINT[],
    p_enforce BOOLEAN[], p_replicas TEXT[], p_models TEXT[], p_endpoints TEXT[],
    p_streams BOOLEAN[], p_created_at BIGINT[]
) RETURNS TEXT[] LANGUAGE plpgsql AS $$
DECLARE
    n INT := coalesce(array_length(p_request_ids, 1), 0);
    outcomes TEXT[] := array_fill('held'::TEXT, ARRAY[n]);
    amounts BIGINT[];
    grp RECORD;
    k RECORD;
    fits BOOLEAN;
    raised TEXT[];
    i INT;
BEGIN
    -- The common batch: one key's requests (one account, one key). Simple expressions
    -- only until the two updates and the insert.
    IF n > 0 AND p_account_ids = array_fill(p_account_ids[1], ARRAY[n])
             AND p_key_ids = array_fill(p_key_ids[1], ARRAY[n]) THEN
        RETURN hold_funds_of_one_key(
            p_request_ids, p_account_ids, p_key_ids, p_amounts, p_enforce, p_replicas,
            p_models, p_endpoints, p_streams, p_created_at);
    END IF;
    IF (SELECT min(a) FROM unnest(p_amounts) AS a) < 0 THEN
        RAISE EXCEPTION 'hold_funds_many: a hold cannot be negative';
    END IF;
    amounts := array(SELECT CASE WHEN e THEN a ELSE 0 END FROM unnest(p_amounts, p_enforce) AS t(a, e));
    FOR grp IN
        SELECT t.account_id, sum(t.amount)::BIGINT AS total, bool_or(t.enforce) AS enforce
          FROM unnest(p_account_ids, amounts, p_enforce) AS t(account_id, amount, enforce)
         GROUP BY t.account_id ORDER BY t.account_id
    LOOP
        UPDATE accounts SET held_nano = held_nano + grp.total
         WHERE id = grp.account_id AND (NOT grp.enforce OR balance_nano - held_nano >= grp.total);
        fits := FOUND;
        raised := '{}';
        IF fits THEN
            FOR k IN
                SELECT t.key_id, sum(t.amount)::BIGINT AS total
                  FROM unnest(p_account_ids, p_key_ids, amounts) AS t(account_id, key_id, amount)
                 WHERE t.account_id = grp.account_id GROUP BY t.key_id ORDER BY t.key_id
            LOOP
                UPDATE api_keys SET held_nano = held_nano + k.total
                 WHERE id = k.key_id AND account_id = grp.account_id AND (NOT grp.enforce OR spend_limit_nano IS NULL
                       OR spend_limit_nano - spent_nano - held_nano >= k.total);
                IF NOT FOUND THEN
                    fits := false;
                    EXIT;
                END IF;
                raised := raised || k.key_id;
            END LOOP;
            IF NOT fits THEN
                UPDATE accounts SET held_nano = held_nano - grp.total WHERE id = grp.account_id;
                UPDATE api_keys SET held_nano = held_nano - t.total
                  FROM (SELECT u.key_id, sum(u.amount)::BIGINT AS total
                          FROM unnest(p_account_ids, p_key_ids, amounts) AS u(account_id, key_id, amount)
                         WHERE u.account_id = grp.account_id GROUP BY u.key_id) AS t
                 WHERE api_keys.id = t.key_id AND t.key_id = ANY(raised);
            END IF;
        END IF;
        IF fits THEN
            INSERT INTO holds (request_id, account_id, key_id, amount_nano, created_at, replica, model, endpoint, stream)
            SELECT t.request_id, t.account_id, t.key_id, t.amount, t.created_at, t.replica, t.model, t.endpoint, t.stream
              FROM unnest(p_request_ids, p_account_ids, p_key_ids, amounts, p_created_at, p_replicas, p_models, p_endpoints, p_streams)
                   AS t(request_id, account_id, key_id, amount, created_at, replica, model, endpoint, stream)
             WHERE t.account_id = grp.account_id;
        ELSE
            FOR i IN 1 .. n LOOP
                IF p_account_ids[i] = grp.account_id THEN
                    outcomes[i] := hold_funds_told(
                        p_request_ids[i], p_account_ids[i], p_key_ids[i], p_amounts[i], p_enforce[i],
                        p_replicas[i], p_models[i], p_endpoints[i], p_streams[i], p_created_at[i]);
                END IF;
            END LOOP;
        END IF;
    END LOOP;
    RETURN outcomes;
END
$$;

