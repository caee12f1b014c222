import { describe, expect, it } from "vitest";
import { bodyPreview, exchangeSize, matches, merge, methodsOf, NO_FILTER, pathOf, statusClass, statusText } from "./http";
import type { Exchange, Message } from "./types";

const b64 = (s: string) => btoa(s);
const msg = (over: Partial<Message> = {}): Message => ({
  version: "HTTP/1.1",
  headers: [],
  trailers: [],
  headSize: 40,
  bodySize: 0,
  contentSize: 0,
  bodyBase64: "",
  truncated: false,
  complete: true,
  ...over,
});
const ex = (id: number, over: Partial<Exchange> = {}): Exchange => ({
  id,
  startedMs: 1_700_000_000_000,
  method: "GET",
  target: "/",
  status: 200,
  reason: "OK",
  durationMs: 3,
  timings: { sendMs: 0, waitMs: 2, receiveMs: 1 },
  request: msg(),
  response: msg({ headSize: 60, bodySize: 10, contentSize: 10 }),
  interim: [],
  upgrade: null,
  incomplete: false,
  ...over,
});

describe("the HTTP tab's helpers", () => {
  it("classes statuses", () => {
    expect(statusClass(204)).toBe("2xx");
    expect(statusClass(503)).toBe("5xx");
    expect(statusClass(null)).toBe(null);
    expect(statusText(ex(1, { status: 101, upgrade: "websocket" }))).toBe("101 websocket");
    expect(statusText(ex(1, { status: null, response: null, incomplete: true }))).toBe("no answer");
  });

  it("shows paths and sizes", () => {
    expect(pathOf("/a?b=1")).toBe("/a?b=1");
    expect(pathOf("http://example.com/x?y")).toBe("/x?y");
    expect(pathOf("http://example.com")).toBe("/");
    expect(exchangeSize(ex(1))).toBe(110);
  });

  it("filters by text, status class and method", () => {
    const list = [
      ex(1),
      ex(2, { method: "POST", target: "/orders", status: 201 }),
      ex(3, { target: "/missing", status: 404 }),
      ex(4, { status: 500, response: msg({ headers: [{ name: "X-Trace", value: "abc123" }] }) }),
    ];
    const ids = (f: Partial<typeof NO_FILTER>) => list.filter((e) => matches(e, { ...NO_FILTER, ...f })).map((e) => e.id);
    expect(ids({})).toEqual([1, 2, 3, 4]);
    expect(ids({ text: "order" })).toEqual([2]);
    expect(ids({ text: "ABC123" })).toEqual([4]);
    expect(ids({ text: "404" })).toEqual([3]);
    expect(ids({ classes: ["4xx", "5xx"] })).toEqual([3, 4]);
    expect(ids({ method: "POST" })).toEqual([2]);
    expect(ids({ method: "GET", classes: ["2xx"] })).toEqual([1]);
    expect(methodsOf(list)).toEqual(["GET", "POST"]);
  });

  it("merges batches in id order, bounded", () => {
    expect(merge([ex(1), ex(2)], [ex(2, { status: 500 }), ex(3)]).map((e) => [e.id, e.status])).toEqual([
      [1, 200],
      [2, 500],
      [3, 200],
    ]);
    expect(merge([ex(1), ex(2)], [ex(3)], 2).map((e) => e.id)).toEqual([2, 3]);
  });

  it("previews bodies: JSON pretty, text, bytes, not kept", () => {
    expect(bodyPreview(msg())).toEqual({ kind: "empty" });
    expect(bodyPreview(msg({ contentSize: 12 }))).toEqual({ kind: "not-kept", size: 12 });
    const json = bodyPreview(msg({ contentSize: 13, bodyBase64: b64('{"a":[1,2]}'), headers: [{ name: "Content-Type", value: "application/json" }] }));
    expect(json).toEqual({ kind: "text", text: '{\n  "a": [\n    1,\n    2\n  ]\n}', json: true, truncated: false, size: 13 });
    const cut = bodyPreview(msg({ contentSize: 5000, bodyBase64: b64('{"a":'), truncated: true }));
    expect(cut).toMatchObject({ kind: "text", text: '{"a":', json: false, truncated: true });
    const bin = bodyPreview(msg({ contentSize: 3, bodyBase64: btoa(String.fromCharCode(0xff, 0x00, 0x10)) }));
    expect(bin).toEqual({ kind: "binary", hex: "ff 00 10", kept: 3, size: 3, truncated: false });
  });
});
