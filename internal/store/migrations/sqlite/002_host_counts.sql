-- Materialised counts: how many reported hosts of each state pair have each
-- value of each dimension (dim '' is every host), kept by triggers on hosts.
-- Readiness grouped by or filtered on one dimension, and what-if over every
-- host, read these few rows instead of scanning every host; questions that
-- combine dimensions scan the hosts.
-- Statements end at lines holding only ";;" (trigger bodies have ";").
CREATE TABLE host_counts (
	dim            TEXT NOT NULL,
	value          TEXT NOT NULL,
	firmware_state TEXT NOT NULL,
	boot_chain     TEXT NOT NULL,
	hosts          INTEGER NOT NULL,
	sealed         INTEGER NOT NULL,
	PRIMARY KEY (dim, value, firmware_state, boot_chain)
)
;;
CREATE TRIGGER hosts_count_insert AFTER INSERT ON hosts WHEN NEW.report_digest <> ''
BEGIN
	INSERT OR IGNORE INTO host_counts SELECT k, v, NEW.firmware_state, NEW.boot_chain, 0, 0 FROM (SELECT '' AS k, '' AS v UNION ALL SELECT 'platform', NEW.platform UNION ALL SELECT 'model', NEW.model UNION ALL SELECT 'firmware', NEW.firmware UNION ALL SELECT 'release', NEW.os_release UNION ALL SELECT 'lineage', NEW.lineage UNION ALL SELECT 'channel', NEW.channel UNION ALL SELECT 'label', NEW.label);
	UPDATE host_counts SET hosts = hosts + 1, sealed = sealed + NEW.pcr7_sealed
	WHERE firmware_state = NEW.firmware_state AND boot_chain = NEW.boot_chain AND ((dim = '' AND value = '')
		OR (dim = 'platform' AND value = NEW.platform)
		OR (dim = 'model' AND value = NEW.model)
		OR (dim = 'firmware' AND value = NEW.firmware)
		OR (dim = 'release' AND value = NEW.os_release)
		OR (dim = 'lineage' AND value = NEW.lineage)
		OR (dim = 'channel' AND value = NEW.channel)
		OR (dim = 'label' AND value = NEW.label));
END
;;
CREATE TRIGGER hosts_count_delete AFTER DELETE ON hosts WHEN OLD.report_digest <> ''
BEGIN
	UPDATE host_counts SET hosts = hosts - 1, sealed = sealed - OLD.pcr7_sealed
	WHERE firmware_state = OLD.firmware_state AND boot_chain = OLD.boot_chain AND ((dim = '' AND value = '')
		OR (dim = 'platform' AND value = OLD.platform)
		OR (dim = 'model' AND value = OLD.model)
		OR (dim = 'firmware' AND value = OLD.firmware)
		OR (dim = 'release' AND value = OLD.os_release)
		OR (dim = 'lineage' AND value = OLD.lineage)
		OR (dim = 'channel' AND value = OLD.channel)
		OR (dim = 'label' AND value = OLD.label));
END
;;
-- Only changes of what is counted fire them: a heartbeat (last_seen) does not.
CREATE TRIGGER hosts_count_update_old AFTER UPDATE ON hosts
	WHEN OLD.report_digest <> '' AND (NEW.report_digest = ''
		OR OLD.platform <> NEW.platform OR OLD.model <> NEW.model OR OLD.firmware <> NEW.firmware OR OLD.os_release <> NEW.os_release
		OR OLD.lineage <> NEW.lineage OR OLD.channel <> NEW.channel OR OLD.label <> NEW.label
		OR OLD.firmware_state <> NEW.firmware_state OR OLD.boot_chain <> NEW.boot_chain OR OLD.pcr7_sealed <> NEW.pcr7_sealed)
BEGIN
	UPDATE host_counts SET hosts = hosts - 1, sealed = sealed - OLD.pcr7_sealed
	WHERE firmware_state = OLD.firmware_state AND boot_chain = OLD.boot_chain AND ((dim = '' AND value = '')
		OR (dim = 'platform' AND value = OLD.platform)
		OR (dim = 'model' AND value = OLD.model)
		OR (dim = 'firmware' AND value = OLD.firmware)
		OR (dim = 'release' AND value = OLD.os_release)
		OR (dim = 'lineage' AND value = OLD.lineage)
		OR (dim = 'channel' AND value = OLD.channel)
		OR (dim = 'label' AND value = OLD.label));
END
;;
CREATE TRIGGER hosts_count_update_new AFTER UPDATE ON hosts
	WHEN NEW.report_digest <> '' AND (OLD.report_digest = ''
		OR OLD.platform <> NEW.platform OR OLD.model <> NEW.model OR OLD.firmware <> NEW.firmware OR OLD.os_release <> NEW.os_release
		OR OLD.lineage <> NEW.lineage OR OLD.channel <> NEW.channel OR OLD.label <> NEW.label
		OR OLD.firmware_state <> NEW.firmware_state OR OLD.boot_chain <> NEW.boot_chain OR OLD.pcr7_sealed <> NEW.pcr7_sealed)
BEGIN
	INSERT OR IGNORE INTO host_counts SELECT k, v, NEW.firmware_state, NEW.boot_chain, 0, 0 FROM (SELECT '' AS k, '' AS v UNION ALL SELECT 'platform', NEW.platform UNION ALL SELECT 'model', NEW.model UNION ALL SELECT 'firmware', NEW.firmware UNION ALL SELECT 'release', NEW.os_release UNION ALL SELECT 'lineage', NEW.lineage UNION ALL SELECT 'channel', NEW.channel UNION ALL SELECT 'label', NEW.label);
	UPDATE host_counts SET hosts = hosts + 1, sealed = sealed + NEW.pcr7_sealed
	WHERE firmware_state = NEW.firmware_state AND boot_chain = NEW.boot_chain AND ((dim = '' AND value = '')
		OR (dim = 'platform' AND value = NEW.platform)
		OR (dim = 'model' AND value = NEW.model)
		OR (dim = 'firmware' AND value = NEW.firmware)
		OR (dim = 'release' AND value = NEW.os_release)
		OR (dim = 'lineage' AND value = NEW.lineage)
		OR (dim = 'channel' AND value = NEW.channel)
		OR (dim = 'label' AND value = NEW.label));
END
;;
INSERT INTO host_counts
	SELECT x.k, x.v, x.firmware_state, x.boot_chain, COUNT(*), SUM(x.pcr7_sealed) FROM (
		SELECT '' AS k, '' AS v, firmware_state, boot_chain, pcr7_sealed FROM hosts WHERE report_digest <> '' UNION ALL SELECT 'platform', platform, firmware_state, boot_chain, pcr7_sealed FROM hosts WHERE report_digest <> '' UNION ALL SELECT 'model', model, firmware_state, boot_chain, pcr7_sealed FROM hosts WHERE report_digest <> '' UNION ALL SELECT 'firmware', firmware, firmware_state, boot_chain, pcr7_sealed FROM hosts WHERE report_digest <> '' UNION ALL SELECT 'release', os_release, firmware_state, boot_chain, pcr7_sealed FROM hosts WHERE report_digest <> '' UNION ALL SELECT 'lineage', lineage, firmware_state, boot_chain, pcr7_sealed FROM hosts WHERE report_digest <> '' UNION ALL SELECT 'channel', channel, firmware_state, boot_chain, pcr7_sealed FROM hosts WHERE report_digest <> '' UNION ALL SELECT 'label', label, firmware_state, boot_chain, pcr7_sealed FROM hosts WHERE report_digest <> ''
	) x
	GROUP BY x.k, x.v, x.firmware_state, x.boot_chain
