// A sluice step in JavaScript: scales one numeric column by a factor.
//
// Build:   sluice component build           (-> build/scale-js.wasm)
// Check:   sluice component check build/scale-js.wasm --inputs samples

import { Manifest, Param, Port, Step, StepError, TableBuilder } from "sluice-sdk";

/** Multiplies one numeric column by a factor. */
export default class Scale extends Step {
  describe() {
    return new Manifest("scale-js", "0.1.0")
      .doc("Multiplies one numeric column by a factor.")
      .input(Port.table("data").doc("The rows to scale."))
      .output(Port.table("scaled"))
      .param(Param.text("column").required().doc("The column to scale."))
      .param(Param.float("factor").default(2.0));
  }

  /** @param {import("sluice-sdk").Context} ctx */
  run(ctx) {
    const column = ctx.param("column", "text");
    const factor = ctx.param("factor", "float");
    if (factor === 0) throw StepError.invalidInput("factor must not be zero");
    const data = ctx.inputTable("data");
    // A missing column, or one that is not numeric, is an invalid-input error.
    const values = data.columnF64(column);
    const scaled = values.map((v) => (v === null ? null : v * factor));
    ctx.metric("rows", data.numRows());
    ctx.info(`scaled \`${column}\` by ${factor}`);
    ctx.outputTable("scaled", new TableBuilder().addF64(column, scaled).finish());
  }
}
