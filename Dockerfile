# The hub and the simulators in one image (Debian, as on a mall's server).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mallhub
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY adapters ./adapters
COPY simulators ./simulators
COPY patrol ./patrol
COPY config ./config
COPY docs ./docs
RUN pip install --no-cache-dir -e . \
 && useradd --system --home /var/lib/mallhub mallhub \
 && mkdir -p /var/lib/mallhub && chown mallhub /var/lib/mallhub
USER mallhub
EXPOSE 8080 10001
CMD ["mallhub", "run", "--config", "/opt/mallhub/config/demo.yaml"]
