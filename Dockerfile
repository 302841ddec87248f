# One image per use, each with only its extra installed (docs/install.md): the wheel is built
# once, and each target installs it with its extra. The Kubernetes manifests (build/k8s/) run
# each exporter in the image of its target, tagged <version>-<target>:
#   docker build --target gpu -t registry.med-diagnosis.com/medobs:0.1.0-gpu .
#   docker build --target queue ...   --target inference ...   --target simulator ...
#   docker run medobs:local-queue exporter queue --rabbitmq-url http://rabbitmq:15672
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY medobs ./medobs
COPY exporters ./exporters
COPY dashboards ./dashboards
COPY alerts ./alerts
COPY slo ./slo
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim AS base
RUN useradd --system --uid 10001 medobs
ENTRYPOINT ["medobs"]
CMD ["--help"]

# `medobs exporter gpu`: NVML and the kubelet pod-resources client
FROM base AS gpu
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir "$(echo /wheels/medobs-*.whl)[gpu]"
USER 10001

# `medobs exporter queue`
FROM base AS queue
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir "$(echo /wheels/medobs-*.whl)[queue]"
USER 10001

# `medobs exporter inference`: the TF Serving sidecar
FROM base AS inference
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir "$(echo /wheels/medobs-*.whl)[inference]"
USER 10001

# `medobs simulate`: the simulated platform of docker-compose.yml (the stack extra)
FROM base AS simulator
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir "$(echo /wheels/medobs-*.whl)[stack]"
USER 10001
