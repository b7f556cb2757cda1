import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { encodeWith, WireWriter } from "./wire-writer.js";

/** protobufjs' Writer for the same field (the reference). */
function reference(write: (w: protobuf.Writer) => void): Buffer {
  const w = protobuf.Writer.create();
  write(w);
  return Buffer.from(w.finish());
}

describe("WireWriter", () => {
  it("writes integers as protobufjs does: varints, and negatives as ten bytes", () => {
    const values = [
      1,
      127,
      128,
      300,
      2 ** 31 - 1,
      2 ** 31,
      2 ** 32 - 1,
      2 ** 32,
      1_764_000_000_123,
      2 ** 53 - 1,
      -1,
      -2,
      -128,
      -(2 ** 31),
      -(2 ** 31) - 1,
      -62_135_596_800,
      -(2 ** 53) + 1,
    ];
    for (const v of values) {
      const w = new WireWriter();
      expect(w.int(3, v).finish(), String(v)).toEqual(reference((r) => r.uint32(24).int64(v)));
    }
    expect(new WireWriter().int(3, 0).finish().length).toBe(0);
    expect(() => new WireWriter().int(1, 1.5)).toThrow(RangeError);
    expect(() => new WireWriter().int(1, 2 ** 53)).toThrow(RangeError);
  });

  it("writes strings (ASCII, multi-byte, long), bools, doubles and bytes as protobufjs does", () => {
    const strings = [
      "a",
      "host-0042",
      "ü",
      "a€b😀",
      "x".repeat(127),
      "x".repeat(128),
      "é".repeat(200),
    ];
    for (const s of strings) {
      expect(new WireWriter().string(5, s).finish(), s.slice(0, 10)).toEqual(
        reference((r) => r.uint32(42).string(s)),
      );
    }
    expect(new WireWriter().string(5, "").bool(6, false).double(7, 0).finish().length).toBe(0);
    expect(new WireWriter().bool(6, true).double(7, 61.5).double(7, -0.25).finish()).toEqual(
      reference((r) => r.uint32(48).bool(true).uint32(57).double(61.5).uint32(57).double(-0.25)),
    );
    const bytes = Uint8Array.from([1, 2, 3]);
    expect(new WireWriter().bytes(2, bytes).bytes(2, new Uint8Array(0)).finish()).toEqual(
      reference((r) => r.uint32(18).bytes(bytes).uint32(18).bytes(new Uint8Array(0))),
    );
  });

  it("nests messages of any length (lengths past one byte move the body up)", () => {
    for (const length of [0, 1, 126, 127, 128, 300, 20_000]) {
      const body = "y".repeat(length);
      const w = new WireWriter();
      w.int(1, 7).begin(2).begin(3).string(4, body).end().int(5, 9).end().int(6, 1);
      expect(w.finish(), String(length)).toEqual(
        reference((r) => {
          r.uint32(8).int64(7).uint32(18).fork().uint32(26).fork();
          if (length > 0) r.uint32(34).string(body);
          r.ldelim().uint32(40).int64(9).ldelim().uint32(48).int64(1);
        }),
      );
    }
  });

  it("is empty again after finish, refuses unbalanced messages, and pools writers", () => {
    const w = new WireWriter();
    expect(w.int(1, 5).finish()).toEqual(Buffer.from([8, 5]));
    expect(w.int(1, 6).finish()).toEqual(Buffer.from([8, 6]));
    expect(() => w.end()).toThrow(/without begin/);
    expect(() => w.begin(1).finish()).toThrow(/open/);
    // A nested encode (a part kept for reuse) gets its own writer.
    const outer = encodeWith((o) => {
      o.int(1, 1);
      const inner = encodeWith((i) => i.string(1, "inner"));
      o.bytes(2, inner);
    });
    expect(outer).toEqual(
      reference((r) =>
        r
          .uint32(8)
          .int64(1)
          .uint32(18)
          .bytes(Buffer.from([10, 5, ...Buffer.from("inner")])),
      ),
    );
    // A failed encode leaves nothing behind for the next one.
    expect(() =>
      encodeWith((o) => {
        o.begin(1).int(2, 3);
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(encodeWith((o) => o.int(1, 2))).toEqual(Buffer.from([8, 2]));
  });
});
