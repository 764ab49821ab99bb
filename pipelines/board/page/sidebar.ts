/** The scalar panel's controls: smoothing, x axis, log scale, and which runs are shown. */
import type { RunDescription } from "./api.ts";
import type { ChartSettings } from "./chart.ts";
import type { RunColors } from "./colors.ts";
import type { XAxis } from "./format.ts";

const TEMPLATE = `
  <div class="control">
    <label for="smoothing">Smoothing</label>
    <div class="row">
      <input id="smoothing" type="range" min="0" max="0.999" step="0.001" value="0.6">
      <input id="smoothing-value" type="number" min="0" max="0.999" step="0.001" value="0.6">
    </div>
  </div>
  <div class="control">
    <span class="label">Horizontal axis</span>
    <div class="choices">
      <label><input type="radio" name="x-axis" value="step" checked> Step</label>
      <label><input type="radio" name="x-axis" value="relative"> Relative</label>
      <label><input type="radio" name="x-axis" value="wall"> Wall</label>
    </div>
  </div>
  <div class="control"><label><input id="log-y" type="checkbox"> Log-scale y axis</label></div>
  <div class="control runs">
    <div class="row between"><span class="label">Runs</span>
      <span><button type="button" id="runs-all">all</button> <button type="button" id="runs-none">none</button></span></div>
    <input id="run-filter" type="search" placeholder="Filter runs (regex)">
    <ul id="runs"></ul>
  </div>
  <div class="control problems" hidden><span class="label">Problems</span><ul id="problems"></ul></div>
`;

export class Sidebar {
  readonly settings: ChartSettings = { smoothing: 0.6, xAxis: "step", logY: false };
  private readonly selected = new Set<string>();
  private readonly known = new Set<string>();
  private filter: RegExp | null = null;
  private runs: RunDescription[] = [];

  constructor(
    private readonly root: HTMLElement,
    private readonly colors: RunColors,
    private readonly changed: (what: "settings" | "runs") => void,
  ) {
    root.innerHTML = TEMPLATE;
    const slider = this.el<HTMLInputElement>("#smoothing");
    const number = this.el<HTMLInputElement>("#smoothing-value");
    const setSmoothing = (text: string): void => {
      const value = Math.min(0.999, Math.max(0, Number(text) || 0));
      this.settings.smoothing = value;
      slider.value = String(value);
      number.value = String(value);
      this.changed("settings");
    };
    slider.addEventListener("input", () => setSmoothing(slider.value));
    number.addEventListener("change", () => setSmoothing(number.value));
    for (const radio of root.querySelectorAll<HTMLInputElement>('input[name="x-axis"]')) {
      radio.addEventListener("change", () => {
        if (!radio.checked) return;
        this.settings.xAxis = radio.value as XAxis;
        this.changed("settings");
      });
    }
    const logY = this.el<HTMLInputElement>("#log-y");
    logY.addEventListener("change", () => {
      this.settings.logY = logY.checked;
      this.changed("settings");
    });
    const filter = this.el<HTMLInputElement>("#run-filter");
    filter.addEventListener("input", () => {
      try {
        this.filter = filter.value ? new RegExp(filter.value, "i") : null;
        filter.classList.remove("invalid");
      } catch {
        filter.classList.add("invalid");
        return;
      }
      this.renderRuns();
      this.changed("runs");
    });
    this.el("#runs-all").addEventListener("click", () => this.selectAll(true));
    this.el("#runs-none").addEventListener("click", () => this.selectAll(false));
  }

  /** Whether `run` is ticked and passes the filter. */
  shows(run: string): boolean {
    return this.selected.has(run) && (this.filter === null || this.filter.test(run));
  }

  update(runs: RunDescription[]): void {
    this.runs = runs;
    for (const { name } of runs) {
      this.colors.of(name);
      // Runs are shown when they first appear, as TensorBoard does.
      if (!this.known.has(name)) this.selected.add(name);
      this.known.add(name);
    }
    this.renderRuns();
    const problems = runs.flatMap((run) => run.problems.map((line) => ({ run: run.name, line })));
    const list = this.el("#problems");
    list.replaceChildren(
      ...problems.map(({ run, line }) => {
        const item = document.createElement("li");
        item.textContent = `${run}: ${line}`;
        return item;
      }),
    );
    (list.parentElement as HTMLElement).hidden = problems.length === 0;
  }

  private selectAll(on: boolean): void {
    for (const { name } of this.runs) {
      if (this.filter && !this.filter.test(name)) continue;
      if (on) this.selected.add(name);
      else this.selected.delete(name);
    }
    this.renderRuns();
    this.changed("runs");
  }

  private renderRuns(): void {
    const items = this.runs
      .filter(({ name }) => this.filter === null || this.filter.test(name))
      .map((run) => {
        const item = document.createElement("li");
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.checked = this.selected.has(run.name);
        box.dataset.run = run.name;
        box.addEventListener("change", () => {
          if (box.checked) this.selected.add(run.name);
          else this.selected.delete(run.name);
          this.changed("runs");
        });
        const swatch = document.createElement("i");
        swatch.className = "swatch";
        swatch.style.background = this.colors.of(run.name);
        const name = document.createElement("span");
        name.className = "name";
        // Break long run names after a slash ("dpo_sweep/" | "from_step_00000010").
        for (const [i, part] of run.name.split("/").entries()) {
          if (i > 0) name.append("/", document.createElement("wbr"));
          name.append(part);
        }
        label.append(box, swatch, name);
        const resumes = run.sessionStarts.length - 1;
        if (resumes > 0)
          label.append(
            badge(
              `resumed ${resumes}×`,
              `resumed at step ${run.sessionStarts
                .slice(1)
                .map((s) => s.step)
                .join(", ")}`,
            ),
          );
        if (run.problems.length > 0) label.append(badge("⚠", run.problems.join("\n"), "warn"));
        item.append(label);
        return item;
      });
    this.el("#runs").replaceChildren(...items);
  }

  private el<T extends HTMLElement = HTMLElement>(selector: string): T {
    return this.root.querySelector(selector) as T;
  }
}

function badge(text: string, title: string, kind = ""): HTMLElement {
  const element = document.createElement("span");
  element.className = `badge ${kind}`.trim();
  element.textContent = text;
  element.title = title;
  return element;
}
