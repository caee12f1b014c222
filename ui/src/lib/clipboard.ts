import { invoke, isTauri } from "@tauri-apps/api/core";

/** Copies text to the clipboard. In the app the shell writes it (the clipboard plugin):
 * WebKitGTK refuses a page's clipboard write that comes after an IPC round trip, as "Copy
 * as kubectl command" does. Outside the app: the async Clipboard API, else a hidden
 * textarea and execCommand. */
export async function copyText(text: string): Promise<boolean> {
  if (isTauri()) {
    try {
      await invoke("plugin:clipboard-manager|write_text", { text });
      return true;
    } catch {
      // fall through to the page's own ways
    }
  }
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through
  }
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.setAttribute("readonly", "");
  ta.className = "offscreen";
  const host = document.querySelector("dialog[open]") ?? document.body;
  host.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}
