// The TypeScript types of the job contract, generated from the JSON Schema (one contract, no copy).
//   node tests/node/gen-types.mjs [OUT]     (default: schemas/preview-job.d.ts)
// tests/worker/test_node_types.py regenerates them and fails if the committed file differs.
import { compileFromFile } from "json-schema-to-typescript";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const out = process.argv[2] ?? join(repo, "schemas", "preview-job.d.ts");
const banner = [
  "/* Generated from schemas/preview-job.schema.json by json-schema-to-typescript: do not edit.",
  " * Regenerate with `node tests/node/gen-types.mjs`. */",
].join("\n");
const ts = await compileFromFile(join(repo, "schemas", "preview-job.schema.json"), {
  bannerComment: banner,
  ignoreMinAndMaxItems: true,
  additionalProperties: false,
});
writeFileSync(out, ts);
