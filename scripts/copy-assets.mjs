#!/usr/bin/env node
// After `tsc`: copy the files tsc does not emit (the dashboard's page, script and styles) next to
// the compiled modules, so that dist/ serves them exactly as the sources do.
import { cpSync } from "node:fs";

const assets = ["broker/dashboard/static"];
for (const dir of assets) {
  cpSync(new URL(`../${dir}`, import.meta.url), new URL(`../dist/${dir}`, import.meta.url), {
    recursive: true,
  });
}
