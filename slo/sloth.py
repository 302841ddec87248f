"""Sloth's two spec formats, read unchanged: ``version: prometheus/v1`` files and the Kubernetes
objects ``apiVersion: sloth.slok.dev/v1``, ``kind: PrometheusServiceLevel`` (docs/slo-formats.md).

The Kubernetes form wraps the same service spec in ``spec`` and writes the multi-word fields in
camelCase (``errorQuery``, ``pageAlert``, ...): :data:`CAMEL_CASE` is that spelling, and the spec
reader (:mod:`slo.spec`) reads both forms with one parser, naming fields as the file writes them.

Sloth's plugins are Go code that Sloth runs; medobs refuses them in one line that says what to
write instead (:func:`refuse_sli_plugin`, :func:`refuse_slo_plugins`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slo.spec import Document

VERSION = "prometheus/v1"
API_VERSION = "sloth.slok.dev/v1"
#: Kinds whose ``spec`` is a service spec; the managed kind (Google Cloud Managed Prometheus)
#: differs from the other only in what Sloth generates from it.
KINDS = ("PrometheusServiceLevel", "ManagedPrometheusServiceLevel")
#: The Kubernetes form's spelling of the fields ``prometheus/v1`` writes in snake_case.
CAMEL_CASE = {
    "error_query": "errorQuery",
    "total_query": "totalQuery",
    "error_ratio_query": "errorRatioQuery",
    "page_alert": "pageAlert",
    "ticket_alert": "ticketAlert",
    "absent_alert": "absentAlert",
    "min_events": "minEvents",
    "scrape_interval": "scrapeInterval",
    "slo_plugins": "sloPlugins",
}


def is_kubernetes(document: Any) -> bool:
    """Whether a YAML document is a Kubernetes-style object (it has an ``apiVersion``)."""
    return isinstance(document, dict) and "apiVersion" in document


def is_list(document: Any) -> bool:
    """Whether a document is a Kubernetes ``List`` of objects, as ``kubectl get -o yaml`` writes several."""
    return is_kubernetes(document) and document["apiVersion"] == "v1" and document.get("kind") == "List"


def kubernetes_spec(doc: Document, document: dict) -> tuple[Document, dict]:
    """The camelCase reader and the service spec (``spec``) of a ``PrometheusServiceLevel``."""
    # status: what the Sloth controller reports, present in objects exported with kubectl; not read.
    node = doc.mapping(document, "", ("apiVersion", "kind", "metadata", "spec", "status"), ("apiVersion", "kind", "spec"))
    if node["apiVersion"] != API_VERSION:
        raise doc.fail("apiVersion", f"{node['apiVersion']!r} is not supported; expected {API_VERSION!r} "
                                     f"(or version: {VERSION}, or an OpenSLO openslo/v1 or openslo/v1alpha object)")
    if node["kind"] not in KINDS:
        raise doc.fail("kind", f"{node['kind']!r} is not a service level; expected {' or '.join(KINDS)}")
    metadata = node.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise doc.fail("metadata", "expected a mapping (name, namespace, labels ...)")
    for key in ("name", "namespace"):
        doc.text(metadata.get(key), f"metadata.{key}")
    return doc.spelled(CAMEL_CASE), node["spec"]


def refuse_sli_plugin(doc: Document, value: Any, path: str) -> Exception:
    """The one-line refusal of an SLI plugin, with what to write instead."""
    plugin = value.get("id") if isinstance(value, dict) else None
    which = f" ({plugin!r})" if plugin else ""
    events = " and ".join(doc.spelling.get(key, key) for key in ("error_query", "total_query"))
    raw = doc.spelling.get("error_ratio_query", "error_ratio_query")
    return doc.fail(path, f"Sloth SLI plugins{which} are not supported (medobs cannot run Sloth's Go plugins): "
                          f"write the queries the plugin generates as sli.events ({events}, with {{{{.window}}}}) "
                          f"or sli.raw ({raw})")


def refuse_slo_plugins(doc: Document, value: Any, path: str) -> None:
    """Refuse a Sloth SLO plugin chain (``slo_plugins`` / ``sloPlugins`` / ``plugins``) unless it is empty."""
    chain = value.get("chain") if isinstance(value, dict) else value
    if not chain:
        return
    raise doc.fail(path, "Sloth SLO plugins are not supported (medobs cannot run Sloth's Go plugins and generates "
                         "its own rules): remove the plugin chain, or keep building this spec with Sloth")
