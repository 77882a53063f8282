# syntax=docker/dockerfile:1
# lakecrypt image. Stages:
#   deps     - production node_modules (npm ci --omit=dev); build tools for the pkcs11js native addon and the
#              native data plane (native/dataplane.c, aws-chunked.c, http-chunked.c, heap.cc -> native/build/dataplane.node)
#   build    - the compiled build (scripts/build.mjs: dist/src/main.js, dist/src/cli/main.js) from src/
#   base     - runtime: node:20 slim, node_modules, the build and what it reads at run time (workers/, config/),
#              the CLI as `lakecrypt`, non-root user, data dir /data; no TypeScript is compiled at start
#   softhsm  - base + SoftHSM2 (PKCS#11 CMK for development/CI): `docker build --target softhsm .`
#   runtime  - the default image (last stage)
ARG NODE_IMAGE=node:20.20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# esbuild (through tsx, a runtime dependency) is what the build stage compiles with.
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force
# The native data plane (large GETs off the JS thread, docs/DESIGN.md): gcc from above, node's headers from the
# node image (<prefix>/include/node); without it the gateway uses the Node path.
COPY scripts/build-native.mjs ./scripts/
COPY native/dataplane.c native/aws-chunked.c native/http-chunked.c native/pump.h native/heap.cc ./native/
RUN node scripts/build-native.mjs

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY scripts/build.mjs ./scripts/
COPY src ./src
COPY workers ./workers
RUN node scripts/build.mjs

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
COPY --from=build --chown=root:root /app/dist ./dist
COPY --from=deps --chown=root:root /app/native/build ./native/build
# The build's run-time companions: the crypto worker threads' files (found from dist/src/main.js as from src/),
# the shipped configuration and the container scripts, the CLI wrapper, and the probe.
COPY --chown=root:root package.json ./
COPY --chown=root:root workers ./workers
COPY --chown=root:root config ./config
COPY --chown=root:root bin ./bin
COPY --chown=root:root scripts/build.mjs ./scripts/
COPY --chown=root:root src/ops/healthcheck.mjs ./src/ops/
RUN ln -s /app/bin/lakecrypt /usr/local/bin/lakecrypt
VOLUME ["/data"]
EXPOSE 9100 9101
# --max-semi-space-size=4: V8's young generation at most 4 MiB per semi-space instead of 16, the gateway resting at
# ~35 MiB of heap instead of ~60; --min-semi-space-size=4: and always that size, so the idle collection's release of
# its pages does not leave the next burst regrowing it; --interrupt-budget=16384: TurboFan optimizes the request
# path after ~1,000 requests instead of ~3,000; --expose-gc: global.gc() when the addon lacks its C++ part
# (docs/OPERATIONS.md "Memory"). Every launcher of the gateway passes all four.
# Ready, not only alive: unhealthy while the backend or the CMK cannot be reached (/readyz).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "src/ops/healthcheck.mjs", "/readyz"]
STOPSIGNAL SIGTERM
CMD ["node", "--max-semi-space-size=4", "--min-semi-space-size=4", "--interrupt-budget=16384", "--expose-gc", "dist/src/main.js"]

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
CMD ["node", "--max-semi-space-size=4", "--min-semi-space-size=4", "--interrupt-budget=16384", "--expose-gc", "dist/src/main.js"]

FROM base AS runtime
USER lakecrypt
