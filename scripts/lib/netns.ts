/**
 * Separate network namespaces for the replicas of a chaos run, so that faults hit real links:
 *
 *   root namespace (the chaos runner and its clients)
 *     bridge <prefix>br 10.231.X.1/24
 *       ├─ veth <prefix>h0 ── namespace <prefix>-0: <prefix>n0 10.231.X.10  (replica 0)
 *       ├─ veth <prefix>h1 ── namespace <prefix>-1: <prefix>n1 10.231.X.11  (replica 1)
 *       …
 *
 * A partition takes a replica's link down (it hears nobody and nobody hears it); a throttle puts a
 * token-bucket filter (tbf) on both ends of its link; delay uses tc netem when the kernel has it;
 * loss is an nftables rule inside the replica's namespace that drops a random share of the packets
 * it sends and receives (nftables needs no netem, which many kernels, this machine's included,
 * lack). Everything needs root and iproute2, loss also the `nft` command (Debian: nftables);
 * `probeNetns` says why not when something cannot work, and the chaos runner skips those faults.
 */
import { execFileSync } from 'node:child_process';

/** A slow link: 512 kbit/s with at most 100 ms of queue, after which packets are dropped. */
const THROTTLE_TBF = ['rate', '512kbit', 'burst', '16kbit', 'latency', '100ms'];
/** netem: 80 ± 40 ms of delay. */
const NETEM_DELAY = ['delay', '80ms', '40ms'];
/** Share of packets dropped each way (TCP retransmits them, so the link is slow and bursty, not dead). */
const LOSS_PERCENT = 15;
/** The nftables table that holds a replica's loss rules; deleting it heals the link. */
const LOSS_TABLE = 'pbftloss';
/**
 * nftables: a packet is dropped when a random number below 100 is below LOSS_PERCENT; the counter
 * shows that the fault really dropped packets.
 */
const LOSS_RULE = ['numgen', 'random', 'mod', '100', '<', `${LOSS_PERCENT}`, 'counter', 'drop'];

export type LinkFault = 'partition' | 'throttle' | 'delay' | 'loss';

export type NetnsCapability = 'namespaces' | 'netem' | 'nftables';

/**
 * What works on this machine: `namespaces` (namespaces, veth pairs and bridges: partitions and
 * throttles), `netem` (tc netem in the kernel: delay), `nftables` (nft inside a namespace: loss).
 * Each capability that is missing has a one-line reason that names what to install or change.
 */
export interface NetnsSupport {
  available: Record<NetnsCapability, boolean>;
  missing: Partial<Record<NetnsCapability, string>>;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function tc(...args: string[]): void {
  execFileSync('tc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** nft inside namespace `ns`; each argument is one token of nft's own syntax. */
function nftIn(ns: string, ...args: string[]): void {
  ip('netns', 'exec', ns, 'nft', ...args);
}

/**
 * Drop LOSS_PERCENT of the packets namespace `ns` sends and of those it receives: a table with an
 * output and an input chain, each with a `numgen random` rule.
 */
function addLossRules(ns: string, table: string): void {
  nftIn(ns, 'add', 'table', 'inet', table);
  for (const [chain, hook] of [
    ['out', 'output'],
    ['in', 'input'],
  ] as const) {
    nftIn(ns, 'add', 'chain', 'inet', table, chain, `{ type filter hook ${hook} priority 0 ; }`);
    nftIn(ns, 'add', 'rule', 'inet', table, chain, ...LOSS_RULE);
  }
}

function quiet(action: () => void): void {
  try {
    action();
  } catch {
    // cleanup of something that may not exist
  }
}

function errorLine(error: unknown): string {
  const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
  return (stderr !== undefined && stderr !== '' ? stderr : (error as Error).message).split('\n')[0]!;
}

function hasCommand(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Try the operations the chaos runner needs on a scratch namespace, and report what works. */
export function probeNetns(): NetnsSupport {
  const missing: Partial<Record<NetnsCapability, string>> = {};
  const support = (): NetnsSupport => ({
    available: {
      namespaces: missing.namespaces === undefined,
      netem: missing.namespaces === undefined && missing.netem === undefined,
      nftables: missing.namespaces === undefined && missing.nftables === undefined,
    },
    missing,
  });
  if (process.getuid?.() !== 0) {
    missing.namespaces = 'network faults need root (ip netns, tc, nft)';
    return support();
  }
  // Short names: Linux interface names are at most 15 characters.
  const name = `pp${process.pid % 100_000}`;
  try {
    ip('netns', 'add', name);
    ip('link', 'add', `${name}a`, 'type', 'veth', 'peer', 'name', `${name}b`);
    ip('link', 'add', `${name}br`, 'type', 'bridge');
    try {
      tc('qdisc', 'add', 'dev', `${name}a`, 'root', 'netem', ...NETEM_DELAY);
    } catch (error) {
      missing.netem = `tc netem is unavailable (${errorLine(error)}): delay faults are skipped`;
    }
    if (!hasCommand('nft')) {
      missing.nftables = 'the nft command is missing (Debian package nftables): loss faults are skipped';
    } else {
      try {
        // The very rules a loss fault installs, in the scratch namespace.
        addLossRules(name, `${LOSS_TABLE}probe`);
      } catch (error) {
        missing.nftables = `nftables does not work in a namespace (${errorLine(error)}): loss faults are skipped`;
      }
    }
  } catch (error) {
    missing.namespaces = `network namespaces are unavailable (${errorLine(error)}): network faults are skipped`;
  } finally {
    quiet(() => ip('link', 'del', `${name}a`));
    quiet(() => ip('link', 'del', `${name}br`));
    quiet(() => ip('netns', 'del', name));
  }
  return support();
}

/** One namespace per replica on a private bridge; `teardown` removes all of it. */
export class ReplicaNetwork {
  readonly prefix: string;
  readonly subnet: string;
  readonly count: number;
  private readonly faults = new Map<number, LinkFault>();

  constructor(count: number) {
    // Short names: Linux interface names are at most 15 characters.
    this.prefix = `pc${process.pid % 100_000}`;
    this.subnet = `10.231.${process.pid % 250}`;
    this.count = count;
  }

  get bridge(): string {
    return `${this.prefix}br`;
  }

  namespace(id: number): string {
    return `${this.prefix}-${id}`;
  }

  hostOf(id: number): string {
    return `${this.subnet}.${10 + id}`;
  }

  /** The command prefix that runs a program inside replica `id`'s namespace. */
  launcherOf(id: number): string[] {
    return ['ip', 'netns', 'exec', this.namespace(id)];
  }

  private hostEnd(id: number): string {
    return `${this.prefix}h${id}`;
  }

  private namespaceEnd(id: number): string {
    return `${this.prefix}n${id}`;
  }

  setup(): void {
    this.teardown();
    ip('link', 'add', this.bridge, 'type', 'bridge');
    ip('addr', 'add', `${this.subnet}.1/24`, 'dev', this.bridge);
    ip('link', 'set', this.bridge, 'up');
    for (let id = 0; id < this.count; id++) {
      const ns = this.namespace(id);
      ip('netns', 'add', ns);
      ip('link', 'add', this.hostEnd(id), 'type', 'veth', 'peer', 'name', this.namespaceEnd(id));
      ip('link', 'set', this.namespaceEnd(id), 'netns', ns);
      ip('link', 'set', this.hostEnd(id), 'master', this.bridge);
      ip('link', 'set', this.hostEnd(id), 'up');
      ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${this.hostOf(id)}/24`, 'dev', this.namespaceEnd(id));
      ip('netns', 'exec', ns, 'ip', 'link', 'set', this.namespaceEnd(id), 'up');
      ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
    }
  }

  /** Put `fault` on replica `id`'s link (replacing any fault already there). */
  inject(id: number, fault: LinkFault): void {
    this.heal(id);
    const host = this.hostEnd(id);
    const inner = [
      'netns',
      'exec',
      this.namespace(id),
      'tc',
      'qdisc',
      'add',
      'dev',
      this.namespaceEnd(id),
      'root',
    ];
    switch (fault) {
      case 'partition':
        ip('link', 'set', host, 'down');
        break;
      case 'throttle':
        tc('qdisc', 'add', 'dev', host, 'root', 'tbf', ...THROTTLE_TBF);
        ip(...inner, 'tbf', ...THROTTLE_TBF);
        break;
      case 'delay':
        tc('qdisc', 'add', 'dev', host, 'root', 'netem', ...NETEM_DELAY);
        ip(...inner, 'netem', ...NETEM_DELAY);
        break;
      case 'loss':
        addLossRules(this.namespace(id), LOSS_TABLE);
        break;
    }
    this.faults.set(id, fault);
  }

  heal(id: number): void {
    const fault = this.faults.get(id);
    if (fault === undefined) return;
    this.faults.delete(id);
    if (fault === 'partition') {
      ip('link', 'set', this.hostEnd(id), 'up');
      return;
    }
    if (fault === 'loss') {
      nftIn(this.namespace(id), 'delete', 'table', 'inet', LOSS_TABLE);
      return;
    }
    quiet(() => tc('qdisc', 'del', 'dev', this.hostEnd(id), 'root'));
    quiet(() =>
      ip('netns', 'exec', this.namespace(id), 'tc', 'qdisc', 'del', 'dev', this.namespaceEnd(id), 'root'),
    );
  }

  /** Packets the loss rules on replica `id`'s namespace have dropped so far; null without a loss fault. */
  droppedPackets(id: number): number | null {
    if (this.faults.get(id) !== 'loss') return null;
    const listing = execFileSync(
      'ip',
      ['netns', 'exec', this.namespace(id), 'nft', 'list', 'table', 'inet', LOSS_TABLE],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    return [...listing.matchAll(/counter packets (\d+)/g)].reduce((sum, match) => sum + Number(match[1]), 0);
  }

  healAll(): void {
    for (const id of [...this.faults.keys()]) this.heal(id);
  }

  /** Remove the bridge, the veth pairs and the namespaces (safe to call twice). */
  teardown(): void {
    for (let id = 0; id < this.count; id++) {
      quiet(() => ip('link', 'del', this.hostEnd(id)));
      quiet(() => ip('netns', 'del', this.namespace(id)));
    }
    quiet(() => ip('link', 'del', this.bridge));
    this.faults.clear();
  }
}
