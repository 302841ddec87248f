"""The SLO engine: specs (a superset of Sloth's ``prometheus/v1``) compiled into recording rules,
multi-window multi-burn-rate alerts and promtool tests; ``explain``; reports from Prometheus;
OpenSLO import. ``medobs slo --help`` lists the commands; docs/slo.md is the reference."""
