export { parseRngState, RNG_ALGORITHM, Rng, type RngState } from "./rng.ts";
export {
  RNG_STREAMS_FORMAT_VERSION,
  type RngStreamsFile,
  rngStreamsFile,
  rngStreamsFromJson,
  rngStreamsToJson,
} from "./streams.ts";
