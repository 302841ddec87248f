"""Micrometer's same-named families are written once, as promtool checks."""

import subprocess


from medobs.core.catalog import gateway
from medobs.simulator.micrometer import TimerFamily, exposition
from tests.conftest import require_binary


def test_same_named_families_are_written_once():
    """Two pools write hikaricp_* families of the same names; the exposition merges them."""
    first = TimerFamily(gateway.HIKARI_USAGE, gateway.HIKARI_USAGE_MAX)
    second = TimerFamily(gateway.HIKARI_USAGE, gateway.HIKARI_USAGE_MAX)
    first.record(0.01, application="study-service", pool="HikariPool-1")
    second.record(0.02, application="inference-worker", pool="HikariPool-1")
    body, _ = exposition(first.families() + second.families())
    text = body.decode()
    assert text.count(f"# TYPE {gateway.HIKARI_USAGE.name} summary") == 1
    assert text.count(f"# TYPE {gateway.HIKARI_USAGE_MAX.name} gauge") == 1
    # Prometheus's own parser (promtool) accepts it
    result = subprocess.run([require_binary("promtool"), "check", "metrics"], input=body,
                            capture_output=True, timeout=30)
    assert result.returncode != 1 and b"parsing error" not in result.stderr, result.stderr
