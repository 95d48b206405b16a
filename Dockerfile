FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY backends ./backends
RUN pip install --no-cache-dir . && mkdir -p /srv/ftp /var/lib/gateway
WORKDIR /var/lib/gateway
EXPOSE 2121 30000-30009 9121
ENTRYPOINT ["gateway"]
CMD ["serve", "--host", "0.0.0.0"]
