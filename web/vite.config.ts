import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

/**
 * The web UI build: web/ → dist/web (index.html + hashed /assets/*), served by the server.
 * Everything is bundled (no CDN, no external fonts); no inline scripts, so the server's
 * strict CSP (script-src 'self', style-src 'self') holds.
 */
export default defineConfig({
  root,
  base: '/',
  plugins: [react()],
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    // The preload polyfill would be inlined; modern Chromium/Firefox/Safari support modulepreload.
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: {
      '/auth': 'http://127.0.0.1:8080',
      '/admin/api': 'http://127.0.0.1:8080',
      '/api': 'http://127.0.0.1:8080',
      '/v1': 'http://127.0.0.1:8080',
    },
  },
});
