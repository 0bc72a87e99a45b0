/**
 * The load of the benchmark and the chaos runner in a child process: started with `fork()` by
 * `startLoadProcess`, it runs a LoadGenerator and answers the parent's messages over IPC. It exits when the
 * parent disconnects or dies, so no client outlives a benchmark.
 */
import { type FromWorker, LoadGenerator, type ToWorker } from './load-generator.ts';

let generator: LoadGenerator | null = null;

function reply(message: FromWorker, then?: () => void): void {
  process.send?.(message, undefined, undefined, then);
}

process.on('message', (message: ToWorker) => {
  void (async () => {
    try {
      switch (message.type) {
        case 'start':
          generator = await LoadGenerator.start(message.options);
          reply({ type: 'started' });
          return;
        case 'collect':
          if (generator === null) throw new Error('collect before start');
          reply({ type: 'window', window: generator.collect() });
          return;
        case 'totals':
          if (generator === null) throw new Error('totals before start');
          reply({ type: 'totals', totals: generator.totals() });
          return;
        case 'drain':
          if (generator === null) throw new Error('drain before start');
          await generator.drain();
          reply({ type: 'drained' });
          return;
        case 'stop':
          await generator?.stop();
          generator = null;
          // Abandoned transfers still hold timers: exit once the answer is on its way.
          reply({ type: 'stopped' }, () => process.exit(0));
          return;
      }
    } catch (error) {
      reply({ type: 'failed', message: (error as Error).message });
    }
  })();
});

process.on('disconnect', () => {
  void (async () => {
    await generator?.stop().catch(() => undefined);
    process.exit(0);
  })();
});
