/*
 * The scalar board: tags grouped by their first path component ("pretrain/loss" is in "pretrain"),
 * one chart per tag with every shown run overlaid. A chart fetches its series when it first
 * scrolls into view and redraws (at most once a frame) when the change stream touches them.
 */
import { fetchSeries, type RunDescription, type RunsAnswer } from "./api.ts";
import { type ChartRun, TagChart } from "./chart.ts";
import { RunColors } from "./colors.ts";
import { downloadCsv, downloadJson } from "./download.ts";
import type { Panel, PanelContext } from "./panels.ts";
import { Sidebar } from "./sidebar.ts";
import type { Series, SeriesStore } from "./store.ts";

interface Card {
  tag: string;
  element: HTMLElement;
  chart: TagChart | null;
  visible: boolean;
  dirty: boolean;
}

export class ScalarsPanel implements Panel {
  readonly id = "scalars";
  readonly title = "Scalars";
  readonly colors = new RunColors();
  private store!: SeriesStore;
  private sidebar!: Sidebar;
  private groups!: HTMLElement;
  private tagFilter: RegExp | null = null;
  private runs: RunDescription[] = [];
  private readonly cards = new Map<string, Card>();
  private observer!: IntersectionObserver;
  private frame = 0;
  private readonly queue: Card[] = [];
  private fetching = false;
  /** performance.now() when the first chart was drawn (the bench reads it). */
  firstChartAt: number | null = null;

  mount(container: HTMLElement, context: PanelContext): void {
    this.store = context.store;
    container.innerHTML = `<aside class="sidebar"></aside><div class="board">
      <input id="tag-filter" type="search" placeholder="Filter tags (regex)"><div id="groups"></div>
      <p id="empty" class="empty" hidden>No scalars yet. Event files written under the logdir show up here as they appear.</p></div>`;
    this.groups = container.querySelector("#groups") as HTMLElement;
    this.sidebar = new Sidebar(container.querySelector(".sidebar") as HTMLElement, this.colors, () =>
      this.redrawAll(),
    );
    const filter = container.querySelector("#tag-filter") as HTMLInputElement;
    filter.addEventListener("input", () => {
      try {
        this.tagFilter = filter.value ? new RegExp(filter.value, "i") : null;
      } catch {
        return;
      }
      this.layout();
    });
    this.observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          const card = this.cards.get((entry.target as HTMLElement).dataset.tag ?? "");
          if (!card) continue;
          card.visible = entry.isIntersecting;
          if (card.visible) this.load(card);
        }
      },
      { rootMargin: "400px" },
    );
    this.store.onChange((_run, tag) => {
      const card = this.cards.get(tag);
      if (card) this.markDirty(card);
    });
    context.onRuns((answer) => this.updateRuns(answer));
  }

  /** The chart of `tag`, for tests and the bench. */
  chart(tag: string): TagChart | null {
    return this.cards.get(tag)?.chart ?? null;
  }

  /** The series `tag`'s chart shows, in run order. */
  shownSeries(tag: string): Series[] {
    return this.runs.flatMap((run) => {
      if (!this.sidebar.shows(run.name) || !run.tags.some((t) => t.tag === tag)) return [];
      const series = this.store.get(run.name, tag);
      return series ? [series] : [];
    });
  }

  tags(): string[] {
    return [...this.cards.keys()];
  }

  private updateRuns(answer: RunsAnswer): void {
    this.runs = answer.runs;
    this.sidebar.update(answer.runs);
    this.layout();
    for (const card of this.cards.values()) {
      if (card.visible) this.load(card);
      this.markDirty(card);
    }
  }

  /** Groups and cards for the current tags (cards are kept across updates, so charts survive). */
  private layout(): void {
    const tags = new Set<string>();
    for (const run of this.runs) for (const { tag } of run.tags) tags.add(tag);
    const sorted = [...tags].sort();
    const grouped = new Map<string, string[]>();
    for (const tag of sorted) {
      if (this.tagFilter && !this.tagFilter.test(tag)) continue;
      const group = tag.includes("/") ? (tag.split("/")[0] as string) : tag;
      grouped.set(group, [...(grouped.get(group) ?? []), tag]);
    }
    const sections: HTMLElement[] = [];
    for (const [group, groupTags] of grouped) {
      let section = this.groups.querySelector<HTMLDetailsElement>(
        `details[data-group="${CSS.escape(group)}"]`,
      );
      if (!section) {
        section = document.createElement("details");
        section.open = true;
        section.dataset.group = group;
        section.innerHTML = `<summary></summary><div class="cards"></div>`;
      }
      (section.querySelector("summary") as HTMLElement).textContent = `${group} (${groupTags.length})`;
      const cards = section.querySelector(".cards") as HTMLElement;
      cards.replaceChildren(...groupTags.map((tag) => this.card(tag).element));
      sections.push(section);
    }
    this.groups.replaceChildren(...sections);
    (document.getElementById("empty") as HTMLElement).hidden = tags.size > 0;
  }

  private card(tag: string): Card {
    const existing = this.cards.get(tag);
    if (existing) return existing;
    const element = document.createElement("article");
    element.className = "card";
    element.dataset.tag = tag;
    element.innerHTML = `<header><h3></h3><span class="actions">
      <button type="button" data-download="csv">CSV</button><button type="button" data-download="json">JSON</button></span></header>
      <div class="chart"></div><div class="readout" hidden></div>`;
    (element.querySelector("h3") as HTMLElement).textContent = tag;
    element
      .querySelector('[data-download="csv"]')
      ?.addEventListener("click", () => downloadCsv(tag, this.shownSeries(tag)));
    element
      .querySelector('[data-download="json"]')
      ?.addEventListener("click", () => downloadJson(tag, this.shownSeries(tag)));
    const card: Card = { tag, element, chart: null, visible: false, dirty: true };
    this.cards.set(tag, card);
    this.observer.observe(element);
    return card;
  }

  private missingRuns(card: Card): string[] {
    return this.runs
      .filter((run) => run.tags.some((t) => t.tag === card.tag) && !this.store.has(run.name, card.tag))
      .map((run) => run.name);
  }

  /** Fetch the series of `card`'s tag that the page does not hold yet (queued: see pump). */
  private load(card: Card): void {
    if (this.missingRuns(card).length === 0) {
      this.markDirty(card);
      return;
    }
    if (!this.queue.includes(card)) this.queue.push(card);
    this.pump();
  }

  /**
   * One fetch at a time, topmost chart first: the first chart gets the whole connection and
   * the server to itself, and draws before the others are even asked for.
   */
  private pump(): void {
    if (this.fetching) return;
    this.queue.sort((a, b) =>
      a.element.compareDocumentPosition(b.element) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1,
    );
    const card = this.queue.shift();
    if (!card) return;
    const missing = this.missingRuns(card);
    if (missing.length === 0) {
      this.pump();
      return;
    }
    this.fetching = true;
    for (const run of missing) this.store.fetching(run, card.tag);
    fetchSeries(card.tag, missing)
      .then((block) => this.store.receive(block))
      .catch((error: unknown) => {
        for (const run of missing) this.store.abandon(run, card.tag);
        console.error(error);
      })
      .finally(() => {
        this.fetching = false;
        this.pump();
      });
  }

  private markDirty(card: Card): void {
    card.dirty = true;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.drawDirty());
  }

  private redrawAll(): void {
    for (const card of this.cards.values()) this.markDirty(card);
  }

  private drawDirty(): void {
    this.frame = 0;
    for (const card of this.cards.values()) {
      if (!card.dirty || !card.visible) continue;
      card.dirty = false;
      const runs: ChartRun[] = this.shownSeries(card.tag).map((series) => ({
        series,
        colour: this.colors.of(series.run),
        resumes: (this.runs.find((run) => run.name === series.run)?.sessionStarts ?? [])
          .slice(1)
          .map((s) => s.step),
      }));
      const target = card.element.querySelector(".chart") as HTMLElement;
      if (!card.chart) {
        if (runs.length === 0) continue;
        card.chart = new TagChart(card.tag, target, card.element.querySelector(".readout") as HTMLElement);
      }
      card.chart.render(runs, this.sidebar.settings);
      // uPlot draws in a microtask queued by render(): this one runs right after it.
      if (this.firstChartAt === null)
        queueMicrotask(() => {
          this.firstChartAt ??= performance.now();
        });
    }
  }
}
