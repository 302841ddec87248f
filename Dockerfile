# One image for the package's exporters and the platform simulator (docker-compose.yml, Kubernetes).
#   docker build -t medobs .
#   docker run medobs exporter queue --rabbitmq-url http://rabbitmq:15672
FROM python:3.11-slim

WORKDIR /opt/medobs
COPY pyproject.toml README.md ./
COPY medobs ./medobs
COPY exporters ./exporters
COPY dashboards ./dashboards
COPY alerts ./alerts
COPY slo ./slo
RUN pip install --no-cache-dir . && useradd --system --uid 10001 medobs

USER 10001
ENTRYPOINT ["medobs"]
CMD ["--help"]
