// A report on per-column statistics, in JavaScript.
//
// Reads the `statistics` document of std:statistics and writes a Markdown
// report (`report`, a file) and a short JSON summary (`summary`, metrics).
// Given the table itself (`data`, optional), it adds a per-group section
// from one SQL query the host runs natively.
// Built by ../../build.sh with sdk/js/build.sh.

import { Manifest, Param, Port, Step, StepError, sql } from "sluice-sdk";

/** @param {number | null | undefined} x @param {number} digits */
const fmt = (x, digits) => (x === null || x === undefined ? "" : x.toFixed(digits));

/** Renders column statistics as Markdown and a JSON summary. */
export default class StatsReport extends Step {
  describe() {
    return new Manifest("stats-report", "0.1.0")
      .doc("Renders per-column statistics as a Markdown report and a JSON summary.")
      .input(Port.statistics("statistics").doc("The output of std:statistics."))
      .input(Port.table("data").optional().doc("The table described, for the per-group section."))
      .output(Port.file("report").doc("Markdown."))
      .output(Port.metrics("summary").doc("Mean, std, min and max per numeric column."))
      .param(Param.text("title").default("Column statistics"))
      .param(Param.integer("digits").default(3).doc("Decimal places in the report."))
      .param(Param.text("group_by").default("species").doc("The column the per-group section groups `data` by."));
  }

  /** @param {import("sluice-sdk").Context} ctx */
  run(ctx) {
    const title = ctx.param("title", "text");
    const digits = ctx.param("digits", "integer");
    if (digits < 0 || digits > 12) throw StepError.invalidInput(`digits must be within 0..=12, got ${digits}`);
    const stats = ctx.inputJson("statistics");
    if (!stats || !Array.isArray(stats.columns)) {
      throw StepError.invalidInput("statistics document has no `columns` list");
    }

    const lines = [`# ${title}`, "", `${stats.num_rows} rows, ${stats.columns.length} columns.`, ""];
    lines.push("| column | type | count | missing | mean | std | min | max |");
    lines.push("|---|---|---:|---:|---:|---:|---:|---:|");
    /** @type {Record<string, {mean: number, std: number, min: number, max: number}>} */
    const numeric = {};
    /** @type {string[]} */
    const categorical = [];
    for (const c of stats.columns) {
      const n = c.numeric;
      lines.push(
        `| ${c.name} | ${c.dtype} | ${c.count} | ${c.missing} | ${fmt(n?.mean, digits)} | ${fmt(n?.std, digits)} | ${fmt(n?.min, digits)} | ${fmt(n?.max, digits)} |`,
      );
      if (n) numeric[c.name] = { mean: n.mean, std: n.std, min: n.min, max: n.max };
      if (c.categorical) {
        const top = c.categorical.top.map((/** @type {any} */ t) => `${t.value} (${t.count})`).join(", ");
        categorical.push(`- **${c.name}**: ${c.categorical.distinct} distinct; top: ${top}`);
      }
    }
    if (categorical.length > 0) lines.push("", "## Categorical columns", "", ...categorical);
    /** @type {Record<string, number>} */
    const groups = {};
    if (ctx.hasInput("data")) {
      const by = ctx.param("group_by", "text");
      const quoted = `"${by.replaceAll('"', '""')}"`;
      const counts = sql(`SELECT CAST(${quoted} AS VARCHAR) AS grp, count(*) AS n FROM data GROUP BY 1 ORDER BY 1`, {
        data: ctx.inputTable("data"),
      });
      const names = counts.columnStr("grp");
      const ns = counts.columnI64("n");
      lines.push("", `## Rows by ${by}`, "", "| group | rows |", "|---|---:|");
      names.forEach((g, i) => {
        lines.push(`| ${g} | ${ns[i]} |`);
        groups[g ?? "(null)"] = /** @type {number} */ (ns[i]);
      });
    }
    lines.push("");

    ctx.outputBytes("report", lines.join("\n"));
    ctx.outputJson("summary", { rows: stats.num_rows, columns: numeric, groups });
    ctx.metric("columns", stats.columns.length);
    ctx.info(`reported on ${stats.columns.length} columns`);
  }
}
