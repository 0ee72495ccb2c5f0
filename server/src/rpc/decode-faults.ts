import {
  fromBinary,
  fromJson,
  ScalarType,
  type DescField,
  type DescMessage,
} from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { MAX_FIELD_VIOLATIONS } from "./errors.js";

/** One field of a request body that does not decode, as a google.rpc.BadRequest violation. */
export interface FieldFault {
  field: string;
  description: string;
}

/**
 * How much of a bad body is read again. Each field is decoded on its own, and
 * a failing decode costs ~10 µs (it throws): unbounded, one 1 MiB body of
 * 340,000 bad elements would hold the event loop for seconds. The largest
 * valid request has ~1,000 fields, so the bound only cuts hostile bodies.
 */
export const MAX_FIELDS_READ_AGAIN = 2_000;

/** The faults found so far and how many more fields may be read; shared by nested scans. */
class Scan {
  readonly faults: FieldFault[] = [];
  private reads = 0;

  /** Whether another field may be read: neither the violations an error carries nor the reads are used up. */
  more(): boolean {
    return this.faults.length < MAX_FIELD_VIOLATIONS && this.reads < MAX_FIELDS_READ_AGAIN;
  }

  read(): void {
    this.reads++;
  }
}

/**
 * protobuf-es stops at the first field it cannot read and does not say which
 * field that was in binary. A request is answered with every bad field named,
 * so after a failed decode the body is read again one field at a time: each
 * field (each element of a repeated field) is decoded on its own, and the
 * ones that fail are the faults. Only on the error path; a body that decodes
 * is never read twice.
 */
export function binaryFieldFaults(desc: DescMessage, bytes: Uint8Array): FieldFault[] {
  const scan = new Scan();
  scanBinary(scan, desc, bytes, "");
  return scan.faults;
}

/** The same for a proto3 JSON body: every key that is unknown or whose value does not decode. */
export function jsonFieldFaults(desc: DescMessage, json: unknown): FieldFault[] {
  const scan = new Scan();
  scanJson(scan, desc, json, "");
  return scan.faults;
}

function scanBinary(scan: Scan, desc: DescMessage, bytes: Uint8Array, prefix: string): void {
  const seen = new Map<number, number>();
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len && scan.more()) {
    const start = reader.pos;
    let field: DescField | undefined;
    let wireType: WireType;
    try {
      const [no, wt] = reader.tag();
      wireType = wt;
      field = desc.fields.find((f) => f.number === no);
      reader.skip(wt, no);
    } catch (err) {
      // The framing itself is broken: nothing after this point can be read.
      if (field) scan.faults.push(fault(prefix + field.name, err));
      return;
    }
    if (!field) continue; // unknown fields are kept, not refused, in binary
    const occurrence = seen.get(field.number) ?? 0;
    seen.set(field.number, occurrence + 1);
    const chunk = bytes.subarray(start, reader.pos);
    scan.read();
    const error = binaryError(desc, chunk);
    if (!error) continue;
    const name = prefix + field.name + (isOneElement(field, wireType) ? `[${occurrence}]` : "");
    const found = scan.faults.length;
    if (field.message && wireType === WireType.LengthDelimited && field.fieldKind !== "map") {
      scanBinary(scan, field.message, payloadOf(chunk), `${name}.`);
    }
    if (scan.faults.length === found) scan.faults.push(fault(name, error));
  }
}

function scanJson(scan: Scan, desc: DescMessage, json: unknown, prefix: string): void {
  if (!isObject(json)) return;
  for (const [key, value] of Object.entries(json)) {
    if (!scan.more()) return;
    const field = desc.fields.find((f) => f.jsonName === key || f.name === key);
    if (!field) {
      scan.faults.push({ field: prefix + key, description: `is not a field of ${desc.typeName}` });
      continue;
    }
    scan.read();
    const error = jsonError(desc, key, value);
    if (!error) continue;
    const name = prefix + field.name;
    const found = scan.faults.length;
    if (field.fieldKind === "list" && Array.isArray(value)) {
      for (let i = 0; i < value.length && scan.more(); i++) {
        scan.read();
        const e = jsonError(desc, key, [value[i]]);
        if (e) scan.faults.push(fault(`${name}[${i}]`, e, field));
      }
    } else if (field.fieldKind === "message" && !hasOwnJsonForm(field.message)) {
      scanJson(scan, field.message, value, `${name}.`);
    }
    if (scan.faults.length === found) scan.faults.push(fault(name, error, field));
  }
}

function binaryError(desc: DescMessage, chunk: Uint8Array): unknown {
  try {
    fromBinary(desc, chunk);
    return undefined;
  } catch (err) {
    return err;
  }
}

function jsonError(desc: DescMessage, key: string, value: unknown): unknown {
  try {
    fromJson(desc, { [key]: value } as never);
    return undefined;
  } catch (err) {
    return err;
  }
}

function fault(field: string, err: unknown, desc?: DescField): FieldFault {
  // protobuf-es prefixes JSON errors with the field's full name; the field is named already.
  const reason = String(err instanceof Error ? err.message : err).replace(/^.* from JSON: /, "");
  const what = desc?.enum ? "a known value" : "a valid value";
  return { field, description: `is not ${what}: ${reason.slice(0, 80)}` };
}

/** A repeated field's occurrence on the wire is one element, unless it is packed numbers. */
const isOneElement = (field: DescField, wireType: WireType) =>
  field.fieldKind === "list" &&
  (wireType !== WireType.LengthDelimited ||
    field.listKind === "message" ||
    (field.listKind === "scalar" &&
      (field.scalar === ScalarType.STRING || field.scalar === ScalarType.BYTES)));

/** A length-delimited field's value without its tag and length. */
function payloadOf(chunk: Uint8Array): Uint8Array {
  const reader = new BinaryReader(chunk);
  reader.tag();
  return reader.bytes();
}

/** Well-known types with a JSON form of their own (Timestamp is a string): read whole. */
const hasOwnJsonForm = (desc: DescMessage) => desc.typeName.startsWith("google.protobuf.");

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
