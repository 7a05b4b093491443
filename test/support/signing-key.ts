// A fresh RSA key pair in the form a GCS service account's key comes in
// (PKCS#8 PEM), for tests that sign or verify blob URLs.
import { generateKeyPairSync } from 'node:crypto';

export function serviceAccountKeys(): { privateKey: string; publicKey: string } {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}
