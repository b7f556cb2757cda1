/**
 * Label selectors, Kubernetes-style. One requirement per expression:
 *
 *   key=value   key!=value   key in (a,b)   key notin (a,b)   key   !key   key<number   key>number
 *
 * Keys are `[prefix/]name` (prefix a DNS subdomain ≤ 253 chars, name ≤ 63 chars of
 * `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`); values follow the name rule. As in Kubernetes,
 * `!=` and `notin` also match hosts without the key; `<` and `>` need the label to be a number.
 */

import { InvalidSelectorError } from "./errors.js";

export type Requirement =
  | { readonly key: string; readonly op: "=" | "!="; readonly value: string }
  | { readonly key: string; readonly op: "in" | "notin"; readonly values: readonly string[] }
  | { readonly key: string; readonly op: "exists" | "!exists" }
  | { readonly key: string; readonly op: "<" | ">"; readonly value: number };

export type RequirementOp = Requirement["op"];

/** Labels as a plain record or a map. */
export type Labels = Readonly<Record<string, string>> | ReadonlyMap<string, string>;

const NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NUMBER_RE = /^-?[0-9]+(\.[0-9]+)?$/;
const KEY_CHAR = /[-A-Za-z0-9_./]/;
const VALUE_CHAR = /[-A-Za-z0-9_.]/;

/** Why `key` is not a valid label key, or undefined if it is. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS_RE.test(prefix)) {
      return "key prefix must be a DNS subdomain of at most 253 characters";
    }
  }
  if (name.length === 0 || name.length > 63 || !NAME_RE.test(name)) {
    return "key name must be 1–63 characters: alphanumerics and '-', '_', '.', starting and ending alphanumeric";
  }
  return undefined;
}

/** Why `value` is not a valid label value, or undefined if it is (the empty value is valid). */
export function labelValueProblem(value: string): string | undefined {
  if (value.length === 0) return undefined;
  if (value.length > 63 || !NAME_RE.test(value)) {
    return "value must be at most 63 characters: alphanumerics and '-', '_', '.', starting and ending alphanumeric";
  }
  return undefined;
}

class Cursor {
  pos = 0;
  constructor(readonly text: string) {}
  fail(reason: string, at = this.pos): never {
    throw new InvalidSelectorError(this.text, at, reason);
  }
  skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos] ?? "")) this.pos++;
  }
  peek(n = 1): string {
    return this.text.slice(this.pos, this.pos + n);
  }
  eof(): boolean {
    return this.pos >= this.text.length;
  }
  take(re: RegExp): string {
    const start = this.pos;
    while (this.pos < this.text.length && re.test(this.text[this.pos] ?? "")) this.pos++;
    return this.text.slice(start, this.pos);
  }
}

function readKey(c: Cursor): string {
  const at = c.pos;
  const key = c.take(KEY_CHAR);
  if (key.length === 0) c.fail("expected a label key", at);
  const problem = labelKeyProblem(key);
  if (problem !== undefined) c.fail(problem, at);
  return key;
}

function readValue(c: Cursor): string {
  c.skipSpace();
  const at = c.pos;
  const value = c.take(VALUE_CHAR);
  if (value.length === 0) c.fail("expected a value", at);
  const problem = labelValueProblem(value);
  if (problem !== undefined) c.fail(problem, at);
  return value;
}

function readNumber(c: Cursor): number {
  c.skipSpace();
  const at = c.pos;
  const text = c.take(/[-0-9.]/);
  if (!NUMBER_RE.test(text)) c.fail("expected a number", at);
  return Number(text);
}

function readValueList(c: Cursor): string[] {
  c.skipSpace();
  if (c.peek() !== "(") c.fail("expected '('");
  c.pos++;
  const values: string[] = [];
  for (;;) {
    values.push(readValue(c));
    c.skipSpace();
    const ch = c.peek();
    if (ch === ",") {
      c.pos++;
      continue;
    }
    if (ch === ")") {
      c.pos++;
      return [...new Set(values)].sort();
    }
    c.fail("expected ',' or ')'");
  }
}

/** Parse one requirement. Throws `InvalidSelectorError` with the offending position. */
export function parseSelector(expr: string): Requirement {
  const c: Cursor = new Cursor(expr);
  c.skipSpace();
  if (c.eof()) c.fail("empty selector");
  let req: Requirement;
  if (c.peek() === "!") {
    c.pos++;
    c.skipSpace();
    req = { key: readKey(c), op: "!exists" };
  } else {
    const key = readKey(c);
    const afterKey = c.pos;
    c.skipSpace();
    const two = c.peek(2);
    if (two === "!=") {
      c.pos += 2;
      req = { key, op: "!=", value: readValue(c) };
    } else if (two === "==") {
      c.pos += 2;
      req = { key, op: "=", value: readValue(c) };
    } else if (c.peek() === "=") {
      c.pos++;
      req = { key, op: "=", value: readValue(c) };
    } else if (c.peek() === "<" || c.peek() === ">") {
      const op = c.peek() === "<" ? "<" : ">";
      c.pos++;
      req = { key, op, value: readNumber(c) };
    } else if (c.eof()) {
      req = { key, op: "exists" };
    } else if (c.pos > afterKey && /^notin\b|^notin\(/.test(expr.slice(c.pos))) {
      c.pos += 5;
      req = { key, op: "notin", values: readValueList(c) };
    } else if (c.pos > afterKey && /^in\b|^in\(/.test(expr.slice(c.pos))) {
      c.pos += 2;
      req = { key, op: "in", values: readValueList(c) };
    } else {
      req = c.fail("expected an operator: =, !=, in, notin, <, >");
    }
  }
  c.skipSpace();
  if (!c.eof()) c.fail("unexpected text after the requirement");
  return req;
}

/**
 * Parse a comma-separated list of requirements (`zone=a, gpu, rack notin (r1,r2)`); commas inside
 * parentheses belong to the value list. The empty string is the empty list.
 */
export function parseSelectors(expr: string): Requirement[] {
  const out: Requirement[] = [];
  let depth = 0;
  let start = 0;
  const flush = (end: number) => {
    const part = expr.slice(start, end);
    if (part.trim().length === 0) {
      if (expr.trim().length === 0) return;
      throw new InvalidSelectorError(expr, start, "empty requirement");
    }
    try {
      out.push(parseSelector(part));
    } catch (err) {
      if (err instanceof InvalidSelectorError) {
        throw new InvalidSelectorError(expr, start + err.position, err.reason, { cause: err });
      }
      throw err;
    }
  };
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i];
    if (ch === "(") depth++;
    else if (ch === ")") depth--;
    else if (ch === "," && depth === 0) {
      flush(i);
      start = i + 1;
    }
  }
  flush(expr.length);
  return out;
}

function lookup(labels: Labels, key: string): string | undefined {
  if (labels instanceof Map) return labels.get(key);
  const rec = labels as Readonly<Record<string, string>>;
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

/** Whether one requirement holds for the labels. */
export function matchesOne(req: Requirement, labels: Labels): boolean {
  const v = lookup(labels, req.key);
  switch (req.op) {
    case "=":
      return v === req.value;
    case "!=":
      return v !== req.value;
    case "in":
      return v !== undefined && req.values.includes(v);
    case "notin":
      return v === undefined || !req.values.includes(v);
    case "exists":
      return v !== undefined;
    case "!exists":
      return v === undefined;
    case "<":
    case ">": {
      if (v === undefined || !NUMBER_RE.test(v)) return false;
      const n = Number(v);
      return req.op === "<" ? n < req.value : n > req.value;
    }
  }
}

/** All requirements hold (the empty list matches everything). */
export function matches(reqs: readonly Requirement[], labels: Labels): boolean {
  for (const r of reqs) if (!matchesOne(r, labels)) return false;
  return true;
}

/** The canonical text of a requirement; `parseSelector(formatRequirement(r))` gives `r` back. */
export function formatRequirement(req: Requirement): string {
  switch (req.op) {
    case "=":
    case "!=":
      return `${req.key}${req.op}${req.value}`;
    case "in":
    case "notin":
      return `${req.key} ${req.op} (${req.values.join(",")})`;
    case "exists":
      return req.key;
    case "!exists":
      return `!${req.key}`;
    case "<":
    case ">":
      return `${req.key}${req.op}${req.value}`;
  }
}

/** Throws `InvalidSelectorError` unless every label key and value is valid. */
export function validateLabels(labels: Readonly<Record<string, string>>): void {
  for (const [k, v] of Object.entries(labels)) {
    const kp = labelKeyProblem(k);
    if (kp !== undefined) throw new InvalidSelectorError(k, 0, kp);
    const vp = labelValueProblem(v);
    if (vp !== undefined) throw new InvalidSelectorError(`${k}=${v}`, k.length + 1, vp);
  }
}
