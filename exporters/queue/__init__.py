"""The RabbitMQ queue and dead-letter-queue exporter (``medobs exporter queue``).

Modules: ``client`` (HTTP and error kinds), ``management`` (the management API), ``plugin`` (the
broker's Prometheus plugin), ``model`` (what they read), ``topology`` (dead-letter resolution),
``counters`` (monotonic totals), ``refresh`` (background cadences), ``selection`` (filters and
the cardinality cap), ``collector`` (the exporter), ``cli`` (the command). Reference:
docs/exporters/queue.md.
"""
