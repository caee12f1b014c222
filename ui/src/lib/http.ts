// The HTTP tab's pure parts (unit tested in http.test.ts): status classes, the table's
// filter, and how a recorded body is shown.

import type { Exchange, Message } from "./types";

export type StatusClass = "1xx" | "2xx" | "3xx" | "4xx" | "5xx";
export const STATUS_CLASSES: StatusClass[] = ["2xx", "3xx", "4xx", "5xx"];

/** The most exchanges the tab holds (the shell keeps at most as many per forward). */
export const MAX_EXCHANGES = 1000;

/** 204 → "2xx"; no response → null. */
export function statusClass(status: number | null | undefined): StatusClass | null {
  if (status == null || status < 100 || status > 599) return null;
  return `${Math.floor(status / 100)}xx` as StatusClass;
}

/** What a row shows as the status: "200", "101 websocket", "–" (no answer). */
export function statusText(e: Exchange): string {
  if (e.status == null) return e.incomplete ? "no answer" : "–";
  return e.upgrade ? `${e.status} ${e.upgrade}` : String(e.status);
}

/** The path and query of a request target (an absolute-form target loses its origin). */
export function pathOf(target: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/]*(\/.*)?$/i.exec(target);
  return m ? (m[1] ?? "/") : target;
}

/** Bytes of an exchange on the wire, both ways: what the Size column shows. */
export function exchangeSize(e: Exchange): number {
  const r = e.request;
  const s = e.response;
  return r.headSize + r.bodySize + (s ? s.headSize + s.bodySize : 0);
}

export type ExchangeFilter = { text: string; classes: StatusClass[]; method: string };
export const NO_FILTER: ExchangeFilter = { text: "", classes: [], method: "" };

/** Whether an exchange passes the filter: the text in its method, target, status or a
 * header; its status in one of the classes (none chosen: any); its method (empty: any). */
export function matches(e: Exchange, f: ExchangeFilter): boolean {
  if (f.method && e.method !== f.method) return false;
  if (f.classes.length > 0) {
    const c = statusClass(e.status);
    if (!c || !f.classes.includes(c)) return false;
  }
  const t = f.text.trim().toLowerCase();
  if (!t) return true;
  const hay = [e.method, e.target, e.status == null ? "" : String(e.status), e.reason ?? ""];
  if (hay.some((h) => h.toLowerCase().includes(t))) return true;
  const headers = [...e.request.headers, ...(e.response?.headers ?? [])];
  return headers.some((h) => `${h.name}: ${h.value}`.toLowerCase().includes(t));
}

/** The methods seen, for the method filter, in the order first seen. */
export function methodsOf(list: Exchange[]): string[] {
  return [...new Set(list.map((e) => e.method))];
}

/** Appends new exchanges (replacing any with the same id), oldest dropped past `max`. */
export function merge(list: Exchange[], more: Exchange[], max = MAX_EXCHANGES): Exchange[] {
  if (more.length === 0) return list;
  const ids = new Set(more.map((e) => e.id));
  const out = list.filter((e) => !ids.has(e.id)).concat(more);
  out.sort((a, b) => a.id - b.id);
  return out.length > max ? out.slice(out.length - max) : out;
}

export type BodyPreview =
  | { kind: "empty" }
  | { kind: "not-kept"; size: number }
  | { kind: "text"; text: string; json: boolean; truncated: boolean; size: number }
  | { kind: "binary"; hex: string; kept: number; size: number; truncated: boolean };

/** Base64 to bytes (the shell sends bodies as base64). */
export function fromBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** How a message's body is shown: nothing; "not kept" (capture off, or none of it);
 * text (JSON pretty-printed when it parses and the type or the first byte says JSON);
 * or, for bytes that are not UTF-8, the first bytes in hex and the size. */
export function bodyPreview(m: Message | null | undefined): BodyPreview {
  if (!m || m.contentSize === 0) return { kind: "empty" };
  if (!m.bodyBase64) return { kind: "not-kept", size: m.contentSize };
  const bytes = fromBase64(m.bodyBase64);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const hex = Array.from(bytes.slice(0, 64), (b) => b.toString(16).padStart(2, "0")).join(" ");
    return { kind: "binary", hex, kept: bytes.length, size: m.contentSize, truncated: m.truncated };
  }
  const type = m.headers.find((h) => h.name.toLowerCase() === "content-type")?.value ?? "";
  const looksJson = /json/i.test(type) || /^\s*[[{]/.test(text);
  if (looksJson && !m.truncated) {
    try {
      return { kind: "text", text: JSON.stringify(JSON.parse(text), null, 2), json: true, truncated: false, size: m.contentSize };
    } catch {
      // Not JSON after all: shown as it is.
    }
  }
  return { kind: "text", text, json: false, truncated: m.truncated, size: m.contentSize };
}
