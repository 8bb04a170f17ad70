/**
 * A self-signed TLS certificate for local development: an EC P-256 key and a certificate for
 * localhost and 127.0.0.1, valid 825 days (the longest lifetime Apple platforms accept).
 *
 *   npx tsx scripts/dev-cert.ts [DIR]         (DIR defaults to ./data/certs)
 *   docker-compose's one-shot `certs` service: gatehouse-entrypoint dev-cert /certs
 *
 * Writes DIR/cert.pem and DIR/key.pem (the key readable by its owner only). Does nothing when both
 * are already there, so it is safe to run on every start. Delete them to make new ones.
 *
 * Made in Node (with @peculiar/x509 over WebCrypto) rather than with the openssl command, so the
 * Gatehouse image makes it without installing anything at run time: the compose stack starts with
 * no network beyond pulling or building its images.
 *
 * Never use this certificate in production: nothing but your own machine can trust it. To stop
 * browser warnings, trust DIR/cert.pem on your machine, or use a tool such as mkcert instead.
 */
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
// @peculiar/x509 2 resolves its algorithm providers through tsyringe, which needs this polyfill
// loaded first (it adds Reflect.metadata to this one-shot process only).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export const DEV_CERT_DAYS = 825;

export interface DevCert {
  cert: string;
  key: string;
  /** False when both files were already there and were left as they are. */
  created: boolean;
}

function nonEmpty(path: string): boolean {
  return existsSync(path) && statSync(path).size > 0;
}

/** Make DIR/cert.pem and DIR/key.pem unless both exist already. */
export async function makeDevCert(dir: string): Promise<DevCert> {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  if (nonEmpty(cert) && nonEmpty(key)) return { cert, key, created: false };

  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as unknown as CryptoKeyPair;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + DEV_CERT_DAYS * 86_400_000);
  // A positive 16-byte serial (RFC 5280 4.1.2.2: at most 20 octets, non-negative).
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: 'CN=localhost',
    notBefore,
    notAfter,
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(
        [
          { type: 'dns', value: 'localhost' },
          { type: 'ip', value: '127.0.0.1' },
        ],
        false,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = KeyObject.from(keys.privateKey as unknown as webcrypto.CryptoKey).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;

  mkdirSync(dir, { recursive: true });
  const suffix = `.tmp.${process.pid}`;
  writeFileSync(key + suffix, keyPem, { mode: 0o600 });
  writeFileSync(cert + suffix, certificate.toString('pem'), { mode: 0o644 });
  // Key first: a cert.pem never exists without its key.
  renameSync(key + suffix, key);
  renameSync(cert + suffix, cert);
  return { cert, key, created: true };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = process.argv[2] ?? './data/certs';
  makeDevCert(dir).then(
    ({ cert, key, created }) => {
      process.stdout.write(
        created
          ? `dev-cert: wrote ${cert} and ${key} (self-signed, localhost and 127.0.0.1, ${DEV_CERT_DAYS} days)\n`
          : `dev-cert: ${cert} and ${key} already exist; leaving them as they are\n`,
      );
    },
    (err: unknown) => {
      process.stderr.write(`dev-cert: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
