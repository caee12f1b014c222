import { describe, expect, it } from "vitest";
import { formatAgo, formatBytes, formatDuration, formatLatency, plural } from "./format";

describe("formatBytes", () => {
  it("uses binary units", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1024)).toBe("1 KiB");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(10 * 1024 * 1024)).toBe("10 MiB");
    expect(formatBytes(1_572_864)).toBe("1.5 MiB");
    expect(formatBytes(5 * 1024 ** 3)).toBe("5 GiB");
  });
  it("never shows 1024 of a unit", () => {
    expect(formatBytes(1024 * 1024 - 1)).toBe("1 MiB");
  });
  it("shows a dash for nonsense", () => {
    expect(formatBytes(-1)).toBe("–");
    expect(formatBytes(NaN)).toBe("–");
    expect(formatBytes(null)).toBe("–");
  });
});

describe("formatLatency", () => {
  it("is in ms", () => {
    expect(formatLatency(12)).toBe("12 ms");
    expect(formatLatency(12.4)).toBe("12 ms");
    expect(formatLatency(2.46)).toBe("2.5 ms");
    expect(formatLatency(0.2)).toBe("<1 ms");
    expect(formatLatency(1500)).toBe("1.5 s");
  });
  it("is empty without a probe", () => {
    expect(formatLatency(null)).toBe("");
    expect(formatLatency(undefined)).toBe("");
  });
});

describe("durations", () => {
  it("reads like a person would say it", () => {
    expect(formatDuration(42_000)).toBe("42s");
    expect(formatDuration(125_000)).toBe("2m 5s");
    expect(formatDuration(7_500_000)).toBe("2h 5m");
    expect(formatDuration(2 * 86_400_000)).toBe("2d 0h");
    expect(formatAgo(1000, 1500)).toBe("just now");
    expect(formatAgo(0, 65_000)).toBe("1m 5s ago");
  });
  it("counts", () => {
    expect(plural(1, "connection")).toBe("1 connection");
    expect(plural(3, "connection")).toBe("3 connections");
    expect(plural(0, "conn", "conns")).toBe("0 conns");
  });
});
