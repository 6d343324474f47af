-- Materialised group counts: how many reported hosts share each combination
-- of the dimensions and the state pair, kept by a trigger on hosts. The fleet
-- questions over every host (readiness, what-if) read this table (its rows
-- are the fleet's distinct combinations) instead of scanning a million hosts.
-- Statements end at lines holding only ";;" (the function body has ";").
CREATE TABLE host_groups (
	platform       TEXT NOT NULL,
	model          TEXT NOT NULL,
	firmware       TEXT NOT NULL,
	os_release     TEXT NOT NULL,
	lineage        TEXT NOT NULL,
	channel        TEXT NOT NULL,
	label          TEXT NOT NULL,
	firmware_state TEXT NOT NULL,
	boot_chain     TEXT NOT NULL,
	hosts          BIGINT NOT NULL,
	sealed         BIGINT NOT NULL,
	PRIMARY KEY (platform, model, firmware, os_release, lineage, channel, label, firmware_state, boot_chain)
)
;;
CREATE FUNCTION host_groups_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.report_digest <> '' THEN
		UPDATE host_groups SET hosts = hosts - 1, sealed = sealed - OLD.pcr7_sealed
		WHERE platform = OLD.platform AND model = OLD.model AND firmware = OLD.firmware AND os_release = OLD.os_release
			AND lineage = OLD.lineage AND channel = OLD.channel AND label = OLD.label
			AND firmware_state = OLD.firmware_state AND boot_chain = OLD.boot_chain;
	END IF;
	IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.report_digest <> '' THEN
		INSERT INTO host_groups AS g VALUES (NEW.platform, NEW.model, NEW.firmware, NEW.os_release, NEW.lineage, NEW.channel,
			NEW.label, NEW.firmware_state, NEW.boot_chain, 1, NEW.pcr7_sealed)
		ON CONFLICT (platform, model, firmware, os_release, lineage, channel, label, firmware_state, boot_chain)
		DO UPDATE SET hosts = g.hosts + 1, sealed = g.sealed + EXCLUDED.sealed;
	END IF;
	RETURN NULL;
END
$$
;;
-- Only changes of what is counted fire it: a heartbeat (last_seen) does not.
CREATE TRIGGER hosts_count_insert AFTER INSERT OR DELETE ON hosts FOR EACH ROW EXECUTE FUNCTION host_groups_count()
;;
CREATE TRIGGER hosts_count_update AFTER UPDATE ON hosts FOR EACH ROW
	WHEN (OLD.report_digest IS DISTINCT FROM NEW.report_digest AND (OLD.report_digest = '' OR NEW.report_digest = '')
		OR (OLD.platform, OLD.model, OLD.firmware, OLD.os_release, OLD.lineage, OLD.channel, OLD.label, OLD.firmware_state, OLD.boot_chain, OLD.pcr7_sealed)
		IS DISTINCT FROM (NEW.platform, NEW.model, NEW.firmware, NEW.os_release, NEW.lineage, NEW.channel, NEW.label, NEW.firmware_state, NEW.boot_chain, NEW.pcr7_sealed))
	EXECUTE FUNCTION host_groups_count()
;;
INSERT INTO host_groups
	SELECT platform, model, firmware, os_release, lineage, channel, label, firmware_state, boot_chain, COUNT(*), SUM(pcr7_sealed)
	FROM hosts WHERE report_digest <> ''
	GROUP BY platform, model, firmware, os_release, lineage, channel, label, firmware_state, boot_chain
