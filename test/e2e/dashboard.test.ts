/**
 * The Grafana dashboard and the Prometheus alert rules of configs/, against the real tools.
 * promtool checks the rules and the example scrape config, and runs the rules' unit tests
 * (configs/prometheus/alerts.test.yml: each alert fires on its fault and not on a healthy cluster).
 * Then a real `prometheus` scrapes a real 4-replica testnet every second while transfers commit,
 * and every expression the dashboard shows and every alert rule evaluates is asked of it: each
 * dashboard query (and each operand of an alert's comparisons) returns data, with at least one
 * finite value, so no panel or alert rests on a metric name, label or window that has no data. On
 * this healthy cluster no alert expression holds (except the two that measure the machine's speed).
 *
 * The expressions are read from the files (the dashboard's JSON, and the rules as Prometheus loaded
 * them from alerts.yml), never listed here. Without promtool or prometheus on PATH (Debian package
 * `prometheus`, which .ci/run installs) the tests that need them say so and are skipped.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnInOwnGroup } from '../../src/cli/process-groups.ts';
import { type PbftClient, readKeyFile } from '../../src/index.ts';
import { connectWhenUp, PBFT_BIN, startReplicaProcess, type TestReplicaProcess } from './helpers.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const ALERTS_FILE = join(ROOT, 'configs', 'prometheus', 'alerts.yml');
const ALERTS_TEST_FILE = join(ROOT, 'configs', 'prometheus', 'alerts.test.yml');
const PROMETHEUS_CONFIG_FILE = join(ROOT, 'configs', 'prometheus', 'prometheus.yml');
const DASHBOARD_FILE = join(ROOT, 'configs', 'grafana', 'pbft-dashboard.json');

const REPLICAS = 4;
/** The scrape job the alert rules expect (configs/prometheus/prometheus.yml). */
const JOB = 'pbft';
/**
 * Loopback ports: the testnet's 2n, then Prometheus's. Not (yet) in helpers.ts's TEST_PORT_RANGES;
 * 14000-14999 is clear of every range listed there. Shifted by pid like basePortFor.
 */
const PORT_RANGE_FIRST = 14_000;
const PORTS_PER_RUN = 2 * REPLICAS + 1;
const RUNS_IN_RANGE = Math.floor(1_000 / PORTS_PER_RUN);
const BASE_PORT = PORT_RANGE_FIRST + (process.pid % RUNS_IN_RANGE) * PORTS_PER_RUN;
const PROMETHEUS_PORT = BASE_PORT + 2 * REPLICAS;
const SCRAPE_INTERVAL = '1s';
/**
 * What Grafana's `$__rate_interval` stands for here: several scrapes, all taken while transfers
 * commit, so that rates and histogram quantiles have data and are finite.
 */
const RATE_INTERVAL = '10s';
/** Scrapes of every replica before the queries: RATE_INTERVAL full of samples. */
const SCRAPES_BEFORE_QUERIES = 12;
/** Dashboard variables and what they are set to for the queries. */
const DASHBOARD_VARIABLES: Record<string, string> = { job: JOB, __rate_interval: RATE_INTERVAL };
/** Pause between the transfers that keep the testnet busy while Prometheus scrapes it. */
const TRANSFER_PAUSE_MS = 50;
/**
 * Alerts on how fast this machine is (its disk's fsync, its cores), not on a fault: on a loaded CI
 * machine they may hold on a healthy testnet, so only their operands are checked here (their
 * firing and not firing is alerts.test.yml's). Measured on a 2-core machine: storage p99 9-10 ms,
 * 20-36 ms beside two busy loops and an fsync loop (threshold 50 ms); commit p99 0.05-0.1 s (4 s).
 */
const MACHINE_SPEED_ALERTS = new Set(['PbftStorageSlow', 'PbftCommitLatencyHigh']);
const READY_TIMEOUT_MS = 20_000;
const PROMETHEUS_STOP_GRACE_MS = 5_000;

/** The absolute path of `name` on PATH, if it is there and executable. */
function onPath(name: string): string | undefined {
  for (const folder of (process.env['PATH'] ?? '').split(delimiter)) {
    if (folder === '') continue;
    try {
      accessSync(join(folder, name), constants.X_OK);
      return join(folder, name);
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

const PROMTOOL = onPath('promtool');
const PROMETHEUS = onPath('prometheus');
/** Puts the prometheus process under a parent-death signal, so that a SIGKILL of this run ends it. */
const SETPRIV = onPath('setpriv');
for (const [tool, path] of [
  ['promtool', PROMTOOL],
  ['prometheus', PROMETHEUS],
] as const) {
  if (path === undefined)
    console.warn(
      `test/e2e/dashboard.test.ts: ${tool} is not on PATH (Debian package prometheus): its tests are skipped`,
    );
}

// ---------------------------------------------------------------------------------------------
// The expressions, from the files.

interface DashboardPanel {
  title?: string;
  targets?: Array<{ expr?: string }>;
  panels?: DashboardPanel[];
}
interface Dashboard {
  panels: DashboardPanel[];
  templating: { list: Array<{ name: string; type: string; query?: string | { query?: string } }> };
}

/** `$name` and `${name}` of the dashboard's variables replaced by their values for this test. */
function substituteVariables(expr: string): string {
  const substituted = expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced?: string, bare?: string) => {
    const value = DASHBOARD_VARIABLES[(braced ?? bare)!];
    if (value === undefined) throw new Error(`dashboard expression ${expr}: no value for ${whole}`);
    return value;
  });
  return substituted;
}

/** Every PromQL expression of the dashboard: each panel's targets, and each query variable's query. */
function dashboardExpressions(): Array<{ where: string; expr: string }> {
  const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
  const found: Array<{ where: string; expr: string }> = [];
  const visit = (panels: readonly DashboardPanel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (target.expr !== undefined) found.push({ where: `panel "${panel.title}"`, expr: target.expr });
      }
      visit(panel.panels ?? []);
    }
  };
  visit(dashboard.panels);
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue;
    const query = typeof variable.query === 'string' ? variable.query : (variable.query?.query ?? '');
    // Grafana's label_values(METRIC, LABEL) lists LABEL's values among METRIC's series.
    const labelValues = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
    if (labelValues === null)
      throw new Error(`variable ${variable.name}: a query this test cannot run: ${query}`);
    found.push({
      where: `variable $${variable.name}`,
      expr: `count by (${labelValues[2]}) (${labelValues[1]})`,
    });
  }
  return found.map(({ where, expr }) => ({ where, expr: substituteVariables(expr) }));
}

const BINARY_OPERATOR = /^(==|!=|>=|<=|>|<|and\b|or\b|unless\b)/;
const MATCHING_MODIFIERS =
  /^\s*(?:bool\b\s*)?(?:(?:on|ignoring)\s*\([^)]*\)\s*)?(?:(?:group_left|group_right)\b\s*(?:\([^)]*\))?\s*)?/;

/**
 * The operands of an expression's outermost comparisons and set operators (`a > 0 and b == 0`:
 * a, b), without their vector-matching modifiers and without number literals: what an alert
 * compares, which must have data even while the comparison filters every series out.
 */
function comparedOperands(expr: string): string[] {
  const pieces: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < expr.length; i++) {
    const char = expr[i]!;
    if (quote !== null) {
      if (char === '\\') i++;
      else if (char === quote) quote = null;
      continue;
    }
    if (char === '"' || char === "'" || char === '`') quote = char;
    else if ('([{'.includes(char)) depth++;
    else if (')]}'.includes(char)) depth--;
    else if (depth === 0 && (i === 0 || /[\s)}\]]/.test(expr[i - 1]!) || /[=!<>]/.test(char))) {
      const operator = BINARY_OPERATOR.exec(expr.slice(i));
      if (operator === null) continue;
      pieces.push(expr.slice(start, i));
      i += operator[0].length - 1;
      start = i + 1;
    }
  }
  pieces.push(expr.slice(start));
  return pieces
    .map((piece) => piece.replace(MATCHING_MODIFIERS, '').trim())
    .filter((piece) => piece !== '' && !/^[-+]?[\d.]+(e[-+]?\d+)?$/i.test(piece));
}

// ---------------------------------------------------------------------------------------------
// promtool.

describe('the alert rules and the scrape config, checked by promtool', () => {
  it.skipIf(PROMTOOL === undefined)('promtool check rules configs/prometheus/alerts.yml passes', async () => {
    const { stdout } = await run(PROMTOOL!, ['check', 'rules', ALERTS_FILE]);
    expect(stdout).toContain('SUCCESS');
  });

  it.skipIf(PROMTOOL === undefined)(
    'promtool test rules configs/prometheus/alerts.test.yml passes: each alert fires on its fault, none on a healthy cluster',
    async () => {
      const result = await run(PROMTOOL!, ['test', 'rules', ALERTS_TEST_FILE]).catch(
        (error: { stdout?: string; stderr?: string }) => {
          throw new Error(`promtool test rules failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
        },
      );
      expect(result.stdout).toContain('SUCCESS');
    },
  );

  it.skipIf(PROMTOOL === undefined)(
    'promtool check config configs/prometheus/prometheus.yml passes (with the rule files it names)',
    async () => {
      const { stdout } = await run(PROMTOOL!, ['check', 'config', PROMETHEUS_CONFIG_FILE]);
      expect(stdout).toContain('is valid prometheus config file syntax');
      expect(stdout).toContain('alerts.yml');
    },
  );
});

it('finds the operands of an alert comparison', () => {
  expect(comparedOperands('a > 0 and changes(b[2m]) == 0')).toEqual(['a', 'changes(b[2m])']);
  expect(comparedOperands('x{r=~"a|b>c"} < on (job) group_left () (sum by (job) (up) - 1)')).toEqual([
    'x{r=~"a|b>c"}',
    '(sum by (job) (up) - 1)',
  ]);
  expect(comparedOperands('max by (job) (s) - on (job) group_right () s > 64')).toEqual([
    'max by (job) (s) - on (job) group_right () s',
  ]);
  expect(comparedOperands('rate(y[1m]) > bool 0 or s')).toEqual(['rate(y[1m])', 's']);
});

// ---------------------------------------------------------------------------------------------
// A real Prometheus scraping a real testnet.

interface QueryResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}
interface RulesResult {
  data: {
    groups: Array<{
      rules: Array<{ name: string; query: string; health: string; state?: string; lastError?: string }>;
    }>;
  };
}

let dir = '';
const replicas: TestReplicaProcess[] = [];
let prometheus: ReturnType<typeof spawnInOwnGroup> | null = null;
let prometheusOutput = '';
let client: PbftClient | null = null;
let stopLoad = false;
let load: Promise<number> | null = null;

async function prometheusGet<T>(path: string): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${PROMETHEUS_PORT}${path}`);
  return (await response.json()) as T;
}

async function query(expr: string): Promise<QueryResult> {
  return await prometheusGet<QueryResult>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = READY_TIMEOUT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; prometheus said:\n${prometheusOutput.slice(-2_000)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function keepTransferring(from: PbftClient, to: string): Promise<number> {
  let committed = 0;
  while (!stopLoad) {
    await from.transfer(to, 1);
    committed++;
    await new Promise((resolve) => setTimeout(resolve, TRANSFER_PAUSE_MS));
  }
  return committed;
}

async function stopPrometheus(): Promise<void> {
  const child = prometheus;
  prometheus = null;
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const killer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), PROMETHEUS_STOP_GRACE_MS);
  await exited;
  clearTimeout(killer);
}

describe.skipIf(PROMETHEUS === undefined)('a real Prometheus scraping a real 4-replica testnet', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pbft-dashboard-'));
    await run(process.execPath, [
      PBFT_BIN,
      'testnet',
      'init',
      '--dir',
      dir,
      '--replicas',
      String(REPLICAS),
      '--base-port',
      String(BASE_PORT),
      '--accounts',
      '2',
      '--force',
    ]);
    for (let id = 0; id < REPLICAS; id++)
      replicas.push(startReplicaProcess(dir, id, ['--log-level', 'warn']));

    // The example config's job, with this testnet's metrics ports, scraped every second; JSON is YAML.
    const config = {
      global: { scrape_interval: SCRAPE_INTERVAL, evaluation_interval: SCRAPE_INTERVAL },
      rule_files: [ALERTS_FILE],
      scrape_configs: [
        {
          job_name: JOB,
          static_configs: Array.from({ length: REPLICAS }, (_, id) => ({
            targets: [`127.0.0.1:${BASE_PORT + REPLICAS + id}`],
            labels: { replica: String(id) },
          })),
        },
      ],
    };
    const configFile = join(dir, 'prometheus.yml');
    await writeFile(configFile, JSON.stringify(config, null, 2));
    const args = [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'prometheus-data')}`,
      `--web.listen-address=127.0.0.1:${PROMETHEUS_PORT}`,
      '--log.level=warn',
    ];
    prometheus =
      SETPRIV === undefined
        ? spawnInOwnGroup(PROMETHEUS!, args, { stdio: ['ignore', 'pipe', 'pipe'] })
        : spawnInOwnGroup(SETPRIV, ['--pdeathsig', 'KILL', '--', PROMETHEUS!, ...args], {
            stdio: ['ignore', 'pipe', 'pipe'],
          });
    const collect = (chunk: Buffer): void => {
      prometheusOutput += chunk.toString();
    };
    prometheus.stdout?.on('data', collect);
    prometheus.stderr?.on('data', collect);

    client = await connectWhenUp(dir, 'alice');
    if (client === null) throw new Error('the testnet did not answer');
    const bob = readKeyFile(join(dir, 'accounts', 'bob.json')).publicKeyHex;
    await expect(client.transfer(bob, 1)).resolves.toMatchObject({ status: 'ok' });
    load = keepTransferring(client, bob);

    await until('prometheus to be ready', async () => {
      const response = await fetch(`http://127.0.0.1:${PROMETHEUS_PORT}/-/ready`);
      return response.ok ? true : undefined;
    });
    // Every replica scraped SCRAPES_BEFORE_QUERIES times, all while transfers commit.
    await until(`${SCRAPES_BEFORE_QUERIES} scrapes of every replica`, async () => {
      const result = await query(`min(count_over_time(pbft_view{job="${JOB}"}[1m]))`);
      const scrapes = Number(result.data?.result[0]?.value[1] ?? 0);
      const replicasUp = await query(`count(up{job="${JOB}"} == 1)`);
      return scrapes >= SCRAPES_BEFORE_QUERIES && Number(replicasUp.data?.result[0]?.value[1]) === REPLICAS
        ? true
        : undefined;
    });
  });

  afterAll(async () => {
    stopLoad = true;
    await load?.catch(() => 0);
    await client?.close();
    await stopPrometheus();
    await Promise.all(replicas.map((replica) => replica.kill9()));
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('every expression of the dashboard returns data, with a finite value, from the testnet', async () => {
    const expressions = dashboardExpressions();
    expect(expressions.length).toBeGreaterThan(10);
    const problems: string[] = [];
    for (const { where, expr } of expressions) {
      const result = await query(expr);
      const samples = result.data?.result ?? [];
      if (result.status !== 'success') problems.push(`${where}: ${expr}: ${result.error}`);
      else if (samples.length === 0) problems.push(`${where}: ${expr}: no data`);
      else if (!samples.some(({ value }) => Number.isFinite(Number(value[1]))))
        problems.push(`${where}: ${expr}: only NaN or infinite values`);
    }
    expect(problems).toEqual([]);
  });

  it('every alert rule evaluates cleanly, what it compares has data, and no fault alert holds on the healthy testnet', async () => {
    // Rules as Prometheus loaded them; evaluated at least once (evaluation_interval = scrape interval).
    const rules = await until('the alert rules to be evaluated', async () => {
      const loaded = (await prometheusGet<RulesResult>('/api/v1/rules?type=alert')).data.groups.flatMap(
        (group) => group.rules,
      );
      return loaded.length > 0 && loaded.every((rule) => rule.health === 'ok') ? loaded : undefined;
    });
    const alertsInFile = readFileSync(ALERTS_FILE, 'utf8').match(/^\s*- alert:/gm) ?? [];
    expect(rules).toHaveLength(alertsInFile.length);

    const problems: string[] = [];
    for (const rule of rules) {
      const healthyMeansQuiet = !MACHINE_SPEED_ALERTS.has(rule.name);
      if (healthyMeansQuiet && rule.state !== 'inactive')
        problems.push(`${rule.name} is ${rule.state} on a healthy testnet`);
      const whole = await query(rule.query);
      if (whole.status !== 'success') problems.push(`${rule.name}: ${rule.query}: ${whole.error}`);
      else if (healthyMeansQuiet && (whole.data?.result.length ?? 0) > 0)
        problems.push(`${rule.name} holds on a healthy testnet: ${JSON.stringify(whole.data?.result)}`);
      const operands = comparedOperands(rule.query);
      if (operands.length === 0) problems.push(`${rule.name}: ${rule.query}: no operand found`);
      for (const operand of operands) {
        const result = await query(operand);
        const samples = result.data?.result ?? [];
        if (samples.length === 0) problems.push(`${rule.name}: ${operand}: no data`);
        else if (!samples.some(({ value }) => Number.isFinite(Number(value[1]))))
          problems.push(`${rule.name}: ${operand}: only NaN or infinite values`);
      }
    }
    expect(problems).toEqual([]);
    stopLoad = true;
    expect(await load).toBeGreaterThan(0);
  });
});
