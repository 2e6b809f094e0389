// A Node.js producer for the preview worker, typed by the job contract through the npm package
// clients/node (@mobius/preview-jobs, generated from the JSON Schema). tests/clients/node/
// test_package.py installs the packed tarball into a scratch project and compiles this with tsc --strict.
import { Queue } from "bullmq";
import { addPreviewJob, DEFAULT_QUEUE, type JobResult, type PreviewJob } from "@mobius/preview-jobs";

// Validates first (InvalidJobError lists every violation), then adds the job the way the job API
// does: jobId and priority from the job, the worker's default attempts and exponential backoff.
export async function enqueuePreview(queue: Queue, job: PreviewJob): Promise<string> {
  const added = await addPreviewJob(queue, job);
  return added.id ?? "";
}

export function rendered(result: JobResult): number {
  return result.outcome === "completed" ? result.renditions : 0;
}

export const queueName: string = DEFAULT_QUEUE;

export const example: PreviewJob = {
  jobId: "upload-42",
  source: { url: "https://assets.example/uploads/42.jpg" },
  outputs: [
    { name: "thumb", format: "webp", width: 320, height: 320 },
    { name: "card", format: "jpeg", width: 1200, height: 630, fit: "cover", quality: 85 },
  ],
  metadata: { uploadedBy: "user-7" },
};
