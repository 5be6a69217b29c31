/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The API lives at the origin's root; the app under /app/. In development, every API path is
// proxied to a local job-queue API (NMPI_API, default http://127.0.0.1:8000).
const api = process.env.NMPI_API ?? "http://127.0.0.1:8000";
const apiPaths = ["/auth", "/jobs", "/collabs", "/projects", "/tags", "/userinfo", "/statistics", "/code-archives"];

export default defineConfig({
  base: "/app/",
  plugins: [react()],
  build: {
    manifest: true,
    sourcemap: false,
    target: "es2020",
    assetsDir: "assets",
    rollupOptions: {
      output: {
        // The framework and the UI library change less often than the app: cache them apart.
        manualChunks(id) {
          if (id.includes("node_modules")) {
            if (/[\\/]node_modules[\\/](@codemirror|codemirror|@lezer|style-mod|w3c-keyname|crelt)[\\/]/.test(id)) {
              return undefined; // stays with the lazily loaded editor chunk
            }
            if (/[\\/]node_modules[\\/](react|react-dom|scheduler|react-router|react-router-dom|@remix-run)[\\/]/.test(id)) {
              return "react";
            }
            if (/[\\/]node_modules[\\/](@mui|@emotion|@popperjs|react-transition-group|stylis|hoist-non-react-statics|prop-types|react-is|clsx)[\\/]/.test(id)) {
              return "mui";
            }
          }
          return undefined;
        },
      },
    },
  },
  server: {
    proxy: Object.fromEntries(
      [...apiPaths.map((p) => [p, { target: api, changeOrigin: true }]),
       ["^/$", { target: api, changeOrigin: true }]],
    ),
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test/setup.ts"],
    css: false,
    restoreMocks: true,
    testTimeout: 30000,
  },
});
