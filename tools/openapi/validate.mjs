#!/usr/bin/env node
// Validates recorded HTTP responses against openapi.yaml (OpenAPI 3.1).
//
//   node tools/openapi/validate.mjs openapi.yaml RECORDS.jsonl
//
// RECORDS.jsonl: one JSON object per line (blank lines are skipped):
//   {"method": "post", "path": "/score", "status": 200,
//    "content_type": "application/json", "body": <the parsed JSON body>,
//    "headers": {"X-Request-ID": "..."}}                      <- "headers" is optional
// "path" is the path template ("/jobs/{id}"); a concrete path ("/jobs/job-1") is matched
// against the templates too. A text body (/metrics) is given as a JSON string. A response
// without a body (none is declared) is given with "body": null or without "body".
//
// Each body is validated with ajv (JSON Schema 2020-12, ajv-formats) against the schema
// declared for that operation, status and content type. When a record carries "headers",
// the response headers the spec marks required must be there, and every declared header
// that is there must match its schema (names compared case-insensitively).
//
// An unknown path answered 404 and a known path answered 405 for a method it does not
// serve are validated against the root extension x-unmatched-route-responses.
//
// Prints one line per failing record, then "openapi: N responses validated, M failed".
// Exits 1 if any record failed (including a record naming an operation, status or content
// type the spec does not declare, or a file with no record at all), 2 on usage errors or
// an unreadable spec.

import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import YAML from 'yaml';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const ROOT_ID = 'urn:devnet:openapi';
const SCHEMA_PREFIX = '#/components/schemas/';

function die(msg) {
  console.error(`validate: ${msg}`);
  process.exit(2);
}

// ---- the spec ---------------------------------------------------------------------------

function pointerGet(doc, ref) {
  if (!ref.startsWith('#/')) throw new Error(`only local $ref are supported, not ${ref}`);
  let cur = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object' || !(key in cur)) throw new Error(`unresolved $ref ${ref}`);
    cur = cur[key];
  }
  return cur;
}

// Follows $ref chains of OpenAPI objects (responses, headers, parameters).
function deref(doc, obj) {
  const seen = new Set();
  while (obj && typeof obj === 'object' && typeof obj.$ref === 'string') {
    if (seen.has(obj.$ref)) throw new Error(`$ref cycle at ${obj.$ref}`);
    seen.add(obj.$ref);
    obj = pointerGet(doc, obj.$ref);
  }
  return obj;
}

// A deep copy of a schema whose component refs point into the root schema registered
// with ajv (ROOT_ID, components.schemas as $defs).
function rewriteRefs(schema, where) {
  if (Array.isArray(schema)) return schema.map((s, i) => rewriteRefs(s, `${where}/${i}`));
  if (schema === null || typeof schema !== 'object') return schema;
  const out = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === '$ref' && typeof v === 'string') {
      if (!v.startsWith(SCHEMA_PREFIX))
        throw new Error(`${where}: schema $ref ${v} is not under ${SCHEMA_PREFIX}`);
      out[k] = `${ROOT_ID}#/$defs/${v.slice(SCHEMA_PREFIX.length)}`;
    } else if (k === 'example' || k === 'examples') {
      out[k] = v; // annotations: keep as they are
    } else {
      out[k] = rewriteRefs(v, `${where}/${k}`);
    }
  }
  return out;
}

function loadSpec(file) {
  let doc;
  try {
    doc = YAML.parse(readFileSync(file, 'utf8'), { maxAliasCount: -1 });
  } catch (e) {
    die(`${file}: ${e.message}`);
  }
  if (!doc || typeof doc !== 'object' || !doc.paths) die(`${file}: not an OpenAPI document`);
  if (!/^3\.1\./.test(String(doc.openapi)))
    die(`${file}: openapi ${doc.openapi}: this validator reads OpenAPI 3.1 (JSON Schema 2020-12)`);
  return doc;
}

function makeAjv(doc) {
  const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true, discriminator: true });
  addFormats(ajv);
  // OpenAPI's own schema keywords that JSON Schema 2020-12 does not define.
  ajv.addVocabulary(['example', 'xml', 'externalDocs']);
  const defs = {};
  for (const [name, s] of Object.entries(doc.components?.schemas ?? {}))
    defs[name] = rewriteRefs(s, `${SCHEMA_PREFIX}${name}`);
  ajv.addSchema({ $id: ROOT_ID, $defs: defs });
  return ajv;
}

// ---- matching a record to the spec ----------------------------------------------------

function templateRegex(template) {
  const parts = template.split(/(\{[^}]+\})/).map((p) =>
    p.startsWith('{') ? '[^/]+' : p.replace(/[.*+?^$()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('')}$`);
}

function findPath(doc, path) {
  if (Object.hasOwn(doc.paths, path)) return path;
  // A concrete path: prefer a template without parameters, then the most literal one.
  const hits = Object.keys(doc.paths).filter((t) => templateRegex(t).test(path));
  hits.sort((a, b) => (a.match(/\{/g) || []).length - (b.match(/\{/g) || []).length);
  return hits[0];
}

function mediaEssence(ct) {
  return String(ct).split(';')[0].trim().toLowerCase();
}

function normaliseMedia(ct) {
  return String(ct).split(';').map((p) => p.trim().toLowerCase()).filter(Boolean).join('; ');
}

function findMedia(content, contentType) {
  const keys = Object.keys(content);
  const full = normaliseMedia(contentType), essence = mediaEssence(contentType);
  return keys.find((k) => normaliseMedia(k) === full)
    ?? keys.find((k) => mediaEssence(k) === essence)
    ?? keys.find((k) => mediaEssence(k) === `${essence.split('/')[0]}/*`)
    ?? keys.find((k) => mediaEssence(k) === '*/*');
}

// Returns {response, where} or {error}.
function findResponse(doc, rec) {
  const method = String(rec.method ?? '').toLowerCase();
  const status = String(rec.status ?? '');
  if (!METHODS.includes(method)) return { error: `unknown method ${JSON.stringify(rec.method)}` };
  if (!/^[1-5][0-9][0-9]$/.test(status)) return { error: `bad status ${JSON.stringify(rec.status)}` };
  if (typeof rec.path !== 'string' || !rec.path.startsWith('/'))
    return { error: `bad path ${JSON.stringify(rec.path)}` };
  const unmatched = doc['x-unmatched-route-responses'] ?? {};
  const template = findPath(doc, rec.path);
  if (template === undefined) {
    if (status === '404' && unmatched['404'])
      return { response: deref(doc, unmatched['404']), where: 'x-unmatched-route-responses/404' };
    return { error: `path ${rec.path} is not declared (an unknown path may only answer 404)` };
  }
  const op = doc.paths[template][method];
  if (!op) {
    if (status === '405' && unmatched['405'])
      return { response: deref(doc, unmatched['405']), where: 'x-unmatched-route-responses/405' };
    return { error: `${method.toUpperCase()} ${template} is not declared (an undeclared method may only answer 405)` };
  }
  const responses = op.responses ?? {};
  const key = Object.hasOwn(responses, status) ? status
    : Object.hasOwn(responses, `${status[0]}XX`) ? `${status[0]}XX` : undefined;
  if (key === undefined)
    return { error: `${method.toUpperCase()} ${template} does not declare status ${status}` };
  return { response: deref(doc, responses[key]), where: `${method.toUpperCase()} ${template} ${key}` };
}

// ---- validation -------------------------------------------------------------------------

const compiled = new Map();

function validatorFor(ajv, schema, cacheKey) {
  if (!compiled.has(cacheKey)) compiled.set(cacheKey, ajv.compile(rewriteRefs(schema, cacheKey)));
  return compiled.get(cacheKey);
}

// ajv's errors as text, naming the offending property or the allowed values.
function ajvErrors(ajv, errors, dataVar) {
  return (errors ?? []).map((e) => {
    let msg = e.message;
    if (e.params?.additionalProperty !== undefined) msg = `must NOT have additional property '${e.params.additionalProperty}'`;
    else if (e.params?.allowedValues !== undefined) msg = `must be one of ${JSON.stringify(e.params.allowedValues)}`;
    else if (e.keyword === 'const') msg = `must be ${JSON.stringify(e.params.allowedValue)}`;
    return `${dataVar}${e.instancePath} ${msg}`;
  }).join('; ');
}

// Validates a body; on failure returns ajv's errors. When the schema is a oneOf/anyOf of
// alternatives (ScoreResult or ScoreBatch), ajv reports every alternative's errors at
// once; this reports those of the alternative closest to the body (fewest errors).
function validateBody(ajv, schema, key, body) {
  const validate = validatorFor(ajv, schema, key);
  if (validate(body)) return null;
  const alternatives = schema.oneOf ?? schema.anyOf;
  const keys = Object.keys(schema).filter((k) => !['description', 'title', 'example', 'examples'].includes(k));
  if (Array.isArray(alternatives) && keys.length === 1) {
    let best = null;
    alternatives.forEach((alt, i) => {
      const v = validatorFor(ajv, alt, `${key} #${i}`);
      if (!v(body) && (best === null || v.errors.length < best.errors.length))
        best = { errors: v.errors, name: alt.$ref ? alt.$ref.split('/').pop() : `alternative ${i}` };
    });
    if (best) {
      return `${ajvErrors(ajv, best.errors, 'body')} (body matches none of the ${alternatives.length} alternatives; closest: ${best.name})`;
    }
  }
  return ajvErrors(ajv, validate.errors, 'body');
}

function headerValue(schema, value) {
  const t = schema?.type;
  const types = Array.isArray(t) ? t : [t];
  if ((types.includes('integer') || types.includes('number')) && /^-?\d+(\.\d+)?$/.test(String(value)))
    return Number(value);
  return value;
}

function checkRecord(doc, ajv, rec) {
  const found = findResponse(doc, rec);
  if (found.error) return [found.error];
  const { response, where } = found;
  const problems = [];
  const content = response.content;
  const hasBody = rec.body !== undefined && rec.body !== null;
  if (!content || Object.keys(content).length === 0) {
    if (hasBody) problems.push(`${where} declares no body, but the record has one`);
  } else if (rec.content_type === undefined || rec.content_type === null) {
    problems.push(`${where}: the record has no content_type`);
  } else {
    const media = findMedia(content, rec.content_type);
    if (media === undefined) {
      problems.push(`${where} does not declare content type ${rec.content_type} (declared: ${Object.keys(content).join(', ')})`);
    } else if (content[media].schema !== undefined) {
      const problem = validateBody(ajv, content[media].schema, `${where} ${media}`, hasBody ? rec.body : null);
      if (problem) problems.push(`${where} ${media}: ${problem}`);
    }
  }
  if (rec.headers && typeof rec.headers === 'object') {
    const got = Object.fromEntries(Object.entries(rec.headers).map(([k, v]) => [k.toLowerCase(), v]));
    for (const [name, h0] of Object.entries(response.headers ?? {})) {
      const h = deref(doc, h0);
      const value = got[name.toLowerCase()];
      if (value === undefined) {
        if (h.required) problems.push(`${where}: required header ${name} is missing`);
        continue;
      }
      if (h.schema) {
        const validate = validatorFor(ajv, h.schema, `${where} header ${name}`);
        if (!validate(headerValue(h.schema, value)))
          problems.push(`${where}: header ${name}: ${ajvErrors(ajv, validate.errors, name)}`);
      }
    }
  }
  return problems;
}

function main() {
  const [specFile, recordsFile] = process.argv.slice(2);
  if (!specFile || !recordsFile) die('usage: node validate.mjs openapi.yaml RECORDS.jsonl');
  const doc = loadSpec(specFile);
  let ajv;
  try {
    ajv = makeAjv(doc);
  } catch (e) {
    die(`${specFile}: ${e.message}`);
  }
  let text;
  try {
    text = readFileSync(recordsFile, 'utf8');
  } catch (e) {
    die(`${recordsFile}: ${e.message}`);
  }
  let n = 0, failed = 0;
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const index = n++;
    let rec, problems;
    try {
      rec = JSON.parse(line);
      if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) throw new Error('not a JSON object');
      problems = checkRecord(doc, ajv, rec);
    } catch (e) {
      problems = [e instanceof SyntaxError ? `not JSON: ${e.message}` : e.message];
    }
    if (problems.length) {
      failed++;
      const what = rec ? `${String(rec.method).toUpperCase()} ${rec.path} ${rec.status}` : '?';
      console.log(`record ${index} (line ${i + 1}, ${what}): ${problems.join(' | ')}`);
    }
  });
  if (n === 0) console.log(`${recordsFile} holds no record: nothing was validated`);
  console.log(`openapi: ${n} responses validated, ${failed} failed`);
  process.exit(failed || n === 0 ? 1 : 0);
}

main();
