/*
 * The page is a set of panels behind tabs; the scalar board is the first. A host that serves the
 * board with more (the daemon) adds panels from its own scripts, which the page loads after its
 * own (`panelScripts`), each calling `window.batonBoard.registerPanel({...})`.
 */
import type { RunsAnswer } from "./api.ts";
import type { SeriesStore } from "./store.ts";

export interface PanelContext {
  store: SeriesStore;
  /** The latest run descriptions, and a way to hear of new ones. */
  runs(): RunsAnswer | null;
  onRuns(listener: (runs: RunsAnswer) => void): void;
}

export interface Panel {
  id: string;
  title: string;
  mount(container: HTMLElement, context: PanelContext): void;
}

export class PanelHost {
  private readonly tabs: HTMLElement;
  private readonly main: HTMLElement;
  private readonly sections = new Map<string, { tab: HTMLButtonElement; section: HTMLElement }>();

  constructor(private readonly context: PanelContext) {
    this.tabs = document.getElementById("panel-tabs") as HTMLElement;
    this.main = document.getElementById("panels") as HTMLElement;
  }

  register(panel: Panel): void {
    if (this.sections.has(panel.id)) throw new Error(`panel ${panel.id} is already registered`);
    const tab = document.createElement("button");
    tab.type = "button";
    tab.textContent = panel.title;
    tab.addEventListener("click", () => this.show(panel.id));
    const section = document.createElement("section");
    section.className = "panel";
    section.id = `panel-${panel.id}`;
    this.tabs.append(tab);
    this.main.append(section);
    this.sections.set(panel.id, { tab, section });
    panel.mount(section, this.context);
    // One panel needs no tabs.
    this.tabs.hidden = this.sections.size < 2;
    if (this.sections.size === 1) this.show(panel.id);
    else section.hidden = true;
  }

  show(id: string): void {
    for (const [key, { tab, section }] of this.sections) {
      section.hidden = key !== id;
      tab.classList.toggle("active", key === id);
    }
  }
}
