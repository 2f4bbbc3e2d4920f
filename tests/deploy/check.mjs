// Checks veer's manifests against the Kubernetes API's schemas, as kubernetes-models
// publishes them, in two ways:
//  - its validators, generated from the OpenAPI documents (types, enums, required
//    fields, formats), one per kind and API version;
//  - its TypeScript types, generated from the same documents, with the TypeScript
//    compiler: an object literal typed as a kind's interface may only name known
//    properties, so a misspelt field (which the OpenAPI documents, leaving objects open,
//    let through, and the API server drops) is an error too.
// Every error is positioned: FILE:LINE:COL of the field, the object, the field path.
// The compiler reports the first failing field of each object level, so a second
// misspelling beside a first one may show only once the first is fixed; an object with
// any error always fails.
//
//   node check.mjs schema FILE...       every object of every FILE is valid
//   node check.mjs same FILE1 FILE2     both hold the same objects (field order aside)
//   node check.mjs rejects FILE         each of a set of bad fields put into FILE's
//                                       DaemonSet is caught (the check can fail)
//
// Exit 0 when the check holds, 1 with the reasons on stderr otherwise.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import ts from "typescript";
import { parseAllDocuments } from "yaml";

const kHere = dirname(fileURLToPath(import.meta.url));

/** A YAML file's objects: each its value, and where its fields are in the file. */
function loadObjects(file) {
  const text = readFileSync(file, "utf8");
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\n") {
      lineStarts.push(i + 1);
    }
  }
  const position = (offset) => {
    const line = lineStarts.findLastIndex((s) => s <= offset);
    return `${file}:${line + 1}:${offset - lineStarts[line] + 1}`;
  };
  const objects = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      throw new Error(`${position(e.pos[0])}: ${e.message}`);
    }
    const value = doc.toJS();
    if (value === null) {
      continue; // an empty document (a trailing ---)
    }
    // The deepest node of path that the file has: a field's own position, or where the
    // object holding a missing one starts.
    const where = (path) => {
      for (let n = path.length; n >= 0; n--) {
        const node = doc.getIn(path.slice(0, n), true);
        if (node?.range) {
          return position(node.range[0]);
        }
      }
      return position(doc.contents.range[0]);
    };
    objects.push({ value, where });
  }
  return objects;
}

function describe(obj) {
  const ns = obj.metadata?.namespace ? `${obj.metadata.namespace}/` : "";
  return `${obj.kind} ${ns}${obj.metadata?.name}`;
}

function pathText(path) {
  return path.map((k) => (typeof k === "number" ? `[${k}]` : `.${k}`)).join("") || ".";
}

/** The kubernetes-models module path for an apiVersion ("apps/v1", "v1", ...). */
function modulePath(apiVersion) {
  return `kubernetes-models/${apiVersion}`;
}

/** Errors of the generated validator for one object: [{path, message}]. */
async function validatorErrors(obj) {
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    return [{ path: [], message: "missing apiVersion or kind", unknownKind: true }];
  }
  let mod;
  try {
    mod = await import(modulePath(apiVersion));
  } catch {
    return [{ path: ["apiVersion"], message: `no schema for apiVersion ${apiVersion}`, unknownKind: true }];
  }
  if (typeof mod[kind] !== "function") {
    return [{ path: ["kind"], message: `no schema for kind ${kind} in ${apiVersion}`, unknownKind: true }];
  }
  try {
    new mod[kind](obj).validate();
    return [];
  } catch (e) {
    // ajv's message: "data/spec/x must be integer, data/spec/y must ...".
    return e.message.split(/, (?=data[/ ])/).map((m) => {
      const [, pointer, message] = /^data(\S*) (.*)$/s.exec(m) ?? [null, "", m];
      const path = pointer
        .split("/")
        .slice(1)
        .map((k) => (/^\d+$/.test(k) ? Number(k) : k.replaceAll("~1", "/").replaceAll("~0", "~")));
      return { path, message };
    });
  }
}

/**
 * Writes value as a TypeScript literal, one field or element per line, and records for
 * each line the path of the field it starts, so that a compiler error maps to a field.
 */
function emitLiteral(value, path, out) {
  const add = (text, p) => {
    out.lines.push(text);
    out.paths.push(p);
  };
  const walk = (v, p, prefix, suffix) => {
    if (Array.isArray(v)) {
      add(`${prefix}[`, p);
      v.forEach((e, i) => walk(e, [...p, i], "", ","));
      add(`]${suffix}`, p);
    } else if (v !== null && typeof v === "object") {
      add(`${prefix}{`, p);
      for (const [k, e] of Object.entries(v)) {
        walk(e, [...p, k], `${JSON.stringify(k)}: `, ",");
      }
      add(`}${suffix}`, p);
    } else {
      add(`${prefix}${JSON.stringify(v)}${suffix}`, p);
    }
  };
  walk(value, path, "", "");
}

/**
 * Type errors of each object against its kind's generated TypeScript interface, from
 * one compiler run over all of them: for object i, [{path, message}] (none for a null).
 */
function typeErrors(objects) {
  const out = { lines: [], paths: [] };
  const owner = []; // object index per line
  const imports = new Map();
  const result = objects.map(() => []);
  objects.forEach((obj, i) => {
    if (obj === null) {
      return; // not to be checked
    }
    const local = `M${i}`;
    // Every kind's module exports its interface as I<Kind>, apiVersion and kind included.
    imports.set(local, `import type { I${obj.kind} as ${local} } from ${JSON.stringify(modulePath(obj.apiVersion))};`);
    const first = out.lines.length;
    emitLiteral(obj, [], out);
    out.lines[first] = `export const o${i}: ${local} = ${out.lines[first]}`;
    out.lines[out.lines.length - 1] += ";";
    for (let l = first; l < out.lines.length; l++) {
      owner[l] = i;
    }
  });
  const header = [...imports.values()];
  // Under node_modules, so that the compiler resolves kubernetes-models as Node does.
  const dir = mkdtempSync(join(kHere, "node_modules", ".veer-check-"));
  try {
    const file = join(dir, "manifests.ts");
    writeFileSync(file, [...header, ...out.lines].join("\n") + "\n");
    const program = ts.createProgram([file], {
      noEmit: true,
      strict: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: [],
    });
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
      if (d.file?.fileName !== file) {
        throw new Error(`TypeScript outside the manifests: ${message}`);
      }
      const line = d.file.getLineAndCharacterOfPosition(d.start).line - header.length;
      if (line < 0) {
        throw new Error(`${message} (the import of a kind)`);
      }
      result[owner[line]].push({ path: out.paths[line], message });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

/** Both checks' errors for each object: [[{path, message}]]. */
async function allErrors(objects) {
  const validated = await Promise.all(objects.map(validatorErrors));
  // A kind without a schema has said so; the compiler would only fail to import it.
  const known = objects.map((o, i) => (validated[i].some((e) => e.unknownKind) ? null : o));
  const typed = typeErrors(known);
  return validated.map((errs, i) => [...errs, ...typed[i]]);
}

async function checkSchema(files) {
  const loaded = files.flatMap(loadObjects);
  if (loaded.length === 0) {
    console.error(`no objects in ${files.join(" ")}`);
    return false;
  }
  const errors = await allErrors(loaded.map((o) => o.value));
  let bad = 0;
  loaded.forEach((o, i) => {
    for (const e of errors[i]) {
      console.error(`${o.where(e.path)}: ${describe(o.value)}: ${pathText(e.path)}: ${e.message}`);
      bad++;
    }
  });
  console.log(`${loaded.length} objects checked, ${bad} schema errors`);
  return bad === 0;
}

/** The first path at which two parsed objects differ. */
function firstDifference(a, b, path = []) {
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) {
    return a === b ? null : path;
  }
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = firstDifference(a[k], b[k], [...path, Array.isArray(a) ? Number(k) : k]);
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
    const r = right.get(k);
    if (!r) {
      console.error(`${o.where([])}: ${k} is not in ${b}`);
      same = false;
    } else if (!isDeepStrictEqual(o.value, r.value)) {
      const at = firstDifference(o.value, r.value);
      console.error(`${o.where(at)}: ${k} differs at ${pathText(at)} from ${r.where(at)}`);
      same = false;
    }
  }
  for (const [k, o] of right) {
    if (!left.has(k)) {
      console.error(`${o.where([])}: ${k} is not in ${a}`);
      same = false;
    }
  }
  return same;
}

// Bad fields a reviewer could let through, each put into a copy of the real DaemonSet,
// and the field path the check must name.
const kBadFields = [
  {
    what: "a number given as a string",
    path: ["spec", "template", "spec", "terminationGracePeriodSeconds"],
    apply: (ds) => (ds.spec.template.spec.terminationGracePeriodSeconds = "5"),
  },
  {
    what: "a list given as a string",
    path: ["spec", "template", "spec", "containers", 0, "securityContext", "capabilities", "add"],
    apply: (ds) => (ds.spec.template.spec.containers[0].securityContext.capabilities.add = "NET_ADMIN"),
  },
  {
    what: "a value outside an enum",
    path: ["spec", "updateStrategy", "type"],
    apply: (ds) => (ds.spec.updateStrategy.type = "Rolling"),
  },
  {
    what: "a required field missing",
    path: ["spec", "template", "spec", "containers", 0],
    apply: (ds) => delete ds.spec.template.spec.containers[0].name,
  },
  {
    what: "a probe port that is neither a number nor a name",
    path: ["spec", "template", "spec", "containers", 0, "readinessProbe", "httpGet", "port"],
    apply: (ds) => (ds.spec.template.spec.containers[0].readinessProbe.httpGet.port = { port: 9967 }),
  },
  {
    what: "a misspelt field",
    path: ["spec", "template", "spec", "containers", 0, "volumeMounts", 0, "mountPropagaton"],
    apply: (ds) => (ds.spec.template.spec.containers[0].volumeMounts[0].mountPropagaton = "HostToContainer"),
  },
];

async function checkRejects(file) {
  const ds = loadObjects(file).find((o) => o.value.kind === "DaemonSet")?.value;
  if (!ds) {
    console.error(`${file}: no DaemonSet`);
    return false;
  }
  const copies = kBadFields.map((bad) => {
    const copy = structuredClone(ds);
    bad.apply(copy);
    return copy;
  });
  const [base, ...errors] = await allErrors([ds, ...copies]);
  if (base.length > 0) {
    console.error(`the DaemonSet itself is invalid, so a rejection proves nothing: ${base[0].message}`);
    return false;
  }
  let ok = true;
  kBadFields.forEach((bad, i) => {
    const hit = errors[i].find((e) => isDeepStrictEqual(e.path, bad.path));
    if (hit) {
      console.log(`${bad.what}: rejected at ${pathText(bad.path)}: ${hit.message}`);
    } else {
      const seen = errors[i].map((e) => `${pathText(e.path)}: ${e.message}`).join("; ");
      console.error(`${bad.what} at ${pathText(bad.path)} got through: ${seen || "no error"}`);
      ok = false;
    }
  });
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
