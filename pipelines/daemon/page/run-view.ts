/**
 * One run's page: its row (status, stage, step, GPU, heartbeat age), stop and resubmit (the API's
 * POSTs), the stage timeline (pretrain → sft → dpo → r1, each session and what it resumed), the
 * live log, its checkpoints, evaluations and the DPO sweep's table — refetched when its stream
 * says something changed (a state, a trainer start, a checkpoint, a metadata file).
 */
import { formatBytes } from "../../../lib/checkpoint/describe.ts";
import { FINAL_STATUSES } from "../../../lib/registry/schema.ts";
import { STAGE_NAMES } from "../../../lib/stages/table.ts";
import {
  getRun,
  type RunDetails,
  type RunItem,
  resubmitRun,
  runDetails,
  type StreamEvent,
  stopRun,
} from "./api.ts";
import { ageCell, badge, el, metric, table, when } from "./dom.ts";
import { LogView, REPLAY_EVENTS } from "./log-view.ts";

const PIPELINE: ReadonlySet<string> = new Set(STAGE_NAMES);
const REFETCH = new Set(["state", "start", "checkpoint", "metadata", "stop", "adopted"]);

export class RunView {
  readonly element = el("div", { class: "run-view" });
  private readonly title = el("h2", {});
  private readonly summary = el("div", { class: "run-summary" });
  private readonly timeline = el("section", { class: "timeline", id: "run-timeline" });
  private readonly checkpoints = el("section", { id: "run-checkpoints" });
  private readonly evaluations = el("section", { id: "run-evaluations" });
  private readonly sweep = el("section", { id: "run-sweep" });
  private readonly notice = el("p", { class: "notice", id: "run-notice" });
  private readonly log: LogView;
  private readonly reason = el("input", {
    type: "text",
    id: "stop-reason",
    value: "stopped from the dashboard",
    "aria-label": "why",
  });
  private readonly stopButton = el("button", { type: "button", id: "stop-run" }, "Stop");
  private readonly resubmitButton = el("button", { type: "button", id: "resubmit-run" }, "Resubmit");
  private run: RunItem | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(
    private readonly runId: number,
    private readonly openRun: (id: number) => void,
  ) {
    this.element.dataset.run = String(runId);
    this.log = new LogView(runId, (event) => this.onEvent(event));
    this.stopButton.addEventListener("click", () => void this.stop());
    this.resubmitButton.addEventListener("click", () => void this.resubmit());
    // The actions are built once and never moved: re-parenting a focused input blurs it, so a
    // heartbeat's re-render would swallow the stop reason being typed.
    const head = el(
      "div",
      { class: "run-head" },
      this.title,
      el("div", { class: "actions" }, this.reason, this.stopButton, this.resubmitButton),
    );
    this.element.append(
      el("p", {}, el("a", { href: "#runs" }, "← all runs")),
      head,
      this.notice,
      this.summary,
      this.timeline,
      this.log.element,
      this.checkpoints,
      this.evaluations,
      this.sweep,
    );
  }

  start(): void {
    void this.refetch().then(() => {
      if (this.closed) return;
      // Without the run's last event the replay has no bound (a long run holds millions): ask again.
      if (this.run === null) this.retry = setTimeout(() => this.start(), 2000);
      else this.log.start(Math.max(0, this.run.last_seq - REPLAY_EVENTS));
    });
  }

  close(): void {
    this.closed = true;
    this.log.close();
    if (this.timer) clearTimeout(this.timer);
    if (this.retry) clearTimeout(this.retry);
  }

  private onEvent(event: StreamEvent): void {
    if (event.type === "heartbeat" && this.run) {
      this.run.last_heartbeat = event.at;
      if (typeof event.data.step === "number") this.run.last_step = event.data.step;
      if (typeof event.data.stage === "string") this.run.stage = event.data.stage;
      this.renderHead();
    }
    if (REFETCH.has(event.type)) this.schedule();
  }

  /** Refetch soon, once for a burst of events. */
  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refetch();
    }, 250);
  }

  private async refetch(): Promise<void> {
    try {
      const [run, details] = await Promise.all([getRun(this.runId), runDetails(this.runId)]);
      if (this.closed) return;
      this.run = run;
      this.renderHead();
      this.renderDetails(details);
    } catch (error) {
      this.notice.textContent = (error as Error).message;
    }
  }

  private async stop(): Promise<void> {
    this.stopButton.disabled = true;
    try {
      this.run = await stopRun(this.runId, this.reason.value || "stopped from the dashboard");
      this.notice.textContent = `stop asked: ${this.run.stop_reason ?? this.run.status}`;
      this.renderHead();
    } catch (error) {
      this.notice.textContent = (error as Error).message;
      this.stopButton.disabled = false;
    }
  }

  private async resubmit(): Promise<void> {
    this.resubmitButton.disabled = true;
    try {
      const run = await resubmitRun(this.runId);
      this.openRun(run.id);
    } catch (error) {
      this.notice.textContent = (error as Error).message;
      this.resubmitButton.disabled = false;
    }
  }

  private renderHead(): void {
    const run = this.run;
    if (!run) return;
    const final = FINAL_STATUSES.has(run.status);
    this.stopButton.disabled = final || run.stop_reason !== null;
    this.resubmitButton.disabled = !final;
    this.title.replaceChildren(`Run #${run.id}`, run.name ? ` · ${run.name}` : "", " ", badge(run.status));
    const facts: Array<[string, Node | string]> = [
      ["kind", run.kind],
      ["stage", run.stage ?? "—"],
      ["step", String(run.last_step ?? "—")],
      ["GPU", run.gpu_slots?.join(", ") ?? "—"],
      ["heartbeat", ageCell(run.last_heartbeat)],
      ["attempts", String(run.attempts)],
      ["submitted", when(run.submitted_at)],
      ["started", when(run.started_at)],
      ["finished", when(run.finished_at)],
      ["exit code", String(run.exit_code ?? "—")],
      ["args", (run.config.args ?? []).join(" ") || "—"],
    ];
    if (run.failure_reason) facts.push(["why", run.failure_reason]);
    if (run.dropped_lines) facts.push(["dropped lines", String(run.dropped_lines)]);
    this.summary.replaceChildren(
      el("dl", {}, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-fact": k }, v)])),
    );
  }

  private renderDetails(d: RunDetails): void {
    const stages = new Map(d.stages.map((s) => [s.stage, s]));
    const chain = [...STAGE_NAMES, ...d.stages.map((s) => s.stage).filter((s) => !PIPELINE.has(s))];
    const box = (stage: string) => {
      const s = stages.get(stage);
      const sessions = d.timeline.filter((e) => e.type === "start" && e.stage === stage);
      return el(
        "div",
        { class: `stage${s ? "" : " idle"}`, "data-stage": stage },
        el("h4", {}, stage),
        el(
          "div",
          { class: "muted" },
          s
            ? [s.state, s.last_step === null ? null : `step ${s.last_step}`].filter(Boolean).join(" · ")
            : "not run",
        ),
        el(
          "ol",
          {},
          ...sessions.map((e) =>
            el(
              "li",
              { class: e.resumed ? "resume" : "" },
              `attempt ${e.attempt}: `,
              e.resumed ? "resumed from " : "started from ",
              e.from ? (e.from.split("/").at(-1) ?? e.from) : "random weights",
            ),
          ),
        ),
      );
    };
    const states = d.timeline.filter((e) => e.type !== "start");
    this.timeline.replaceChildren(
      el("h3", {}, "Stages"),
      el(
        "div",
        { class: "chain" },
        ...chain.flatMap((stage, i) => [i > 0 ? el("span", { class: "arrow" }, "→") : null, box(stage)]),
      ),
      el(
        "ol",
        { class: "events" },
        ...states.map((e) =>
          el(
            "li",
            {},
            `${when(e.at)} · `,
            e.type === "state" ? badge(e.status ?? "") : e.type,
            e.reason ? ` ${e.reason}` : "",
          ),
        ),
      ),
      d.problems.length ? el("ul", { class: "problems" }, ...d.problems.map((p) => el("li", {}, p))) : "",
    );
    this.checkpoints.replaceChildren(
      el("h3", {}, "Checkpoints"),
      d.checkpoints.length === 0 ? el("p", { class: "muted" }, "none yet") : "",
      ...d.checkpoints.flatMap((group) => [
        el("h4", {}, group.stage, " ", el("span", { class: "muted" }, group.ckpt_dir)),
        table(
          ["checkpoint", "step", "valid", "size", "note"],
          group.checkpoints.map((c) => [
            c.name,
            c.step,
            c.valid ? "valid" : `INVALID: ${c.reason ?? ""}`,
            formatBytes(c.bytes),
            [c.finished ? "finished" : "", c.latest ? "latest" : "", c.pinned ?? ""]
              .filter(Boolean)
              .join(" · "),
          ]),
          { "data-stage": group.stage },
        ),
      ]),
    );
    const names = [...new Set(d.evaluations.flatMap((e) => Object.keys(e.evaluation ?? {})))].sort();
    this.evaluations.replaceChildren(
      el("h3", {}, "Evaluations"),
      d.evaluations.length === 0
        ? el("p", { class: "muted" }, "none yet")
        : table(
            ["stage", "state", "step", ...names],
            d.evaluations.map((e) => [
              e.stage,
              e.state,
              e.global_step,
              ...names.map((n) => metric(e.evaluation?.[n])),
            ]),
          ),
    );
    const sweep = d.sweep;
    this.sweep.replaceChildren(
      ...(sweep === null
        ? []
        : [
            el("h3", {}, "DPO sweep: SFT step → metric"),
            sweep.rows.length === 0
              ? el("p", { class: "muted" }, "no SFT checkpoint queued yet")
              : table(
                  ["SFT step", "status", ...sweep.metrics, "note"],
                  sweep.rows.map((r) => [
                    r.step,
                    r.status,
                    ...sweep.metrics.map((m) => metric(r.metrics?.[m])),
                    r.note ?? "",
                  ]),
                  { id: "sweep-table" },
                ),
          ]),
    );
  }
}
