// Explicit command registry (fast start-up: oclif loads no manifest scan).
import Bootstrap from './bootstrap.js';
import Config from './config.js';
import Kubectl from './kubectl.js';
import Status from './status.js';

export const COMMANDS = {
  bootstrap: Bootstrap,
  config: Config,
  kubectl: Kubectl,
  status: Status,
};
