"""Feature engineering for the iris table, in Python.

Adds `petal_area` (petal_length * petal_width) and `sepal_ratio`
(sepal_length / sepal_width) and keeps every input column, `species`
included. Built by ../../build.sh with sdk/python/build.sh.
"""

from typing import Optional

from sluice_sdk import Context, Manifest, Param, Port, Step, StepError, TableBuilder


def product(a: list[Optional[float]], b: list[Optional[float]]) -> list[Optional[float]]:
    """Row-wise a * b; null where either side is null."""
    return [None if x is None or y is None else x * y for x, y in zip(a, b)]


def ratio(a: list[Optional[float]], b: list[Optional[float]]) -> list[Optional[float]]:
    """Row-wise a / b; null where either side is null or b is zero."""
    return [None if x is None or y is None or y == 0 else x / y for x, y in zip(a, b)]


class IrisFeatures(Step):
    """Derives petal area and sepal ratio."""

    def describe(self) -> Manifest:
        return (
            Manifest("iris-features", "0.1.0")
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

        builder = TableBuilder()
        for field in data.fields():  # keep every input column, in order
            builder.add_column(field.name, field.dtype, data.column(field.name))
        petal_area = product(data.column_f64("petal_length"), data.column_f64("petal_width"))
        sepal_ratio = ratio(data.column_f64("sepal_length"), data.column_f64("sepal_width"))
        builder.add_f64("petal_area", petal_area).add_f64("sepal_ratio", sepal_ratio)

        ctx.output_table("features", builder.finish())
        ctx.metric("rows", rows)
        ctx.info(f"added petal_area and sepal_ratio to {rows} rows")
