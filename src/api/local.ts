// Every endpoint of the local API (unix socket, root only), by area.
export * from './node.js';
export * from './config.js';
export * from './membership.js';
export * from './certs.js';
export * from './secrets.js';
export * from './snapshots.js';
