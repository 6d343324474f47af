-- Materialised group counts: how many reported hosts share each combination
-- of the dimensions and the state pair, kept by triggers on hosts. The fleet
-- questions over every host (readiness, what-if) read this table (its rows
-- are the fleet's distinct combinations) instead of scanning every host.
-- Statements end at lines holding only ";;" (trigger bodies have ";").
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
	hosts          INTEGER NOT NULL,
	sealed         INTEGER NOT NULL,
	PRIMARY KEY (platform, model, firmware, os_release, lineage, channel, label, firmware_state, boot_chain)
)
;;
CREATE TRIGGER hosts_count_add AFTER INSERT ON hosts WHEN NEW.report_digest <> ''
BEGIN
	INSERT OR IGNORE INTO host_groups VALUES (NEW.platform, NEW.model, NEW.firmware, NEW.os_release, NEW.lineage, NEW.channel,
		NEW.label, NEW.firmware_state, NEW.boot_chain, 0, 0);
	UPDATE host_groups SET hosts = hosts + 1, sealed = sealed + NEW.pcr7_sealed
	WHERE platform = NEW.platform AND model = NEW.model AND firmware = NEW.firmware AND os_release = NEW.os_release
		AND lineage = NEW.lineage AND channel = NEW.channel AND label = NEW.label
		AND firmware_state = NEW.firmware_state AND boot_chain = NEW.boot_chain;
END
;;
CREATE TRIGGER hosts_count_delete AFTER DELETE ON hosts WHEN OLD.report_digest <> ''
BEGIN
	UPDATE host_groups SET hosts = hosts - 1, sealed = sealed - OLD.pcr7_sealed
	WHERE platform = OLD.platform AND model = OLD.model AND firmware = OLD.firmware AND os_release = OLD.os_release
		AND lineage = OLD.lineage AND channel = OLD.channel AND label = OLD.label
		AND firmware_state = OLD.firmware_state AND boot_chain = OLD.boot_chain;
END
;;
-- Only changes of what is counted fire it: a heartbeat (last_seen) does not.
CREATE TRIGGER hosts_count_update AFTER UPDATE ON hosts
	WHEN (OLD.report_digest <> NEW.report_digest AND (OLD.report_digest = '' OR NEW.report_digest = ''))
		OR OLD.platform <> NEW.platform OR OLD.model <> NEW.model OR OLD.firmware <> NEW.firmware OR OLD.os_release <> NEW.os_release
		OR OLD.lineage <> NEW.lineage OR OLD.channel <> NEW.channel OR OLD.label <> NEW.label
		OR OLD.firmware_state <> NEW.firmware_state OR OLD.boot_chain <> NEW.boot_chain OR OLD.pcr7_sealed <> NEW.pcr7_sealed
BEGIN
	UPDATE host_groups SET hosts = hosts - 1, sealed = sealed - OLD.pcr7_sealed
	WHERE OLD.report_digest <> '' AND platform = OLD.platform AND model = OLD.model AND firmware = OLD.firmware
		AND os_release = OLD.os_release AND lineage = OLD.lineage AND channel = OLD.channel AND label = OLD.label
		AND firmware_state = OLD.firmware_state AND boot_chain = OLD.boot_chain;
	INSERT OR IGNORE INTO host_groups SELECT NEW.platform, NEW.model, NEW.firmware, NEW.os_release, NEW.lineage, NEW.channel,
		NEW.label, NEW.firmware_state, NEW.boot_chain, 0, 0 WHERE NEW.report_digest <> '';
	UPDATE host_groups SET hosts = hosts + 1, sealed = sealed + NEW.pcr7_sealed
	WHERE NEW.report_digest <> '' AND platform = NEW.platform AND model = NEW.model AND firmware = NEW.firmware
		AND os_release = NEW.os_release AND lineage = NEW.lineage AND channel = NEW.channel AND label = NEW.label
		AND firmware_state = NEW.firmware_state AND boot_chain = NEW.boot_chain;
END
;;
INSERT INTO host_groups
	SELECT platform, model, firmware, os_release, lineage, channel, label, firmware_state, boot_chain, COUNT(*), SUM(pcr7_sealed)
	FROM hosts WHERE report_digest <> ''
	GROUP BY platform, model, firmware, os_release, lineage, channel, label, firmware_state, boot_chain
