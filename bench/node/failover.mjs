// Benchmark-only Node.js BullMQ no-op worker on a Sentinel-managed master (issue 14, part 3).
//   node failover.mjs <sentinelHostsCsv> <masterName> <password> <queueName> <concurrency>
// ioredis asks the sentinels for the master and reconnects to the promoted one after a failover.
// Prints "ready" on stderr once connected; runs until SIGTERM.
import { Worker } from "bullmq";

const [hostsArg, name, password, queueName, concurrencyArg] = process.argv.slice(2);
if (!hostsArg || !name || !password || !queueName || !concurrencyArg) {
  console.error("usage: node failover.mjs <host:port,...> <masterName> <password> <queueName> <concurrency>");
  process.exit(2);
}
const sentinels = hostsArg.split(",").map((hp) => {
  const [host, port] = hp.split(":");
  return { host, port: Number(port) };
});
const connection = { sentinels, name, password, maxRetriesPerRequest: null };
const worker = new Worker(queueName, async () => null, {
  connection,
  concurrency: Number(concurrencyArg),
  drainDelay: 5,
});
worker.on("error", () => {}); // reconnecting during the failover; ioredis retries by itself
await worker.waitUntilReady();
console.error("ready");
process.on("SIGTERM", async () => {
  await worker.close(true);
  process.exit(0);
});
