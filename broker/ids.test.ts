import { describe, expect, it } from "vitest";
import { VirtualClock } from "../core/index.js";
import { createIdGenerator } from "./ids.js";

describe("createIdGenerator", () => {
  it("makes unique ids that sort in creation order", async () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const next = createIdGenerator("l-", clock);
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push(next());
    await clock.advance(1);
    for (let i = 0; i < 50; i++) ids.push(next());
    expect(new Set(ids).size).toBe(100);
    expect([...ids].sort()).toEqual(ids);
    expect(ids[0]).toMatch(/^l-[0-9a-z]{17}$/);
  });

  it("is deterministic with a seeded source of randomness", () => {
    const make = () => {
      let x = 1;
      const random = (): number => {
        x = (x * 48271) % 2147483647;
        return x / 2147483647;
      };
      return createIdGenerator("l-", new VirtualClock(5), { random });
    };
    const a = make();
    const b = make();
    expect([a(), a()]).toEqual([b(), b()]);
  });
});
