/**
 * Freezes `value` and everything reachable from it (an object already frozen is taken to be
 * frozen through, which makes freezing a new version that shares parts with an old one cheap).
 * Own and inherited enumerable string keys are followed (plain data has no inherited ones); a
 * `for...in` over an object's enum cache allocates nothing, unlike `Object.keys` (the store
 * freezes every write).
 */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    if (Array.isArray(value)) {
      for (const item of value) if (item !== null && typeof item === "object") deepFreeze(item);
    } else {
      const fields = value as Record<string, unknown>;
      for (const key in fields) {
        const field = fields[key];
        if (field !== null && typeof field === "object") deepFreeze(field);
      }
    }
  }
  return value;
}
