-- The tables of Dex v2.45's SQL storage (storage/sql/migrate.go, every
-- migration applied), in PostgreSQL's types. For SQLite the test rewrites
-- the types as Dex's SQLite flavor does: bytea -> blob, timestamptz ->
-- timestamp, boolean -> integer. Columns holding JSON are bytea.
create table client (
	id text not null primary key,
	secret text not null,
	redirect_uris bytea not null,
	trusted_peers bytea not null,
	public boolean not null,
	name text not null,
	logo_url text not null
);
create table auth_request (
	id text not null primary key,
	client_id text not null,
	response_types bytea not null,
	scopes bytea not null,
	redirect_uri text not null,
	nonce text not null,
	state text not null,
	force_approval_prompt boolean not null,
	logged_in boolean not null,
	claims_user_id text not null,
	claims_username text not null,
	claims_email text not null,
	claims_email_verified boolean not null,
	claims_groups bytea not null,
	connector_id text not null,
	connector_data bytea,
	expiry timestamptz not null,
	claims_preferred_username text not null default '',
	code_challenge text not null default '',
	code_challenge_method text not null default '',
	hmac_key bytea
);
create table auth_code (
	id text not null primary key,
	client_id text not null,
	scopes bytea not null,
	nonce text not null,
	redirect_uri text not null,
	claims_user_id text not null,
	claims_username text not null,
	claims_email text not null,
	claims_email_verified boolean not null,
	claims_groups bytea not null,
	connector_id text not null,
	connector_data bytea,
	expiry timestamptz not null,
	claims_preferred_username text not null default '',
	code_challenge text not null default '',
	code_challenge_method text not null default ''
);
create table refresh_token (
	id text not null primary key,
	client_id text not null,
	scopes bytea not null,
	nonce text not null,
	claims_user_id text not null,
	claims_username text not null,
	claims_email text not null,
	claims_email_verified boolean not null,
	claims_groups bytea not null,
	connector_id text not null,
	connector_data bytea,
	token text not null default '',
	created_at timestamptz not null default '0001-01-01 00:00:00 UTC',
	last_used timestamptz not null default '0001-01-01 00:00:00 UTC',
	claims_preferred_username text not null default '',
	obsolete_token text default ''
);
create table password (
	email text not null primary key,
	hash bytea not null,
	username text not null,
	user_id text not null,
	preferred_username text not null default '',
	groups bytea,
	name text not null default '',
	email_verified boolean
);
create table keys (
	id text not null primary key,
	verification_keys bytea not null,
	signing_key bytea not null,
	signing_key_pub bytea not null,
	next_rotation timestamptz not null
);
create table offline_session (
	user_id text not null,
	conn_id text not null,
	refresh bytea not null,
	connector_data bytea,
	PRIMARY KEY (user_id, conn_id)
);
create table connector (
	id text not null primary key,
	type text not null,
	name text not null,
	resource_version text not null,
	config bytea
);
create table device_request (
	user_code text not null primary key,
	device_code text not null,
	client_id text not null,
	client_secret text,
	scopes bytea not null,
	expiry timestamptz not null
);
create table device_token (
	device_code text not null primary key,
	status text not null,
	token bytea,
	expiry timestamptz not null,
	last_request timestamptz not null,
	poll_interval integer not null,
	code_challenge text not null default '',
	code_challenge_method text not null default ''
);
create table migrations (
	num integer not null,
	at timestamptz not null
);
