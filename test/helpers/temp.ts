import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Set (to anything but "" or "0") to keep the temp dirs (data, logs) of stopped servers. */
export const KEEP_ENV = "LEASEBROKER_TEST_KEEP";

export function keepArtifacts(): boolean {
  const value = process.env[KEEP_ENV];
  return value !== undefined && value !== "" && value !== "0";
}

/** A new private (0700) directory under os.tmpdir(): `leasebroker-<prefix>-XXXXXX`. */
export function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `leasebroker-${prefix}-`));
}

/** Removes a directory tree (no error if it is gone); keeps it when LEASEBROKER_TEST_KEEP is set. */
export async function removeDir(path: string): Promise<void> {
  if (keepArtifacts()) {
    process.stderr.write(`[test-helpers] keeping ${path} (${KEEP_ENV} is set)\n`);
    return;
  }
  await rm(path, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
}
