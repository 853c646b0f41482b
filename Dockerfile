# The ccstream image used by docker-compose.yml for the central sink (and bridge) services.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY agents ./agents
RUN pip install --no-cache-dir . && useradd -m ccstream && mkdir -p /var/lib/ccstream && chown ccstream /var/lib/ccstream
USER ccstream
ENV CCSTREAM_DATA_DIR=/var/lib/ccstream
EXPOSE 6066
CMD ["ccstream", "sink"]
