/**
 * NATS subject grammar and wildcard matching, so that the in-process bus accepts and routes exactly
 * what nats-server would: a subject is dot-separated non-empty tokens without whitespace; in a
 * subscription `*` matches one token and `>` (last token only) one or more.
 */
import { InvalidSubjectError } from "./errors.js";

// Whitespace would split the subject in the NATS wire protocol.
const BAD_CHARACTER = /[\s\0]/;
/** A concrete subject, in one test (every publish is checked): the slow path says what is wrong. */
const CONCRETE_SUBJECT = /^[^\s\0.*>]+(?:\.[^\s\0.*>]+)*$/;

function tokensProblem(tokens: readonly string[], wildcards: boolean): string | undefined {
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (token === "") return "has an empty token";
    if (BAD_CHARACTER.test(token)) return "contains whitespace";
    if (token === "*" || token === ">") {
      if (!wildcards) return "wildcards are only allowed in subscriptions";
      if (token === ">" && i !== tokens.length - 1) return "'>' must be the last token";
    } else if (token.includes("*") || token.includes(">")) {
      return "a wildcard must be a whole token";
    }
  }
  return undefined;
}

/** Throws InvalidSubjectError unless `subject` is a concrete subject (for publishing). */
export function checkPublishSubject(subject: string): void {
  if (typeof subject !== "string" || subject.length === 0) {
    throw new InvalidSubjectError(String(subject), "must not be empty");
  }
  if (CONCRETE_SUBJECT.test(subject)) return;
  const problem = tokensProblem(subject.split("."), false);
  if (problem !== undefined) throw new InvalidSubjectError(subject, problem);
}

/** Throws InvalidSubjectError unless `pattern` is a valid subscription subject. */
export function checkSubscribeSubject(pattern: string): void {
  if (typeof pattern !== "string" || pattern.length === 0) {
    throw new InvalidSubjectError(String(pattern), "must not be empty");
  }
  const problem = tokensProblem(pattern.split("."), true);
  if (problem !== undefined) throw new InvalidSubjectError(pattern, problem);
}

/** Whether the concrete `subject` matches the subscription `pattern`. Both are assumed valid. */
export function subjectMatches(pattern: string, subject: string): boolean {
  if (pattern === subject) return true;
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === ">") return s.length > i;
    if (i >= s.length) return false;
    if (token !== "*" && token !== s[i]) return false;
  }
  return p.length === s.length;
}
