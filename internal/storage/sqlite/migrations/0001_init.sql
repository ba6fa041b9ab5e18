-- gatehouse storage, SQLite. Times are INTEGER microseconds since the Unix
-- epoch, UTC (datetime(col / 1000000, 'unixepoch') to read them); lists
-- are JSON text; byte strings are BLOBs (NULL when empty).

CREATE TABLE auth_requests (
    id                    TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL,
    response_types        TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    nonce                 TEXT NOT NULL,
    state                 TEXT NOT NULL,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    prompt                TEXT NOT NULL,
    max_age               INTEGER NOT NULL,
    hmac_key              BLOB,
    connector_id          TEXT NOT NULL,
    connector_data        BLOB,
    logged_in             INTEGER NOT NULL,
    user_id               TEXT NOT NULL,
    username              TEXT NOT NULL,
    preferred_username    TEXT NOT NULL,
    email                 TEXT NOT NULL,
    email_verified        INTEGER NOT NULL,
    claim_groups       TEXT NOT NULL,
    auth_time             INTEGER NOT NULL,
    client_ip             TEXT NOT NULL,
    expiry                INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX auth_requests_expiry ON auth_requests (expiry);

CREATE TABLE auth_codes (
    id                    TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    nonce                 TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    connector_id          TEXT NOT NULL,
    connector_data        BLOB,
    user_id               TEXT NOT NULL,
    username              TEXT NOT NULL,
    preferred_username    TEXT NOT NULL,
    email                 TEXT NOT NULL,
    email_verified        INTEGER NOT NULL,
    claim_groups       TEXT NOT NULL,
    auth_time             INTEGER NOT NULL,
    expiry                INTEGER NOT NULL,
    redeemed_at           INTEGER NOT NULL,
    family_id             TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX auth_codes_expiry ON auth_codes (expiry);

CREATE TABLE refresh_families (
    id                  TEXT PRIMARY KEY,
    client_id           TEXT NOT NULL,
    connector_id        TEXT NOT NULL,
    scopes              TEXT NOT NULL,
    nonce               TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    username            TEXT NOT NULL,
    preferred_username  TEXT NOT NULL,
    email               TEXT NOT NULL,
    email_verified      INTEGER NOT NULL,
    claim_groups       TEXT NOT NULL,
    connector_data      BLOB,
    claims_refreshed_at INTEGER NOT NULL,
    auth_time           INTEGER NOT NULL,
    generation          INTEGER NOT NULL,
    current_hash        BLOB,
    previous_hash       BLOB,
    rotated_at          INTEGER NOT NULL,
    rotation_key        BLOB,
    created_at          INTEGER NOT NULL,
    last_used           INTEGER NOT NULL,
    client_ip           TEXT NOT NULL,
    revoked             INTEGER NOT NULL
) WITHOUT ROWID;
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
    scopes             TEXT NOT NULL,
    expiry             INTEGER NOT NULL,
    poll_interval_ns   INTEGER NOT NULL,
    last_poll          INTEGER NOT NULL,
    status             TEXT NOT NULL,
    connector_id       TEXT NOT NULL,
    connector_data     BLOB,
    user_id            TEXT NOT NULL,
    username           TEXT NOT NULL,
    preferred_username TEXT NOT NULL,
    email              TEXT NOT NULL,
    email_verified     INTEGER NOT NULL,
    claim_groups       TEXT NOT NULL,
    auth_time          INTEGER NOT NULL,
    nonce              TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX device_requests_expiry ON device_requests (expiry);

-- The key is the lower-cased e-mail address.
CREATE TABLE passwords (
    email    TEXT PRIMARY KEY,
    hash     BLOB,
    username TEXT NOT NULL,
    user_id  TEXT NOT NULL
) WITHOUT ROWID;

-- One row: the whole key set, replaced by compare-and-swap on version.
CREATE TABLE signing_keys (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    signing_key       BLOB,
    verification_keys TEXT NOT NULL,
    next_rotation     INTEGER NOT NULL,
    version           INTEGER NOT NULL
);
