/** Hand-made event files for tests: any sequence of events, framed as TensorFlow frames them. */
import { encodeEvent, type TbEventInput } from "../../lib/tensorboard/event-proto.ts";
import { encodeRecord } from "../../lib/tensorboard/tfrecord.ts";

export function eventFile(events: TbEventInput[]): Buffer {
  return Buffer.concat(events.map((event) => encodeRecord(encodeEvent(event))));
}

export const version = (wallTime = 1): TbEventInput => ({ wallTime, step: 0, fileVersion: "brain.Event:2" });
export const start = (step: number, wallTime = 1): TbEventInput => ({
  wallTime,
  step,
  sessionLog: { status: "START" },
});
export const scalar = (tag: string, step: number, value: number, wallTime = 10 + step): TbEventInput => ({
  wallTime,
  step,
  summary: { value: [{ tag, simpleValue: value }] },
});
