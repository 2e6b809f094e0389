/* Generated from schemas/preview-job.schema.json by json-schema-to-typescript: do not edit.
 * Regenerate with `node tests/node/gen-types.mjs`. */

/**
 * One preview job: a source and the renditions to make from it. The single source of truth for the API (at enqueue) and the worker (again, before rendering).
 */
export interface PreviewJob {
  /**
   * Idempotency key; becomes the BullMQ job id. The same jobId enqueued twice yields one job.
   */
  jobId?: string;
  /**
   * Exactly one of inline (base64), path (relative to PREVIEW_INPUT_ROOT) or url (http/https, host allowlist).
   */
  source: {
    inline?: string;
    path?: string;
    url?: string;
  };
  /**
   * 1 to 8 renditions with unique names.
   *
   * @minItems 1
   * @maxItems 8
   */
  outputs: Output[];
  /**
   * Validate and count, never render.
   */
  dryRun?: boolean;
  /**
   * BullMQ priority: 0 is none, 1 is highest.
   */
  priority?: number;
  /**
   * Caller data echoed into the manifest; bounded in keys and value sizes.
   */
  metadata?: {
    [k: string]: string | number | boolean | null;
  };
}
export interface Output {
  name: string;
  format: "webp" | "png" | "jpeg";
  width: number;
  height: number;
  fit?: "contain" | "cover";
  quality?: number;
}
