-- vouch serve: tokens, content-addressed blobs, hosts and their report history.
CREATE TABLE tokens (
	hash       BYTEA PRIMARY KEY,
	role       TEXT NOT NULL,
	host_id    TEXT NOT NULL DEFAULT '',
	note       TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL
);
CREATE TABLE blobs (
	digest     TEXT PRIMARY KEY,
	kind       TEXT NOT NULL,
	size       BIGINT NOT NULL,
	data       BYTEA NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE hosts (
	id             TEXT PRIMARY KEY,
	hostname       TEXT NOT NULL,
	enrolled_at    BIGINT NOT NULL,
	last_seen      BIGINT NOT NULL DEFAULT 0,
	report_digest  TEXT NOT NULL DEFAULT '',
	firmware_state TEXT NOT NULL DEFAULT '',
	boot_chain     TEXT NOT NULL DEFAULT '',
	platform       TEXT NOT NULL DEFAULT '',
	model          TEXT NOT NULL DEFAULT '',
	firmware       TEXT NOT NULL DEFAULT '',
	os_release     TEXT NOT NULL DEFAULT '',
	lineage        TEXT NOT NULL DEFAULT '',
	channel        TEXT NOT NULL DEFAULT '',
	label          TEXT NOT NULL DEFAULT '',
	pcr7_sealed    BIGINT NOT NULL DEFAULT 0
);
-- The report as sent, apart: the hosts table stays narrow for the scans
-- and GROUP BYs every fleet question makes.
CREATE TABLE host_facts (
	host_id TEXT PRIMARY KEY,
	facts   BYTEA NOT NULL
);
CREATE INDEX hosts_state ON hosts (firmware_state, boot_chain);
CREATE INDEX hosts_hostname ON hosts (hostname);
CREATE TABLE host_reports (
	host_id        TEXT NOT NULL,
	received_at    BIGINT NOT NULL,
	seq            BIGINT NOT NULL,
	report_digest  TEXT NOT NULL,
	firmware_state TEXT NOT NULL,
	boot_chain     TEXT NOT NULL,
	PRIMARY KEY (host_id, seq)
);
