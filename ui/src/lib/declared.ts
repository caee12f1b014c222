// Forwards the cluster declares (`discover_forwards`, and the state's `declared` counts
// behind the Add button's badge), as the window words them.

import type { DeclaredForward, DeclaredNew } from "./types";
import type { ClusterPlace } from "./ui.svelte";
import { configTarget } from "./view";

/** The badge: how many declared forwards the user lacks in the namespaces they forward
 * from, and where the section opens (the namespace with the most); null when none. */
export function badgeOf(declared: DeclaredNew[] | undefined): { count: number; text: string; title: string; place: ClusterPlace } | null {
  const list = (declared ?? []).filter((d) => d.count > 0);
  if (list.length === 0) return null;
  const count = list.reduce((n, d) => n + d.count, 0);
  const first = [...list].sort((a, b) => b.count - a.count)[0];
  const where = list.map((d) => `${d.count} in ${d.namespace} @ ${d.context}`).join(", ");
  return {
    count,
    text: `${count} from the cluster`,
    title: `The cluster declares ${count} forward${count === 1 ? "" : "s"} you do not have (${where})`,
    place: { context: first.context, namespace: first.namespace },
  };
}

/** "svc/echo:9000 (pods' port) in demo": what the declared forward reaches. */
export function declaredTarget(d: DeclaredForward, withNamespace: boolean): string {
  const target = configTarget(d.forward);
  return withNamespace ? `${target} in ${d.namespace}` : target;
}

/** "127.0.0.1:18081", or "any free port" for 0. */
export function declaredLocal(d: DeclaredForward): string {
  const bind = d.forward.bind ?? "127.0.0.1";
  return d.forward.local_port === 0 ? `${bind}: any free port` : `${bind}:${d.forward.local_port}`;
}

/** What the Add button of a declared forward says and does: added already (by this
 * dialog, or saved before), or added under another name than the declaration's. */
export function addLabel(d: DeclaredForward, added: ReadonlySet<string>): { disabled: boolean; text: string } {
  if (d.have) return { disabled: true, text: `You have it: ${d.have}` };
  if (added.has(d.forward.name)) return { disabled: true, text: `Added as ${d.forward.name}` };
  return { disabled: false, text: d.forward.name === d.name ? "Add" : `Add as ${d.forward.name}` };
}
