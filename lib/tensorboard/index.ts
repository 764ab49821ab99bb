export {
  parseBoardChoice,
  parsePort,
  type TensorBoardEnvSettings,
  tensorBoardSettingsFromEnv,
} from "./config.ts";
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
} from "./event-reader.ts";
export { type ScanEvent, scanEvent } from "./event-scan.ts";
export { EventWriter, type EventWriterOptions, eventFileName } from "./event-writer.ts";
export { type BoardKind, boardOf, type TensorBoardRecord } from "./instance-record.ts";
export {
  type BoardChoice,
  type BuiltinBoardCommand,
  boardLabel,
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
export { type LogdirChange, LogdirScalars, type LogdirScalarsOptions, runName } from "./logdir-scalars.ts";
export { type FileProblem, isEventFileName, RunLoader } from "./run-loader.ts";
export { RunScalars, type ScalarChangeListener, type SessionStartMark } from "./scalar-accumulator.ts";
export { ScalarSeries } from "./scalar-series.ts";
export { pyFloatRepr, scalarsCsv, scalarsJson } from "./tb-format.ts";
export { crc32c, decodeRecords, encodeRecord, maskedCrc32c, type RecordCorruption } from "./tfrecord.ts";
