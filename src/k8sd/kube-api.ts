// The parts of @kubernetes/client-node that k8sd uses at run time, named one by one. k8sd loads
// this module lazily (`await import('./kube-api.js')`), never the package itself: a dynamic import
// of the package asks for every export, so the bundler (package.json "build") would keep all of its
// ~70 generated API groups; through these named re-exports it keeps only the groups listed here.
export { CertificatesV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, NetworkingV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
