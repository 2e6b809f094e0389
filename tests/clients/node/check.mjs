// Runs the installed package's validator over payload files; prints {file name: violations | "not JSON"}.
//   node check.mjs FILE...   (from a project that installed @mobius/preview-jobs)
import { violations } from "@mobius/preview-jobs";
import { readFileSync } from "node:fs";
import { basename } from "node:path";

const out = {};
for (const file of process.argv.slice(2)) {
  let payload;
  try {
    payload = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    out[basename(file)] = "not JSON";
    continue;
  }
  out[basename(file)] = violations(payload);
}
console.log(JSON.stringify(out));
