import { describe, expect, it } from "vitest";
import { tauriBackend } from "./backend";
import type { Forward } from "./types";

describe("the backend", () => {
  it("never sends a forward the shell could not read", async () => {
    // No Tauri here: reaching invoke() would fail differently (code "engine", no field).
    const bad: Forward = { name: "echo", target: "service/echo", port: 80, local_port: 70000 };
    for (const send of [tauriBackend.saveForward, tauriBackend.validateForward])
      await expect(send(null, bad)).rejects.toEqual({
        code: "invalid",
        field: "local_port",
        message: "70000 is not a port: use a number from 1 to 65535, or 0 for any free port.",
      });
  });
});
