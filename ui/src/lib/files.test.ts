import { describe, expect, it } from "vitest";
import { exportFileName, exportMediaType, formatForFile, MAX_IMPORT_BYTES, readImportFile, type ChosenFile } from "./files";

describe("reading a chosen file", () => {
  it("reads its text", async () => {
    const file = new File(["kubectl port-forward svc/echo 18080:80\n"], "tunnels.sh");
    expect(await readImportFile(file)).toEqual({ ok: true, name: "tunnels.sh", text: "kubectl port-forward svc/echo 18080:80\n" });
  });

  it("reads a file of exactly 1 MiB, and not one byte more", async () => {
    expect(await readImportFile(new File(["x".repeat(MAX_IMPORT_BYTES)], "big.txt"))).toMatchObject({ ok: true });
    let read = false;
    const tooBig: ChosenFile = {
      name: "huge.json",
      size: MAX_IMPORT_BYTES + 1,
      text: async () => {
        read = true;
        return "";
      },
    };
    expect(await readImportFile(tooBig)).toEqual({ ok: false, error: "huge.json is larger than 1 MiB, the most Ferry reads." });
    expect(read).toBe(false);
  });

  it("says plainly when the file cannot be read", async () => {
    const gone: ChosenFile = {
      name: "forwards.yaml",
      size: 10,
      text: () => Promise.reject(new DOMException("The requested file could not be read, typically due to permission problems.", "NotReadableError")),
    };
    expect(await readImportFile(gone)).toEqual({ ok: false, error: "forwards.yaml could not be read." });
  });
});

describe("the format a file's name makes clear", () => {
  const check = (name: string, text: string, expected: string) => expect(formatForFile(name, text), `${name}: ${text}`).toBe(expected);

  it("takes a .json file for kftray's export unless it is a Ferry config", () => {
    check("kftray.json", '[{"service": "echo"}]', "kftray");
    check("configs.JSON", '  {"service": "echo", "namespace": "demo"}', "kftray");
    // Ferry's own config as JSON: the shell's detection finds it.
    check("forwards.json", '{"version": 1, "forwards": []}', "auto");
    // Not JSON after all: unsure.
    check("notes.json", "kubectl port-forward svc/echo 18080:80", "auto");
    check("empty.json", "", "auto");
  });

  it("takes a name with kportal in it for kportal's", () => {
    check("kportal.yaml", "contexts:\n", "kportal");
    check("My-KPortal-backup.yml", "contexts: []\n", "kportal");
  });

  it("leaves anything else to the shell", () => {
    check("forwards.yaml", "version: 1\nforwards: []\n", "auto");
    check("tunnels.sh", "kubectl port-forward svc/echo 18080:80", "auto");
    check("notes.txt", "[]", "auto");
    check("json", "[]", "auto");
  });
});

describe("export files", () => {
  it("names and types each format", () => {
    expect(exportFileName("ferry")).toBe("ferry-forwards.yaml");
    expect(exportFileName("kftray")).toBe("ferry-forwards.kftray.json");
    expect(exportMediaType("ferry")).toBe("application/yaml");
    expect(exportMediaType("kftray")).toBe("application/json");
  });
});
