-- Community instances (CONTRACTS §7): model servers that accounts register, which the
-- gateway probes and routes to once they prove they are online and what they claim.

-- api_key is the instance_key: the gateway presents it (Bearer) on every call to the
-- instance, so it is kept as it is; it is never returned by the API or logged.
-- status is 'disabled' exactly when the owner (enabled = false) or an admin turned it off.
-- revision counts changes that call for a new probe (address, models, key, enabling):
-- a probe of an older revision is not recorded. lease_owner/lease_until: the replica
-- probing it and until when no other replica may (also when it is next due).
CREATE TABLE instances (
    id                   TEXT    PRIMARY KEY,                  -- inst_<uuid v7>
    account_id           BIGINT  NOT NULL REFERENCES accounts(id),
    name                 TEXT    NOT NULL,
    base_url             TEXT    NOT NULL,
    region               TEXT,
    api_key              TEXT    NOT NULL,
    enabled              BOOLEAN NOT NULL DEFAULT true,
    admin_disabled       BOOLEAN NOT NULL DEFAULT false,
    status               TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'online', 'offline', 'mismatch', 'disabled')),
    status_detail        TEXT    NOT NULL DEFAULT '',
    last_probe_at        BIGINT,
    latency_ms           BIGINT,
    consecutive_failures BIGINT  NOT NULL DEFAULT 0,
    revision             BIGINT  NOT NULL DEFAULT 0,
    lease_owner          TEXT,
    lease_until          BIGINT  NOT NULL DEFAULT 0,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL
);
CREATE INDEX instances_account ON instances (account_id, created_at);
CREATE INDEX instances_due ON instances (lease_until) WHERE enabled AND NOT admin_disabled;

-- The catalog models an instance serves, and the name its server knows each by.
CREATE TABLE instance_models (
    instance_id    TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    model          TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    PRIMARY KEY (instance_id, model)
);

-- Hardware as the owner declares it. memory_mb: 1 GB = 1000 MB, so a memory_gb with up
-- to three decimals is stored exactly.
CREATE TABLE processing_units (
    id          TEXT    PRIMARY KEY,                           -- pu_<uuid v7>
    instance_id TEXT    NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL CHECK (kind IN ('gpu', 'cpu', 'npu', 'tpu')),
    vendor      TEXT    NOT NULL,
    model       TEXT    NOT NULL,
    memory_mb   BIGINT  NOT NULL CHECK (memory_mb > 0),
    count       BIGINT  NOT NULL CHECK (count >= 1),
    created_at  BIGINT  NOT NULL
);
CREATE INDEX processing_units_instance ON processing_units (instance_id);

CREATE TABLE software (
    id          TEXT    PRIMARY KEY,                           -- sw_<uuid v7>
    instance_id TEXT    NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX software_instance ON software (instance_id);

-- Each probe's verdict, kept two days: the uptime of the last 24 hours.
CREATE TABLE instance_probes (
    instance_id TEXT    NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    at          BIGINT  NOT NULL,
    online      BOOLEAN NOT NULL
);
CREATE INDEX instance_probes_at ON instance_probes (instance_id, at);

-- A request served by an instance is recorded with provider 'instance:<id>' (the
-- X-TokenRouter-Provider it answered with): its statistics read these rows.
CREATE INDEX usage_instance ON usage (provider, created_at) WHERE provider LIKE 'instance:%';

-- Bumped whenever the set of routable instances may have changed.
INSERT INTO meta (name, value) VALUES ('instances_version', 0);
