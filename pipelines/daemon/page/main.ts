/**
 * The dashboard's panel on the board page (the daemon serves the page with this script added):
 * "Runs" — the registry's runs, and a run's own page at #run/<id>. #scalars shows the board's charts.
 */
import type { RunItem } from "./api.ts";
import { el, refreshAges } from "./dom.ts";
import { RunView } from "./run-view.ts";
import { RunsList } from "./runs-list.ts";

interface Board {
  registerPanel(panel: { id: string; title: string; mount(container: HTMLElement): void }): void;
  showPanel(id: string): void;
}

declare global {
  interface Window {
    batonDashboard: unknown;
  }
}

const board = (window as unknown as { batonBoard: Board }).batonBoard;
document.head.append(el("link", { rel: "stylesheet", href: "/assets/dashboard.css" }));

let container: HTMLElement;
let view: RunView | null = null;
let latest: RunItem[] = [];
const list = new RunsList(
  (id) => {
    location.hash = `#run/${id}`;
  },
  (runs) => {
    latest = runs;
  },
);

function route(): void {
  const hash = location.hash;
  if (hash === "#scalars") {
    board.showPanel("scalars");
    return;
  }
  board.showPanel("runs");
  const id = /^#run\/(\d+)$/.exec(hash)?.[1];
  view?.close();
  view = null;
  if (id === undefined) {
    container.replaceChildren(el("h2", {}, "Runs"), list.element);
    void list.refresh();
    return;
  }
  view = new RunView(Number(id), (next) => {
    location.hash = `#run/${next}`;
  });
  container.replaceChildren(view.element);
  view.start();
}

board.registerPanel({
  id: "runs",
  title: "Runs",
  mount(section) {
    container = el("div", { class: "dashboard" });
    section.append(container);
  },
});
window.addEventListener("hashchange", route);
route();
void list.start();
setInterval(() => refreshAges(), 1000);

window.batonDashboard = { runs: () => latest, live: () => list.live };
