# The service image: the same pinned requirements `make run` installs.
FROM python:3.11-slim

WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --no-cache-dir -r requirements/runtime.txt

COPY setup.py README.md ./
COPY galaxy_express galaxy_express
COPY migrations migrations
COPY configs configs
RUN pip install --no-cache-dir --no-deps -e .

EXPOSE 9090 9091
CMD ["python", "-m", "galaxy_express.runtime.launcher", "--config", "configs/docker.ini", "--host", "0.0.0.0", "--no-migrate"]
