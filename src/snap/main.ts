// Entry point of `npm run snap` (snap/pack.sh): see pack.ts.
import { main } from './pack.js';

await main();
