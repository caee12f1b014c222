// Pure formatting helpers (unit tested in format.test.ts).

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** 0 → "0 B", 1536 → "1.5 KiB", 10 * 1024 * 1024 → "10 MiB". */
export function formatBytes(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n) || n < 0) return "–";
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${Math.round(v)} B`;
  const s = v < 10 ? (Math.round(v * 10) / 10).toString() : Math.round(v).toString();
  // 1023.96 KiB rounds to "1024 KiB": show the next unit instead.
  if (s === "1024" && i < UNITS.length - 1) return `1 ${UNITS[i + 1]}`;
  return `${s} ${UNITS[i]}`;
}

/** 12 → "12 ms", 2.46 → "2.5 ms", 0.2 → "<1 ms", 1500 → "1.5 s", null → "". */
export function formatLatency(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1) return "<1 ms";
  if (ms < 10) return `${Math.round(ms * 10) / 10} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${Math.round(ms / 100) / 10} s`;
}

/** A duration in words: 42_000 → "42s", 125_000 → "2m 5s", 7_500_000 → "2h 5m", 2 days → "2d 0h". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  const d = Math.floor(h / 24);
  return `${d}d ${h % 24}h`;
}

/** "3m 12s ago" relative to `now`; times in the future count as "just now". */
export function formatAgo(atMs: number, now: number): string {
  const d = now - atMs;
  if (d < 1000) return "just now";
  return `${formatDuration(d)} ago`;
}

/** Local wall-clock time of an epoch-ms timestamp, "14:03:07". */
export function formatClock(atMs: number): string {
  const d = new Date(atMs);
  const p = (n: number) => n.toString().padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** "1 connection", "3 connections". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
