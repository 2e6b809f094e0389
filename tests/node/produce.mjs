// Test-only Node.js BullMQ producer.
//   node produce.mjs <redisUrl> <queueName> '<JSON array of {name?, data, opts?}>'
// Adds each job with Node.js BullMQ's own options (jobId, priority, delay, attempts, backoff)
// using the default `bull` prefix, and prints {"ids": [...]} on stdout.
import { Queue } from "bullmq";
import IORedis from "ioredis";

const [redisUrl, queueName, jobsJson] = process.argv.slice(2);
if (!redisUrl || !queueName || !jobsJson) {
  console.error("usage: node produce.mjs <redisUrl> <queueName> '<jobs JSON>'");
  process.exit(2);
}
// In native ESM, BullMQ 6.7 wants a ready ioredis client rather than connection options.
const connection = new IORedis(redisUrl, { maxRetriesPerRequest: 1 });
const queue = new Queue(queueName, { connection });
try {
  const ids = [];
  for (const job of JSON.parse(jobsJson)) {
    const added = await queue.add(job.name ?? "preview", job.data, job.opts ?? {});
    ids.push(added.id);
  }
  console.log(JSON.stringify({ ids }));
} finally {
  await queue.close();
  await connection.quit();
}
