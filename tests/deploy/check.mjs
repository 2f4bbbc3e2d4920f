// Checks veer's manifests against the Kubernetes OpenAPI schemas, through the validators
// that kubernetes-models generates from them (one per kind, for the API version named).
//
//   node check.mjs schema FILE...       every object of every FILE is valid
//   node check.mjs same FILE1 FILE2     both hold the same objects (field order aside)
//   node check.mjs rejects FILE         the validator catches each of a set of bad fields
//                                       put into FILE's DaemonSet (it can fail)
//
// Exit 0 when the check holds, 1 with the reasons on stderr otherwise.
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments } from "yaml";

/** The objects of a YAML file, each with where it starts (file:line:col). */
function loadObjects(file) {
  const text = readFileSync(file, "utf8");
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\n") {
      lineStarts.push(i + 1);
    }
  }
  const where = (offset) => {
    let line = lineStarts.findLastIndex((s) => s <= offset);
    return `${file}:${line + 1}:${offset - lineStarts[line] + 1}`;
  };
  const objects = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      throw new Error(`${where(e.pos[0])}: ${e.message}`);
    }
    const value = doc.toJS();
    if (value === null) {
      continue; // an empty document (a trailing ---)
    }
    objects.push({ value, where: where(doc.contents.range[0]) });
  }
  return objects;
}

/** The kubernetes-models class for an object's apiVersion and kind. */
async function modelFor(obj) {
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    throw new Error("missing apiVersion or kind");
  }
  let mod;
  try {
    mod = await import(`kubernetes-models/${apiVersion}`);
  } catch {
    throw new Error(`no schema for apiVersion ${apiVersion}`);
  }
  if (typeof mod[kind] !== "function") {
    throw new Error(`no schema for kind ${kind} in ${apiVersion}`);
  }
  return mod[kind];
}

/** Schema errors of one object, each "field: what is wrong"; empty when valid. */
async function schemaErrors(obj) {
  let Model;
  try {
    Model = await modelFor(obj);
  } catch (e) {
    return [e.message];
  }
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    // ajv's message: "data/spec/x must be integer, data/spec/y must ...".
    return e.message.split(", data").map((m, i) => (i === 0 ? m : "data" + m));
  }
}

function describe(obj) {
  const ns = obj.metadata?.namespace ? `${obj.metadata.namespace}/` : "";
  return `${obj.kind} ${ns}${obj.metadata?.name}`;
}

async function checkSchema(files) {
  let bad = 0;
  let count = 0;
  for (const file of files) {
    for (const { value, where } of loadObjects(file)) {
      count++;
      for (const err of await schemaErrors(value)) {
        console.error(`${where}: ${describe(value)}: ${err}`);
        bad++;
      }
    }
  }
  if (count === 0) {
    console.error(`no objects in ${files.join(" ")}`);
    return false;
  }
  console.log(`${count} objects checked, ${bad} schema errors`);
  return bad === 0;
}

/** The first path at which two parsed objects differ, e.g. ".spec.template.spec.hostPID". */
function firstDifference(a, b, path = "") {
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) {
    return a === b ? null : path || ".";
  }
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = firstDifference(a[k], b[k], Array.isArray(a) ? `${path}[${k}]` : `${path}.${k}`);
    if (d !== null) {
      return d;
    }
  }
  return null;
}

function checkSame(a, b) {
  const key = (o) => `${o.apiVersion} ${o.kind} ${o.metadata?.namespace ?? ""}/${o.metadata?.name}`;
  const index = (file) => new Map(loadObjects(file).map((o) => [key(o.value), o]));
  const left = index(a);
  const right = index(b);
  let same = true;
  for (const [k, o] of left) {
    if (!right.has(k)) {
      console.error(`${o.where}: ${k} is not in ${b}`);
      same = false;
    } else if (!isDeepStrictEqual(o.value, right.get(k).value)) {
      const at = firstDifference(o.value, right.get(k).value);
      console.error(`${o.where}: ${k} differs from ${right.get(k).where} at ${at}`);
      same = false;
    }
  }
  for (const [k, o] of right) {
    if (!left.has(k)) {
      console.error(`${o.where}: ${k} is not in ${a}`);
      same = false;
    }
  }
  return same;
}

// Each bad field a reviewer could let through, put into a copy of the real DaemonSet,
// and the schema path the validator must name.
const kBadFields = [
  {
    what: "a number given as a string",
    field: "/spec/template/spec/terminationGracePeriodSeconds",
    apply: (ds) => (ds.spec.template.spec.terminationGracePeriodSeconds = "5"),
  },
  {
    what: "a list given as a string",
    field: "/spec/template/spec/containers/0/securityContext/capabilities/add",
    apply: (ds) => (ds.spec.template.spec.containers[0].securityContext.capabilities.add = "NET_ADMIN"),
  },
  {
    what: "a value outside an enum",
    field: "/spec/updateStrategy/type",
    apply: (ds) => (ds.spec.updateStrategy.type = "Rolling"),
  },
  {
    what: "a required field missing",
    field: "/spec/template/spec/containers/0",
    apply: (ds) => delete ds.spec.template.spec.containers[0].name,
  },
  {
    what: "a probe port that is neither a number nor a name",
    field: "/spec/template/spec/containers/0/readinessProbe/httpGet/port",
    apply: (ds) => (ds.spec.template.spec.containers[0].readinessProbe.httpGet.port = { port: 9967 }),
  },
];

async function checkRejects(file) {
  const ds = loadObjects(file).find((o) => o.value.kind === "DaemonSet")?.value;
  if (!ds) {
    console.error(`${file}: no DaemonSet`);
    return false;
  }
  const base = await schemaErrors(ds);
  if (base.length > 0) {
    console.error(`the DaemonSet itself is invalid, so a rejection proves nothing: ${base[0]}`);
    return false;
  }
  let ok = true;
  for (const bad of kBadFields) {
    const copy = structuredClone(ds);
    bad.apply(copy);
    const errs = await schemaErrors(copy);
    if (!errs.some((e) => e.startsWith(`data${bad.field} `))) {
      console.error(`${bad.what} at ${bad.field} passed validation: ${errs.join("; ") || "no error"}`);
      ok = false;
    } else {
      console.log(`${bad.what}: rejected (${errs.find((e) => e.startsWith(`data${bad.field} `))})`);
    }
  }
  return ok;
}

const [mode, ...args] = process.argv.slice(2);
let ok;
try {
  if (mode === "schema" && args.length > 0) {
    ok = await checkSchema(args);
  } else if (mode === "same" && args.length === 2) {
    ok = checkSame(args[0], args[1]);
  } else if (mode === "rejects" && args.length === 1) {
    ok = await checkRejects(args[0]);
  } else {
    console.error("usage: check.mjs schema FILE... | same FILE1 FILE2 | rejects FILE");
    process.exit(2);
  }
} catch (e) {
  console.error(e.message);
  ok = false;
}
process.exit(ok ? 0 : 1);
