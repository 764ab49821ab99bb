export {
  bfloat16ToFloat32,
  FLOAT_DTYPES,
  type FloatDtype,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  floatToFloat32,
  fromFloat32,
  isFloatDtype,
} from "./convert.ts";
export { type ArrayOfDtype, DTYPES, type Dtype, isDtype } from "./dtypes.ts";
export { MAX_HEADER_BYTES, type SafetensorsHeader, type TensorEntry } from "./header.ts";
export {
  decodeSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  requireTensor,
  type SafeTensor,
  type SafetensorsFile,
} from "./read.ts";
export { encodeSafetensors, type TensorInput, type TensorsInput, writeSafetensors } from "./write.ts";
