/**
 * vitest globalSetup of the `integration` project: before any integration test runs, make sure
 * etcd and nats-server are there (installing them from Debian as root, see binaries.ts), so that a
 * missing binary fails the run up front with one clear message instead of in every test.
 */
import { binaryVersion, INTEGRATION_BINARIES, requireBinaries } from "./binaries.js";

export default function setup(): void {
  const paths = requireBinaries(INTEGRATION_BINARIES);
  const found = INTEGRATION_BINARIES.map((spec, i) => {
    const path = paths[i] ?? "?";
    return `${spec.name} ${path} (${binaryVersion(path, spec.versionArgs)})`;
  });
  process.stderr.write(`[test-helpers] using ${found.join("; ")}\n`);
}
