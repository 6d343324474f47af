-- host_counts kept per statement instead of per row (migration 002), for
-- two reasons:
--   * Deadlocks. The row trigger took a report's count rows in the order it
--     met them: the old state's first, then the new one's. Two servers
--     moving one host from state A to B and another from B to A at the same
--     time each held a row the other wanted. Here every statement adds its
--     net change per row in key order, so all writers take count rows in
--     one order, and rows whose count does not change (a host's old and new
--     state being equal for that row) are not touched at all.
--   * Bulk loads. A COPY or multi-row INSERT of a million hosts made eight
--     upserts per host; here it makes one aggregated upsert per statement.
-- A statement with no counted change (a heartbeat sets last_seen only)
-- aggregates its rows to nothing and writes nothing.
-- Statements end at lines holding only ";;" (function bodies have ";").
DROP TRIGGER hosts_count_insert ON hosts
;;
DROP TRIGGER hosts_count_update ON hosts
;;
DROP FUNCTION host_counts_count()
;;
DROP FUNCTION host_counts_add(hosts, BIGINT)
;;
CREATE FUNCTION host_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO host_counts AS c
		SELECT x.k, x.v, d.firmware_state, d.boot_chain, SUM(d.n), SUM(d.n * d.pcr7_sealed)
		FROM (SELECT h.*, 1 AS n FROM new_hosts h WHERE h.report_digest <> '') d
		CROSS JOIN LATERAL (VALUES ('', ''), ('platform', d.platform), ('model', d.model), ('firmware', d.firmware), ('release', d.os_release), ('lineage', d.lineage), ('channel', d.channel), ('label', d.label)) AS x(k, v)
		GROUP BY 1, 2, 3, 4
		ORDER BY 1, 2, 3, 4
		ON CONFLICT (dim, value, firmware_state, boot_chain)
		DO UPDATE SET hosts = c.hosts + EXCLUDED.hosts, sealed = c.sealed + EXCLUDED.sealed;
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO host_counts AS c
		SELECT x.k, x.v, d.firmware_state, d.boot_chain, SUM(d.n), SUM(d.n * d.pcr7_sealed)
		FROM (SELECT h.*, -1 AS n FROM old_hosts h WHERE h.report_digest <> '') d
		CROSS JOIN LATERAL (VALUES ('', ''), ('platform', d.platform), ('model', d.model), ('firmware', d.firmware), ('release', d.os_release), ('lineage', d.lineage), ('channel', d.channel), ('label', d.label)) AS x(k, v)
		GROUP BY 1, 2, 3, 4
		ORDER BY 1, 2, 3, 4
		ON CONFLICT (dim, value, firmware_state, boot_chain)
		DO UPDATE SET hosts = c.hosts + EXCLUDED.hosts, sealed = c.sealed + EXCLUDED.sealed;
	ELSE
		INSERT INTO host_counts AS c
		SELECT x.k, x.v, d.firmware_state, d.boot_chain, SUM(d.n), SUM(d.n * d.pcr7_sealed)
		FROM (SELECT h.*, 1 AS n FROM new_hosts h WHERE h.report_digest <> ''
			UNION ALL SELECT h.*, -1 AS n FROM old_hosts h WHERE h.report_digest <> '') d
		CROSS JOIN LATERAL (VALUES ('', ''), ('platform', d.platform), ('model', d.model), ('firmware', d.firmware), ('release', d.os_release), ('lineage', d.lineage), ('channel', d.channel), ('label', d.label)) AS x(k, v)
		GROUP BY 1, 2, 3, 4
		HAVING SUM(d.n) <> 0 OR SUM(d.n * d.pcr7_sealed) <> 0
		ORDER BY 1, 2, 3, 4
		ON CONFLICT (dim, value, firmware_state, boot_chain)
		DO UPDATE SET hosts = c.hosts + EXCLUDED.hosts, sealed = c.sealed + EXCLUDED.sealed;
	END IF;
	RETURN NULL;
END
$$
;;
-- A trigger with transition tables has one event.
CREATE TRIGGER hosts_count_insert AFTER INSERT ON hosts REFERENCING NEW TABLE AS new_hosts
	FOR EACH STATEMENT EXECUTE FUNCTION host_counts_apply()
;;
CREATE TRIGGER hosts_count_update AFTER UPDATE ON hosts REFERENCING OLD TABLE AS old_hosts NEW TABLE AS new_hosts
	FOR EACH STATEMENT EXECUTE FUNCTION host_counts_apply()
;;
CREATE TRIGGER hosts_count_delete AFTER DELETE ON hosts REFERENCING OLD TABLE AS old_hosts
	FOR EACH STATEMENT EXECUTE FUNCTION host_counts_apply()
