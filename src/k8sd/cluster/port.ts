// The cluster API: HTTPS with mutual TLS on this port of every node (peer.ts calls it, daemon.ts serves it).
export const K8SD_CLUSTER_PORT = 6400;
