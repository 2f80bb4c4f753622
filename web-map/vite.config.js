import { defineConfig } from 'vite';

// Built into dist/ and served by citypin at `/` (assets under /assets/).
export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    // `npm run dev` proxies the API to a running citypin.
    proxy: Object.fromEntries(
      ['/api', '/open311', '/tiles', '/tiles.json', '/map-assets', '/basemap', '/health'].map((p) => [
        p,
        process.env.CITYPIN_URL || 'http://127.0.0.1:8080',
      ]),
    ),
  },
});
