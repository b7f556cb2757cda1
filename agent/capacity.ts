/**
 * What the machine has, for the agent's default capacity: CPUs and memory from node:os, disk from
 * the file system that holds the data directory (fs.statfs). Each can be overridden by a flag, and
 * is only measured when it is not.
 */
import { statfs } from "node:fs/promises";
import { availableParallelism, totalmem } from "node:os";
import { dirname, resolve } from "node:path";

const GIB = 1024 ** 3;

export interface MachineCapacity {
  readonly cpus: number;
  readonly memoryGib: number;
  readonly diskGib: number;
}

export function detectCpus(): number {
  return availableParallelism();
}

export function detectMemoryGib(): number {
  return totalmem() / GIB;
}

/**
 * Size of the file system holding `dataDir`, in GiB. A data directory that does not exist yet is
 * measured on its nearest existing parent: that is where it will be created.
 */
export async function detectDiskGib(dataDir: string): Promise<number> {
  let path = resolve(dataDir);
  for (;;) {
    try {
      const stats = await statfs(path);
      return (stats.blocks * stats.bsize) / GIB;
    } catch (error) {
      const parent = dirname(path);
      const missing =
        error instanceof Error &&
        "code" in error &&
        (error.code === "ENOENT" || error.code === "ENOTDIR");
      if (!missing || parent === path) throw error;
      path = parent;
    }
  }
}
