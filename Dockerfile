FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY backends ./backends
RUN pip install --no-cache-dir . && mkdir -p /srv/ftp
EXPOSE 2121 30000-30009
ENTRYPOINT ["python", "-m", "gateway"]
CMD ["--host", "0.0.0.0", "--port", "2121", "-d", "/srv/ftp", "--data-ports", "30000-30009", "--passive-address", "127.0.0.1"]
