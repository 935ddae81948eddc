# syntax=docker/dockerfile:1
# One image for every role; compose.yaml (or `docker run ... COMMAND`) picks it:
#   migrations        alpha init                     (once per deploy, before the others start)
#   workers           alpha worker                   (as many as you like)
#   webhook receiver  alpha webhooks serve --host 0.0.0.0 --port 8787   (the default command; /healthz, /metrics)
#   console           streamlit run console/app.py --server.address 0.0.0.0 --server.port 8501
#   scheduler         alpha-daily-loop               (`alpha daily run` on weekdays at ALPHA_DAILY_AT)
# Build: docker build -t alpha-swarm .   Configuration comes from the environment (.env.example lists it all).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ALPHA_CONFIG_DIR=/app/config \
    ALPHA_DATA_DIR=/var/lib/alpha \
    ALPHA_LOG_FORMAT=json

# an unprivileged user owns nothing but the data folder
RUN groupadd --system --gid 10001 alpha \
 && useradd --system --uid 10001 --gid alpha --home-dir /home/alpha --create-home --shell /usr/sbin/nologin alpha \
 && mkdir -p /var/lib/alpha \
 && chown alpha:alpha /var/lib/alpha

WORKDIR /app

# the package with the console extra, at the tested versions (requirements.lock is a pip constraints file); the
# wheel also carries config/, the demo data, the console and its pages (setup.py), so they are copied before it.
# The console also runs from the source tree (streamlit run console/app.py); config/ is the default configuration
COPY pyproject.toml setup.py MANIFEST.in README.md requirements.lock ./
COPY engine ./engine
COPY console ./console
COPY pages ./pages
COPY config ./config
COPY data ./data
COPY .streamlit ./.streamlit
RUN pip install -c requirements.lock '.[console]' \
 && alpha --help > /dev/null
COPY --chmod=0755 deploy/daily-loop.sh /usr/local/bin/alpha-daily-loop

USER alpha

EXPOSE 8787 8501

# the webhook receiver's readiness: 200 while the database answers at the code's schema revision (compose.yaml
# gives the console its own check and turns this one off for workers, the scheduler and migrations)
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=4)"]

CMD ["alpha", "webhooks", "serve", "--host", "0.0.0.0", "--port", "8787"]
