"""A sluice step in Python: scales one numeric column by a factor.

Build:   sluice component build           (-> build/scale-py.wasm)
Check:   sluice component check build/scale-py.wasm --inputs samples
"""

from sluice_sdk import Context, Manifest, Param, Port, Step, StepError, TableBuilder


class Scale(Step):
    """Multiplies one numeric column by a factor."""

    def describe(self) -> Manifest:
        return (
            Manifest("scale-py", "0.1.0")
            .doc("Multiplies one numeric column by a factor.")
            .input(Port.table("data").doc("The rows to scale."))
            .output(Port.table("scaled"))
            .param(Param.text("column").required().doc("The column to scale."))
            .param(Param.float("factor").default(2.0))
        )

    def run(self, ctx: Context) -> None:
        column = ctx.param("column", str)
        factor = ctx.param("factor", float)
        if factor == 0.0:
            raise StepError.invalid_input("factor must not be zero")
        data = ctx.input_table("data")
        # A missing column, or one that is not numeric, is an invalid-input error.
        values = data.column_f64(column)
        scaled = [None if v is None else v * factor for v in values]
        ctx.metric("rows", data.num_rows())
        ctx.info(f"scaled `{column}` by {factor}")
        ctx.output_table("scaled", TableBuilder().add_f64(column, scaled).finish())
