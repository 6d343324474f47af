-- issue 13: logs streamed while a job runs. A worker appends numbered
-- lines: log_next is the number of the next line the job's log expects (a
-- retried append skips what is stored), log_bytes what the log holds (it
-- is bounded).
ALTER TABLE jobs ADD COLUMN log_next BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN log_bytes BIGINT NOT NULL DEFAULT 0;
