-- fanotify_sysctl_minimums (Kolide check; core osquery only)
-- Generated from integration/content/queries.yml by `make content`: do not edit.
--
-- Compares fs.inotify.max_user_watches, fs.inotify.max_user_instances,
-- fs.fanotify.max_user_marks and fs.fanotify.max_user_groups with recommended
-- minimums, using core osquery's system_controls only. One row per setting
-- with KOLIDE_CHECK_STATUS PASS or FAIL; INAPPLICABLE for the fs.fanotify
-- settings on kernels before 5.13, where they do not exist. It sees the
-- limits, not the usage: the extension's fanotify_limits table is needed for
-- that.
-- Fix: Run the remediation command of each failing row as root. It raises the
-- setting now (sysctl -w NAME=VALUE) and across reboots (writes NAME = VALUE
-- to /etc/sysctl.d/90-SUBSYSTEM-NAME.conf, the file the extension's own
-- remediation uses).
WITH minimums(name, recommended_minimum) AS (VALUES
  ('fs.inotify.max_user_watches', 524288),
  ('fs.inotify.max_user_instances', 512),
  ('fs.fanotify.max_user_marks', 65536),
  ('fs.fanotify.max_user_groups', 128)
)
SELECT minimums.name, system_controls.current_value, minimums.recommended_minimum,
       CASE WHEN CAST(system_controls.current_value AS INTEGER) < minimums.recommended_minimum
            THEN 'sysctl -w ' || minimums.name || '=' || minimums.recommended_minimum ||
                 ' && echo ''' || minimums.name || ' = ' || minimums.recommended_minimum ||
                 ''' > /etc/sysctl.d/90-' || replace(substr(minimums.name, 4), '.', '-') || '.conf'
            ELSE '' END AS remediation,
       CASE WHEN system_controls.current_value IS NULL THEN 'INAPPLICABLE'
            WHEN CAST(system_controls.current_value AS INTEGER) < minimums.recommended_minimum THEN 'FAIL'
            ELSE 'PASS' END AS KOLIDE_CHECK_STATUS
FROM minimums LEFT JOIN system_controls ON system_controls.name = minimums.name;
