"""Spring Cloud Gateway and its services, as micrometer exposes them on /actuator/prometheus."""

from medobs.catalog import metric

#: The SLO bucket bounds (seconds) the platform configures for ``http.server.requests``
#: (``management.metrics.distribution.slo.http.server.requests``). Gateway latency SLO thresholds
#: (slo/specs/) must be among them.
SLO_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

HTTP_SERVER_REQUESTS = metric(
    "http_server_requests_seconds",
    "histogram",
    "Duration of HTTP server requests (micrometer timer with percentile histogram enabled).",
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
GATEWAY_REQUESTS = metric(
    "spring_cloud_gateway_requests_seconds",
    "summary",
    "Requests routed by Spring Cloud Gateway, by route and upstream outcome.",
    source="spring-cloud-gateway",
    labels=("routeId", "routeUri", "httpMethod", "httpStatusCode", "outcome", "status"),
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
HIKARI_USAGE = metric(
    "hikaricp_connections_usage_seconds", "summary",
    "Time connections are held before being returned (query time as the service sees it).",
    source="hikaricp", labels=_POOL, unit="seconds",
)
