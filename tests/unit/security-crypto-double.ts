// Test double for CryptoBackend: only the symmetric/random/hash operations that
// src/security uses, on node:crypto, with the interface's documented framing
// (AES-256-GCM output = iv(12) | ciphertext | tag(16)). Everything else throws.
import nodeCrypto from 'node:crypto';
import { CryptoError, type CryptoBackend } from '../../src/crypto/types.js';

function unsupported(name: string): never {
  throw new CryptoError(`${name} is not part of the security test double`);
}

export function securityTestCrypto(): CryptoBackend {
  return {
    name: 'node',
    generateKeyPair: async () => unsupported('generateKeyPair'),
    publicKeyOf: async () => unsupported('publicKeyOf'),
    createCertificate: async () => unsupported('createCertificate'),
    crossSign: async () => unsupported('crossSign'),
    createCsr: async () => unsupported('createCsr'),
    signCsr: async () => unsupported('signCsr'),
    parseCsr: async () => unsupported('parseCsr'),
    parseCertificate: () => unsupported('parseCertificate'),
    verifyIssuedBy: async () => unsupported('verifyIssuedBy'),
    keyMatchesCertificate: async () => unsupported('keyMatchesCertificate'),
    sign: async () => unsupported('sign'),
    verify: async () => unsupported('verify'),
    async sha256(data: Buffer | string): Promise<Buffer> {
      return nodeCrypto.createHash('sha256').update(data).digest();
    },
    async hmacSha256(key: Buffer, data: Buffer | string): Promise<Buffer> {
      return nodeCrypto.createHmac('sha256', key).update(data).digest();
    },
    async randomBytes(length: number): Promise<Buffer> {
      return nodeCrypto.randomBytes(length);
    },
    async encrypt(key: Buffer, plaintext: Buffer, aad?: Buffer): Promise<Buffer> {
      const iv = nodeCrypto.randomBytes(12);
      const cipher = nodeCrypto.createCipheriv('aes-256-gcm', key, iv);
      if (aad) cipher.setAAD(aad);
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return Buffer.concat([iv, body, cipher.getAuthTag()]);
    },
    async decrypt(key: Buffer, sealed: Buffer, aad?: Buffer): Promise<Buffer> {
      if (sealed.length < 28) throw new CryptoError('sealed data too short');
      const decipher = nodeCrypto.createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
      if (aad) decipher.setAAD(aad);
      decipher.setAuthTag(sealed.subarray(sealed.length - 16));
      try {
        return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
      } catch {
        throw new CryptoError('AES-GCM authentication failed');
      }
    },
  };
}
