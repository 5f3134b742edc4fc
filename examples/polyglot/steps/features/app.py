"""Feature engineering for the iris table, in Python.

Adds `petal_area` (petal_length * petal_width) and `sepal_ratio`
(sepal_length / sepal_width) and keeps every input column, `species`
included. The arithmetic is one SQL query the host runs natively: the
rows never enter the Python interpreter. Built by ../../build.sh with
sdk/python/build.sh.
"""

from sluice_sdk import Context, Manifest, Param, Port, Step, StepError, sql

#: Every input column, then the derived ones (a zero width gives null).
FEATURES = """
SELECT *,
       petal_length * petal_width AS petal_area,
       CASE WHEN sepal_width = 0 THEN NULL ELSE sepal_length / sepal_width END AS sepal_ratio
FROM data
"""


class IrisFeatures(Step):
    """Derives petal area and sepal ratio."""

    def describe(self) -> Manifest:
        return (
            Manifest("iris-features", "0.2.0")
            .doc("Adds petal_area and sepal_ratio to an iris table, keeping every input column.")
            .input(Port.table("data").doc("Iris measurements with species."))
            .output(Port.table("features").doc("The input columns plus the derived ones."))
            .param(Param.integer("min_rows").default(1).doc("Fail as invalid input below this many rows."))
        )

    def run(self, ctx: Context) -> None:
        data = ctx.input_table("data")
        rows = data.num_rows()
        min_rows = ctx.param("min_rows", int)
        if rows < min_rows:
            raise StepError.invalid_input(f"need at least {min_rows} rows, got {rows}")
        ctx.output_table("features", sql(FEATURES, {"data": data}))
        ctx.metric("rows", rows)
        ctx.info(f"added petal_area and sepal_ratio to {rows} rows")
