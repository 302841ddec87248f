"""Backup freshness end to end: the documented pg_dump wrapper (docs/backup.md) writes the
textfile, the stack's real node_exporter reads it, and Prometheus has the backup's metrics under
the `node` job."""

from medobs.core.catalog import platform
from tests.stack_support import SCRAPE_INTERVAL, wait_until
from tests.integration.test_alerts_backup import run_wrapper


def test_a_real_backup_reaches_prometheus_through_node_exporter(running_stack, tmp_path):
    textfile_dir = running_stack.stack.path("textfile")
    result = run_wrapper(textfile_dir, running_stack.database, tmp_path / "dump.sql.gz")
    assert result.returncode == 0, result.stderr
    written = (textfile_dir / f"medobs_backup_{running_stack.database}.prom").read_text()
    recorded = next(
        float(line.split()[-1]) for line in written.splitlines()
        if line.startswith(platform.BACKUP_LAST_SUCCESS.name)
    )

    selector = f'{platform.BACKUP_LAST_SUCCESS}{{job="node", database="{running_stack.database}"}}'
    seen = wait_until(lambda: running_stack.value(selector), timeout=6 * SCRAPE_INTERVAL,
                      what=f"{selector} in Prometheus")
    assert seen == recorded
    size = running_stack.value(f'{platform.BACKUP_SIZE}{{job="node", database="{running_stack.database}"}}')
    assert size == (tmp_path / "dump.sql.gz").stat().st_size > 0
    assert running_stack.value(f'{platform.BACKUP_EXIT_CODE}{{job="node", database="{running_stack.database}"}}') == 0
