// A Node.js producer for the preview worker, typed by the job contract (schemas/preview-job.d.ts,
// generated from the JSON Schema). tests/worker/test_node_types.py compiles it with tsc.
import { Queue } from "bullmq";
import type { PreviewJob } from "../../schemas/preview-job.js";

// The worker's defaults (PREVIEW_JOB_ATTEMPTS, PREVIEW_BACKOFF_MS): what PreviewClient uses too.
const ATTEMPTS = 3;
const BACKOFF_MS = 1000;

export async function enqueuePreview(queue: Queue, job: PreviewJob): Promise<string> {
  const added = await queue.add("preview", job, {
    jobId: job.jobId, // idempotent: the same jobId twice is one job
    priority: job.priority,
    attempts: ATTEMPTS,
    backoff: { type: "exponential", delay: BACKOFF_MS },
  });
  return added.id ?? "";
}

export const example: PreviewJob = {
  jobId: "upload-42",
  source: { url: "https://assets.example/uploads/42.jpg" },
  outputs: [
    { name: "thumb", format: "webp", width: 320, height: 320 },
    { name: "card", format: "jpeg", width: 1200, height: 630, fit: "cover", quality: 85 },
  ],
  metadata: { uploadedBy: "user-7" },
};
