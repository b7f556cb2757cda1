import { describe, expect, it } from "vitest";
import { ConfigError } from "../../core/index.js";
import {
  parseCount,
  parseCpuMillis,
  parseDiskGib,
  parseDurationText,
  parseEnumName,
  parseKeyValue,
  parseMemoryMib,
  parseTime,
  splitRequirements,
} from "./quantities.js";

const NOW = Date.parse("2030-01-02T03:04:05Z");

describe("CPU", () => {
  it.each([
    ["2", 2000],
    ["0.5", 500],
    [".25", 250],
    ["1.5", 1500],
    ["500m", 500],
    ["1m", 1],
    ["64", 64_000],
  ])("%s is %i millicores", (text, millis) => {
    expect(parseCpuMillis(text, "--cpu")).toBe(millis);
  });

  it.each(["", "two", "-1", "2 cores", "0.0005", "1.5m", "500M", "2c"])(
    "%j is refused, naming the flag",
    (text) => {
      expect(() => parseCpuMillis(text, "--cpu")).toThrow(ConfigError);
      expect(() => parseCpuMillis(text, "--cpu")).toThrow(/^--cpu: /);
    },
  );
});

describe("memory and disk", () => {
  it.each([
    ["512Mi", 512],
    ["4Gi", 4096],
    ["1.5Gi", 1536],
    ["1Ti", 1_048_576],
    ["4GiB", 4096],
    ["4gi", 4096],
    ["2048", 2048],
  ])("memory %s is %i MiB", (text, mib) => {
    expect(parseMemoryMib(text, "--memory")).toBe(mib);
  });

  it("refuses decimal units with a hint to use binary ones", () => {
    expect(() => parseMemoryMib("4G", "--memory")).toThrow(/use binary units \(Mi, Gi, Ti\)/);
    expect(() => parseMemoryMib("4GB", "--memory")).toThrow(/use binary units/);
  });

  it.each(["", "lots", "-4Gi", "0.3Mi", "4 Gib please"])("memory %j is refused", (text) => {
    expect(() => parseMemoryMib(text, "--memory")).toThrow(/^--memory: /);
  });

  it.each([
    ["20", 20],
    ["20Gi", 20],
    ["1Ti", 1024],
    ["2048Mi", 2],
  ])("disk %s is %i GiB", (text, gib) => {
    expect(parseDiskGib(text, "--disk")).toBe(gib);
  });

  it("refuses a disk size that is not whole GiB", () => {
    expect(() => parseDiskGib("512Mi", "--disk")).toThrow(/whole number of GiB/);
  });
});

describe("counts and pairs", () => {
  it("parses whole counts and refuses the rest", () => {
    expect(parseCount("3", "--gpus")).toBe(3);
    expect(parseCount("0", "--gpus")).toBe(0);
    for (const bad of ["-1", "1.5", "x", ""]) {
      expect(() => parseCount(bad, "--gpus")).toThrow(/^--gpus: expected a whole number/);
    }
  });

  it("splits key=value at the first =", () => {
    expect(parseKeyValue("app=web", "--label")).toEqual(["app", "web"]);
    expect(parseKeyValue("cmd=a=b", "--param")).toEqual(["cmd", "a=b"]);
    expect(parseKeyValue("flag=", "--label")).toEqual(["flag", ""]);
    expect(() => parseKeyValue("novalue", "--label")).toThrow(/--label: expected key=value/);
    expect(() => parseKeyValue("=v", "--label")).toThrow(/expected key=value/);
  });
});

describe("durations", () => {
  it.each([
    ["300ms", 300],
    ["90s", 90_000],
    ["30m", 1_800_000],
    ["2h", 7_200_000],
    ["1h30m", 5_400_000],
    ["1d2h", 93_600_000],
    ["3600s", 3_600_000],
    ["1.5s", 1500],
  ])("%s is %i ms", (text, ms) => {
    expect(parseDurationText(text, "--duration")).toBe(ms);
  });

  it("refuses a bare number (which unit?) and garbage", () => {
    expect(() => parseDurationText("3600", "--duration")).toThrow(/add a unit/);
    expect(() => parseDurationText("2 hours", "--duration")).toThrow(/expected a duration/);
    expect(() => parseDurationText("1h30", "--duration")).toThrow(/expected a duration/);
    expect(() => parseDurationText("", "--duration")).toThrow(/expected a duration/);
  });
});

describe("times", () => {
  it("takes RFC 3339 with a zone", () => {
    expect(parseTime("2030-05-06T07:08:09Z", "--start", NOW)).toBe(
      Date.parse("2030-05-06T07:08:09Z"),
    );
    expect(parseTime("2030-05-06T09:08:09+02:00", "--start", NOW)).toBe(
      Date.parse("2030-05-06T07:08:09Z"),
    );
    expect(parseTime("2030-05-06T07:08:09.250Z", "--start", NOW)).toBe(
      Date.parse("2030-05-06T07:08:09.250Z"),
    );
  });

  it("takes now and times relative to now", () => {
    expect(parseTime("now", "--start", NOW)).toBe(NOW);
    expect(parseTime("+30m", "--start", NOW)).toBe(NOW + 1_800_000);
    expect(parseTime("+1h30m", "--start", NOW)).toBe(NOW + 5_400_000);
    expect(parseTime("-1h", "--start", NOW)).toBe(NOW - 3_600_000);
  });

  it.each(["2030-05-06T07:08:09", "2030-05-06", "tomorrow", "+30", "2030-13-45T99:00:00Z", ""])(
    "%j is refused with what was expected",
    (text) => {
      expect(() => parseTime(text, "--start", NOW)).toThrow(/^--start: /);
    },
  );
});

describe("requirements and enums", () => {
  it("splits at commas outside parentheses", () => {
    expect(splitRequirements("zone in (a,b), ssd,!gpu")).toEqual(["zone in (a,b)", "ssd", "!gpu"]);
    expect(splitRequirements("tier notin (x, y)")).toEqual(["tier notin (x, y)"]);
    expect(splitRequirements(" , ")).toEqual([]);
  });

  it("takes short or full enum names, any case, never UNSPECIFIED", () => {
    const states = ["LEASE_STATE_UNSPECIFIED", "LEASE_STATE_ACTIVE", "LEASE_STATE_PENDING"];
    expect(parseEnumName("active", "--state", states, "LEASE_STATE_")).toBe("LEASE_STATE_ACTIVE");
    expect(parseEnumName("LEASE_STATE_PENDING", "--state", states, "LEASE_STATE_")).toBe(
      "LEASE_STATE_PENDING",
    );
    expect(() => parseEnumName("unspecified", "--state", states, "LEASE_STATE_")).toThrow(
      /must be one of active, pending/,
    );
    expect(() => parseEnumName("running", "--state", states, "LEASE_STATE_")).toThrow(
      /--state: must be one of/,
    );
  });
});
