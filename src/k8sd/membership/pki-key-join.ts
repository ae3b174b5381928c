// The PKI wrapping key (src/pki/key-wrap.ts) travels to a joining control-plane node in the join
// reply (pinned mTLS, never logged), through the same join-payload hooks as the KMS KEK ring.
// Workers never receive it: join payloads go out with control-plane joins only.
import { parseWrappingKey, type PkiWrappingKeyFile } from '../../pki/key-wrap.js';
import type { NodeContext } from '../node-context.js';
import { registerJoinPayload, registerLeaveHook } from './extensions.js';

export function registerPkiKeyJoinPayload(d: Pick<NodeContext, 'crypto'> & { pkiKeys: PkiWrappingKeyFile }): void {
  registerJoinPayload({
    key: 'pki-wrapping-key',
    export: async () => (await d.pkiKeys.wrapper()).document,
    import: async (data) => d.pkiKeys.install(await parseWrappingKey(d.crypto, data, 'the PKI wrapping key in the join reply')),
    discard: async () => d.pkiKeys.remove(),
  });
  // A node that left can no longer unwrap the cluster's CA keys.
  registerLeaveHook('pki-wrapping-key', async () => d.pkiKeys.remove());
}
