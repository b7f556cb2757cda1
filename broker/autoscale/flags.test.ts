/**
 * The --autoscale-* flags (broker/config.ts): defaults, environment variables, and bad values
 * refused with a ConfigError that names the flag (the bin exits 2 on it).
 */
import { describe, expect, it } from "vitest";
import { ConfigError, parseOptions } from "../../core/index.js";
import { autoscaleOptions, BROKER_OPTIONS, checkCombinations } from "../config.js";

const parse = (argv: string[], env: Record<string, string> = {}) => {
  const { options } = parseOptions(BROKER_OPTIONS, argv, env);
  checkCombinations(options);
  return options;
};

describe("--autoscale-* flags", () => {
  it("default to a 30 s interval, a 1 h horizon and watermarks 0.3 / 0.85, publishing nowhere", () => {
    const o = autoscaleOptions(parse([]), undefined);
    expect(o).toMatchObject({
      intervalMs: 30_000,
      horizonMs: 3_600_000,
      lowWatermark: 0.3,
      highWatermark: 0.85,
      scaleOutCooldownMs: 120_000,
      scaleInCooldownMs: 600_000,
      minHosts: 1,
      shapes: [],
    });
    expect(o.webhooks).toBeUndefined();
  });

  it("take webhooks, shapes and cooldowns from flags and LEASEBROKER_* variables", () => {
    const o = autoscaleOptions(
      parse(
        [
          "--autoscale-webhook-url",
          "http://127.0.0.1:9090/a",
          "--autoscale-webhook-url",
          "https://scaler.example/b",
          "--autoscale-host-shapes",
          "m-16x64:16:64",
          "--autoscale-scale-in-cooldown",
          "15m",
        ],
        {
          LEASEBROKER_AUTOSCALE_WEBHOOK_SECRET: "0123456789abcdef",
          LEASEBROKER_AUTOSCALE_HORIZON: "2h",
        },
      ),
      undefined,
    );
    expect(o.webhooks).toMatchObject({
      urls: ["http://127.0.0.1:9090/a", "https://scaler.example/b"],
      secret: "0123456789abcdef",
    });
    expect(o.shapes?.map((s) => s.name)).toEqual(["m-16x64"]);
    expect(o.scaleInCooldownMs).toBe(900_000);
    expect(o.horizonMs).toBe(7_200_000);
  });

  it.each([
    [["--autoscale-interval", "soon"], /--autoscale-interval/],
    [["--autoscale-interval", "10ms"], /--autoscale-interval/],
    [["--autoscale-high-watermark", "1.5"], /--autoscale-high-watermark/],
    [["--autoscale-low-watermark", "0.9"], /--autoscale-low-watermark must be below/],
    [["--autoscale-host-shapes", "big"], /--autoscale-host-shapes: "big"/],
    [["--autoscale-webhook-url", "ftp://x"], /--autoscale-webhook-url: "ftp:\/\/x": only http/],
    [["--autoscale-webhook-url", "http://x"], /needs --autoscale-webhook-secret/],
    [["--autoscale-webhook-secret", "short"], /at least 16 characters/],
    [["--autoscale-min-hosts", "-1"], /--autoscale-min-hosts/],
    [["--autoscale-nats"], /--autoscale-nats publishes on the NATS bus/],
  ])("refuse %j", (argv, message) => {
    expect(() => parse(argv)).toThrow(ConfigError);
    expect(() => parse(argv)).toThrow(message);
  });
});
