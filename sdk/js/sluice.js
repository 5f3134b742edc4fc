// @ts-check
/**
 * Write sluice pipeline steps in JavaScript.
 *
 * A step is one class (or object) with `describe()` and `run(ctx)`, the
 * default export of a plain ES module, built into a WebAssembly component
 * with componentize-js (`sdk/js/build.sh SRC_DIR OUT.wasm`):
 *
 * ```js
 * import { Manifest, Param, Port, Step, StepError, TableBuilder } from "sluice-sdk";
 *
 * export default class Scale extends Step {
 *   describe() {
 *     return new Manifest("scale", "0.1.0")
 *       .doc("Multiplies one numeric column by a factor.")
 *       .input(Port.table("data"))
 *       .output(Port.table("scaled"))
 *       .param(Param.text("column").required())
 *       .param(Param.float("factor").default(2.0));
 *   }
 *   run(ctx) {
 *     const column = ctx.param("column", "text");
 *     const factor = ctx.param("factor", "float");
 *     const values = ctx.inputTable("data").columnF64(column);
 *     const scaled = values.map((v) => (v === null ? null : v * factor));
 *     ctx.outputTable("scaled", new TableBuilder().addF64(column, scaled).finish());
 *   }
 * }
 * ```
 *
 * The step has no ambient authority: it reads its inputs and params and
 * writes its outputs through the {@link Context} it is handed, and nothing
 * else. Throw a {@link StepError} to fail with a chosen kind; any other
 * exception becomes a `failed` step carrying the exception's message.
 *
 * The API mirrors the Rust (`sdk/rust`) and Python (`sdk/python`) SDKs, in
 * JavaScript's camelCase.
 *
 * @module sluice-sdk
 */

import * as host from "sluice:pipeline/context@0.1.4";
import { TableBuilder as RawTableBuilder, sql as rawSql } from "sluice:pipeline/tables@0.1.4";

// ---- errors ---------------------------------------------------------------

/** @typedef {"invalid-input" | "rejected" | "failed"} ErrorKind */

/**
 * Why a step did not succeed. Throw it from {@link Step#run}.
 *
 * - {@link StepError.invalidInput}: the inputs or params break the step's
 *   contract (a malformed file, schema skew, a missing column). The pipeline
 *   stops; never retried.
 * - {@link StepError.rejected}: a validation gate said no. The pipeline
 *   stops, outputs are not blessed; never retried.
 * - {@link StepError.failed}: anything else. Retried when the step allows.
 */
export class StepError extends Error {
  /**
   * @param {ErrorKind} kind
   * @param {string} message
   */
  constructor(kind, message) {
    super(message);
    if (!["invalid-input", "rejected", "failed"].includes(kind)) {
      throw new TypeError(`unknown StepError kind ${JSON.stringify(kind)}`);
    }
    this.name = "StepError";
    /** @type {ErrorKind} */
    this.kind = kind;
  }

  /** The inputs or params break the step's contract. @param {string} message */
  static invalidInput(message) {
    return new StepError("invalid-input", message);
  }

  /** A validation gate said no. @param {string} message */
  static rejected(message) {
    return new StepError("rejected", message);
  }

  /** Anything else; may be retried. @param {string} message */
  static failed(message) {
    return new StepError("failed", message);
  }

  toString() {
    return `${this.kind.replace("-", " ")}: ${this.message}`;
  }
}

/** The message an import's `Error` carries (jco puts the `err` value in `payload`). */
function hostMessage(/** @type {any} */ e) {
  if (e && typeof e === "object" && "payload" in e) return String(e.payload);
  return e instanceof Error ? e.message : String(e);
}

/**
 * Calls a host function; a host error becomes `StepError.failed` with the
 * host's message unchanged.
 * @template T
 * @param {() => T} f
 * @returns {T}
 */
function hostCall(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof StepError) throw e;
    throw StepError.failed(hostMessage(e));
  }
}

// ---- manifest -------------------------------------------------------------

/** @typedef {"table" | "model" | "schema" | "statistics" | "metrics" | "transform" | "file"} ArtifactKind */
/** @typedef {"boolean" | "integer" | "float" | "text" | "json"} ValueType */

const ARTIFACT_KINDS = ["table", "model", "schema", "statistics", "metrics", "transform", "file"];
const VALUE_TYPES = ["boolean", "integer", "float", "text", "json"];

/** One named input or output of a step. Builder methods return `this`. */
export class Port {
  /**
   * @param {string} name unique among the step's inputs (or outputs)
   * @param {ArtifactKind} kind what the artifact holds
   */
  constructor(name, kind) {
    if (!ARTIFACT_KINDS.includes(kind)) {
      throw new TypeError(`port \`${name}\`: unknown artifact kind ${JSON.stringify(kind)}`);
    }
    this.name = name;
    this.kind = kind;
    this.isOptional = false;
    this.docText = "";
  }
  /** A `table` port. @param {string} name */
  static table(name) { return new Port(name, "table"); }
  /** A `file` port (raw bytes). @param {string} name */
  static file(name) { return new Port(name, "file"); }
  /** A `statistics` port (JSON). @param {string} name */
  static statistics(name) { return new Port(name, "statistics"); }
  /** A `schema` port (JSON). @param {string} name */
  static schema(name) { return new Port(name, "schema"); }
  /** A `metrics` port (JSON). @param {string} name */
  static metrics(name) { return new Port(name, "metrics"); }
  /** A `model` port. @param {string} name */
  static model(name) { return new Port(name, "model"); }
  /** A `transform` port (JSON). @param {string} name */
  static transform(name) { return new Port(name, "transform"); }
  /** Marks an input as optional: the spec may leave it unbound. */
  optional() { this.isOptional = true; return this; }
  /** Sets the documentation. @param {string} text */
  doc(text) { this.docText = text; return this; }
}

/** One parameter a step accepts. Builder methods return `this`. */
export class Param {
  /**
   * @param {string} name
   * @param {ValueType} valueType the type the spec's value must have
   */
  constructor(name, valueType) {
    if (!VALUE_TYPES.includes(valueType)) {
      throw new TypeError(`param \`${name}\`: unknown value type ${JSON.stringify(valueType)}`);
    }
    this.name = name;
    this.valueType = valueType;
    /** @type {unknown} */
    this.defaultValue = undefined;
    this.isRequired = false;
    this.docText = "";
  }
  /** A boolean parameter. @param {string} name */
  static boolean(name) { return new Param(name, "boolean"); }
  /** An integer parameter. @param {string} name */
  static integer(name) { return new Param(name, "integer"); }
  /** A float parameter (the spec may also give an integer). @param {string} name */
  static float(name) { return new Param(name, "float"); }
  /** A text parameter. @param {string} name */
  static text(name) { return new Param(name, "text"); }
  /** A structured parameter: a TOML array or table in the spec. @param {string} name */
  static json(name) { return new Param(name, "json"); }
  /** Sets the default; a parameter with a default is not required. @param {unknown} value */
  default(value) { this.defaultValue = value; this.isRequired = false; return this; }
  /** Marks the parameter as required (and drops any default). */
  required() { this.isRequired = true; this.defaultValue = undefined; return this; }
  /** Sets the documentation. @param {string} text */
  doc(text) { this.docText = text; return this; }
}

/** What a step is and what it consumes and produces; returned by `describe`. */
export class Manifest {
  /**
   * @param {string} name the step's name
   * @param {string} version the step's own semantic version
   */
  constructor(name, version) {
    this.name = name;
    this.version = version;
    this.docText = "";
    /** @type {Port[]} */
    this.inputs = [];
    /** @type {Port[]} */
    this.outputs = [];
    /** @type {Param[]} */
    this.params = [];
  }
  /** Sets the documentation. @param {string} text */
  doc(text) { this.docText = text; return this; }
  /** Adds an input port. @param {Port} port */
  input(port) { this.inputs.push(port); return this; }
  /** Adds an output port. @param {Port} port */
  output(port) { this.outputs.push(port); return this; }
  /** Adds a parameter. @param {Param} param */
  param(param) { this.params.push(param); return this; }
}

// ---- tables ---------------------------------------------------------------

/** @typedef {"boolean" | "int64" | "float64" | "utf8"} DType */
/** @typedef {{ name: string, dtype: DType, nullable: boolean }} Field */

/**
 * An `int64` from the host as a JS number; one beyond 2^53 is an error
 * rather than a silent loss of precision.
 * @param {bigint} v
 * @param {string} what
 */
function toNumber(v, what) {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) {
    throw StepError.invalidInput(`${what}: ${v} does not fit a JavaScript number; use the bigint accessor`);
  }
  return n;
}

/**
 * An immutable table held by the host. Columns are copied in only when
 * asked for, as plain arrays with `null` at null rows. Reading a column the
 * table does not have, or has with another type, throws
 * `StepError.invalidInput` (the input broke the step's contract).
 */
export class Table {
  /** @param {any} inner the host's `table` resource */
  constructor(inner) {
    /** @private */
    this.inner = inner;
  }

  /** The columns' names and types, in order. @returns {Field[]} */
  fields() {
    return this.inner.fields().map((/** @type {any} */ f) => ({ name: f.name, dtype: f.dtype, nullable: f.nullable }));
  }

  /** The columns' names, in order. @returns {string[]} */
  columnNames() {
    return this.fields().map((f) => f.name);
  }

  /** The number of rows. @returns {number} */
  numRows() {
    return Number(this.inner.numRows());
  }

  /**
   * Rows `offset .. offset + length` (clamped to the table), without copying.
   * @param {number} offset
   * @param {number} length
   */
  slice(offset, length) {
    return new Table(this.inner.slice(BigInt(offset), BigInt(length)));
  }

  /**
   * A copy of the column `name`, whatever its type, and that type. `int64`
   * values come as `bigint`.
   * @param {string} name
   * @returns {{ dtype: DType, values: Array<any> }}
   */
  columnWithType(name) {
    let raw;
    try {
      raw = this.inner.column(name);
    } catch (e) {
      throw StepError.invalidInput(`column \`${name}\`: ${hostMessage(e)}`);
    }
    const values = Array.from(raw.values.val);
    for (const i of raw.nulls) {
      const k = Number(i);
      if (k < values.length) values[k] = null;
    }
    return { dtype: raw.values.tag, values };
  }

  /**
   * A copy of the column `name`, whatever its type (`int64` as `bigint`).
   * @param {string} name
   */
  column(name) {
    return this.columnWithType(name).values;
  }

  /**
   * @private
   * @param {string} name
   * @param {DType[]} accepted
   * @param {string} expected
   */
  typed(name, accepted, expected) {
    const c = this.columnWithType(name);
    if (!accepted.includes(c.dtype)) {
      throw StepError.invalidInput(`column \`${name}\` has type ${c.dtype}, expected ${expected}`);
    }
    return c;
  }

  /**
   * A numeric column as numbers; `int64` values are converted.
   * @param {string} name
   * @returns {Array<number | null>}
   */
  columnF64(name) {
    const c = this.typed(name, ["float64", "int64"], "float64 or int64");
    return c.dtype === "int64" ? c.values.map((v) => (v === null ? null : Number(v))) : c.values;
  }

  /**
   * An `int64` column as numbers (a value beyond 2^53 throws; use
   * {@link Table#columnBigInt} for those).
   * @param {string} name
   * @returns {Array<number | null>}
   */
  columnI64(name) {
    const c = this.typed(name, ["int64"], "int64");
    return c.values.map((v) => (v === null ? null : toNumber(v, `column \`${name}\``)));
  }

  /**
   * An `int64` column as bigints, exactly.
   * @param {string} name
   * @returns {Array<bigint | null>}
   */
  columnBigInt(name) {
    return this.typed(name, ["int64"], "int64").values;
  }

  /**
   * A `boolean` column.
   * @param {string} name
   * @returns {Array<boolean | null>}
   */
  columnBool(name) {
    return this.typed(name, ["boolean"], "boolean").values;
  }

  /**
   * A `utf8` column.
   * @param {string} name
   * @returns {Array<string | null>}
   */
  columnStr(name) {
    return this.typed(name, ["utf8"], "utf8").values;
  }

  /**
   * @private
   * @param {string} op
   * @param {() => any} call
   */
  op(op, call) {
    try {
      return new Table(call());
    } catch (e) {
      throw StepError.invalidInput(`${op}: ${hostMessage(e)}`);
    }
  }

  /**
   * The named columns, in that order (no data is copied).
   * @param {string[]} columns
   */
  select(columns) {
    return this.op("select", () => this.inner.select(columns));
  }

  /**
   * New columns computed natively by the host from SQL expressions over this
   * table's columns, e.g. `{ area: "petal_length * petal_width" }`: exactly
   * these columns, in order.
   * @param {Record<string, string>} columns
   */
  compute(columns) {
    return this.op("compute", () => this.inner.compute(Object.entries(columns)));
  }

  /**
   * The rows where `predicate` (a boolean column's name or a SQL expression)
   * is true; null counts as false.
   * @param {string} predicate
   */
  filter(predicate) {
    return this.op("filter", () => this.inner.filter(predicate));
  }

  /**
   * Summary statistics of the columns (parsed JSON).
   * @param {object} [options]
   */
  describe(options = {}) {
    try {
      return JSON.parse(this.inner.describe(JSON.stringify(options)));
    } catch (e) {
      throw StepError.invalidInput(`describe: ${hostMessage(e)}`);
    }
  }
}

/**
 * The result of a SQL query (Apache DataFusion's dialect) over the named
 * tables, computed natively by the host under the step's memory limit:
 *
 * ```js
 * const bySpecies = sql("SELECT species, count(*) AS n FROM iris GROUP BY species", { iris: table });
 * ```
 * @param {string} query
 * @param {Record<string, Table>} inputs
 */
export function sql(query, inputs) {
  try {
    // @ts-ignore: `inner` is the host resource each Table wraps.
    return new Table(rawSql(query, Object.entries(inputs).map(([name, t]) => [name, t.inner])));
  } catch (e) {
    throw StepError.invalidInput(`sql: ${hostMessage(e)}`);
  }
}

/** @type {Record<DType, unknown>} */
const PLACEHOLDER = { boolean: false, int64: 0n, float64: 0, utf8: "" };

/**
 * Builds a table column by column, in the host:
 *
 * ```js
 * const table = new TableBuilder().addF64("x", [1.0, null]).addStr("label", ["a", "b"]).finish();
 * ```
 *
 * A repeated name or a length that differs from earlier columns throws
 * `StepError.failed` (a bug in the step, not in its input).
 */
export class TableBuilder {
  constructor() {
    /** @private */
    this.inner = new RawTableBuilder();
  }

  /**
   * Appends a column of type `dtype`; `null` (or `undefined`) values are nulls.
   * @param {string} name
   * @param {DType} dtype
   * @param {ArrayLike<any>} values
   */
  addColumn(name, dtype, values) {
    if (!(dtype in PLACEHOLDER)) throw new TypeError(`unknown dtype ${JSON.stringify(dtype)}`);
    /** @type {bigint[]} */
    const nulls = [];
    const n = values.length;
    /** @type {any} */
    let plain;
    if (dtype === "float64") plain = new Float64Array(n);
    else if (dtype === "int64") plain = new BigInt64Array(n);
    else plain = new Array(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === null || v === undefined) {
        nulls.push(BigInt(i));
        plain[i] = PLACEHOLDER[dtype];
      } else if (dtype === "int64") {
        plain[i] = BigInt(v);
      } else if (dtype === "float64") {
        plain[i] = Number(v);
      } else if (dtype === "boolean") {
        plain[i] = Boolean(v);
      } else {
        plain[i] = String(v);
      }
    }
    try {
      this.inner.addColumn(name, { values: { tag: dtype, val: plain }, nulls: BigUint64Array.from(nulls) });
    } catch (e) {
      throw StepError.failed(`building a table: column \`${name}\`: ${hostMessage(e)}`);
    }
    return this;
  }

  /** Appends a `float64` column. @param {string} name @param {ArrayLike<number | null>} values */
  addF64(name, values) { return this.addColumn(name, "float64", values); }
  /** Appends an `int64` column (numbers or bigints). @param {string} name @param {ArrayLike<number | bigint | null>} values */
  addI64(name, values) { return this.addColumn(name, "int64", values); }
  /** Appends a `boolean` column. @param {string} name @param {ArrayLike<boolean | null>} values */
  addBool(name, values) { return this.addColumn(name, "boolean", values); }
  /** Appends a `utf8` column. @param {string} name @param {ArrayLike<string | null>} values */
  addStr(name, values) { return this.addColumn(name, "utf8", values); }

  /** The table built so far; the builder is left empty. */
  finish() {
    try {
      return new Table(this.inner.finish());
    } catch (e) {
      throw StepError.failed(`building a table: ${hostMessage(e)}`);
    }
  }
}

// ---- context --------------------------------------------------------------

const EXPECTED = { boolean: "a boolean", integer: "an integer", float: "a float", text: "text", json: "JSON" };

/**
 * A parameter value from the host, checked against `kind`.
 * @param {string} name
 * @param {{ tag: string, val: any }} raw
 * @param {ValueType | undefined} kind
 */
function convertParam(name, raw, kind) {
  let { tag, val } = raw;
  if (tag === "integer") val = toNumber(val, `parameter \`${name}\``);
  if (tag === "json") {
    try {
      val = JSON.parse(val);
    } catch (e) {
      throw StepError.invalidInput(`parameter \`${name}\` is not valid JSON: ${hostMessage(e)}`);
    }
  }
  if (kind === undefined) return val;
  if (!VALUE_TYPES.includes(kind)) throw new TypeError(`parameter \`${name}\`: unknown value type ${JSON.stringify(kind)}`);
  const ok = kind === tag || (kind === "float" && tag === "integer");
  if (!ok) throw StepError.invalidInput(`parameter \`${name}\` must be ${EXPECTED[kind]}, found ${tag}`);
  return val;
}

/** @typedef {"debug" | "info" | "warn" | "error"} LogLevel */

/**
 * The running step's handle on the host; handed to {@link Step#run}.
 *
 * Errors the host reports for inputs and outputs (an unbound port, an
 * output over the size limit …) throw `StepError.failed` carrying the host's
 * message unchanged.
 */
export class Context {
  // ---- params ----

  /**
   * The parameter `name`: the spec's value, else the manifest's default.
   * `kind` ("boolean", "integer", "float", "text" or "json") checks the type;
   * "float" also accepts an integer. Integers come as numbers, JSON parsed.
   * An absent parameter, or one of the wrong type, throws
   * `StepError.invalidInput` naming it.
   * @param {string} name
   * @param {ValueType} [kind]
   * @returns {any}
   */
  param(name, kind) {
    const raw = host.param(name);
    if (raw === undefined || raw === null) throw StepError.invalidInput(`parameter \`${name}\` is not set`);
    return convertParam(name, raw, kind);
  }

  /**
   * Like {@link Context#param}, but an absent parameter reads as `null`.
   * @param {string} name
   * @param {ValueType} [kind]
   * @returns {any}
   */
  paramOpt(name, kind) {
    const raw = host.param(name);
    if (raw === undefined || raw === null) return null;
    return convertParam(name, raw, kind);
  }

  // ---- inputs ----

  /** Whether the (optional) input `port` is bound in this run. @param {string} port */
  hasInput(port) {
    return host.hasInput(port);
  }

  /** The table bound to input `port`. @param {string} port */
  inputTable(port) {
    return new Table(hostCall(() => host.inputTable(port)));
  }

  /** The JSON document bound to `port`, as text. @param {string} port @returns {string} */
  inputDocument(port) {
    return hostCall(() => host.inputDocument(port));
  }

  /**
   * The JSON document bound to `port`, parsed; text that does not parse
   * throws `StepError.invalidInput`.
   * @param {string} port
   * @returns {any}
   */
  inputJson(port) {
    const text = this.inputDocument(port);
    try {
      return JSON.parse(text);
    } catch (e) {
      throw StepError.invalidInput(`input \`${port}\`: ${hostMessage(e)}`);
    }
  }

  /** The raw bytes of the `file` artifact bound to `port`. @param {string} port @returns {Uint8Array} */
  inputBytes(port) {
    return hostCall(() => host.inputBytes(port));
  }

  // ---- outputs ----

  /** Records `table` as the output on the `table` port `port`. @param {string} port @param {Table} table */
  outputTable(port, table) {
    // @ts-ignore -- reaching the wrapped resource is this module's business
    hostCall(() => host.outputTable(port, table.inner));
  }

  /** Records a JSON document (text) as the output on `port`. @param {string} port @param {string} json */
  outputDocument(port, json) {
    hostCall(() => host.outputDocument(port, json));
  }

  /**
   * Serializes `value` as pretty JSON and records it as the output on `port`.
   * @param {string} port
   * @param {unknown} value
   */
  outputJson(port, value) {
    let text;
    try {
      text = JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? Number(v) : v), 2);
    } catch (e) {
      throw StepError.failed(`output \`${port}\`: cannot serialize: ${hostMessage(e)}`);
    }
    if (text === undefined) throw StepError.failed(`output \`${port}\`: cannot serialize ${typeof value}`);
    this.outputDocument(port, text);
  }

  /**
   * Records raw bytes (or a string, as UTF-8) as the output on the `file` port `port`.
   * @param {string} port
   * @param {Uint8Array | string} data
   */
  outputBytes(port, data) {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    hostCall(() => host.outputBytes(port, bytes));
  }

  // ---- observability ----

  /** Writes a line to the step's log. @param {LogLevel} level @param {string} message */
  log(level, message) {
    if (!["debug", "info", "warn", "error"].includes(level)) throw new TypeError(`unknown log level ${JSON.stringify(level)}`);
    host.log(level, String(message));
  }
  /** Writes a debug line to the step's log. @param {string} message */
  debug(message) { host.log("debug", String(message)); }
  /** Writes an info line to the step's log. @param {string} message */
  info(message) { host.log("info", String(message)); }
  /** Writes a warning to the step's log. @param {string} message */
  warn(message) { host.log("warn", String(message)); }
  /** Writes an error line to the step's log. @param {string} message */
  error(message) { host.log("error", String(message)); }

  /** Records a named numeric metric of this execution. @param {string} name @param {number} value */
  metric(name, value) {
    host.metric(name, Number(value));
  }

  /**
   * Reports progress: `done` of `total` units of work, and what is happening.
   * @param {number} done
   * @param {number} total
   * @param {string} [message]
   */
  progress(done, total, message = "") {
    host.progress(BigInt(Math.trunc(done)), BigInt(Math.trunc(total)), message);
  }
}

// ---- step -----------------------------------------------------------------

/**
 * A pipeline step: what it is ({@link Step#describe}) and what it does
 * ({@link Step#run}). Make a subclass the default export of your app
 * module; the build exports it as the component's `step` world.
 */
export class Step {
  /** Describes the step; called without inputs, must not fail. @returns {Manifest} */
  describe() {
    throw new Error("a Step must implement describe()");
  }
  /**
   * Runs the step against the inputs and params in `ctx`. Throw a
   * {@link StepError} to fail with a chosen kind.
   * @param {Context} _ctx
   * @returns {void | Promise<void>}
   */
  run(_ctx) {
    throw new Error("a Step must implement run(ctx)");
  }
}

// ---- glue (used by the generated entry module; not part of the API) --------

/** @param {Param} p @param {unknown} v */
function valueToRaw(p, v) {
  switch (p.valueType) {
    case "json": return { tag: "json", val: JSON.stringify(v) };
    case "boolean": return { tag: "boolean", val: Boolean(v) };
    case "integer": return { tag: "integer", val: BigInt(/** @type {any} */ (v)) };
    case "float": return { tag: "float", val: Number(v) };
    default: return { tag: "text", val: String(v) };
  }
}

/** @param {Port} p */
function portToRaw(p) {
  return { name: p.name, kind: p.kind, optional: p.isOptional, doc: p.docText };
}

/**
 * The manifest as the host expects it.
 * @param {Manifest} m
 */
export function manifestToRaw(m) {
  return {
    name: m.name,
    version: m.version,
    doc: m.docText,
    inputs: m.inputs.map(portToRaw),
    outputs: m.outputs.map(portToRaw),
    params: m.params.map((p) => ({
      name: p.name,
      valueType: p.valueType,
      default: p.defaultValue === undefined || p.defaultValue === null ? undefined : valueToRaw(p, p.defaultValue),
      required: p.isRequired,
      doc: p.docText,
    })),
  };
}

/** The `step-error` variant for any thrown value. @param {unknown} e */
function errorToRaw(e) {
  if (e instanceof StepError) return { tag: e.kind, val: e.message };
  const message = e instanceof Error ? `${e.name}: ${e.message}` : `uncaught: ${String(e)}`;
  try {
    const stack = e instanceof Error && e.stack ? `\n${e.stack}` : "";
    host.log("error", `uncaught exception: ${message}${stack}`);
  } catch (_) {
    // logging is best effort
  }
  return { tag: "failed", val: message };
}

/**
 * The component's exports for `step`: a `Step` subclass, an instance, or a
 * plain object with `describe()` and `run(ctx)`.
 *
 * A `StepError` keeps its kind; any other exception becomes `failed`
 * carrying `"<ErrorName>: <message>"`, and its stack is written to the
 * step's log. (componentize-js turns a thrown value into the `err` case of
 * `run`'s result.)
 * @param {any} step
 * @returns {{ describe: () => any, run: () => void | Promise<void> }}
 */
export function exportStep(step) {
  const make = () => (typeof step === "function" ? new step() : step);
  if (!step || typeof make().describe !== "function" || typeof make().run !== "function") {
    throw new TypeError("the app module's default export must be a Step (describe() and run(ctx))");
  }
  // Fail the build, not the first run, on a manifest that does not convert.
  manifestToRaw(make().describe());
  return {
    describe() {
      return manifestToRaw(make().describe());
    },
    run() {
      let result;
      try {
        result = make().run(new Context());
      } catch (e) {
        throw errorToRaw(e);
      }
      // An async run: componentize-js drives the event loop to resolution.
      if (result && typeof result.then === "function") {
        return result.then(
          () => undefined,
          (/** @type {unknown} */ e) => {
            throw errorToRaw(e);
          },
        );
      }
      return undefined;
    },
  };
}
