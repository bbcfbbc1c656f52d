# Stemcord: one small image, runs as a non-root user, keeps its database on the /data volume.
#   docker compose up -d            (see compose.yaml and README, "Deploy")
#   docker compose run --rm stemcord check
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed uid/gid so the volume's owner is the same in every rebuild.
RUN groupadd --system --gid 10001 stemcord \
    && useradd --system --uid 10001 --gid stemcord --home-dir /app --shell /usr/sbin/nologin stemcord \
    && mkdir -p /data \
    && chown stemcord:stemcord /data

WORKDIR /app
# The exact dependencies first, each checked against its hash in the lock (one layer that a
# code change does not rebuild); then the project itself, without resolving anything again.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock && rm -rf /root/.cache
# Only what the package needs (.dockerignore keeps .env, tests and local data out).
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
COPY cogs ./cogs
COPY storage ./storage
COPY locales ./locales
RUN pip install --no-deps . && rm -rf /root/.cache

USER stemcord

# Settings come from the environment (compose passes .env); these suit the container.
# WEBHOOK_HOST/ADMIN_HOST bind every interface *inside* the container so the ports can be
# published; compose publishes them on the host's loopback only.
# STEMCORD_IMAGE makes the bot's hints name the compose commands (run on the host).
ENV DATABASE_URL=sqlite:////data/stemcord.sqlite3 \
    WEBHOOK_HOST=0.0.0.0 \
    ADMIN_HOST=0.0.0.0 \
    ADMIN_PORT=8081 \
    STEMCORD_IMAGE=1
VOLUME ["/data"]
# 8080: Vidgo callbacks (behind an HTTPS reverse proxy); 8081: /healthz, /readyz, /metrics.
EXPOSE 8080 8081

# Liveness through the admin listener, with the Python already in the image (no curl).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ADMIN_PORT', '8081') + '/healthz', timeout=4)"]

ENTRYPOINT ["python", "-m", "bot"]
CMD ["run"]
