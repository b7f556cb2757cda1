#!/usr/bin/env node
// After `tsc`: make every bin of package.json executable. tsc writes files as 0644, and npx runs a
// package's own bins through a link to them (npm sets the mode only when it links them).
import { chmodSync, existsSync, readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
for (const [name, path] of Object.entries(pkg.bin ?? {})) {
  const file = new URL(`../${path}`, import.meta.url);
  if (existsSync(file)) chmodSync(file, 0o755);
  else console.warn(`chmod-bins: ${name} -> ${path} is not built`);
}
