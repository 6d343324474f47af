-- issue 13: image-validation job templates, jobs (a queue with leases for
-- remote workers), their state changes in order, and their logs.
CREATE TABLE job_templates (
	name       TEXT PRIMARY KEY,
	body       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE TABLE jobs (
	id               TEXT PRIMARY KEY,
	template         TEXT NOT NULL DEFAULT '',
	priority         BIGINT NOT NULL DEFAULT 0,
	state            TEXT NOT NULL,
	spec             TEXT NOT NULL,
	need_kvm         BIGINT NOT NULL DEFAULT 0,
	need_cores       BIGINT NOT NULL DEFAULT 0,
	need_memory_mib  BIGINT NOT NULL DEFAULT 0,
	need_disk_mib    BIGINT NOT NULL DEFAULT 0,
	worker           TEXT NOT NULL DEFAULT '',
	lease            TEXT NOT NULL DEFAULT '',
	lease_until      BIGINT NOT NULL DEFAULT 0,
	attempt          BIGINT NOT NULL DEFAULT 0,
	max_attempts     BIGINT NOT NULL DEFAULT 1,
	cancel_requested BIGINT NOT NULL DEFAULT 0,
	results          TEXT NOT NULL DEFAULT '[]',
	report           TEXT NOT NULL DEFAULT '{}',
	reason           TEXT NOT NULL DEFAULT '',
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL,
	started_at       BIGINT NOT NULL DEFAULT 0,
	finished_at      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_queue ON jobs (state, priority, created_at);
CREATE TABLE job_events (
	seq    INTEGER PRIMARY KEY AUTOINCREMENT,
	job_id TEXT NOT NULL,
	at     BIGINT NOT NULL,
	state  TEXT NOT NULL,
	worker TEXT NOT NULL DEFAULT '',
	note   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX job_events_job ON job_events (job_id, seq);
CREATE TABLE job_logs (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	job_id    TEXT NOT NULL,
	case_name TEXT NOT NULL DEFAULT '',
	at        BIGINT NOT NULL,
	line      TEXT NOT NULL
);
CREATE INDEX job_logs_job ON job_logs (job_id, case_name, seq);
