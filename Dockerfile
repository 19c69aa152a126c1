# The profiler server (and the host-CPU device agent): one image, two commands (see docker-compose.yml).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fbnet_core ./fbnet_core
COPY profiler_server ./profiler_server
COPY db ./db
COPY device_agents ./device_agents
# The server extra (FastAPI, SQLAlchemy, Alembic, psycopg 3), boto3 for models in an S3-compatible bucket
# (PROFILER_BLOB_URL) and the agent extra (onnxruntime); no torch.
RUN pip install ".[server,s3,agent]"

RUN useradd --create-home --uid 10001 profiler \
    && mkdir -p /var/lib/fbnet-lut \
    && chown profiler /var/lib/fbnet-lut
USER profiler
ENV PROFILER_STATE_DIR=/var/lib/fbnet-lut

EXPOSE 8000
CMD ["profiler-server", "serve", "--host", "0.0.0.0", "--port", "8000"]
