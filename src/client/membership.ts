// Typed calls for membership on k8sd's local API: tokens, join, remove.
import { local, type IssuedToken, type JoinResult, type RemoveResult, type RequestOf, type TokenInfo } from '../api/index.js';
import { K8sdClient, ProgressEvent } from './index.js';

export type { IssuedToken, RemoveResult, TokenInfo };

export class MembershipClient {
  constructor(private readonly client: K8sdClient) {}

  issueToken(params: RequestOf<typeof local.issueToken>): Promise<IssuedToken> {
    return this.client.call(local.issueToken, params);
  }

  async listTokens(): Promise<TokenInfo[]> {
    return (await this.client.call(local.listTokens)).tokens;
  }

  revokeToken(name: string): Promise<{ revoked: string }> {
    return this.client.call(local.revokeToken, { name });
  }

  join(params: RequestOf<typeof local.join>, onEvent: (e: ProgressEvent) => void): Promise<JoinResult> {
    return this.client.stream(local.join, params, onEvent);
  }

  remove(params: RequestOf<typeof local.removeNode>): Promise<RemoveResult> {
    return this.client.call(local.removeNode, params);
  }
}
