//! The SDK's documentation example (sdk/rust/src/lib.rs), compiled and run
//! by the end-to-end tests so the example cannot rot.

use sluice_sdk::{Context, Manifest, Param, Port, Step, StepError, TableBuilder, export_step};

struct Scale;

impl Step for Scale {
    fn describe() -> Manifest {
        Manifest::new("scale", "0.1.0")
            .doc("Multiplies one numeric column by a factor.")
            .input(Port::table("data").doc("The rows to scale."))
            .output(Port::table("scaled"))
            .param(Param::text("column").required().doc("The column to scale."))
            .param(Param::float("factor").default(2.0))
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let column: String = ctx.param("column")?;
        let factor: f64 = ctx.param("factor")?;
        let data = ctx.input_table("data")?;
        // A missing column or one that is not numeric is an InvalidInput error.
        let values = data.column_f64(&column)?;
        if factor == 0.0 {
            return Err(StepError::invalid_input("factor must not be zero"));
        }
        let scaled = values.into_iter().map(|v| v.map(|x| x * factor)).collect();
        let table = TableBuilder::new().add_f64(&column, scaled)?.finish()?;
        ctx.metric("rows", data.num_rows() as f64);
        ctx.info(format!("scaled `{column}` by {factor}"));
        ctx.output_table("scaled", &table)
    }
}

export_step!(Scale);
