import { describe, expect, it } from 'vitest';
import { isUnder, mountPoints, mountsToRemove, withoutOwnedChains } from '../../src/host/cleanup.js';
import { Layout } from '../../src/layout.js';

const mountinfo = [
  '22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '90 22 0:50 / /tmp/k8s-it-a/n1/root/var/lib/kubelet/pods/u1/volumes/kubernetes.io~projected/kube-api-access-x rw shared:40 - tmpfs tmpfs rw',
  '91 22 0:51 / /tmp/k8s-it-a/n1/root/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw shared:41 - overlay overlay rw',
  '92 22 0:52 / /tmp/k8s-it-a/n10/root/var/lib/kubelet/pods/u2/volumes/x rw shared:42 - tmpfs tmpfs rw',
  '93 22 0:53 / /tmp/k8s-it-a/n1/root rw shared:43 - tmpfs tmpfs rw',
  '94 22 0:54 / /var/lib/kubelet/pods/u3/volumes/with\\040space rw shared:44 - tmpfs tmpfs rw',
  '95 22 0:55 / /var/lib/docker/overlay2/x/merged rw shared:45 - overlay overlay rw',
].join('\n');

describe('node cleanup', () => {
  it('decodes octal escapes in mount points', () => {
    expect(mountPoints(mountinfo)).toContain('/var/lib/kubelet/pods/u3/volumes/with space');
  });

  it('unmounts what lies under a re-rooted node, deepest first, and nothing of another root or the root itself', () => {
    const l = new Layout({ K8S_ROOT: '/tmp/k8s-it-a/n1/root' });
    expect(mountsToRemove(mountinfo, l)).toEqual([
      '/tmp/k8s-it-a/n1/root/var/lib/kubelet/pods/u1/volumes/kubernetes.io~projected/kube-api-access-x',
      '/tmp/k8s-it-a/n1/root/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs',
    ]);
  });

  it('on `/` unmounts only what lies in the node\'s own directories', () => {
    expect(mountsToRemove(mountinfo, new Layout({ K8S_ROOT: '/' }))).toEqual(['/var/lib/kubelet/pods/u3/volumes/with space']);
  });

  it('isUnder is about path components, not string prefixes', () => {
    expect(isUnder('/a/b/c', '/a/b')).toBe(true);
    expect(isUnder('/a/bc', '/a/b')).toBe(false);
    expect(isUnder('/a/b', '/a/b')).toBe(false);
  });

  it('drops the owned chains and every rule in or to them, and keeps everything else', () => {
    const save = [
      '*filter',
      ':INPUT ACCEPT [0:0]',
      ':FORWARD DROP [0:0]',
      ':DOCKER - [0:0]',
      ':KUBE-FORWARD - [0:0]',
      ':K8SD-NP-FORWARD - [0:0]',
      ':FLANNEL-FWD - [0:0]',
      '-A FORWARD -j K8SD-NP-FORWARD',
      '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
      '-A FORWARD -o docker0 -j DOCKER',
      '-A FORWARD -j FLANNEL-FWD',
      '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
      '-A INPUT -p tcp --dport 22 -j ACCEPT',
      'COMMIT',
    ].join('\n');
    const { text, changed } = withoutOwnedChains(save);
    expect(changed).toBe(true);
    expect(text.split('\n')).toEqual([
      '*filter',
      ':INPUT ACCEPT [0:0]',
      ':FORWARD DROP [0:0]',
      ':DOCKER - [0:0]',
      '-A FORWARD -o docker0 -j DOCKER',
      '-A INPUT -p tcp --dport 22 -j ACCEPT',
      'COMMIT',
    ]);
    expect(withoutOwnedChains('*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT').changed).toBe(false);
  });

  it('gives each re-rooted node a cgroup root of its own and keeps the host default on `/`', () => {
    const a = new Layout({ K8S_ROOT: '/srv/a' }).kubeletCgroupRoot;
    const b = new Layout({ K8S_ROOT: '/srv/b' }).kubeletCgroupRoot;
    expect(a).toMatch(/^\/k8s-[0-9a-f]{12}$/);
    expect(a).not.toEqual(b);
    expect(new Layout({ K8S_ROOT: '/' }).kubeletCgroupRoot).toBeUndefined();
    expect(new Layout({ K8S_ROOT: '/' }).podCgroupDir).toBe('/kubepods');
  });
});
