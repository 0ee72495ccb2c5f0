import { brotliDecompressSync, gunzipSync } from "node:zlib";
import type { DescMessage } from "@bufbuild/protobuf";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import { binaryFieldFaults, jsonFieldFaults, type FieldFault } from "./decode-faults.js";

/** The encodings a body may come in (those the router accepts). */
export const DECOMPRESS: Record<string, ((b: Buffer) => Buffer) | undefined> = {
  identity: (b) => b,
  gzip: gunzipSync,
  br: brotliDecompressSync,
};

/**
 * A request for connect-node's router whose body is kept as it streams by, so
 * that when the router cannot decode it, the body can be read again to name
 * every bad field (connect-node says only "parse binary: …"). Every method
 * takes one request message, bounded by readMaxBytes.
 */
export function keepingBody(
  req: UniversalServerRequest,
  desc: DescMessage,
): { request: UniversalServerRequest; faults: () => FieldFault[] } {
  const chunks: Uint8Array[] = [];
  const body = req.body as AsyncIterable<Uint8Array>;
  // A plain iterator, not an async generator: the generator cost ~40 µs of
  // server CPU per Connect call (A/B of Health.Check), this one is in the noise.
  const kept: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]() {
      const it = body[Symbol.asyncIterator]();
      return {
        next: () =>
          it.next().then((r) => {
            if (!r.done) chunks.push(r.value);
            return r;
          }),
        return: (v?: unknown) =>
          it.return?.(v) ?? Promise.resolve({ done: true, value: undefined }),
      };
    },
  };
  return {
    request: { ...req, body: kept },
    faults: () => {
      try {
        const { json, bytes } = requestMessage(req, Buffer.concat(chunks));
        if (!bytes) return [];
        return json
          ? jsonFieldFaults(desc, JSON.parse(bytes.toString("utf8")))
          : binaryFieldFaults(desc, bytes);
      } catch {
        return []; // not JSON, or a compression that does not decompress: no field to name
      }
    },
  };
}

/**
 * The request message's bytes as the protocol carries them (a Connect GET's
 * query, a body, or its first frame), decompressed; none when the frame is cut
 * short or the encoding is not one the router accepts.
 */
function requestMessage(
  req: UniversalServerRequest,
  body: Buffer,
): { json: boolean; bytes: Buffer | undefined } {
  if (req.method === "GET") {
    const query = new URL(req.url).searchParams;
    const text = query.get("message") ?? "";
    const raw = query.get("base64") === "1" ? Buffer.from(text, "base64url") : Buffer.from(text);
    return {
      json: query.get("encoding") === "json",
      bytes: decompress(query.get("compression"), raw),
    };
  }
  const type = req.header.get("content-type") ?? "";
  const enveloped = /^application\/(grpc|grpc-web|connect\+)/.exec(type);
  if (!enveloped) {
    const json = /^application\/json/.test(type);
    return { json, bytes: decompress(req.header.get("content-encoding"), body) };
  }
  const size = body.length >= 5 ? body.readUInt32BE(1) : Infinity;
  const payload = body.length >= 5 + size ? body.subarray(5, 5 + size) : undefined;
  const encoding = enveloped[1] === "connect+" ? "connect-content-encoding" : "grpc-encoding";
  const compressed = (body[0] & 1) === 1;
  return {
    json: /\+json/.test(type),
    bytes: payload && (compressed ? decompress(req.header.get(encoding), payload) : payload),
  };
}

const decompress = (encoding: string | null, bytes: Buffer) =>
  DECOMPRESS[encoding ?? "identity"]?.(bytes);
