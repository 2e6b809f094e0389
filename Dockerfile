# The preview worker image: one image for the queue worker and the job API (the command picks:
# `run` or `api`). Built daemonless and reproducibly by `python -m infra image build` (buildah),
# or by `docker buildx build` where Docker is present. See README "The worker image".
#
# BASE_IMAGE is pinned by digest. Where no registry can be pulled from, the build passes a
# debootstrap'd Debian bookworm + python3 image instead (`python -m infra image base`).
ARG BASE_IMAGE=docker.io/library/python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# ---- builder: locked dependencies -> wheels -> /opt/venv; runtime files with normalised modes ----
FROM ${BASE_IMAGE} AS builder
# uv only reads uv.lock here (`--frozen`: no resolution, no network); pinned to the version that locks.
# renovate: datasource=pypi depName=uv
ARG UV_VERSION=0.13.9
# Deployment-only packages (the Pulumi program's) stay out of the worker image.
ARG PRUNE="pulumi pulumi-kubernetes pulumi-policy hvac ruamel-yaml"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# Offline builds (`python -m infra image build --wheelhouse DIR`) set these to a mounted wheel
# directory and no index; unset, pip uses PyPI. Either way every wheel is hash-checked.
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
WORKDIR /build
# The optional `ca-bundle` build secret is for hosts behind a TLS-intercepting proxy; it never
# lands in a layer.
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    python3 -m venv /opt/tools && /opt/tools/bin/pip install --quiet "uv==${UV_VERSION}"
COPY pyproject.toml uv.lock ./
RUN set -eu; prune=""; for p in ${PRUNE}; do prune="$prune --prune $p"; done; \
    /opt/tools/bin/uv export --frozen --no-dev --no-emit-project --no-header $prune \
        --output-file requirements.txt >/dev/null
# Binary wheels only (no compiler anywhere), each checked against the hash in uv.lock.
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    /opt/tools/bin/pip wheel --quiet --only-binary=:all: --require-hashes \
        --requirement requirements.txt --wheel-dir /wheels
# A venv without pip; no .pyc files, whose headers would carry install-time mtimes.
RUN python3 -m venv --without-pip /opt/venv \
    && /opt/tools/bin/pip --python /opt/venv/bin/python install --quiet --no-index --no-deps \
        --no-compile --find-links /wheels --requirement requirements.txt
COPY worker/ /app/worker/
COPY mobius_preview_client/ /app/mobius_preview_client/
COPY schemas/ /app/schemas/
# Same modes whatever the umask of the checkout: root-owned, read-only for the worker user.
RUN chmod -R u=rwX,go=rX /app /opt/venv \
    && mkdir -p /build/etc /build/data \
    && cp /etc/passwd /etc/group /build/etc/ \
    && echo 'preview:x:10001:10001:preview worker:/nonexistent:/usr/sbin/nologin' >> /build/etc/passwd \
    && echo 'preview:x:10001:' >> /build/etc/group

# ---- runtime: the base image + the venv + the worker's files; no compilers, no pip, no RUN ----
FROM ${BASE_IMAGE} AS runtime
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/mobius/preview-worker
LABEL org.opencontainers.image.title="mobius-preview-worker" \
      org.opencontainers.image.description="Preview worker (BullMQ consumer) and job API" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /build/etc/passwd /build/etc/group /etc/
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
# The only place the worker writes (mount a volume here; the root filesystem can be read-only).
COPY --from=builder --chown=10001:10001 /build/data /data
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DATA_DIR=/data
WORKDIR /app
USER 10001:10001
EXPOSE 3000 9100
ENTRYPOINT ["python", "-m", "worker"]
CMD ["run"]
