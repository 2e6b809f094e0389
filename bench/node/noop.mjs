// Benchmark-only Node.js BullMQ 6.7 no-op worker (the baseline of issue 7).
//   node noop.mjs <redisUrl> <queueName> <concurrency> <jobs> <throughput|latency>
// throughput: the queue is pre-filled; times the drain of <jobs> jobs from worker start.
// latency: jobs carry data.t (enqueue time, ms); records start time minus data.t per job.
// Prints one JSON line: {"seconds", "jobs", "latencies_ms"?, "rss_peak_kb"}.
import { readFileSync } from "node:fs";
import { Worker } from "bullmq";
import IORedis from "ioredis";

const [redisUrl, queueName, concurrencyArg, jobsArg, mode] = process.argv.slice(2);
if (!redisUrl || !queueName || !concurrencyArg || !jobsArg || !mode) {
  console.error("usage: node noop.mjs <redisUrl> <queueName> <concurrency> <jobs> <throughput|latency>");
  process.exit(2);
}
const total = Number(jobsArg);
const latencies = [];
let done = 0;
let finish;
const finished = new Promise((resolve) => { finish = resolve; });
const connection = new IORedis(redisUrl, { maxRetriesPerRequest: null });
const worker = new Worker(
  queueName,
  async (job) => {
    if (mode === "latency") latencies.push(Date.now() - job.data.t);
    return null;
  },
  { connection, concurrency: Number(concurrencyArg), autorun: false, drainDelay: 5 },
);
worker.on("completed", () => { if (++done === total) finish(); });
await worker.waitUntilReady();
console.error("ready");
const started = performance.now();
worker.run();
await finished;
const seconds = (performance.now() - started) / 1000;
await worker.close();
await connection.quit();
const hwm = /VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"));
const out = { seconds, jobs: total, rss_peak_kb: hwm ? Number(hwm[1]) : null };
if (mode === "latency") out.latencies_ms = latencies;
console.log(JSON.stringify(out));
