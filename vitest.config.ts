import { defineConfig } from "vitest/config";

// Two projects: fast unit tests beside the code, and integration tests in test/ that start real
// etcd, nats-server and broker processes (bounded, on loopback). Integration tests run one file at
// a time: they share the machine's two cores with the servers they start.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["{core,proto,placement,migration,broker,agent,bus,bench}/**/*.test.ts"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
          globalSetup: ["test/helpers/global-setup.ts"],
        },
      },
    ],
  },
});
