/** Page sizes of the List RPCs (ListLeases, ListMigrations): one rule for all of them. */
import { InvalidArgumentError } from "../core/index.js";

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/** The page size asked for: 0 or absent → the default; beyond the maximum → INVALID_ARGUMENT. */
export function pageSize(requested: number | undefined): number {
  const size = requested === undefined || requested === 0 ? DEFAULT_PAGE_SIZE : requested;
  if (!Number.isInteger(size) || size < 0 || size > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError("page_size", `must be between 0 and ${MAX_PAGE_SIZE}`);
  }
  return size;
}
