# syntax=docker/dockerfile:1
# tickmesh: one image, several roles (`node bin/tickmesh.js <role>`).
#   docker build -t tickmesh:local .
#   docker run --rm tickmesh:local migrate

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: full install (vite is a devDependency) and the UI bundle --------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build:ui

# ---- deps: production node_modules only (tsx is a runtime dependency) -------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

# ---- runtime ----------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=4000 \
    METRICS_PORT=9464
WORKDIR /app
# Files stay owned by root (read-only for the app); only .data is writable,
# for the `dev` role's embedded servers.
COPY --from=deps /app/node_modules ./node_modules
COPY . .
COPY --from=build /app/ui/dist ./ui/dist
RUN mkdir -p /app/.data && chown node:node /app/.data
USER node
EXPOSE 4000 9464
ENTRYPOINT ["node", "bin/tickmesh.js"]
CMD ["gateway"]
