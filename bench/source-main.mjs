// BENCH_MAIN=bench/source-main.mjs: the benches' Enclave server from the TypeScript sources
// (tsx) instead of dist/ — for measuring a work tree without building it (dist/ is shared).
import { register } from 'tsx/esm/api';

register();
await import('../server/main.ts');
