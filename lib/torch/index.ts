/** PyTorch's .pth state-dict files, read and written without PyTorch. TensorFlow-free. */
export {
  DEFAULT_ARCHIVE,
  decodeTorchArchive,
  encodeTorchArchive,
  isLegacyTorchFormat,
  isZip,
  RECORD_ALIGNMENT,
  type TorchArchive,
} from "./archive.ts";
export { decodePth, type PthFile, type PthTensorRead, readPth } from "./pth-read.ts";
export { encodePth, type PthTensor, writePth } from "./pth-write.ts";
export { PickleRefusal, unpickleStateDict } from "./unpickler.ts";
export {
  compareTensorShapes,
  describeMismatch,
  requireTensorShapes,
  type TensorMismatch,
} from "./validate.ts";
