# syntax=docker/dockerfile:1
# vipdns: build stage compiles TypeScript and drops dev dependencies; the runtime stage has
# Node, the dataplane tools and the compiled daemon only. Build: docker build -t vipdns .
# The same build commands run on the host in CI (test/docker/dockerfile.test.ts).

FROM node:20-bookworm-slim AS build
# node-gyp compiles the native addons (batched UDP, IPVS netlink) against the image's own Node
# headers; the image has the toolchain, so a failed build fails it (VIPDNS_REQUIRE_ADDONS).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local VIPDNS_REQUIRE_ADDONS=1
WORKDIR /src
COPY package.json package-lock.json tsconfig.json binding.gyp ./
COPY native ./native
COPY scripts ./scripts
COPY src ./src
RUN npm ci --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim AS runtime
# Dataplane tools (ipvs/nftables/iptables drivers, ip for VIP addresses). Not needed for --dataplane none.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iptables ipvsadm iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/build/Release/vipdns_netlink.node /src/build/Release/vipdns_udp.node ./build/Release/
RUN mkdir -p /var/lib/vipdns && chown node:node /var/lib/vipdns
ENV NODE_ENV=production \
    VIPDNS_DATA_DIR=/var/lib/vipdns \
    VIPDNS_DNS_LISTEN=0.0.0.0:53 \
    VIPDNS_API=unix:///var/lib/vipdns/api.sock \
    VIPDNS_METRICS_LISTEN=0.0.0.0:9153
# DNS (udp+tcp), metrics/healthz. The control API is the socket /var/lib/vipdns/api.sock.
EXPOSE 53/udp 53/tcp 9153/tcp
VOLUME ["/var/lib/vipdns"]
# DNS-only mode runs as the unprivileged node user: Docker lets unprivileged users bind port 53
# inside a container's own network namespace (ip_unprivileged_port_start=0). The dataplane, and
# port 53 on the host network, need root and NET_ADMIN: --user 0 --cap-add NET_ADMIN --network host
# (see docs/container.md).
USER node
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9153/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["serve", "--dataplane", "none"]
