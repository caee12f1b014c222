import { describe, expect, it } from "vitest";
import { UiStore } from "./ui.svelte";

describe("closing a dialog", () => {
  it("closes at once without changes", () => {
    const ui = new UiStore();
    ui.openAdd();
    ui.requestClose(false);
    expect(ui.dialog).toBeNull();
    expect(ui.confirm).toBeNull();
  });

  it("asks first when there are changes, and closes only on Discard", async () => {
    const ui = new UiStore();
    ui.openAdd();
    ui.requestClose(true);
    expect(ui.dialog).not.toBeNull();
    expect(ui.confirm).toMatchObject({ title: "Discard changes?", confirmLabel: "Discard", cancelLabel: "Keep editing" });
    // A second request while asking does not stack a second question.
    const asked = ui.confirm;
    ui.requestClose(true);
    expect(ui.confirm).toBe(asked);
    await ui.confirm!.run();
    expect(ui.dialog).toBeNull();
  });
});

describe("sorting", () => {
  it("starts in the saved order and keeps the choice in the view state", () => {
    const ui = new UiStore();
    expect(ui.sort).toBe("saved");
    ui.sort = "port";
    ui.openAdd();
    ui.close();
    expect(ui.sort).toBe("port");
  });
});
