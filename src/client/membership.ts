// Typed calls for membership on k8sd's local API: tokens, join, remove.
import { K8sdClient, ProgressEvent } from './index.js';

import type { IssuedToken, TokenInfo } from '../k8sd/membership/tokens-api.js';

export type { IssuedToken, TokenInfo };

export interface RemoveResult {
  removed: string;
  self: boolean;
  warnings: string[];
}

export type JoinProgress = ProgressEvent | { type: 'info'; message: string };

export class MembershipClient {
  constructor(private readonly client: K8sdClient) {}

  issueToken(params: { name?: string; worker: boolean; expiresInSeconds: number; address?: string }): Promise<IssuedToken> {
    return this.client.call<IssuedToken>('POST', '/1.0/k8sd/cluster/tokens', params);
  }

  async listTokens(): Promise<TokenInfo[]> {
    return (await this.client.call<{ tokens: TokenInfo[] }>('GET', '/1.0/k8sd/cluster/tokens')).tokens;
  }

  revokeToken(name: string): Promise<{ revoked: string }> {
    return this.client.call<{ revoked: string }>('POST', '/1.0/k8sd/cluster/tokens/revoke', { name });
  }

  join(params: { token: string; name?: string; address?: string; config?: string; timeoutSeconds: number }, onEvent: (e: JoinProgress) => void): Promise<Record<string, unknown>> {
    return this.client.stream('POST', '/1.0/k8sd/cluster/join', params, onEvent as (e: ProgressEvent) => void);
  }

  remove(params: { name: string; force: boolean }): Promise<RemoveResult> {
    return this.client.call<RemoveResult>('POST', '/1.0/k8sd/cluster/remove', params);
  }
}
