/**
 * The runs, newest first, as the registry has them: status, stage, step, GPU slots and heartbeat
 * age, kept current without a reload by every run's event stream (a state change or a trainer
 * start refetches the list; a heartbeat updates its row in place).
 */
import { follow, listRuns, type RunItem, type StreamEvent } from "./api.ts";
import { ageCell, badge, el, when } from "./dom.ts";

const TYPES = "state,heartbeat,start,stop,stalled";

export class RunsList {
  readonly element = el("div", { class: "runs-list" });
  private readonly body = el("tbody");
  private readonly note = el("p", { class: "muted" });
  private runs: RunItem[] = [];
  private stream: { close(): void } | null = null;
  private refreshing: Promise<void> | null = null;
  private again = false;
  private lastEvent = 0;
  live = false;

  constructor(
    private readonly open: (id: number) => void,
    private readonly onChange: (runs: RunItem[]) => void,
  ) {
    const headers = ["Run", "Name", "Kind", "Status", "Stage", "Step", "GPU", "Heartbeat", "Submitted"];
    this.element.append(
      el(
        "table",
        { class: "grid runs", id: "runs-table" },
        el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
        this.body,
      ),
      this.note,
    );
  }

  async start(): Promise<void> {
    await this.refresh();
    this.stream = follow(
      `/events/stream?types=${TYPES}&after=${this.lastEvent}`,
      (event) => this.apply(event),
      (live) => {
        this.live = live;
        // After a reconnect the stream resumes where it was, but refetch for good measure.
        if (live) void this.refresh();
      },
    );
  }

  close(): void {
    this.stream?.close();
  }

  get all(): readonly RunItem[] {
    return this.runs;
  }

  private apply(event: StreamEvent): void {
    const run = this.runs.find((r) => r.id === event.run);
    if (event.type === "heartbeat" && run) {
      run.last_heartbeat = event.at;
      run.last_step = typeof event.data.step === "number" ? event.data.step : run.last_step;
      run.stage = typeof event.data.stage === "string" ? event.data.stage : run.stage;
      this.render();
      this.onChange(this.runs);
      return;
    }
    void this.refresh();
  }

  /** Fetch the list; a call while one is in flight is served by one more after it. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        try {
          const answer = await listRuns();
          this.lastEvent = answer.last_event;
          this.runs = answer.runs;
          this.note.textContent = "";
        } catch (error) {
          this.note.textContent = (error as Error).message;
        }
        this.render();
        this.onChange(this.runs);
      } while (this.again);
      this.refreshing = null;
    })();
    return this.refreshing;
  }

  private render(): void {
    this.body.replaceChildren(
      ...this.runs.map((run) => {
        const row = el(
          "tr",
          { "data-run": String(run.id), class: "clickable" },
          el("td", {}, el("a", { href: `#run/${run.id}` }, `#${run.id}`)),
          el("td", {}, run.name ?? ""),
          el("td", {}, run.kind),
          el("td", { class: "run-status" }, badge(run.status)),
          el("td", { class: "run-stage" }, run.stage ?? "—"),
          el("td", { class: "run-step" }, run.last_step ?? "—"),
          el("td", {}, run.gpu_slots?.join(", ") ?? "—"),
          el("td", { class: "run-heartbeat" }, ageCell(run.last_heartbeat)),
          el("td", {}, when(run.submitted_at)),
        );
        row.addEventListener("click", (event) => {
          if ((event.target as HTMLElement).closest("a")) return;
          this.open(run.id);
        });
        return row;
      }),
    );
    if (this.runs.length === 0)
      this.note.textContent ||= "No runs yet: `npm run baton -- submit …` queues one.";
  }
}
