"""The site: what differs from one installation of medobs to the next (docs/site-config.md).

A site file is YAML; every key is optional and defaults to the platform's own values, so no file
means today's output. ``medobs build --config FILE`` (or ``$MEDOBS_CONFIG``) loads one and makes it
the active site for the build: generators read it with :func:`current`, never from constants.

The dataclasses below are the single description of the file: :func:`parse` checks a document
against them (unknown keys and wrong types are one line naming the key) and :func:`json_schema`
derives the JSON Schema shipped with the package from them, so the two cannot drift.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medobs import UserError

#: The environment variable naming the site file when --config is not given.
ENVIRONMENT_VARIABLE = "MEDOBS_CONFIG"


class SiteError(UserError):
    """A site file that cannot be used: one line naming the file and the key, exit status 1."""

    exit_code = 1


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class Grafana:
    url: str = field(default="https://grafana.med-diagnosis.com", metadata=_doc(
        "Base URL of Grafana: alerts link to dashboards under it"))
    folder: str = field(default="Medical platform (medobs)", metadata=_doc(
        "Folder the dashboards are filed in (the dashboard sidecar's folder annotation, provisioning, publish)"))
    datasource_uid: str = field(default="medobs-prometheus", metadata=_doc(
        "uid of the Prometheus datasource the dashboards query by default (kube-prometheus-stack's is `prometheus`)"))


@dataclass(frozen=True)
class KubePrometheusStackJobs:
    kubelet: str = field(default="kubelet", metadata=_doc(
        "`job` label of the kubelet's series, cAdvisor's included (those with `metrics_path=\"/metrics/cadvisor\"`)"))
    kube_state_metrics: str = field(default="kube-state-metrics", metadata=_doc(
        "`job` label of kube-state-metrics' series"))
    node_exporter: str = field(default="node-exporter", metadata=_doc(
        "`job` label of node-exporter's series"))


@dataclass(frozen=True)
class KubePrometheusStack:
    release: str = field(default="kube-prometheus-stack", metadata=_doc(
        "Helm release name of kube-prometheus-stack: the `release` label its Prometheus, Grafana sidecar "
        "and Alertmanager select objects by"))
    namespace: str = field(default="monitoring", metadata=_doc(
        "Namespace kube-prometheus-stack runs in (Prometheus, Alertmanager, kube-state-metrics)"))
    scrapes_cluster: bool = field(default=False, metadata=_doc(
        "true when kube-prometheus-stack scrapes the kubelet/cAdvisor, kube-state-metrics and node-exporter "
        "(its defaults): medobs then generates no scrape job or monitor of its own for them, and its alerts "
        "and dashboards select kube-prometheus-stack's job names (`jobs`)"))
    jobs: KubePrometheusStackJobs = field(default_factory=KubePrometheusStackJobs, metadata=_doc(
        "kube-prometheus-stack's job names, used when `scrapes_cluster` is true"))
    prometheus_pod_labels: dict[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "prometheus"}, metadata=_doc(
            "Labels of the Prometheus pods: the scrape NetworkPolicy admits only pods with all of them "
            "in `namespace`"))


@dataclass(frozen=True)
class SecretKey:
    name: str = field(metadata=_doc("Name of a Secret in the site's namespace"))
    key: str = field(metadata=_doc("Key in that Secret"))

    @property
    def mounted_file(self) -> str:
        """Where prometheus-operator mounts it in Alertmanager (a Secret listed in its ``spec.secrets``)."""
        return f"/etc/alertmanager/secrets/{self.name}/{self.key}"


_RECEIVERS_SECRET = "alertmanager-receivers"


@dataclass(frozen=True)
class Receivers:
    pagerduty_url: str = field(default="https://events.pagerduty.com/v2/enqueue", metadata=_doc(
        "PagerDuty Events API v2 URL of the `paging` receiver (critical)"))
    pagerduty_routing_key: SecretKey = field(
        default_factory=lambda: SecretKey(_RECEIVERS_SECRET, "pagerduty-routing-key"),
        metadata=_doc("Secret key holding the PagerDuty routing (integration) key"))
    ticket_url: str = field(default="http://jiralert.monitoring.svc:9097/alert", metadata=_doc(
        "Webhook URL of the `ticket` receiver (warning)"))
    ticket_token: SecretKey = field(
        default_factory=lambda: SecretKey(_RECEIVERS_SECRET, "ticket-token"),
        metadata=_doc("Secret key holding the ticket webhook's bearer token"))
    heartbeat_url: str = field(default="https://heartbeat.med-diagnosis.com/api/v1/alertmanager", metadata=_doc(
        "Webhook URL of the `heartbeat` receiver (the always-firing heartbeat alert, a dead man's switch)"))
    heartbeat_token: SecretKey = field(
        default_factory=lambda: SecretKey(_RECEIVERS_SECRET, "heartbeat-token"),
        metadata=_doc("Secret key holding the heartbeat webhook's bearer token"))

    def secrets(self) -> list[SecretKey]:
        return [self.pagerduty_routing_key, self.ticket_token, self.heartbeat_token]


@dataclass(frozen=True)
class BasicAuth:
    username: SecretKey = field(metadata=_doc("Secret key holding the user name"))
    password: SecretKey = field(metadata=_doc("Secret key holding the password"))


@dataclass(frozen=True)
class ExporterTLS:
    web_config: SecretKey = field(metadata=_doc(
        "Secret key holding the medobs exporters' `--web.config.file` (exporter-toolkit format); the whole "
        "Secret is mounted at /etc/medobs/web, so the certificate and key it names lie there too"))
    ca: SecretKey = field(metadata=_doc(
        "Secret key holding the CA certificate Prometheus verifies the exporters' certificates with"))
    server_name: str = field(default="", metadata=_doc(
        "Name Prometheus expects in the exporters' certificates (empty: the target's address)"))
    basic_auth: BasicAuth | None = field(default=None, metadata=_doc(
        "The user Prometheus authenticates as (one of the web config's `basic_auth_users`); null: none"))


@dataclass(frozen=True)
class Site:
    namespace: str = field(default="medical-platform", metadata=_doc(
        "Namespace of the platform and of every medobs object"))
    cluster: str = field(default="medical-platform", metadata=_doc(
        "Name of the cluster: the default of the dashboards' `cluster` variable"))
    runbook_base_url: str = field(
        default="https://gitlab.med-diagnosis.com/platform/medobs/-/blob/main/alerts/runbooks",
        metadata=_doc("Where the runbooks are browsable: each alert's runbook_url is BASE/ALERTNAME.md"))
    image: str = field(default="registry.med-diagnosis.com/medobs", metadata=_doc(
        "Image repository of the medobs containers; tags are `<version>-<extra>`"))
    grafana: Grafana = field(default_factory=Grafana, metadata=_doc("Grafana"))
    kube_prometheus_stack: KubePrometheusStack = field(default_factory=KubePrometheusStack, metadata=_doc(
        "The kube-prometheus-stack that picks up the generated objects"))
    receivers: Receivers = field(default_factory=Receivers, metadata=_doc(
        "Where Alertmanager delivers: URLs, and Secret keys for every credential (never the credential)"))
    exporter_tls: ExporterTLS | None = field(default=None, metadata=_doc(
        "TLS (and optionally basic auth) of the medobs exporters in Kubernetes; null: plain HTTP"))


DEFAULT = Site()
_active: contextvars.ContextVar[Site] = contextvars.ContextVar("medobs_site", default=DEFAULT)


def current() -> Site:
    """The site being generated for (the defaults unless :func:`active` says otherwise)."""
    return _active.get()


@contextlib.contextmanager
def active(site: Site) -> Iterator[Site]:
    """Make ``site`` the one :func:`current` returns inside the ``with`` block."""
    token = _active.set(site)
    try:
        yield site
    finally:
        _active.reset(token)


# -- reading a site file ------------------------------------------------------------------------


def _type_name(kind: Any) -> str:
    if dataclasses.is_dataclass(kind):
        return "a mapping"
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        return f"a list of {_type_name(typing.get_args(kind)[0])}s"
    if origin is dict:
        return "a mapping"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(kind) if a is not type(None))
    return {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}.get(kind, str(kind))


def _convert(value: Any, kind: Any, key: str) -> Any:
    """``value`` checked against ``kind`` (a dataclass, str, int, float, bool, list or dict of them,
    or one of those or None)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        kind = next(a for a in options if a is not type(None))
        origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, key)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise SiteError(f"{key}: expected {_type_name(kind)}, got {type(value).__name__}")
        (item,) = typing.get_args(kind)[:1]
        converted = [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise SiteError(f"{key}: expected a mapping, got {type(value).__name__}")
        _, item = typing.get_args(kind)
        return {str(k): _convert(v, item, f"{key}.{k}") for k, v in value.items()}
    valid = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not valid:
        raise SiteError(f"{key}: expected {_type_name(kind)}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, document: Any, prefix: str = "") -> Any:
    if not isinstance(document, dict):
        where = prefix or "the site file"
        raise SiteError(f"{where}: expected a mapping, got {type(document).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in document:
        if key not in known:
            path = f"{prefix}.{key}" if prefix else str(key)
            raise SiteError(f"{path}: unknown key (known: {', '.join(sorted(known))})")
    values = {
        name: _convert(value, hints[name], f"{prefix}.{name}" if prefix else name)
        for name, value in document.items()
    }
    for item in dataclasses.fields(cls):
        if item.name not in values and _required(item):
            path = f"{prefix}.{item.name}" if prefix else item.name
            raise SiteError(f"{path}: missing (required)")
    return cls(**values)


def _required(item: dataclasses.Field) -> bool:  # type: ignore[type-arg]
    return item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING


def _default(item: dataclasses.Field) -> Any:  # type: ignore[type-arg]
    """The default of a field that has one."""
    return item.default if item.default is not dataclasses.MISSING else item.default_factory()  # type: ignore[misc]


def parse(document: Any) -> Site:
    """A :class:`Site` from a loaded YAML document (``None``, an empty file, is the defaults)."""
    return DEFAULT if document is None else _build(Site, document)


def load(path: Path) -> Site:
    """The site in ``path``; any problem is one :class:`SiteError` line naming the file."""
    import yaml

    from medobs.core.files import read_text

    text = read_text(path, what="site file", error=SiteError)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise SiteError(f"{path}{where}: {problem}") from None
    try:
        return parse(document)
    except SiteError as error:
        raise SiteError(f"{path}: {error}") from None


def add_argument(parser: Any) -> None:
    """``--config FILE`` on a command that generates output (argparse parser)."""
    parser.add_argument(
        "--config", type=Path, metavar="FILE",
        help=f"the site file (YAML, docs/site-config.md; default: ${ENVIRONMENT_VARIABLE}, else the platform's defaults)",
    )


def from_arguments(config: Path | None) -> Site:
    """The site named by ``--config`` or else ``$MEDOBS_CONFIG``; the defaults when neither is set."""
    if config is None and os.environ.get(ENVIRONMENT_VARIABLE):
        config = Path(os.environ[ENVIRONMENT_VARIABLE])
    return DEFAULT if config is None else load(config)


# -- the JSON Schema ----------------------------------------------------------------------------


def _schema_of(kind: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        properties = {}
        for item in dataclasses.fields(kind):
            schema = _schema_of(hints[item.name])
            schema["description"] = item.metadata.get("doc", "")
            if not _required(item):
                schema["default"] = _plain(_default(item))
            properties[item.name] = schema
        required = [item.name for item in dataclasses.fields(kind) if _required(item)]
        return {"type": "object", "additionalProperties": False, "properties": properties,
                **({"required": required} if required else {})}
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return {"anyOf": [_schema_of(options[0]), {"type": "null"}]}
    if origin in (list, tuple):
        return {"type": "array", "items": _schema_of(typing.get_args(kind)[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_of(typing.get_args(kind)[1])}
    return {"type": {str: "string", int: "integer", float: "number", bool: "boolean"}[kind]}


def _plain(value: Any) -> Any:
    """A default as JSON: dataclasses as mappings, tuples as lists."""
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)  # type: ignore[arg-type]
    return list(value) if isinstance(value, tuple) else value


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a site file, derived from :class:`Site`."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "medobs site file",
        **_schema_of(Site),
    }


# -- the shipped schema and the documented key table --------------------------------------------

#: The JSON Schema as shipped in the package (regenerated by ``python -m medobs.core.site``).
SCHEMA_FILE = Path(__file__).with_name("site.schema.json")
#: The markers around the generated key table in docs/site-config.md.
TABLE_MARKERS = ("<!-- site keys: begin (python -m medobs.core.site) -->", "<!-- site keys: end -->")


def schema_text() -> str:
    import json

    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


def _rows(kind: Any, prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    import json

    hints = typing.get_type_hints(kind)
    for item in dataclasses.fields(kind):
        key, doc = f"{prefix}{item.name}", item.metadata.get("doc", "")
        nested = _dataclass_in(hints[item.name])
        if _required(item):
            default = "(required)"
        elif nested and item.default is not None and not any(_required(sub) for sub in dataclasses.fields(nested)):
            default = "(below)"
        else:
            default = f"`{json.dumps(_plain(_default(item)))}`"
        yield key, _type_name(hints[item.name]) + (" or null" if _optional(hints[item.name]) else ""), default, doc
        if nested:
            yield from _rows(nested, f"{key}.")


def _optional(kind: Any) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind)


def _dataclass_in(kind: Any) -> Any:
    """The dataclass ``kind`` is, or is one of with None; else None."""
    candidates = typing.get_args(kind) if _optional(kind) else (kind,)
    return next((c for c in candidates if dataclasses.is_dataclass(c)), None)


def key_table() -> str:
    """The Markdown table of every key of the site file, its type, default and meaning."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default, doc in _rows(Site):
        lines.append(f"| `{key}` | {kind} | {default} | {doc} |")
    return "\n".join(lines) + "\n"


def with_key_table(page: str) -> str:
    """``page`` (docs/site-config.md) with the text between :data:`TABLE_MARKERS` regenerated."""
    begin, end = TABLE_MARKERS
    head, _, rest = page.partition(begin)
    _, _, tail = rest.partition(end)
    return f"{head}{begin}\n{key_table()}{end}{tail}"


if __name__ == "__main__":  # python -m medobs.core.site [docs/site-config.md]: regenerate both
    import sys

    from medobs.core.files import read_text, write_atomic

    write_atomic(SCHEMA_FILE, schema_text())
    for page_path in map(Path, sys.argv[1:]):
        write_atomic(page_path, with_key_table(read_text(page_path, what="page")))
