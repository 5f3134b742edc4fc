//! `describe-panics`: a step whose `describe()` panics, for the host's
//! test that a broken manifest fails in one line carrying the panic's own
//! text (not a backtrace). Its `run` is never reached.

use sluice_sdk::{Context, Manifest, Step, StepError, export_step};

struct DescribePanics;

impl Step for DescribePanics {
    fn describe() -> Manifest {
        panic!("describe could not parse its embedded schema: unexpected `}}` at 3:14")
    }

    fn run(_ctx: &Context) -> Result<(), StepError> {
        Ok(())
    }
}

export_step!(DescribePanics);
