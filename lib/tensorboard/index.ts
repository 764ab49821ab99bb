export { parsePort, type TensorBoardEnvSettings, tensorBoardSettingsFromEnv } from "./config.ts";
export {
  decodeEvent,
  encodeEvent,
  FILE_VERSION,
  type SessionLogEntry,
  type SessionStatus,
  type SummaryValue,
  scalarOf,
  type TbEvent,
  type TbEventInput,
} from "./event-proto.ts";
export {
  type EventFileContents,
  parseEvents,
  readEvents,
  readRunEvents,
  scalarSeries,
  visibleScalarSeries,
} from "./event-reader.ts";
export { EventWriter, type EventWriterOptions, eventFileName } from "./event-writer.ts";
export type { TensorBoardRecord } from "./instance-record.ts";
export {
  DEFAULT_STARTUP_TIMEOUT_MS,
  DEFAULT_TB_BINARY,
  DEFAULT_TB_HOST,
  DEFAULT_TB_PORT,
  ensureTensorBoard,
  inspectTensorBoard,
  type Log,
  type StopOptions,
  type StopResult,
  stopTensorBoard,
  type TensorBoardInspection,
  type TensorBoardOptions,
  type TensorBoardResult,
  type TensorBoardStatus,
} from "./launcher.ts";
export { crc32c, decodeRecords, encodeRecord, maskedCrc32c, type RecordCorruption } from "./tfrecord.ts";
