# greenwatch collector image. `docker compose up` builds it.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY greenwatch greenwatch
COPY collector collector
COPY rules rules
COPY dashboards dashboards
RUN pip install --no-cache-dir .
# The spool lives on a volume so nothing accepted is lost across restarts.
VOLUME /var/lib/greenwatch
ENTRYPOINT ["greenwatch"]
CMD ["run", "--config", "/etc/greenwatch/greenwatch.yaml"]
