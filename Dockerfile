FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY backends ./backends
COPY migrations ./migrations
RUN pip install --no-cache-dir . && mkdir -p /srv/ftp /var/lib/gateway
# the Alembic history, for `gateway db upgrade` from an installed package
ENV GATEWAY_MIGRATIONS=/app/migrations
WORKDIR /var/lib/gateway
EXPOSE 2121 30000-30009 9121
ENTRYPOINT ["gateway"]
CMD ["serve", "--host", "0.0.0.0"]
