/**
 * A stand-in identity provider for the JWT tests: a JSON Web Key Set served
 * from a local node:http server on a free port, and helpers to mint access
 * tokens signed by its keys (or by keys it does not publish).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTHeaderParameters,
} from "jose";

export interface SigningKey {
  kid: string;
  alg: "RS256" | "ES256";
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  publicPem: string;
}

export interface TokenOptions {
  /** The key that signs (default: the published RSA key). */
  key?: SigningKey;
  /** Overrides of the protected header (alg, kid, typ…). */
  header?: Partial<JWTHeaderParameters>;
}

export interface JwksServer {
  /** The JWKS URL, issuer and audience the server under test is configured with. */
  url: string;
  issuer: string;
  audience: string;
  /** JWT_JWKS_URL, JWT_ISSUER, JWT_AUDIENCE for startTestServer. */
  env: Record<string, string>;
  /** The published keys. */
  rsa: SigningKey;
  ec: SigningKey;
  /** How many times the key set was fetched. */
  fetches(): number;
  /**
   * A token with iss, aud, sub, iat and exp (now + 10 minutes) filled in, then
   * `claims` applied; a claim set to `undefined` is left out.
   */
  token(claims?: Record<string, unknown>, opts?: TokenOptions): Promise<string>;
  close(): Promise<void>;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A fresh key pair that can sign tokens; not published unless the server was built with it. */
export async function newSigningKey(alg: "RS256" | "ES256", kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicKey, publicJwk, publicPem: await exportSPKI(publicKey) };
}

/** Starts the key-set server on 127.0.0.1 and a free port. */
export async function startJwksServer(): Promise<JwksServer> {
  const rsa = await newSigningKey("RS256", "test-rsa-1");
  const ec = await newSigningKey("ES256", "test-ec-1");
  const body = JSON.stringify({ keys: [rsa.publicJwk, ec.publicJwk] });
  let fetches = 0;
  const server: Server = createServer((req, res) => {
    if (req.url === "/.well-known/jwks.json") {
      fetches++;
      res.writeHead(200, { "content-type": "application/json" }).end(body);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) =>
    server.once("error", reject).listen(0, "127.0.0.1", () => resolve()),
  );
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}/.well-known/jwks.json`;
  const issuer = `http://127.0.0.1:${port}/`;
  const audience = "groups-service-test";

  return {
    url,
    issuer,
    audience,
    env: { JWT_JWKS_URL: url, JWT_ISSUER: issuer, JWT_AUDIENCE: audience },
    rsa,
    ec,
    fetches: () => fetches,
    async token(claims = {}, opts = {}) {
      const key = opts.key ?? rsa;
      const now = nowSeconds();
      const payload: Record<string, unknown> = {
        iss: issuer,
        aud: audience,
        sub: "user-1",
        iat: now,
        exp: now + 600,
        ...claims,
      };
      for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
      return new SignJWT(payload)
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT", ...opts.header })
        .sign(key.privateKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
