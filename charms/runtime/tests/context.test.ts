import { describe, expect, it } from 'vitest';
import type { Charm, HookEvent } from '../src/charm.js';
import { HookToolError, RelationDataAccessError } from '../src/errors.js';
import { parseCharmMeta } from '../src/metadata.js';
import type { Model } from '../src/model.js';
import { reconcile } from '../src/reconcile.js';
import { ActionFailed, Context, InconsistentStateError, UncaughtCharmError, findRelation, type RelationState, type SecretState } from '../src/testing/index.js';

const meta = parseCharmMeta(`
name: demo
peers:
  replicas: {interface: demo-peers}
provides:
  website: {interface: http}
requires:
  db: {interface: pgsql, limit: 1}
config:
  options:
    port: {type: int, default: 8080}
    name: {type: string}
    debug: {type: boolean, default: false}
actions:
  greet:
    params:
      who: {type: string}
    required: [who]
    additionalProperties: false
`);

type Script = (event: HookEvent, model: Model) => Promise<void>;

function charm(script: Script): Charm {
  return {
    onHook: script,
    actions: {
      greet: async (action) => {
        const who = action.stringParam('who');
        if (who === 'nobody') return action.fail('nobody to greet');
        await action.log(`greeting ${who}`);
        await action.setResults({ greeting: `hello ${who}`, detail: { length: who.length } });
      },
    },
  };
}

function run(script: Script, unitId = 0): Context {
  return new Context(charm(script), meta, { unitId });
}

const db = (): RelationState => ({ id: 2, endpoint: 'db', remoteApp: 'postgres', remoteAppData: { host: 'db.local' }, remoteUnitsData: { 0: { ready: 'yes' } } });

describe('Context: state in → event → state out', () => {
  it('gives config with defaults merged, and returns relation data, ports, status and stored state', async () => {
    const ctx = run(async (_event, model) => {
      const config = await model.config();
      const relation = await model.relation('db');
      if (!relation) throw new Error('no db relation');
      const remote = await relation.remoteAppBag();
      (await relation.localUnitBag()).set('port', String(config.int('port')));
      (await relation.localAppBag()).set('database', `${config.string('name')}@${remote.get('host') ?? ''}`);
      await model.openPort({ protocol: 'tcp', port: config.int('port') });
      await model.state.set('seen', 'yes');
      await model.setWorkloadVersion('1.2.3');
      await model.setUnitStatus('active', `debug=${config.boolean('debug')}`);
    });
    const out = await ctx.run(ctx.on.configChanged(), { leader: true, config: { name: 'shop' }, relations: [db()] });
    const relation = findRelation(out, 'db');
    expect(relation?.localUnitData).toEqual({ port: '8080' });
    expect(relation?.localAppData).toEqual({ database: 'shop@db.local' });
    expect(out.openedPorts).toEqual([{ protocol: 'tcp', port: 8080 }]);
    expect(out.storedState).toEqual({ seen: 'yes' });
    expect(out.workloadVersion).toBe('1.2.3');
    expect(out.unitStatus).toEqual({ status: 'active', message: 'debug=false' });
  });

  it('writes all staged relation data with one relation-set per bag at the end of the hook', async () => {
    const ctx = run(async (_event, model) => {
      const bag = await (await model.relation('db'))?.localUnitBag();
      bag?.set('a', '1');
      bag?.set('b', '2');
      bag?.delete('old');
    });
    const relation = { ...db(), localUnitData: { old: 'x', keep: 'y' } };
    const out = await ctx.run(ctx.on.start(), { relations: [relation] });
    expect(findRelation(out, 'db')?.localUnitData).toEqual({ keep: 'y', a: '1', b: '2' });
    expect(ctx.hookToolCalls.filter((call) => call.startsWith('relation-set'))).toEqual(['relation-set -r db:2 a=… b=… old=…']);
  });

  it('records the action results, logs and failure', async () => {
    const ctx = run(async () => undefined);
    await ctx.run(ctx.on.action('greet', { who: 'juju' }));
    expect(ctx.actionResults).toEqual({ greeting: 'hello juju', 'detail.length': '4' });
    expect(ctx.actionLogs).toEqual(['greeting juju']);
    const failed = ctx.run(ctx.on.action('greet', { who: 'nobody' }));
    await expect(failed).rejects.toBeInstanceOf(ActionFailed);
    await expect(failed).rejects.toThrow('nobody to greet');
  });

  it('surfaces a charm error as UncaughtCharmError, as Juju would fail the hook', async () => {
    const ctx = run(async () => {
      throw new Error('boom');
    });
    await expect(ctx.run(ctx.on.install())).rejects.toThrow(new UncaughtCharmError('hooks/install', new Error('boom')).message);
  });
});

describe('Context: Juju access rules', () => {
  it('refuses an application-bag write from a non-leader', async () => {
    const ctx = run(async (_event, model) => {
      (await (await model.relation('replicas'))?.localAppBag())?.set('k', 'v');
    });
    const error = await ctx.run(ctx.on.start(), { leader: false, relations: [{ id: 1, endpoint: 'replicas' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UncaughtCharmError);
    expect((error as UncaughtCharmError).cause).toBeInstanceOf(RelationDataAccessError);
    expect(String((error as UncaughtCharmError).cause)).toMatch(/only the leader writes application data/);
  });

  it('refuses an application-bag read from a non-leader on a non-peer relation, but not on a peer relation', async () => {
    const readApp = (endpoint: string): Script => async (_event, model) => {
      const relation = await model.relation(endpoint);
      await relation?.localAppBag();
    };
    const denied = run(readApp('db'));
    await expect(denied.run(denied.on.start(), { relations: [db()] })).rejects.toThrow(/only the leader can read or write its own application data on db:2/);
    const peers = run(readApp('replicas'));
    await expect(peers.run(peers.on.start(), { relations: [{ id: 1, endpoint: 'replicas', localAppData: { x: '1' } }] })).resolves.toBeDefined();
  });

  it('has the in-memory relation-get refuse the same read, as the real tool does', async () => {
    const ctx = run(async (_event, model) => {
      await model.tools.relationGet('db:2', { owner: 'demo', app: true });
    });
    await expect(ctx.run(ctx.on.start(), { relations: [db()] })).rejects.toThrow(
      /hook tool 'relation-get' failed \(exit 1\): ERROR permission denied: only the leader can read its own application data/,
    );
  });

  it("refuses a write to another unit's bag", async () => {
    const ctx = run(async (_event, model) => {
      (await (await model.relation('db'))?.unitBag('postgres/0'))?.set('k', 'v');
    });
    await expect(ctx.run(ctx.on.start(), { leader: true, relations: [db()] })).rejects.toThrow(/a unit writes only its own unit bag/);
  });

  it('lets a unit read a secret owned elsewhere only once it is granted', async () => {
    const secret = (grantedTo?: 'unit'): SecretState => ({
      id: 'secret:cs000000000000000099',
      revisions: { 1: { password: 'one' }, 2: { password: 'two' } },
      trackedRevision: 1,
      ...(grantedTo ? { grantedTo } : {}),
    });
    let seen = '';
    const ctx = run(async (_event, model) => {
      seen = (await model.secrets.get('secret:cs000000000000000099')).password ?? '';
    });
    await expect(ctx.run(ctx.on.start(), { secrets: [secret()] })).rejects.toThrow(/has not been granted to demo\/0/);
    await ctx.run(ctx.on.start(), { secrets: [secret('unit')] });
    expect(seen).toBe('one');
  });

  it('tracks secret revisions: plain get reads the tracked one, --refresh moves to the latest, --peek does not track', async () => {
    const secret: SecretState = { id: 'secret:cs000000000000000098', revisions: { 1: { value: 'one' }, 2: { value: 'two' } }, trackedRevision: 1, grantedTo: 'app' };
    const reads: string[] = [];
    const ctx = run(async (_event, model) => {
      reads.push((await model.secrets.get(secret.id)).value ?? '');
      reads.push((await model.secrets.get(secret.id, { peek: true })).value ?? '');
      reads.push((await model.secrets.get(secret.id)).value ?? '');
      reads.push((await model.secrets.get(secret.id, { refresh: true })).value ?? '');
    });
    const out = await ctx.run(ctx.on.secretChanged(secret), { secrets: [secret] });
    expect(reads).toEqual(['one', 'two', 'one', 'two']);
    expect(out.secrets[0]?.trackedRevision).toBe(2);
  });

  it('lets only the leader create and change application-owned secrets', async () => {
    const ctx = run(async (_event, model) => {
      const id = await model.secrets.add({ token: 'abc' });
      const relation = await model.relation('db');
      if (relation) await model.secrets.grant(id, relation, 'postgres/0');
      await model.secrets.set(id, { token: 'def' });
    });
    const out = await ctx.run(ctx.on.start(), { leader: true, relations: [db()] });
    expect(out.secrets).toEqual([
      expect.objectContaining({ owner: 'app', revisions: { 1: { token: 'abc' }, 2: { token: 'def' } }, grants: { 2: ['postgres/0'] } }),
    ]);
    await expect(ctx.run(ctx.on.start(), { leader: false, relations: [db()] })).rejects.toThrow(/only the leader can create application-owned secrets/);

    const owned: SecretState = { id: 'secret:cs000000000000000097', owner: 'app', revisions: { 1: { token: 'x' } } };
    const changer = run(async (_event, model) => model.secrets.set(owned.id, { token: 'y' }));
    const error = await changer.run(changer.on.start(), { leader: false, secrets: [owned] }).catch((e: unknown) => e);
    expect((error as UncaughtCharmError).cause).toBeInstanceOf(HookToolError);
    expect(String(error)).toMatch(/only the leader can change application-owned secret/);
  });

  it("rejects secret keys Juju would reject", async () => {
    const ctx = run(async (_event, model) => {
      await model.secrets.add({ Token: 'abc' });
    });
    await expect(ctx.run(ctx.on.start(), { leader: true })).rejects.toThrow(/invalid secret key "Token"/);
  });

  it('hides the departed unit from relation-list during relation-departed, and every unit during relation-broken', async () => {
    const lists: string[][] = [];
    const ctx = run(async (_event, model) => {
      lists.push([...((await model.relation('website'))?.units ?? [])]);
    });
    const website: RelationState = { id: 4, endpoint: 'website', remoteApp: 'proxy', remoteUnitsData: { 0: {}, 1: {} } };
    await ctx.run(ctx.on.relationDeparted(website, { remoteUnit: 1 }), { relations: [website] });
    await ctx.run(ctx.on.relationBroken(website), { relations: [website] });
    expect(lists).toEqual([['proxy/0'], []]);
  });
});

describe('Context: inconsistent States are rejected with every problem named', () => {
  const ctx = run(async () => undefined);

  it.each<[string, () => Promise<unknown>, RegExp]>([
    ['undeclared config', () => ctx.run(ctx.on.start(), { config: { colour: 'red' } }), /config option 'colour' is not declared/],
    ['config of the wrong type', () => ctx.run(ctx.on.start(), { config: { port: '80' } }), /config option 'port' is a int, got "80"/],
    ['unknown endpoint', () => ctx.run(ctx.on.start(), { relations: [{ id: 1, endpoint: 'cache' }] }), /endpoint 'cache', which demo does not declare/],
    ['duplicate relation ids', () => ctx.run(ctx.on.start(), { relations: [db(), { ...db(), endpoint: 'website' }] }), /relation id 2 is used twice/],
    ['own unit among peers', () => ctx.run(ctx.on.start(), { relations: [{ id: 1, endpoint: 'replicas', remoteUnitsData: { 0: {} } }] }), /lists the local unit demo\/0/],
    ['peer with a remote app bag', () => ctx.run(ctx.on.start(), { relations: [{ id: 1, endpoint: 'replicas', remoteAppData: {} }] }), /peers share localAppData/],
    ['limit exceeded', () => ctx.run(ctx.on.start(), { relations: [db(), { ...db(), id: 3 }] }), /endpoint 'db' has 2 relations but its limit is 1/],
    ['relation event not in the State', () => ctx.run(ctx.on.relationChanged(db()), { relations: [] }), /is not in the State/],
    ['stale relation object', () => ctx.run(ctx.on.relationChanged(db()), { relations: [db()] }), /different object/],
    [
      'ambiguous remote unit',
      () => {
        const relation: RelationState = { ...db(), id: 5, endpoint: 'website', remoteUnitsData: { 0: {}, 1: {} } };
        return ctx.run(ctx.on.relationChanged(relation), { relations: [relation] });
      },
      /needs remoteUnit: relation 5 has 2 remote units/,
    ],
    ['undeclared action', () => ctx.run(ctx.on.action('wave')), /action 'wave' is not declared/],
    ['missing required parameter', () => ctx.run(ctx.on.action('greet')), /requires the parameter 'who'/],
    ['wrongly typed parameter', () => ctx.run(ctx.on.action('greet', { who: 3 })), /parameter 'who' must be a string/],
    ['leader-elected on a non-leader', () => ctx.run(ctx.on.leaderElected(), { leader: false }), /leader-elected fires only on the leader/],
    ['undeclared network binding', () => ctx.run(ctx.on.start(), { networks: { backend: { bindAddresses: [], ingressAddresses: [], egressSubnets: [] } } }), /network 'backend'/],
    ['malformed secret id', () => ctx.run(ctx.on.start(), { secrets: [{ id: 'token', revisions: { 1: { a1b: 'x' } } }] }), /secret id 'token'/],
    [
      'secret-changed on the owner',
      () => {
        const secret: SecretState = { id: 'secret:cs000000000000000001', owner: 'app', revisions: { 1: { key: 'v' } } };
        return ctx.run(ctx.on.secretChanged(secret), { secrets: [secret] });
      },
      /secret-changed fires on consumers/,
    ],
  ])('%s', async (_name, attempt, message) => {
    const error = await attempt().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InconsistentStateError);
    expect(String(error)).toMatch(message);
  });
});

describe('reconcile: first Blocked, then first Waiting, else Active', () => {
  const statusOf = async (steps: Parameters<typeof reconcile>[1]): Promise<unknown> => {
    const ctx = run(async (_event, model) => {
      await reconcile(model, steps);
    });
    return (await ctx.run(ctx.on.updateStatus())).unitStatus;
  };

  it('settles on Active when nothing is wrong', async () => {
    expect(await statusOf(async () => undefined)).toEqual({ status: 'active', message: 'Ready' });
  });

  it('prefers the first Blocked over any Waiting', async () => {
    expect(
      await statusOf(async (r) => {
        r.waiting('w1');
        r.blocked('b1');
        r.blocked('b2');
        r.wait('w2');
      }),
    ).toEqual({ status: 'blocked', message: 'b1' });
  });

  it('takes the first Waiting when nothing is Blocked', async () => {
    expect(
      await statusOf(async (r) => {
        r.waiting('w1');
        r.wait('w2');
      }),
    ).toEqual({ status: 'waiting', message: 'w1' });
  });

  it('turns a failing step into its status and logs the error, without failing the hook', async () => {
    const ctx = run(async (_event, model) => {
      await reconcile(model, async (r) => {
        await r.maintenance('Doing things');
        await r.step('do things', { status: 'waiting', message: 'Things failed' }, async () => {
          throw new Error('disk full');
        });
      });
    });
    const out = await ctx.run(ctx.on.updateStatus());
    expect(ctx.unitStatusHistory).toEqual([
      { status: 'maintenance', message: 'Doing things' },
      { status: 'waiting', message: 'Things failed' },
    ]);
    expect(out.unitStatus).toEqual({ status: 'waiting', message: 'Things failed' });
    expect(ctx.jujuLog).toContainEqual({ level: 'ERROR', message: "reconcile step 'do things' failed: disk full" });
  });
});
