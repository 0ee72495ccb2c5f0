import { create, toBinary, type DescMessage } from "@bufbuild/protobuf";

/**
 * `init` encoded as `desc`, with the bytes of each `poisoned` text replaced by
 * 0xff, which is never UTF-8: a body whose string fields do not decode.
 */
export function withInvalidUtf8(
  desc: DescMessage,
  init: Record<string, unknown>,
  poisoned: string[],
): Buffer {
  const bytes = Buffer.from(toBinary(desc, create(desc, init as never)));
  for (const text of poisoned) {
    const at = bytes.indexOf(Buffer.from(text));
    if (at < 0) throw new Error(`"${text}" is not in the encoded message`);
    bytes.fill(0xff, at, at + text.length);
  }
  return bytes;
}

/** One gRPC / Connect streaming frame: flags, a 4-byte length, the payload. */
export function envelope(payload: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** The frames of an enveloped body (up to a truncated one). */
export function frames(body: Buffer): { flags: number; payload: Buffer }[] {
  const out: { flags: number; payload: Buffer }[] = [];
  for (let at = 0; at + 5 <= body.length;) {
    const size = body.readUInt32BE(at + 1);
    if (at + 5 + size > body.length) break;
    out.push({ flags: body[at], payload: body.subarray(at + 5, at + 5 + size) });
    at += 5 + size;
  }
  return out;
}

/** A header's value in a gRPC-Web trailer frame ("key: value\r\n" lines). */
export const trailerValue = (trailer: string, key: string): string | undefined =>
  new RegExp(`^${key}:\\s*([^\\r\\n]*)`, "im").exec(trailer)?.[1];

/** The `error` of a Connect stream's end-stream frame, if it has one. */
export function endStreamError<E>(body: Buffer): E | undefined {
  const end = frames(body).find((f) => f.flags & 0x02);
  return end && (JSON.parse(end.payload.toString("utf8") || "{}") as { error?: E }).error;
}
