/** The board page: panels over one change stream and one store of series. */
import { type FeedMessage, fetchRuns, openFeed, type RunsAnswer } from "./api.ts";
import { type Panel, type PanelContext, PanelHost } from "./panels.ts";
import { ScalarsPanel } from "./scalars-panel.ts";
import { SeriesStore } from "./store.ts";

interface PageConfig {
  title: string;
  panelScripts: string[];
}

const config = JSON.parse(
  document.querySelector<HTMLMetaElement>('meta[name="board-config"]')?.content ?? "{}",
) as PageConfig;
const store = new SeriesStore();
const status = document.getElementById("status") as HTMLElement;
let latest: RunsAnswer | null = null;
let live = false;
const runListeners = new Set<(runs: RunsAnswer) => void>();

const context: PanelContext = {
  store,
  runs: () => latest,
  onRuns(listener) {
    runListeners.add(listener);
    if (latest) listener(latest);
  },
};
const host = new PanelHost(context);
const scalars = new ScalarsPanel();
host.register(scalars);

function showStatus(): void {
  const parts = latest
    ? [latest.logdir, `${latest.runs.length} run${latest.runs.length === 1 ? "" : "s"}`]
    : [];
  if (latest && !latest.loaded) parts.push("loading…");
  parts.push(live ? "live" : "reconnecting…");
  status.textContent = parts.join(" · ");
  status.classList.toggle("down", !live);
}

let refreshing: Promise<void> | null = null;
let refreshAgain = false;
/** Fetch the run descriptions; a request made while one is in flight is served by one more after it. */
function refreshRuns(): void {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      try {
        latest = await fetchRuns();
        for (const listener of runListeners) listener(latest);
      } catch (error) {
        console.error(error);
      }
      showStatus();
    } while (refreshAgain);
    refreshing = null;
  })();
}

openFeed({
  onOpen(_seq, reconnected) {
    live = true;
    // Changes were lost while the stream was down: fetch everything afresh.
    if (reconnected) store.clear();
    refreshRuns();
    showStatus();
  },
  onMessage(message: FeedMessage) {
    if (message.type === "runs") refreshRuns();
    else store.apply(message);
  },
  onDown() {
    live = false;
    showStatus();
  },
});

const plain = (values: ArrayLike<number | null>): Array<number | null> => Array.from(values);

declare global {
  interface Window {
    batonBoard: unknown;
  }
}

window.batonBoard = {
  registerPanel: (panel: Panel) => host.register(panel),
  showPanel: (id: string) => host.show(id),
  context,
  /** For tests and the bench: what the page holds and draws. */
  debug: {
    tags: () => scalars.tags(),
    firstChartAt: () => scalars.firstChartAt,
    points: (tag: string) => Object.fromEntries(scalars.shownSeries(tag).map((s) => [s.run, s.points()])),
    drawn: (tag: string) =>
      scalars.chart(tag)?.drawn.map((d) => ({
        run: d.run,
        x: plain(d.x),
        raw: plain(d.raw),
        smoothed: plain(d.smoothed),
        markers: d.markers,
      })) ?? null,
    scales: (tag: string) => {
      const plot = scalars.chart(tag)?.uplot;
      return plot ? { xTime: plot.scales.x?.time ?? false, yDistr: plot.scales.y?.distr ?? 1 } : null;
    },
    uplotData: (tag: string) => {
      const data = scalars.chart(tag)?.uplot?.data as unknown as Array<
        [ArrayLike<number>, ArrayLike<number | null>] | null
      >;
      return data ? data.slice(1).map((pair) => (pair ? [plain(pair[0]), plain(pair[1])] : null)) : null;
    },
  },
};

document.title = config.title;
for (const src of config.panelScripts) {
  const script = document.createElement("script");
  script.type = "module";
  script.src = src;
  document.head.append(script);
}
