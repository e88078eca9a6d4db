# The service image: the locked requirements `make install` installs, then the package itself
# (not editable), run as an unprivileged user.
FROM python:3.11-slim

WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 MIGRATIONS_DIR=/app/migrations

COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/runtime.txt

COPY pyproject.toml setup.py README.md ./
COPY galaxy_express galaxy_express
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && rm -rf build galaxy_express

# The migrations (MIGRATIONS_DIR) and configs are read from /app; the code from site-packages.
COPY migrations migrations
COPY configs configs
RUN useradd --system --uid 10001 --home-dir /app galaxy && mkdir -p /data/reports var \
    && chown -R galaxy /data var
USER galaxy

EXPOSE 9090 9091 6060
# baseplate's own probe (GET /health?type=liveness). Liveness only: a database or Redis outage must not get healthy containers restarted.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["baseplate-healthcheck", "--probe", "liveness", "wsgi", "127.0.0.1:9090"]
CMD ["galaxy-express", "--config", "configs/docker.ini", "--host", "0.0.0.0", "--no-migrate"]
