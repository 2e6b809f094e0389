// The runtime half of the contract: what the types cannot say (patterns, lengths, numeric bounds,
// at most 8 outputs, unique output names) checked by the schema itself, compiled by ajv.
import type { PreviewJob } from "./generated/job.js";
import { validateJob } from "./generated/validate-job.js";

/** One violation of the contract: where (a JSON path such as `$.outputs[0].width`) and what. */
export interface Violation {
  path: string;
  message: string;
}

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

type Compiled = ((value: unknown) => boolean) & { errors?: AjvError[] | null };

/** Thrown by {@link assertPreviewJob} and {@link addPreviewJob}: the job breaks the contract. */
export class InvalidJobError extends Error {
  readonly violations: Violation[];

  constructor(violations: Violation[]) {
    super(`invalid preview job: ${violations.map((v) => `${v.path}: ${v.message}`).join("; ")}`);
    this.name = "InvalidJobError";
    this.violations = violations;
  }
}

function jsonPath(pointer: string): string {
  return pointer
    .split("/")
    .slice(1)
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : `${path}.${part}`), "$");
}

function describe(error: AjvError): Violation {
  const path = jsonPath(error.instancePath);
  if (error.keyword === "additionalProperties") {
    return { path, message: `unknown property not allowed: ${String(error.params.additionalProperty)}` };
  }
  return { path, message: error.message ?? error.keyword };
}

/** Every violation of the job schema in `value` (empty when it is a valid job). */
export function violations(value: unknown): Violation[] {
  const check = validateJob as Compiled;
  if (check(value)) return [];
  return (check.errors ?? []).map(describe).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Whether `value` is a valid job: the schema's every rule, not only what the types hold. */
export function isPreviewJob(value: unknown): value is PreviewJob {
  return violations(value).length === 0;
}

/** Throw {@link InvalidJobError}, listing every violation, unless `value` is a valid job. */
export function assertPreviewJob(value: unknown): asserts value is PreviewJob {
  const found = violations(value);
  if (found.length > 0) throw new InvalidJobError(found);
}
