// What the charms ship to COS over cos-agent besides scrape jobs: Prometheus alert rules and Grafana
// dashboards, written for this distribution's metrics (k8sd's own and the components' standard ones).
// Every job carries a `component` label (cos.ts), which the expressions select on.

interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: { readonly severity: 'warning' | 'critical' };
  readonly annotations: { readonly summary: string; readonly description: string };
}

function rule(alert: string, expr: string, duration: string, severity: 'warning' | 'critical', summary: string, description: string): AlertRule {
  return { alert, expr, for: duration, labels: { severity }, annotations: { summary, description } };
}

const FOURTEEN_DAYS = 14 * 24 * 3600;

/** metrics_alert_rules: the Prometheus rule-file shape ({groups: [{name, rules}]}). */
export const COS_ALERT_RULES = {
  groups: [
    {
      name: 'k8s-control-plane',
      rules: [
        rule('KubeAPIServerDown', 'up{component="kube-apiserver"} == 0', '5m', 'critical',
          'kube-apiserver on {{ $labels.node }} does not answer scrapes',
          'The API server of node {{ $labels.node }} has not answered for 5 minutes; check `k8s status` and the kube-apiserver service on that node.'),
        rule('KubeAPIServerSlowRequests',
          'histogram_quantile(0.99, sum by (node, le) (rate(apiserver_request_duration_seconds_bucket{component="kube-apiserver",verb!~"WATCH|CONNECT"}[5m]))) > 1',
          '10m', 'warning',
          'kube-apiserver on {{ $labels.node }}: 99th percentile request latency above 1 s',
          'Non-watch requests to {{ $labels.node }} took {{ $value | humanizeDuration }} at the 99th percentile over 10 minutes; look at etcd latency and the node\'s load.'),
        rule('KubeAPIServerErrors',
          'sum by (node) (rate(apiserver_request_total{component="kube-apiserver",code=~"5.."}[5m])) / sum by (node) (rate(apiserver_request_total{component="kube-apiserver"}[5m])) > 0.05',
          '10m', 'warning',
          'kube-apiserver on {{ $labels.node }} answers more than 5% of requests with a server error',
          'More than 5% of the requests to {{ $labels.node }} failed with 5xx for 10 minutes.'),
        rule('EtcdNoLeader', 'etcd_server_has_leader{component="etcd"} == 0', '1m', 'critical',
          'etcd member on {{ $labels.node }} has no leader',
          'The etcd member of node {{ $labels.node }} sees no leader: the datastore has lost quorum or this member is cut off from the others.'),
        rule('EtcdDown', 'up{component="etcd"} == 0', '5m', 'critical',
          'etcd on {{ $labels.node }} does not answer scrapes',
          'The etcd member of node {{ $labels.node }} has not answered its local metrics endpoint for 5 minutes.'),
      ],
    },
    {
      name: 'k8s-nodes',
      rules: [
        rule('KubeletDown', 'up{component="kubelet"} == 0', '5m', 'critical',
          'kubelet on {{ $labels.node }} does not answer scrapes',
          'The kubelet of node {{ $labels.node }} has not answered for 5 minutes; its pods are not being managed.'),
        rule('K8sdDown', 'up{component="k8sd"} == 0', '5m', 'warning',
          'k8sd on {{ $labels.node }} does not answer scrapes',
          'k8sd, which renews certificates and reconciles features, has not answered on {{ $labels.node }} for 5 minutes.'),
        rule('KubernetesCertificateExpiringSoon', `k8sd_certificate_expiry_seconds - time() < ${FOURTEEN_DAYS}`, '1h', 'warning',
          'Certificate {{ $labels.certificate }} on {{ $labels.node }} expires within 14 days',
          'k8sd renews certificates before they expire; one that is this close to expiry was not renewed. Run the refresh-certs action on that unit.'),
        rule('KubernetesCertificateExpired', 'k8sd_certificate_expiry_seconds - time() <= 0', '0m', 'critical',
          'Certificate {{ $labels.certificate }} on {{ $labels.node }} has expired',
          'Components using it fail TLS; run the refresh-certs action on that unit.'),
        rule('KubernetesFeatureNotReady', 'k8sd_feature_enabled == 1 and on (node, feature) k8sd_feature_ready == 0', '15m', 'warning',
          'Feature {{ $labels.feature }} is enabled but not ready',
          'k8sd on {{ $labels.node }} has reported the {{ $labels.feature }} feature not ready for 15 minutes; see `k8s status`.'),
      ],
    },
  ],
} as const;

function panel(id: number, title: string, expr: string, legend: string, unit: string, x: number, y: number): Record<string, unknown> {
  return {
    id,
    type: 'timeseries',
    title,
    datasource: { type: 'prometheus', uid: '${prometheusds}' },
    gridPos: { h: 8, w: 12, x, y },
    fieldConfig: { defaults: { unit }, overrides: [] },
    targets: [{ refId: 'A', expr, legendFormat: legend }],
  };
}

/** One overview dashboard; the ${prometheusds} variable is the one COS' Grafana fills in. */
const OVERVIEW = {
  uid: 'k8s-ts-overview',
  title: 'Kubernetes (k8s charm) overview',
  tags: ['kubernetes', 'k8s-charm'],
  schemaVersion: 39,
  time: { from: 'now-6h', to: 'now' },
  templating: { list: [{ name: 'prometheusds', type: 'datasource', query: 'prometheus', label: 'Prometheus' }] },
  panels: [
    panel(1, 'Components up', 'up{component=~"kube-apiserver|kubelet|etcd|k8sd"}', '{{component}} {{node}}', 'none', 0, 0),
    panel(2, 'API requests per second by code', 'sum by (code) (rate(apiserver_request_total[5m]))', '{{code}}', 'reqps', 12, 0),
    panel(3, 'API request latency, 99th percentile',
      'histogram_quantile(0.99, sum by (node, le) (rate(apiserver_request_duration_seconds_bucket{verb!~"WATCH|CONNECT"}[5m])))', '{{node}}', 's', 0, 8),
    panel(4, 'etcd has leader', 'etcd_server_has_leader', '{{node}}', 'bool', 12, 8),
    panel(5, 'Days until certificate expiry', '(k8sd_certificate_expiry_seconds - time()) / 86400', '{{node}} {{certificate}}', 'd', 0, 16),
    panel(6, 'Running pods per node', 'kubelet_running_pods', '{{node}}', 'none', 12, 16),
    panel(7, 'Container CPU by namespace', 'sum by (namespace) (rate(container_cpu_usage_seconds_total{container!=""}[5m]))', '{{namespace}}', 'cores', 0, 24),
    panel(8, 'Cluster members by role', 'max by (role) (k8sd_cluster_members)', '{{role}}', 'none', 12, 24),
  ],
} as const;

export const COS_DASHBOARDS: readonly unknown[] = [OVERVIEW];
