export {
  bfloat16ToFloat32,
  FLOAT_DTYPE_NAMES,
  FLOAT_DTYPES,
  type FloatDtype,
  type FloatDtypeName,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  floatDtypeName,
  floatToFloat32,
  fromFloat32,
  isFloatDtype,
  isFloatDtypeName,
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
