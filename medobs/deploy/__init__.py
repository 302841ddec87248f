"""Deployment objects: Prometheus scrape configurations, Kubernetes manifests and
prometheus-operator objects, postgres_exporter queries."""
