# syntax=docker/dockerfile:1
# One image for every Gatehouse service; the command picks it (scripts/docker-entrypoint.sh):
#   session-service | gateway | demo-app | users <args>
# Used by docker-compose.yml (`build: .`). Build alone: docker build -t gatehouse .

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
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The login page's stylesheet: app.js serves ../static/ next to its own src/ directory.
COPY session-service/static ./dist/session-service/static
COPY scripts/docker-entrypoint.sh /usr/local/bin/gatehouse-entrypoint
# /data holds the users file (a volume in docker-compose.yml), writable by the node user.
RUN chmod 755 /usr/local/bin/gatehouse-entrypoint && mkdir -p /data && chown node:node /data
USER node
ENV USERS_FILE=/data/users.json
ENTRYPOINT ["gatehouse-entrypoint"]
CMD ["gateway"]
