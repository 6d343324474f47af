-- Materialised counts: how many reported hosts of each state pair have each
-- value of each dimension (dim '' is every host), kept by a trigger on hosts.
-- Readiness grouped by or filtered on one dimension, and what-if over every
-- host, read these few rows instead of scanning a million hosts; questions
-- that combine dimensions scan the hosts.
-- Statements end at lines holding only ";;" (function bodies have ";").
CREATE TABLE host_counts (
	dim            TEXT NOT NULL,
	value          TEXT NOT NULL,
	firmware_state TEXT NOT NULL,
	boot_chain     TEXT NOT NULL,
	hosts          BIGINT NOT NULL,
	sealed         BIGINT NOT NULL,
	PRIMARY KEY (dim, value, firmware_state, boot_chain)
)
;;
CREATE FUNCTION host_counts_add(h hosts, d BIGINT) RETURNS void LANGUAGE sql AS $$
	INSERT INTO host_counts AS c
	SELECT k, v, h.firmware_state, h.boot_chain, d, d * h.pcr7_sealed
	FROM (VALUES ('', ''), ('platform', h.platform), ('model', h.model), ('firmware', h.firmware), ('release', h.os_release), ('lineage', h.lineage), ('channel', h.channel), ('label', h.label)) AS x(k, v)
	ON CONFLICT (dim, value, firmware_state, boot_chain)
	DO UPDATE SET hosts = c.hosts + EXCLUDED.hosts, sealed = c.sealed + EXCLUDED.sealed
$$
;;
CREATE FUNCTION host_counts_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.report_digest <> '' THEN
		PERFORM host_counts_add(OLD, -1);
	END IF;
	IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.report_digest <> '' THEN
		PERFORM host_counts_add(NEW, 1);
	END IF;
	RETURN NULL;
END
$$
;;
CREATE TRIGGER hosts_count_insert AFTER INSERT OR DELETE ON hosts FOR EACH ROW EXECUTE FUNCTION host_counts_count()
;;
-- Only changes of what is counted fire it: a heartbeat (last_seen) does not.
CREATE TRIGGER hosts_count_update AFTER UPDATE ON hosts FOR EACH ROW
	WHEN (OLD.report_digest IS DISTINCT FROM NEW.report_digest AND (OLD.report_digest = '' OR NEW.report_digest = '')
		OR (OLD.platform, OLD.model, OLD.firmware, OLD.os_release, OLD.lineage, OLD.channel, OLD.label, OLD.firmware_state, OLD.boot_chain, OLD.pcr7_sealed)
		IS DISTINCT FROM (NEW.platform, NEW.model, NEW.firmware, NEW.os_release, NEW.lineage, NEW.channel, NEW.label, NEW.firmware_state, NEW.boot_chain, NEW.pcr7_sealed))
	EXECUTE FUNCTION host_counts_count()
;;
INSERT INTO host_counts
	SELECT x.k, x.v, h.firmware_state, h.boot_chain, COUNT(*), SUM(h.pcr7_sealed)
	FROM hosts h CROSS JOIN LATERAL (VALUES ('', ''), ('platform', h.platform), ('model', h.model), ('firmware', h.firmware), ('release', h.os_release), ('lineage', h.lineage), ('channel', h.channel), ('label', h.label)) AS x(k, v)
	WHERE h.report_digest <> ''
	GROUP BY x.k, x.v, h.firmware_state, h.boot_chain
