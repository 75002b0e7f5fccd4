// Builds the dashboard into ui/dist (served by the gateway) and, in dev, proxies GraphQL
// (HTTP and graphql-ws) to a gateway on :4000 so the page stays same-origin either way.
import { fileURLToPath } from 'node:url';
import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vite';

// The config is run from the repository root (npm run build:ui); anchor paths to this file.
const uiRoot = fileURLToPath(new URL('.', import.meta.url));
const GATEWAY = process.env.TICKMESH_GATEWAY_URL ?? 'http://localhost:4000';

export default defineConfig(({ mode }) => ({
  root: uiRoot,
  plugins: [vue()],
  // Apollo Client keys its dev-only checks, warnings and DevTools hint on this global; a
  // production build should drop them (Apollo's documented bundler setting).
  define: { 'globalThis.__DEV__': JSON.stringify(mode !== 'production') },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Apollo + lightweight-charts + Vue come to ~450 kB (~145 kB gzipped): one chunk is fine
    // for a single-page dashboard, so only warn well above that.
    chunkSizeWarningLimit: 900,
  },
  server: {
    proxy: {
      '/graphql': { target: GATEWAY, ws: true, changeOrigin: true },
    },
  },
}));
