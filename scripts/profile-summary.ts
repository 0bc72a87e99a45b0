/**
 * node scripts/profile-summary.ts FILE.cpuprofile... [--top 25] [--skip-s S] [--area NAME]
 *
 * Summarises V8 CPU profiles (from `npm run bench -- --cpu-prof DIR`, or `node --cpu-prof`): busy
 * time split by area (crypto, encoding, libp2p, storage, protocol core, logging, metrics, GC, other)
 * and the functions with the most self time. Time spent in native code (OpenSSL, LevelDB's
 * binding) is charged to the JavaScript function that called it, which is what V8 records.
 * Several files are added up, so one call covers every replica of a run. `--skip-s` leaves out
 * each profile's first S seconds (process start-up: module loading and compilation); `--area`
 * lists the top functions of one area only.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Areas in the order they are tested: the first pattern that matches a frame's URL wins. */
const AREAS: Array<[string, RegExp]> = [
  ['crypto', /src\/crypto\/|internal\/crypto|@noble\/|node:crypto/],
  [
    'encoding',
    /cborg|src\/codec\/|protocol\/messages\.ts|protocol\/client-protocol\.ts|ledger\/operations\.ts/,
  ],
  ['storage', /classic-level|abstract-level|level-|src\/storage\//],
  ['logging', /pino|sonic-boom|thread-stream/],
  ['metrics', /prom-client|node\/metrics\.ts/],
  [
    'libp2p',
    /libp2p|@chainsafe|@multiformats|uint8arraylist|uint8arrays|it-|p-queue|race-signal|progress-events|main-event|wasm:\/\/|src\/transport\/|internal\/(net|stream|streams|dgram)|node:net|node:stream/,
  ],
  ['protocol core', /src\/protocol\/|src\/ledger\/|src\/byzantine\//],
  ['runtime (src/node)', /src\/node\//],
];
const IDLE_FRAMES = new Set(['(idle)']);
const GC_FRAMES = new Set(['(garbage collector)']);
const TOP_DEFAULT = 25;
const PERCENT = 100;

function areaOf(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (GC_FRAMES.has(functionName)) return 'GC';
  if (functionName === '(program)') return 'other (V8/native, unattributed)';
  for (const [area, pattern] of AREAS) if (pattern.test(url)) return area;
  return url === '' ? 'other (native builtins)' : 'other';
}

/** Charge each native or builtin frame without a URL to its nearest caller that has one. */
function attributeToCallers(nodes: ProfileNode[]): Map<number, string> {
  const parentOf = new Map<number, number>();
  for (const node of nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const areas = new Map<number, string>();
  for (const node of nodes) {
    let current: ProfileNode | undefined = node;
    let area = areaOf(node);
    while (area === 'other (native builtins)' && current !== undefined) {
      const parentId = parentOf.get(current.id);
      current = parentId === undefined ? undefined : byId.get(parentId);
      if (current !== undefined) area = areaOf(current);
    }
    areas.set(node.id, area);
  }
  return areas;
}

const { values, positionals } = parseArgs({
  options: { top: { type: 'string' }, 'skip-s': { type: 'string' }, area: { type: 'string' } },
  allowPositionals: true,
});
if (positionals.length === 0) {
  console.error(
    'usage: node scripts/profile-summary.ts FILE.cpuprofile... [--top N] [--skip-s S] [--area NAME]',
  );
  process.exit(64);
}
const top = values.top === undefined ? TOP_DEFAULT : Number(values.top);
const skipMicros = values['skip-s'] === undefined ? 0 : Number(values['skip-s']) * 1e6;
const areaMicros = new Map<string, number>();
const functionMicros = new Map<string, number>();
let busyMicros = 0;
let idleMicros = 0;
for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const areas = attributeToCallers(profile.nodes);
  let sinceStartMicros = 0;
  for (const [index, nodeId] of profile.samples.entries()) {
    const node = byId.get(nodeId)!;
    const micros = profile.timeDeltas[index] ?? 0;
    sinceStartMicros += micros;
    if (sinceStartMicros < skipMicros) continue;
    if (IDLE_FRAMES.has(node.callFrame.functionName)) {
      idleMicros += micros;
      continue;
    }
    busyMicros += micros;
    const area = areas.get(nodeId)!;
    areaMicros.set(area, (areaMicros.get(area) ?? 0) + micros);
    if (values.area !== undefined && area !== values.area) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/src\//, 'src/')}:${lineNumber + 1}`;
    functionMicros.set(name, (functionMicros.get(name) ?? 0) + micros);
  }
}
const share = (micros: number): string => `${((PERCENT * micros) / busyMicros).toFixed(1)}%`.padStart(6);
console.log(
  `busy ${(busyMicros / 1e6).toFixed(1)} s, idle ${(idleMicros / 1e6).toFixed(1)} s over ${positionals.length} profile(s)`,
);
console.log('\nby area (share of busy time):');
for (const [area, micros] of [...areaMicros].sort((a, b) => b[1] - a[1]))
  console.log(`  ${share(micros)}  ${area}`);
console.log(`\ntop ${top} functions by self time${values.area === undefined ? '' : ` in ${values.area}`}:`);
for (const [name, micros] of [...functionMicros].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`  ${share(micros)}  ${name}`);
}
