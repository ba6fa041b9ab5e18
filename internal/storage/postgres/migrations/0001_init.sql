-- gatehouse storage, PostgreSQL. Times are timestamptz (microseconds);
-- lists are JSONB arrays; byte strings are BYTEA (NULL when empty).

CREATE TABLE auth_requests (
    id                    TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL,
    response_types        JSONB NOT NULL,
    scopes                JSONB NOT NULL,
    redirect_uri          TEXT NOT NULL,
    nonce                 TEXT NOT NULL,
    state                 TEXT NOT NULL,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    prompt                TEXT NOT NULL,
    max_age               INTEGER NOT NULL,
    hmac_key              BYTEA,
    connector_id          TEXT NOT NULL,
    connector_data        BYTEA,
    logged_in             BOOLEAN NOT NULL,
    user_id               TEXT NOT NULL,
    username              TEXT NOT NULL,
    preferred_username    TEXT NOT NULL,
    email                 TEXT NOT NULL,
    email_verified        BOOLEAN NOT NULL,
    claim_groups          JSONB NOT NULL,
    auth_time             TIMESTAMPTZ NOT NULL,
    client_ip             TEXT NOT NULL,
    expiry                TIMESTAMPTZ NOT NULL
);
CREATE INDEX auth_requests_expiry ON auth_requests (expiry);

CREATE TABLE auth_codes (
    id                    TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    nonce                 TEXT NOT NULL,
    scopes                JSONB NOT NULL,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    connector_id          TEXT NOT NULL,
    connector_data        BYTEA,
    user_id               TEXT NOT NULL,
    username              TEXT NOT NULL,
    preferred_username    TEXT NOT NULL,
    email                 TEXT NOT NULL,
    email_verified        BOOLEAN NOT NULL,
    claim_groups          JSONB NOT NULL,
    auth_time             TIMESTAMPTZ NOT NULL,
    expiry                TIMESTAMPTZ NOT NULL,
    redeemed_at           TIMESTAMPTZ NOT NULL,
    family_id             TEXT NOT NULL
);
CREATE INDEX auth_codes_expiry ON auth_codes (expiry);

CREATE TABLE refresh_families (
    id                  TEXT PRIMARY KEY,
    client_id           TEXT NOT NULL,
    connector_id        TEXT NOT NULL,
    scopes              JSONB NOT NULL,
    nonce               TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    username            TEXT NOT NULL,
    preferred_username  TEXT NOT NULL,
    email               TEXT NOT NULL,
    email_verified      BOOLEAN NOT NULL,
    claim_groups        JSONB NOT NULL,
    connector_data      BYTEA,
    claims_refreshed_at TIMESTAMPTZ NOT NULL,
    auth_time           TIMESTAMPTZ NOT NULL,
    generation          BIGINT NOT NULL,
    current_hash        BYTEA,
    previous_hash       BYTEA,
    rotated_at          TIMESTAMPTZ NOT NULL,
    rotation_key        BYTEA,
    created_at          TIMESTAMPTZ NOT NULL,
    last_used           TIMESTAMPTZ NOT NULL,
    client_ip           TEXT NOT NULL,
    revoked             BOOLEAN NOT NULL
);
-- ListRefreshFamilies: one user's sessions, newest first.
CREATE INDEX refresh_families_user ON refresh_families (connector_id, user_id, created_at DESC);
-- GarbageCollect: revoked, idle and absolute-expired families.
CREATE INDEX refresh_families_revoked ON refresh_families (revoked) WHERE revoked;
CREATE INDEX refresh_families_last_used ON refresh_families (last_used);
CREATE INDEX refresh_families_created_at ON refresh_families (created_at);

CREATE TABLE device_requests (
    device_code_hash   TEXT PRIMARY KEY,
    user_code          TEXT NOT NULL UNIQUE,
    client_id          TEXT NOT NULL,
    scopes             JSONB NOT NULL,
    expiry             TIMESTAMPTZ NOT NULL,
    poll_interval_ns   BIGINT NOT NULL,
    last_poll          TIMESTAMPTZ NOT NULL,
    status             TEXT NOT NULL,
    connector_id       TEXT NOT NULL,
    connector_data     BYTEA,
    user_id            TEXT NOT NULL,
    username           TEXT NOT NULL,
    preferred_username TEXT NOT NULL,
    email              TEXT NOT NULL,
    email_verified     BOOLEAN NOT NULL,
    claim_groups       JSONB NOT NULL,
    auth_time          TIMESTAMPTZ NOT NULL,
    nonce              TEXT NOT NULL
);
CREATE INDEX device_requests_expiry ON device_requests (expiry);

-- The key is the lower-cased e-mail address.
CREATE TABLE passwords (
    email    TEXT PRIMARY KEY,
    hash     BYTEA,
    username TEXT NOT NULL,
    user_id  TEXT NOT NULL
);

-- One row: the whole key set, replaced by compare-and-swap on version.
CREATE TABLE signing_keys (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    signing_key       BYTEA,
    verification_keys JSONB NOT NULL,
    next_rotation     TIMESTAMPTZ NOT NULL,
    version           BIGINT NOT NULL
);
