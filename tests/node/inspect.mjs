// Test-only Node.js BullMQ reader: what Node.js sees of a job another producer wrote.
//   node inspect.mjs <redisUrl> <queueName> <jobId>
// Prints {"name", "data", "opts", "state", "returnvalue"} of the job (or {"missing": true}).
import { Queue, Job } from "bullmq";
import IORedis from "ioredis";

const [redisUrl, queueName, jobId] = process.argv.slice(2);
if (!redisUrl || !queueName || !jobId) {
  console.error("usage: node inspect.mjs <redisUrl> <queueName> <jobId>");
  process.exit(2);
}
const connection = new IORedis(redisUrl, { maxRetriesPerRequest: 1 });
const queue = new Queue(queueName, { connection });
try {
  const job = await Job.fromId(queue, jobId);
  if (!job) {
    console.log(JSON.stringify({ missing: true }));
  } else {
    const state = await job.getState();
    console.log(JSON.stringify({ name: job.name, data: job.data, opts: job.opts, state, returnvalue: job.returnvalue }));
  }
} finally {
  await queue.close();
  await connection.quit();
}
