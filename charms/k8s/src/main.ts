// Entry point of the packed k8s charm: `dispatch` runs this with the bundled Node.
import { productionDeps } from '../../k8s-common/src/node.js';
import { dispatch } from '../../runtime/src/dispatch.js';
import { k8sCharm } from './charm.js';

process.exitCode = await dispatch(k8sCharm(productionDeps(process.env)));
