/**
 * A protobuf writer for hand-written encoders of hot messages (the broker's lease answers and
 * start commands): one growing buffer, reused between messages, and nested lengths back-patched.
 * protobufjs' Writer allocates an operation object per field and copies everything again at
 * `finish`, which made it most of the cost of a small message.
 *
 * Every `field` method writes nothing for the proto3 default (0, "", false): the decoded message
 * is the same. Nested messages (`begin`/`end`) are always written, empty or not, as a present
 * message field must be. Integers are JavaScript numbers: int64 values must be safe integers.
 */
import { timestampFromMs } from "./time.js";

const VARINT = 0;
const FIXED64 = 1;
const LDELIM = 2;
const TWO_32 = 0x1_0000_0000;

export class WireWriter {
  #buf: Buffer = Buffer.allocUnsafe(512);
  #pos = 0;
  /** Where each open nested message's one-byte length placeholder is. */
  readonly #open: number[] = [];

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + n));
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
  }

  /** A non-negative integer below 2^53, as a varint. */
  #varint(value: number): void {
    this.#ensure(10);
    const buf = this.#buf;
    let pos = this.#pos;
    let v = value;
    if (v >= TWO_32) {
      // Above 32 bits the bit operators do not apply: 7 bits at a time by division.
      while (v >= TWO_32) {
        buf[pos++] = (v % 128) | 128;
        v = Math.floor(v / 128);
      }
    }
    while (v > 127) {
      buf[pos++] = (v & 127) | 128;
      v >>>= 7;
    }
    buf[pos++] = v;
    this.#pos = pos;
  }

  /** A negative integer as protobuf writes it: its 64-bit two's complement, ten bytes. */
  #negative(value: number): void {
    this.#ensure(10);
    const buf = this.#buf;
    let pos = this.#pos;
    const high = Math.floor(value / TWO_32);
    let hi = high >>> 0;
    let lo = (value - high * TWO_32) >>> 0;
    while (hi !== 0) {
      buf[pos++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    while (lo > 127) {
      buf[pos++] = (lo & 127) | 128;
      lo >>>= 7;
    }
    buf[pos++] = lo;
    this.#pos = pos;
  }

  #tag(field: number, wire: number): void {
    this.#varint(field * 8 + wire);
  }

  /** int32, int64, uint32, uint64 and enum fields (safe integers). */
  int(field: number, value: number): this {
    if (value === 0) return this;
    if (!Number.isSafeInteger(value)) throw new RangeError(`not a safe integer: ${value}`);
    this.#tag(field, VARINT);
    if (value > 0) this.#varint(value);
    else this.#negative(value);
    return this;
  }

  bool(field: number, value: boolean): this {
    if (!value) return this;
    this.#tag(field, VARINT);
    this.#ensure(1);
    this.#buf[this.#pos++] = 1;
    return this;
  }

  double(field: number, value: number): this {
    if (value === 0 && !Object.is(value, -0)) return this;
    this.#tag(field, FIXED64);
    this.#ensure(8);
    this.#pos = this.#buf.writeDoubleLE(value, this.#pos);
    return this;
  }

  string(field: number, value: string): this {
    if (value === "") return this;
    this.#tag(field, LDELIM);
    const n = value.length;
    if (n < 128) {
      // Short ASCII (ids, names, messages): one length byte and a byte per character.
      this.#ensure(n + 1);
      const buf = this.#buf;
      const start = this.#pos;
      let pos = start + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c > 127) break;
        buf[pos++] = c;
      }
      if (i === n) {
        buf[start] = n;
        this.#pos = pos;
        return this;
      }
    }
    const bytes = Buffer.byteLength(value, "utf8");
    this.#varint(bytes);
    this.#ensure(bytes);
    this.#pos += this.#buf.write(value, this.#pos, bytes, "utf8");
    return this;
  }

  /** A bytes field, or an embedded message already encoded. Written even when empty. */
  bytes(field: number, value: Uint8Array): this {
    this.#tag(field, LDELIM);
    this.#varint(value.length);
    this.#ensure(value.length);
    this.#buf.set(value, this.#pos);
    this.#pos += value.length;
    return this;
  }

  /** Opens an embedded message (`end` closes it); written even when it ends up empty. */
  begin(field: number): this {
    this.#tag(field, LDELIM);
    this.#ensure(1);
    this.#open.push(this.#pos);
    this.#pos += 1;
    return this;
  }

  end(): this {
    const at = this.#open.pop();
    if (at === undefined) throw new Error("end() without begin()");
    const length = this.#pos - at - 1;
    if (length < 128) {
      this.#buf[at] = length;
      return this;
    }
    // The one byte reserved is too small: move the message up by what the varint needs.
    let size = 1;
    for (let v = length; v > 127; v >>>= 7) size++;
    this.#ensure(size - 1);
    const buf = this.#buf;
    buf.copyWithin(at + size, at + 1, this.#pos);
    this.#pos += size - 1;
    let pos = at;
    let v = length;
    while (v > 127) {
      buf[pos++] = (v & 127) | 128;
      v >>>= 7;
    }
    buf[pos] = v;
    return this;
  }

  /** The message written since the last `finish` (a copy), and the writer is empty again. */
  finish(): Buffer {
    if (this.#open.length > 0) throw new Error(`${this.#open.length} embedded message(s) open`);
    const out = Buffer.allocUnsafe(this.#pos);
    this.#buf.copy(out, 0, 0, this.#pos);
    this.#pos = 0;
    return out;
  }

  /** Drops whatever was written (after a failed encode). */
  reset(): void {
    this.#pos = 0;
    this.#open.length = 0;
  }
}

const idle: WireWriter[] = [];

/**
 * Encodes one message with a pooled writer: `write` may itself call `encodeWith` (for a part that
 * is encoded once and kept), which gets another writer.
 */
export function encodeWith(write: (w: WireWriter) => void): Buffer {
  const w = idle.pop() ?? new WireWriter();
  try {
    write(w);
    return w.finish();
  } catch (error) {
    w.reset();
    throw error;
  } finally {
    idle.push(w);
  }
}

/** A google.protobuf.Timestamp field (always present, as timestampFromMs makes one). */
export function writeTimestamp(w: WireWriter, field: number, ms: number): void {
  const { seconds, nanos } = timestampFromMs(ms);
  w.begin(field).int(1, seconds).int(2, nanos).end();
}
