/**
 * A run's live log: its event stream from the first event (the daemon replays what was logged
 * before the page opened, then sends live lines), log lines as they are, state changes, stops and
 * dropped-line counts marked. The page keeps the newest MAX_LINES; the whole log stays in the file.
 */
import { follow, type StreamEvent } from "./api.ts";
import { el } from "./dom.ts";

const MAX_LINES = 5000;
/** How many stored events a page replays at most (a long run's log can hold millions). */
export const REPLAY_EVENTS = 5000;

export class LogView {
  readonly element = el("div", { class: "log" });
  private readonly pre = el("pre", { id: "run-log" });
  private readonly state = el("span", { class: "muted" }, "replaying…");
  private stream: { close(): void } | null = null;
  private lines = 0;

  constructor(
    private readonly runId: number,
    private readonly onEvent: (event: StreamEvent) => void,
  ) {
    this.element.append(
      el(
        "div",
        { class: "log-head" },
        el("h3", {}, "Log"),
        this.state,
        el("a", { href: `/api/v1/runs/${runId}/log`, target: "_blank" }, "the whole log file"),
      ),
      this.pre,
    );
  }

  /** Follow from the event after `afterSeq` (0: the run's first). */
  start(afterSeq: number): void {
    if (afterSeq > 0) this.pre.append(el("div", { class: "mark" }, `── events up to #${afterSeq} left out`));
    this.stream = follow(
      `/runs/${this.runId}/events/stream${afterSeq > 0 ? `?after=${afterSeq}` : ""}`,
      (event) => {
        this.show(event);
        this.onEvent(event);
      },
      (live) => {
        this.state.textContent = live ? "live" : "reconnecting…";
      },
    );
  }

  close(): void {
    this.stream?.close();
  }

  private show(event: StreamEvent): void {
    let text: string | null = null;
    let kind = "line";
    const d = event.data;
    if (event.type === "line") text = String(d.text ?? "");
    else if (event.type === "state") {
      kind = "mark";
      text = `── ${d.status}${d.attempt ? ` (attempt ${d.attempt})` : ""}${d.reason ? `: ${d.reason}` : ""}`;
    } else if (event.type === "stop") {
      kind = "mark";
      text = `── stop asked: ${d.reason}`;
    } else if (event.type === "stalled") {
      kind = "mark";
      text = `── stalled: no heartbeat for ${d.seconds} s`;
    } else if (event.type === "dropped") {
      kind = "mark";
      text = `── ${d.count} lines left out of the stream (in the log file)`;
    }
    if (text === null) return;
    const atBottom = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
    this.pre.append(el("div", { class: kind, "data-seq": String(event.seq) }, text));
    this.lines++;
    if (this.lines > MAX_LINES) {
      this.pre.firstElementChild?.remove();
      this.lines--;
    }
    if (atBottom) this.pre.scrollTop = this.pre.scrollHeight;
  }
}
