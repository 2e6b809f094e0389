// A Node.js producer's side of the preview worker's contract. See the package README.
import type { Job, JobsOptions, Queue } from "bullmq";
import { DEFAULT_ATTEMPTS, DEFAULT_BACKOFF, JOB_NAME } from "./generated/defaults.js";
import type { JobResult } from "./generated/documents.js";
import type { PreviewJob } from "./generated/job.js";
import { assertPreviewJob } from "./validate.js";

export type * from "./generated/answers.js";
export * from "./generated/defaults.js";
export type * from "./generated/documents.js";
export type * from "./generated/job.js";
export * from "./validate.js";

/**
 * Validate `job` and add it to `queue` as the job API would: named `preview`, with the job's
 * `jobId` (idempotent: the same id twice is one job) and `priority`, and the worker's default
 * attempts and exponential backoff. `opts` override any of them. Throws {@link InvalidJobError}
 * before anything reaches Redis when the job breaks the contract.
 */
export async function addPreviewJob(
  queue: Queue,
  job: PreviewJob,
  opts: JobsOptions = {},
): Promise<Job<PreviewJob, JobResult, string>> {
  assertPreviewJob(job);
  const defaults: JobsOptions = { attempts: DEFAULT_ATTEMPTS, backoff: { ...DEFAULT_BACKOFF } };
  if (job.jobId !== undefined) defaults.jobId = job.jobId;
  if (job.priority) defaults.priority = job.priority;
  return (await queue.add(JOB_NAME, job, { ...defaults, ...opts })) as Job<PreviewJob, JobResult, string>;
}
