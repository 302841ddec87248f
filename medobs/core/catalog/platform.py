"""Metrics of Prometheus itself and the node-exporter textfile backup metrics."""

from medobs.core.catalog import metric

UP = metric(
    "up", "gauge", "1 if Prometheus's last scrape of a target succeeded.",
    source="prometheus", labels=("job", "instance"),
)
ALERTS = metric(
    "ALERTS", "gauge", "Alerts pending or firing, as Prometheus records them.",
    source="prometheus", labels=("alertname", "alertstate", "severity"),
)

_BACKUP = ("database",)
BACKUP_LAST_SUCCESS = metric(
    "medobs_backup_last_success_timestamp_seconds", "gauge",
    "Unix time at which the last successful backup finished.",
    source="medobs-backup", labels=_BACKUP, unit="seconds",
)
BACKUP_DURATION = metric(
    "medobs_backup_duration_seconds", "gauge", "How long the last backup ran.",
    source="medobs-backup", labels=_BACKUP, unit="seconds",
)
BACKUP_SIZE = metric(
    "medobs_backup_size_bytes", "gauge", "Size of the last backup's output.",
    source="medobs-backup", labels=_BACKUP, unit="bytes",
)
BACKUP_EXIT_CODE = metric(
    "medobs_backup_exit_code", "gauge", "Exit status of the last backup run (0 is success).",
    source="medobs-backup", labels=_BACKUP,
)
