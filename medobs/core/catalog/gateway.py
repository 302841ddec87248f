"""Spring Cloud Gateway and its services, as micrometer exposes them on /actuator/prometheus.

Micrometer (Spring Boot 2.7) names timers ``*_seconds`` and writes them as a histogram when
service-level objectives are configured (buckets at exactly those bounds, then ``+Inf``), as a
summary (``_count`` / ``_sum``) otherwise, and always with a separate ``*_seconds_max`` gauge.
Every meter carries the ``application`` common tag.
"""

from medobs.core.catalog import metric

#: The platform's ``management.metrics.distribution.slo.http.server.requests``, in seconds:
#: the only bucket bounds http_server_requests_seconds has, so latency SLO thresholds must be
#: among them.
SLO_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


def micrometer_le(bound: float) -> str:
    """The ``le`` label micrometer writes for a bucket bound (Java's Double.toString: ``1.0``,
    not ``1``); Prometheus 2 compares label values as strings, so selectors must match it."""
    return repr(float(bound))


HTTP_SERVER_REQUESTS = metric(
    "http_server_requests_seconds",
    "histogram",
    "Duration of HTTP server requests (micrometer timer with the SLO buckets of SLO_BUCKETS).",
    source="micrometer",
    labels=("application", "uri", "method", "status", "outcome", "exception"),
    unit="seconds",
)
HTTP_SERVER_REQUESTS_MAX = metric(
    "http_server_requests_seconds_max",
    "gauge",
    "Longest HTTP server request in the current micrometer step.",
    source="micrometer",
    labels=("application", "uri", "method", "status", "outcome", "exception"),
    unit="seconds",
)
_ROUTE = ("application", "routeId", "routeUri", "httpMethod", "httpStatusCode", "outcome", "status")
GATEWAY_REQUESTS = metric(
    "spring_cloud_gateway_requests_seconds",
    "summary",
    "Requests routed by Spring Cloud Gateway, by route and upstream outcome (HttpStatus series: "
    "SUCCESSFUL, CLIENT_ERROR, SERVER_ERROR ...).",
    source="spring-cloud-gateway",
    labels=_ROUTE,
    unit="seconds",
)
GATEWAY_REQUESTS_MAX = metric(
    "spring_cloud_gateway_requests_seconds_max",
    "gauge",
    "Longest routed request in the current micrometer step.",
    source="spring-cloud-gateway",
    labels=_ROUTE,
    unit="seconds",
)

_POOL = ("application", "pool")
HIKARI_CONNECTIONS = metric(
    "hikaricp_connections", "gauge", "Total connections in the HikariCP pool.",
    source="hikaricp", labels=_POOL,
)
HIKARI_ACTIVE = metric(
    "hikaricp_connections_active", "gauge", "Connections in use.", source="hikaricp", labels=_POOL,
)
HIKARI_IDLE = metric(
    "hikaricp_connections_idle", "gauge", "Idle connections.", source="hikaricp", labels=_POOL,
)
HIKARI_PENDING = metric(
    "hikaricp_connections_pending", "gauge", "Threads waiting for a connection.",
    source="hikaricp", labels=_POOL,
)
HIKARI_MAX = metric(
    "hikaricp_connections_max", "gauge", "Maximum pool size.", source="hikaricp", labels=_POOL,
)
HIKARI_MIN = metric(
    "hikaricp_connections_min", "gauge", "Minimum idle connections.", source="hikaricp", labels=_POOL,
)
HIKARI_TIMEOUTS = metric(
    "hikaricp_connections_timeout_total", "counter",
    "Connection requests that timed out waiting for the pool.", source="hikaricp", labels=_POOL,
)
HIKARI_ACQUIRE = metric(
    "hikaricp_connections_acquire_seconds", "summary", "Time to acquire a connection from the pool.",
    source="hikaricp", labels=_POOL, unit="seconds",
)
HIKARI_ACQUIRE_MAX = metric(
    "hikaricp_connections_acquire_seconds_max", "gauge",
    "Longest connection acquisition in the current micrometer step.",
    source="hikaricp", labels=_POOL, unit="seconds",
)
#: The platform's ``management.metrics.distribution.percentiles.hikaricp.connections.usage``:
#: the pool usage timer's client-side percentiles (the Database board's query time p95 / p99).
HIKARI_USAGE_PERCENTILES = (0.95, 0.99)
HIKARI_USAGE = metric(
    "hikaricp_connections_usage_seconds", "summary",
    "Time connections are held before being returned (query time as the service sees it).",
    source="hikaricp", labels=_POOL, unit="seconds",
)
HIKARI_USAGE_MAX = metric(
    "hikaricp_connections_usage_seconds_max", "gauge",
    "Longest a connection was held in the current micrometer step.",
    source="hikaricp", labels=_POOL, unit="seconds",
)
HIKARI_CREATION = metric(
    "hikaricp_connections_creation_seconds", "summary", "Time to open a new physical connection.",
    source="hikaricp", labels=_POOL, unit="seconds",
)
HIKARI_CREATION_MAX = metric(
    "hikaricp_connections_creation_seconds_max", "gauge",
    "Longest connection creation in the current micrometer step.",
    source="hikaricp", labels=_POOL, unit="seconds",
)
