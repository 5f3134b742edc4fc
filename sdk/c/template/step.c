/*
 * A sluice step in C: scales one numeric column by a factor.
 *
 * Build:   sluice component build           (-> build/scale-c.wasm)
 * Check:   sluice component check build/scale-c.wasm --inputs samples
 * Inspect: sluice component inspect build/scale-c.wasm
 *
 * The build compiles every .c file here and in bindings/ (the bindings
 * wit-bindgen generated from wit/) with sluice.h, for wasm32-wasi as a
 * reactor, and makes the core module a component with the WASI preview1
 * reactor adapter. By hand, with wasm-tools and the adapter of wasmtime 48:
 *
 *   clang-19 --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra \
 *         -Wl,--strip-all -I bindings -I . \
 *         step.c bindings/step.c bindings/step_component_type.o -o core.wasm
 *   wasm-tools component new core.wasm \
 *         --adapt wasi_snapshot_preview1=wasi_snapshot_preview1.reactor.wasm -o step.wasm
 *
 * Read the ownership rules at the top of sluice.h before changing the
 * manifest: every string it holds must be on the heap (the builders copy).
 */
#include "sluice.h"

void exports_step_describe(step_manifest_t *ret) {
    *ret = sluice_manifest_new("scale-c", "0.1.0", "Multiplies one numeric column by a factor.");
    sluice_manifest_input_table(ret, "data", "The rows to scale.");
    sluice_manifest_output_table(ret, "scaled", NULL);
    sluice_manifest_param_text_required(ret, "column", "The column to scale.");
    sluice_manifest_param_float_default(ret, "factor", 2.0, NULL);
}

bool exports_step_run(step_step_error_t *err) {
    bool ok = false;
    char *column = NULL;
    double factor = 0.0;
    sluice_table_t data = {0}, scaled = {0};
    bool have_data = false, have_scaled = false;
    sluice_column_t values = {0};

    if (!sluice_param_text("column", &column, err)) goto done;
    if (!sluice_param_float("factor", &factor, err)) goto done;
    if (factor == 0.0) {
        sluice_error_invalid_input(err, "factor must not be zero");
        goto done;
    }
    if (!sluice_input_table("data", &data, err)) goto done;
    have_data = true;
    /* A missing column, or one that is not numeric, is an invalid-input error. */
    if (!sluice_table_column_f64(data, column, &values, err)) goto done;

    double *v = values.values.val.float64.ptr;
    size_t rows = values.values.val.float64.len;
    for (size_t i = 0; i < rows; i++) v[i] *= factor;
    /* Null rows stay null (listed in values.nulls); put their placeholder
     * back to 0.0 so the bytes never depend on what the multiply made. */
    for (size_t k = 0; k < values.nulls.len; k++) v[values.nulls.ptr[k]] = 0.0;

    if (!sluice_table_from_column(column, &values, &scaled, err)) goto done;
    have_scaled = true;

    sluice_metric("rows", (double)sluice_table_num_rows(data));
    char f[SLUICE_F64_BUF];
    sluice_log_info("scaled `%s` by %s", column, sluice_fmt_f64(factor, f));
    ok = sluice_output_table("scaled", scaled, err);

done:
    sluice_column_free(&values);
    if (have_scaled) sluice_table_drop(scaled);
    if (have_data) sluice_table_drop(data);
    free(column);
    return ok;
}
