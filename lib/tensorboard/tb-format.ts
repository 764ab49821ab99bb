/*
 * TensorBoard's HTTP answers, byte for byte: its server is Python, so numbers are written as
 * Python's repr writes floats ("1.0", "1e-05"), JSON with json.dumps's ", " and ": " separators,
 * non-finite floats as the strings "NaN", "Infinity" and "-Infinity" (its json_util.Cleanse), and
 * CSV as Python's csv module writes it ("\r\n" line ends). Tools parsing either get the same values.
 */
import type { ScalarSeries } from "./scalar-series.ts";

/** Python's repr() of a float: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Number.POSITIVE_INFINITY) return "inf";
  if (x === Number.NEGATIVE_INFINITY) return "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  // toExponential() without an argument gives the shortest digits that round-trip, as repr does.
  const [mantissa = "", exponentText = "0"] = x.toExponential().split("e");
  const exponent = Number(exponentText);
  const sign = mantissa.startsWith("-") ? "-" : "";
  const digits = mantissa.replace("-", "").replace(".", "");
  if (exponent < -4 || exponent >= 16) {
    const head = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const tail = `${exponent < 0 ? "-" : "+"}${String(Math.abs(exponent)).padStart(2, "0")}`;
    return `${sign}${head}e${tail}`;
  }
  if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`;
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, "0");
  const fraction = digits.slice(exponent + 1);
  return `${sign}${whole}.${fraction === "" ? "0" : fraction}`;
}

/** A float as TensorBoard's JSON carries it. */
export function pyJsonFloat(x: number): string {
  if (Number.isNaN(x)) return '"NaN"';
  if (x === Number.POSITIVE_INFINITY) return '"Infinity"';
  if (x === Number.NEGATIVE_INFINITY) return '"-Infinity"';
  return pyFloatRepr(x);
}

/** An int (a step) as Python writes it. */
function pyInt(x: number): string {
  return Number.isSafeInteger(x) ? String(x) : BigInt(Math.trunc(x)).toString();
}

/** `json.dumps` of a structure of strings, booleans, null, lists and dicts (numbers are not needed). */
export function pyJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") return pyJsonFloat(value);
  if (Array.isArray(value)) return `[${value.map(pyJson).join(", ")}]`;
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}: ${pyJson(item)}`).join(", ")}}`;
  }
  throw new TypeError(`cannot write ${typeof value} as JSON`);
}

/** `/data/plugin/scalars/scalars` as JSON: `[[wall_time, step, value], …]`. */
export function scalarsJson(series: ScalarSeries): string {
  const parts: string[] = [];
  series.forEach((wallTime, step, value) => {
    parts.push(`[${pyJsonFloat(wallTime)}, ${pyInt(step)}, ${pyJsonFloat(value)}]`);
  });
  return `[${parts.join(", ")}]`;
}

/** `/data/plugin/scalars/scalars?format=csv`, as Python's csv.writer writes it. */
export function scalarsCsv(series: ScalarSeries): string {
  const lines = ["Wall time,Step,Value"];
  series.forEach((wallTime, step, value) => {
    lines.push(`${pyFloatRepr(wallTime)},${pyInt(step)},${pyFloatRepr(value)}`);
  });
  return `${lines.join("\r\n")}\r\n`;
}
