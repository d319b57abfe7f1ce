# The greenwatch image docker-compose.yml builds: the service, the CLI, and the demo's
# simulated devices (simulate/live reads the profiles' recordings in tests/recordings,
# so the checkout is copied whole and installed in place).
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -e '.[demo]'
# The spool (and the demo's config) live on volumes: nothing accepted is lost across restarts.
VOLUME /var/lib/greenwatch
ENTRYPOINT ["greenwatch"]
CMD ["run", "--config", "/etc/greenwatch/greenwatch.yaml"]
