# syntax=docker/dockerfile:1
# lakecrypt image. Stages:
#   deps     - production node_modules (npm ci --omit=dev); build tools for the pkcs11js native addon
#   base     - runtime: node:20 slim, app files, non-root user, data dir /data
#   softhsm  - base + SoftHSM2 (PKCS#11 CMK for development/CI): `docker build --target softhsm .`
#   runtime  - the default image (last stage)
ARG NODE_IMAGE=node:20.20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# tsx is a runtime dependency (the gateway runs its TypeScript sources directly).
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS base
ENV NODE_ENV=production \
    LAKECRYPT_HOST=0.0.0.0 \
    LAKECRYPT_ADMIN_HOST=0.0.0.0 \
    LAKECRYPT_DATA_DIR=/data
RUN groupadd --system --gid 10001 lakecrypt \
 && useradd --system --uid 10001 --gid lakecrypt --home-dir /app --shell /usr/sbin/nologin lakecrypt \
 && mkdir -p /data && chown lakecrypt:lakecrypt /data && chmod 0700 /data
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root . .
VOLUME ["/data"]
EXPOSE 9100 9101
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "src/ops/healthcheck.mjs"]
STOPSIGNAL SIGTERM
CMD ["node", "--import", "tsx", "src/main.ts"]

FROM base AS softhsm
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/softhsm/tokens \
 && printf 'directories.tokendir = /var/lib/softhsm/tokens/\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' > /etc/softhsm/softhsm2.conf \
 && chown -R lakecrypt:lakecrypt /var/lib/softhsm/tokens && chmod 0700 /var/lib/softhsm/tokens
ENV SOFTHSM2_CONF=/etc/softhsm/softhsm2.conf \
    LAKECRYPT_CMK=pkcs11 \
    LAKECRYPT_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so \
    LAKECRYPT_PKCS11_TOKEN=lakecrypt
VOLUME ["/var/lib/softhsm/tokens"]
USER lakecrypt
ENTRYPOINT ["/app/config/docker/softhsm-entrypoint.sh"]
CMD ["node", "--import", "tsx", "src/main.ts"]

FROM base AS runtime
USER lakecrypt
