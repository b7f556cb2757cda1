/**
 * Freezes `value` and everything reachable from it (an object already frozen is taken to be
 * frozen through, which makes freezing a new version that shares parts with an old one cheap).
 */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}
