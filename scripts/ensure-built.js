// `npm start` builds first when dist/ is missing or older than the sources (server, CLI or
// web UI), so the quick start works right after `npm ci` and after a `git pull`.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const marker = path.join(root, 'dist', 'server', 'main.js');

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (/\.(ts|tsx|css|html)$/.test(e.name)) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

const newestOf = (dirs) => Math.max(0, ...dirs.map((d) => path.join(root, d)).filter(existsSync).map(newest));
const builtAt = (file) => (existsSync(file) ? statSync(file).mtimeMs : 0);

// Server and CLI (tsc), then the web UI (vite), each only when its sources changed.
if (newestOf(['server', 'cli', 'license', 'installer']) > builtAt(marker)) {
  process.stderr.write('enclave: building the server (npm run build)...\n');
  execSync('npm run build --silent', { cwd: root, stdio: 'inherit' });
} else if (newestOf(['web']) > builtAt(path.join(root, 'dist', 'web', 'index.html'))) {
  process.stderr.write('enclave: building the web UI (npm run build:web)...\n');
  execSync('npm run build:web --silent', { cwd: root, stdio: 'inherit' });
}
