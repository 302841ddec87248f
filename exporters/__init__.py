"""The package's Prometheus exporters (GPU, RabbitMQ queues, inference) and what they share."""
