# One wsgw node. docker-compose.yml runs two of these behind haproxy, sharing one Redis.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY wsgw ./wsgw
RUN pip install --no-cache-dir .
COPY wsgw.yaml ./
COPY handlers ./handlers
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=2s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"
CMD ["wsgw", "run", "-c", "wsgw.yaml", "--host", "0.0.0.0", "--port", "8080"]
