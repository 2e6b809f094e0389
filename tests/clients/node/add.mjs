// Adds one valid job with addPreviewJob and tries one with duplicate output names; prints what happened.
//   node add.mjs REDIS_URL QUEUE   (from a project that installed @mobius/preview-jobs)
import { Queue } from "bullmq";
import IORedis from "ioredis";
import { addPreviewJob, DEFAULT_QUEUE, InvalidJobError } from "@mobius/preview-jobs";

const [redisUrl, queueName] = process.argv.slice(2);
const connection = new IORedis(redisUrl, { maxRetriesPerRequest: 1 });
const queue = new Queue(queueName, { connection });
try {
  const added = await addPreviewJob(queue, {
    jobId: "npm-1",
    priority: 4,
    source: { url: "https://assets.example/a.jpg" },
    outputs: [{ name: "thumb", format: "webp", width: 64, height: 64 }],
  });
  let refused = null;
  const twice = { name: "t", format: "png", width: 1, height: 1 };
  try {
    await addPreviewJob(queue, { jobId: "npm-2", source: { path: "a.jpg" }, outputs: [twice, twice] });
  } catch (err) {
    refused = err instanceof InvalidJobError ? err.violations : String(err);
  }
  console.log(JSON.stringify({ id: added.id, name: added.name, queue: DEFAULT_QUEUE, refused }));
} finally {
  await queue.close();
  await connection.quit();
}
