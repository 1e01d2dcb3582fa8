#!/usr/bin/env node
// Self-test of validate.mjs against ../../openapi.yaml: every record of good.jsonl
// (hand-written) and of recorded.jsonl (answers of a devnetd run, heatmap data shortened)
// must pass, every record of bad.jsonl must fail (each breaks one rule), and an empty
// record file must fail. Run with `npm run selftest` from tools/openapi.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const validator = join(here, '..', 'validate.mjs');
const spec = join(here, '..', '..', '..', 'openapi.yaml');

function run(records) {
  const r = spawnSync(process.execPath, [validator, spec, records], { encoding: 'utf8' });
  const m = /^openapi: (\d+) responses validated, (\d+) failed$/m.exec(r.stdout);
  return { status: r.status, out: r.stdout + r.stderr, n: m ? +m[1] : -1, failed: m ? +m[2] : -1 };
}

function lines(file) {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').length;
}

let passed = 0, failed = 0;
function check(name, ok, detail) {
  if (ok) passed++;
  else {
    failed++;
    console.log(`FAIL ${name}\n${detail}`);
  }
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}`);
}

const bad = join(here, 'bad.jsonl');
let r;
for (const name of ['good.jsonl', 'recorded.jsonl']) {
  const file = join(here, name);
  r = run(file);
  check(`${name}: all ${lines(file)} records pass`, r.status === 0 && r.n === lines(file) && r.failed === 0, r.out);
}
r = run(bad);
check(`bad.jsonl: all ${lines(bad)} records fail`, r.status === 1 && r.n === lines(bad) && r.failed === r.n, r.out);
const tmp = mkdtempSync(join(tmpdir(), 'devnet-openapi-'));
try {
  writeFileSync(join(tmp, 'empty.jsonl'), '\n');
  r = run(join(tmp, 'empty.jsonl'));
  check('an empty record file fails', r.status === 1 && r.n === 0, r.out);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
r = spawnSync(process.execPath, [validator], { encoding: 'utf8' });
check('no arguments: usage error (exit 2)', r.status === 2, r.stdout + r.stderr);

console.log(`selftest: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
