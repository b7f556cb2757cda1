/**
 * A protobuf reader for hand-written decoders of hot messages (the agents' heartbeats and
 * workload events, thousands a second at the broker): it reads fields straight from the bytes,
 * without protobufjs' message objects and the generic codec's conversion of them.
 *
 * It reads only the simple, well-formed case: every method answers undefined (or false) for
 * anything else (bytes that run past the end, a varint at or beyond 2^53, ...). A decoder built on
 * it then gives up, and the generic codec decides: it decodes the message or says why not, so
 * that what is accepted and how a bad message is counted stay the codec's.
 */

/** Wire types of the protobuf encoding. */
export const WIRE_VARINT = 0;
export const WIRE_LDELIM = 2;

/** The Timestamp range the generic codec accepts (0001-01-01 .. 9999-12-31). */
const TIMESTAMP_MAX_SECONDS = 253_402_300_799;
const NANOS_MAX = 999_999_999;

export class WireReader {
  readonly #bytes: Uint8Array;
  readonly #text: Buffer;
  #pos: number;
  readonly #end: number;
  #failed = false;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length, text?: Buffer) {
    this.#bytes = bytes;
    this.#text = text ?? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#pos = start;
    this.#end = end;
  }

  /**
   * Whether a read met something other than the simple well-formed case (sticky): the values
   * read are then meaningless, and the message is the generic codec's to decode.
   */
  get failed(): boolean {
    return this.#failed;
  }

  /** Whether to read on: bytes are left and nothing failed. */
  get more(): boolean {
    return !this.#failed && this.#pos < this.#end;
  }

  /** Marks the message as not read here (an unknown field, a value out of range). */
  fail(): void {
    this.#failed = true;
  }

  /** A varint below 2^53 (8 bytes at most); 0 and failed otherwise. */
  varint(): number {
    const bytes = this.#bytes;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8 && this.#pos < this.#end; i++) {
      const b = bytes[this.#pos++] as number;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (value <= Number.MAX_SAFE_INTEGER) return value;
        break;
      }
      scale *= 128;
    }
    this.#failed = true;
    return 0;
  }

  /** A field's tag (field number << 3 | wire type); 0 and failed otherwise. */
  tag(): number {
    return this.varint();
  }

  /** A length-delimited field's bounds; failed when it runs past the end. */
  #span(): [number, number] {
    const length = this.varint();
    if (length > this.#end - this.#pos) {
      this.#failed = true;
      return [this.#pos, this.#pos];
    }
    const start = this.#pos;
    this.#pos += length;
    return [start, this.#pos];
  }

  /** A string field's value (UTF-8, decoded as the generic codec decodes it). */
  string(): string {
    const [start, end] = this.#span();
    return this.#failed ? "" : this.#text.toString("utf8", start, end);
  }

  /** A nested message's reader (failed with this one). */
  message(): WireReader {
    const [start, end] = this.#span();
    return new WireReader(this.#bytes, start, end, this.#text);
  }

  /**
   * Reads a google.protobuf.Timestamp field and checks it as the generic codec does; anything
   * else fails (negative seconds too: their varints run to 10 bytes).
   */
  timestamp(): void {
    const r = this.message();
    while (r.more) {
      const tag = r.tag();
      if (tag !== 1 << 3 && tag !== 2 << 3) r.fail();
      else if (r.varint() > (tag === 1 << 3 ? TIMESTAMP_MAX_SECONDS : NANOS_MAX)) r.fail();
    }
    if (r.failed) this.#failed = true;
  }

  /**
   * Reads a nested message whose fields are all int64 varints numbered 1..`fields` (as
   * leasebroker.v1.Resources without `extended`); anything else fails.
   */
  int64s(fields: number): void {
    const r = this.message();
    while (r.more) {
      const tag = r.tag();
      const field = tag / 8;
      if ((tag & 7) !== WIRE_VARINT || field < 1 || field > fields) r.fail();
      else r.varint();
    }
    if (r.failed) this.#failed = true;
  }
}
