import { describe, expect, it } from "vitest";
import { ConfigError, parseOptions } from "../core/index.js";
import { BROKER_OPTIONS, checkCombinations } from "./config.js";

describe("--http-address", () => {
  it("defaults to 127.0.0.1:8080; the environment overrides it, the flag overrides both", () => {
    expect(parseOptions(BROKER_OPTIONS, [], {}).options.httpAddress).toBe("127.0.0.1:8080");
    const env = { LEASEBROKER_HTTP_ADDRESS: "0.0.0.0:9090" };
    expect(parseOptions(BROKER_OPTIONS, [], env).options.httpAddress).toBe("0.0.0.0:9090");
    expect(
      parseOptions(BROKER_OPTIONS, ["--http-address", "127.0.0.1:0"], env).options.httpAddress,
    ).toBe("127.0.0.1:0");
  });

  it("rejects a value that is not host:port, naming the flag", () => {
    expect(() => parseOptions(BROKER_OPTIONS, ["--http-address", "8080"], {})).toThrow(ConfigError);
    expect(() => parseOptions(BROKER_OPTIONS, ["--http-address", "8080"], {})).toThrow(
      /--http-address/,
    );
    expect(() => parseOptions(BROKER_OPTIONS, ["--http-address", "h:70000"], {})).toThrow(/65535/);
  });

  it("must differ from --grpc-address (port 0 excepted: each gets its own free port)", () => {
    const same = parseOptions(
      BROKER_OPTIONS,
      ["--http-address", "127.0.0.1:7000", "--grpc-address", "127.0.0.1:7000"],
      {},
    ).options;
    expect(() => checkCombinations(same)).toThrow(/--http-address and --grpc-address/);
    const zero = parseOptions(
      BROKER_OPTIONS,
      ["--http-address", "127.0.0.1:0", "--grpc-address", "127.0.0.1:0"],
      {},
    ).options;
    expect(() => checkCombinations(zero)).not.toThrow();
  });
});
