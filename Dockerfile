# One image for every Gatehouse service; the command picks it (scripts/docker-entrypoint.sh):
#   session-service | gateway | demo-app | users <args> | dev-cert <dir> | healthcheck
# Used by docker-compose.yml (`build: .`). Build alone: docker build -t gatehouse .
# No `# syntax=` line: that makes BuildKit fetch a frontend image, even for an offline build.
# What is in the image, and its size: docs/operations.md "The container image".

ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: compile TypeScript to dist/ ------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY common ./common
COPY gateway ./gateway
COPY session-service ./session-service
COPY demo-app ./demo-app
COPY scripts ./scripts
RUN npm run build

# --- runtime: production dependencies and the compiled output only -------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# npm's cache and logs go to a directory removed in the same layer: the layer keeps only
# node_modules.
RUN npm ci --omit=dev --no-audit --no-fund --cache /tmp/npm-cache \
  && rm -rf /tmp/npm-cache /root/.npm
COPY --from=build /app/dist ./dist
# The login page's stylesheet: app.js serves ../static/ next to its own src/ directory.
COPY session-service/static ./dist/session-service/static
COPY scripts/docker-entrypoint.sh /usr/local/bin/gatehouse-entrypoint
# /data holds the users file and /certs the development certificate (volumes in
# docker-compose.yml); both writable by the node user, which a fresh named volume inherits.
RUN chmod 755 /usr/local/bin/gatehouse-entrypoint \
  && mkdir -p /data /certs && chown node:node /data /certs
USER node
ENV USERS_FILE=/data/users.json
# For `docker run` without compose too: whichever service the container runs, on the port its
# environment sets (scripts/healthcheck.ts).
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
  CMD ["gatehouse-entrypoint", "healthcheck"]
ENTRYPOINT ["gatehouse-entrypoint"]
CMD ["gateway"]
