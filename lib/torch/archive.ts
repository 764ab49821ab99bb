/**
 * The zip container of PyTorch's serialization (torch.save since 1.6): every record stored
 * uncompressed under one top-level folder (`archive/data.pkl`, `archive/data/0`, …), each
 * record's bytes starting at a multiple of 64 — torch's writer pads the local header with an
 * extra field tagged "FB" to get there, and so does this one. Zip reading and writing is fflate's.
 */
import { unzipSync, type Zippable, zipSync } from "fflate";
import { UserError } from "../cli/errors.ts";

/** Where torch.save puts each record's data (caffe2/serialize/inline_container.cc, kFieldAlignment). */
export const RECORD_ALIGNMENT = 64;

/** The folder torch.save names the archive when it writes to a stream. */
export const DEFAULT_ARCHIVE = "archive";

const FB_EXTRA_ID = 0x4246; // "FB" read as a little-endian 16-bit id
const LOCAL_HEADER_BYTES = 30;
const EXTRA_HEADER_BYTES = 4;
const ZIP_LIMIT = 0xffffffff; // fflate writes no zip64 records
// Zip dates cannot be before 1980; a fixed one keeps the same weights → the same bytes.
const FIXED_MTIME = new Date(1980, 0, 1, 0, 0, 0);

/** Zip bytes holding `records` (names relative to the archive folder), in the order given. */
export function encodeTorchArchive(
  records: Iterable<readonly [name: string, bytes: Uint8Array]>,
  archive = DEFAULT_ARCHIVE,
): Uint8Array {
  const files: Zippable = {};
  let offset = 0;
  for (const [name, bytes] of records) {
    const fullName = `${archive}/${name}`;
    if (!/^[\x20-\x7e]+$/.test(fullName))
      throw new Error(`torch archive: record name ${fullName} is not ASCII`);
    if (fullName in files) throw new Error(`torch archive: record ${fullName} given twice`);
    const dataStart = offset + LOCAL_HEADER_BYTES + fullName.length + EXTRA_HEADER_BYTES;
    const padding = (RECORD_ALIGNMENT - (dataStart % RECORD_ALIGNMENT)) % RECORD_ALIGNMENT;
    files[fullName] = [
      bytes,
      { level: 0, mtime: FIXED_MTIME, extra: { [FB_EXTRA_ID]: new Uint8Array(padding).fill(0x5a) } },
    ];
    offset = dataStart + padding + bytes.length;
    if (offset > ZIP_LIMIT) throw new UserError(`a .pth of more than 4 GiB is not supported (${fullName})`);
  }
  return zipSync(files);
}

export interface TorchArchive {
  /** The top-level folder every record is in. */
  archive: string;
  /** Record name (relative to the folder) → bytes, each a fresh copy starting at offset 0. */
  records: Map<string, Uint8Array>;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
// torch.save's legacy format starts with a protocol-2 pickle of its magic number 0x1950a86a20f9469cfc6c.
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return bytes.length >= prefix.length && prefix.every((b, i) => bytes[i] === b);
}

export function isZip(bytes: Uint8Array): boolean {
  return startsWith(bytes, ZIP_MAGIC);
}

/** The bytes of PyTorch's pre-1.6 (non-zip) torch.save format. */
export function isLegacyTorchFormat(bytes: Uint8Array): boolean {
  return startsWith(bytes, LEGACY_MAGIC);
}

/**
 * The records of a torch.save zip. Errors (UserError, one line, naming `source`) tell a legacy
 * torch file, a file that is not a zip at all, and a zip that is cut short or damaged apart.
 */
export function decodeTorchArchive(bytes: Uint8Array, source: string): TorchArchive {
  if (bytes.length === 0)
    throw new UserError(`${source}: empty file, expected a PyTorch .pth (torch.save zip)`);
  if (isLegacyTorchFormat(bytes)) {
    throw new UserError(
      `${source}: PyTorch's legacy non-zip torch.save format (torch < 1.6, or _use_new_zipfile_serialization=False), ` +
        `which Baton does not read; convert it with a recent PyTorch: ` +
        `python3 -c "import torch; torch.save(torch.load('old.pth'), 'new.pth')"`,
    );
  }
  if (!isZip(bytes)) {
    throw new UserError(
      `${source}: not a PyTorch .pth: it does not start with a zip header (expected torch.save's zip format)`,
    );
  }
  const declared = new Map<string, number>();
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter: (file) => {
        declared.set(file.name, file.originalSize);
        return true;
      },
    });
  } catch (error) {
    throw new UserError(
      `${source}: truncated or damaged zip (${(error as Error).message}): the file was cut short or is not a whole .pth`,
    );
  }
  const names = Object.keys(files);
  const first = names[0];
  const slash = first?.indexOf("/") ?? -1;
  if (!first || slash <= 0) {
    throw new UserError(
      `${source}: a zip, but not one torch.save wrote (its first entry is not in a folder)`,
    );
  }
  const archive = first.slice(0, slash);
  const records = new Map<string, Uint8Array>();
  for (const name of names) {
    const data = files[name];
    if (data.length !== declared.get(name)) {
      throw new UserError(
        `${source}: truncated or damaged zip: ${name} has ${data.length} of its ${declared.get(name)} bytes`,
      );
    }
    if (name.startsWith(`${archive}/`)) records.set(name.slice(archive.length + 1), data);
  }
  return { archive, records };
}
