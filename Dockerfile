# One image for every production role: the entrypoint is `mmctl`, the command picks the role
#   docker run IMAGE bridge | worker sink --metrics-port 9101 | worker egress --metrics-port 9102
#   docker run IMAGE migrate | topics apply | config
# All configuration comes from MM_* environment variables (plus DATABASE_URL and
# SCHEMA_REGISTRY_URL); nothing secret is baked in (.env is excluded by .dockerignore).
#
# Behind a package mirror: docker build --build-arg PIP_INDEX_URL=<your mirror> .
# (an ARG without a value is not set at all in RUN, so pip's default applies otherwise).

# ---- build stage: a virtualenv with the project and its pinned dependencies ----------------
FROM python:3.11-slim AS build

ARG PIP_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what `pip install .` needs: the build metadata and the three packages it finds
# (tool.setuptools.packages.find: mmstream*, stages*, connectors*). The runtime wheel only:
# no devstack/ (embedded stack, emulators, dev registry, benchmarks) and no [embedded] extra
# (broker and PostgreSQL binaries); tests/test_packaging.py checks the wheel's contents.
COPY pyproject.toml ./
COPY mmstream ./mmstream
COPY stages ./stages
COPY connectors ./connectors

# The direct dependencies are pinned in pyproject.toml (==); transitive ones are resolved
# at build time (add a constraints file if builds must be bit-for-bit repeatable). All of
# them ship manylinux x86_64 wheels for CPython 3.11, so the slim image needs no compiler.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/pip check

# ---- runtime stage --------------------------------------------------------------------------
FROM python:3.11-slim

# MM_TOPICS_FILE / MM_SCHEMAS_DIR / MM_MIGRATIONS_DIR: once installed, REPO_ROOT is site-packages and the repo
# files are not next to the code, so point the settings at the copies in /app.
# MM_INGRESS__HOST / MM_STREAMS__METRICS_HOST: in a container the bridge and the workers'
# metrics must listen on all interfaces (the default, 127.0.0.1, is right for the embedded
# stack on a laptop and unreachable here).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MM_TOPICS_FILE=/app/topics.yaml \
    MM_SCHEMAS_DIR=/app/avro \
    MM_MIGRATIONS_DIR=/app/migrations \
    MM_STREAMS__METRICS_HOST=0.0.0.0 \
    MM_INGRESS__HOST=0.0.0.0 \
    MM_LOG_FORMAT=json \
    MM_COMMERCEML__WORK_DIR=/var/lib/mmstream/commerceml

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
# /var/lib/mmstream/commerceml: the CommerceML exchange's scratch space (MM_COMMERCEML__WORK_DIR
# in the deployments), owned by the app user so a volume mounted there is writable.
RUN groupadd --system --gid 10001 mm \
 && useradd --system --uid 10001 --gid mm --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin mm \
 && mkdir -p /var/lib/mmstream/commerceml \
 && chown -R 10001:10001 /var/lib/mmstream

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Data the code reads at run time: the topic file, the Avro schemas, the migrations.
COPY topics.yaml alembic.ini ./
COPY avro ./avro
COPY migrations ./migrations

RUN python -c 'from mmstream.settings import get_settings; s = get_settings(); \
assert (s.migrations_dir / "env.py").is_file(), "migrations not found"; \
assert s.topics_file.is_file() and s.schemas_dir.is_dir(), "topics/schemas not found"' \
 && mmctl --help > /dev/null

USER 10001:10001

# 8080: bridge HTTP (+ /metrics); 9101/9102: worker metrics (sink/egress, by convention).
EXPOSE 8080 9101 9102

ENTRYPOINT ["mmctl"]
CMD ["--help"]
