/*
 * sluice.h — write a sluice pipeline step in C.
 *
 * A small, header-only helper over the C bindings that wit-bindgen-c
 * generates for the `step` world of wit/pipeline.wit (`bindings/step.h`,
 * `bindings/step.c`, `bindings/step_component_type.o`). Plain C11; needs
 * nothing beyond wasi-libc. Everything here is `static inline` and prefixed
 * `sluice_` (the generated names are all `sluice_pipeline_…` or `step_…`);
 * names starting `sluice__` are internal.
 *
 * A step implements the two exports the bindings declare:
 *
 *     void exports_step_describe(step_manifest_t *ret);
 *     bool exports_step_run(step_step_error_t *err);   // true = ok
 *
 * See template/step.c for a complete step.
 *
 * Build (one clang call compiles and links; wasi-libc's sysroot):
 *
 *     clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra \
 *           -ffile-prefix-map=$PWD=. -Wl,--strip-all \
 *           -I bindings -I <dir of sluice.h> \
 *           step.c bindings/step.c bindings/step_component_type.o -o core.wasm
 *
 * then wrap core.wasm into a component with wit-component
 * (ComponentEncoder … .adapter("wasi_snapshot_preview1", <the preview1
 * REACTOR adapter>)). `sluice component build` does both.
 *   - The `component-type:step` custom section (the WIT world, from
 *     step_component_type.o) must survive into core.wasm. With lld 19,
 *     `-Wl,--strip-all` (= clang `-s`) keeps it and drops the DWARF that
 *     wasi-libc's libc.a carries even without -g, plus the `name`,
 *     `producers` and `target_features` sections; `-Wl,--strip-debug`
 *     keeps it and drops the DWARF only. `llvm-strip --strip-all` keeps it
 *     too. Without any strip, core.wasm is ~3.5x larger (DWARF).
 *   - `-mexec-model=reactor` is a link option: clang rejects it together
 *     with `-c` ("unsupported option"), so when compiling separately pass
 *     it to the link step only.
 *   - The build is reproducible without -g (same bytes from any folder,
 *     relative or absolute paths). With -g, the folder leaks into DWARF
 *     unless `-ffile-prefix-map=$PWD=.` is given and the build runs in the
 *     project folder with relative paths.
 *
 * =====================================================================
 * OWNERSHIP RULES of wit-bindgen's C bindings (read this once)
 * =====================================================================
 *
 * Strings: `step_string_t` is {uint8_t *ptr; size_t len} — UTF-8, NOT
 * NUL-terminated. Print one with `printf(SLUICE_STR_FMT, SLUICE_STR_ARG(s))`
 * or copy it to a C string with `sluice_cstr`.
 *
 * 1. Arguments you pass to an import (host function) are BORROWED: the
 *    host copies what it needs during the call; you keep ownership and free
 *    (or not) afterwards. A non-owning view of a C string is fine here:
 *    `step_string_t s = sluice_str("data");` (or the generated
 *    `step_string_set`, which does the same). Lists likewise (e.g. a column
 *    passed to `…table_builder_add_column` stays yours).
 *
 * 2. What an import RETURNS (through its `ret`/`err` out-pointers) is OWNED
 *    by you, allocated with malloc (via `cabi_realloc`). Free it with the
 *    generated free function of its type: `step_string_free`,
 *    `sluice_pipeline_tables_column_free`, `step_list_string_free`,
 *    `sluice_pipeline_types_value_free` (for `…context_param`'s value),
 *    `sluice_pipeline_tables_list_field_free`, … (each `*_t` has a
 *    `*_free`). Functions returning `bool` + `ret` + `err` fill exactly one
 *    of them: `ret` when they return true, `err` when false — free only
 *    the one that was filled. (Functions with an option result, such as
 *    `sluice_pipeline_context_param`, return `is_some` and fill `ret` only
 *    then.) An EMPTY string or list returned by the host has len 0 and a
 *    dangling non-NULL ptr (the canonical ABI's zero-size allocation is
 *    the alignment, e.g. (void *)8): never pass such a ptr to free() or
 *    realloc() yourself; the `*_free` functions test len > 0 first.
 *
 * 3. What YOUR EXPORTS RETURN is given away: after the host has read it,
 *    the generated post-return code (`cabi_post_describe`, `cabi_post_run`)
 *    calls free() on every string and list in it whose length is > 0.
 *    So in `exports_step_describe` EVERY string in the manifest (name,
 *    version, doc, each port's name and doc, each param's name, doc and
 *    text/json default) and every list (inputs, outputs, params) must be
 *    heap-allocated with malloc — a string literal or a static/stack
 *    buffer is passed to free() and CRASHES the call (seen: "describe()
 *    failed: crashed: out of bounds memory access"), or corrupts the heap.
 *    The same holds for the message in the `step_step_error_t` that
 *    `exports_step_run` fills when it returns false. (An empty string with
 *    len 0 is never freed; `{NULL, 0}` is a valid empty string.) The
 *    `sluice_manifest_*` builders and `sluice_error_*` helpers below copy
 *    every string to the heap, so use them and this cannot go wrong.
 *    Do not free anything you returned yourself, and do not keep pointers
 *    into it: it is gone after the call.
 *
 * 4. Resources (host objects: `table`, `table-builder`, `model`) are i32
 *    handles wrapped in structs:
 *      - `…_own_table_t` is an owning handle (returned by `input_table`,
 *        `slice`, `filter`, `table_builder_finish`, …). Drop it exactly
 *        once with `sluice_pipeline_tables_table_drop_own(h)`
 *        (`sluice_table_drop`). Forgetting is only a leak until the run
 *        ends (the host frees the instance); dropping twice traps.
 *      - `…_borrow_table_t` is what methods and `output_table` take. Make
 *        one from an own handle with `sluice_pipeline_tables_borrow_table(own)`
 *        (just the same i32, no call into the host; the borrow is valid
 *        until you drop the own handle). Passing a borrow never consumes the
 *        table. NEVER call `…_table_drop_borrow` on such a borrow: for an
 *        imported resource it calls the very same `[resource-drop]` as
 *        `drop_own`, i.e. it drops the table, and the later `drop_own`
 *        traps. Borrows need no drop in the `step` world.
 *      - the same holds for `table-builder` (`…_constructor_table_builder`,
 *        `…_table_builder_drop_own`) and `model` (`…_ml_model_drop_own`,
 *        `sluice_pipeline_ml_borrow_model`).
 *      - `output_table(port, borrow)` records the table's current content;
 *        you still own the table and drop it afterwards.
 *
 * 5. Tables as the host returns them hold nulls out of band: a
 *    `sluice_pipeline_tables_column_t` is a `values` variant (tag + list)
 *    plus `nulls`, the ascending row indices that are null; the value at a
 *    null row is a placeholder (false, 0, 0.0 or ""). Building a table
 *    takes the same shape.
 *
 * 6. Other pitfalls: stdout/stderr go nowhere useful — log through
 *    `sluice_log_*`. There are no files, environment or arguments. A trap
 *    (abort(), an out-of-bounds access, a failed malloc) fails the step
 *    without a message; prefer returning `sluice_error_failed(…)`.
 *
 * Errors the host reports for inputs and outputs (an unbound port, an
 *    output over the size limit …) become `failed` with the host's message
 *    unchanged, as in the Rust SDK. A missing or mistyped parameter or
 *    column is `invalid-input`, with the Rust SDK's messages.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "step.h"

#if defined(__GNUC__) || defined(__clang__)
#define SLUICE__PRINTF(fmt_index, first_arg) \
    __attribute__((__format__(__printf__, fmt_index, first_arg)))
#else
#define SLUICE__PRINTF(fmt_index, first_arg)
#endif

/* Short names for the generated types used most. */
typedef sluice_pipeline_tables_own_table_t sluice_table_t;
typedef sluice_pipeline_tables_own_table_builder_t sluice_builder_t;
typedef sluice_pipeline_tables_column_t sluice_column_t;

/* Rows read per `column-chunk` call by sluice_table_column_f64 (as the
 * Rust SDK: a column of any length moves, one chunk at a time). */
#define SLUICE_CHUNK_ROWS ((uint64_t)1 << 20)

/* ------------------------------------------------------------------ */
/* Memory and strings                                                  */
/* ------------------------------------------------------------------ */

/* malloc/realloc that trap on exhaustion, as the generated cabi_realloc does. */
static inline void *sluice__xrealloc(void *ptr, size_t size) {
    void *p = realloc(ptr, size ? size : 1);
    if (!p) abort();
    return p;
}

/* Grows a list the bindings may have filled: an EMPTY list returned by the
 * host has a dangling non-NULL ptr (the canonical ABI hands back the
 * alignment, e.g. (void *)8, for a zero-size allocation), so realloc from
 * NULL when len is 0. The same is why only the generated *_free functions
 * (which test len > 0) may free host-returned lists. */
static inline void *sluice__grow(void *ptr, size_t len, size_t new_size) {
    return sluice__xrealloc(len ? ptr : NULL, new_size);
}

/* Format and arguments to print a step_string_t with printf:
 *   printf("name: " SLUICE_STR_FMT "\n", SLUICE_STR_ARG(s)); */
#define SLUICE_STR_FMT "%.*s"
#define SLUICE_STR_ARG(s) ((int)(s).len), ((const char *)(s).ptr)

/* A BORROWED view of a NUL-terminated C string, for passing to imports.
 * No copy: never return it from an export. NULL gives the empty string. */
static inline step_string_t sluice_str(const char *s) {
    step_string_t r;
    r.ptr = (uint8_t *)(uintptr_t)s;
    r.len = s ? strlen(s) : 0;
    return r;
}

/* An OWNED heap copy of `len` bytes at `s` (empty: {NULL, 0}). */
static inline step_string_t sluice_str_dup_n(const char *s, size_t len) {
    step_string_t r = {NULL, 0};
    if (len > 0) {
        r.ptr = (uint8_t *)sluice__xrealloc(NULL, len);
        memcpy(r.ptr, s, len);
        r.len = len;
    }
    return r;
}

/* An OWNED heap copy of a C string (NULL: the empty string). */
static inline step_string_t sluice_str_dup(const char *s) {
    return sluice_str_dup_n(s, s ? strlen(s) : 0);
}

/* An OWNED heap string from a printf format (va_list form). */
static inline step_string_t sluice_str_vformat(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    step_string_t r = {NULL, 0};
    if (n > 0) {
        char *buf = (char *)sluice__xrealloc(NULL, (size_t)n + 1);
        vsnprintf(buf, (size_t)n + 1, fmt, ap);
        r.ptr = (uint8_t *)buf;
        r.len = (size_t)n;
    }
    return r;
}

/* An OWNED heap string from a printf format. */
SLUICE__PRINTF(1, 2)
static inline step_string_t sluice_str_format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    step_string_t r = sluice_str_vformat(fmt, ap);
    va_end(ap);
    return r;
}

/* A malloc'd NUL-terminated copy of a step_string_t; free() it. */
static inline char *sluice_cstr(const step_string_t *s) {
    char *c = (char *)sluice__xrealloc(NULL, s->len + 1);
    if (s->len) memcpy(c, s->ptr, s->len);
    c[s->len] = '\0';
    return c;
}

/* Whether a step_string_t equals a C string. */
static inline bool sluice_str_eq(const step_string_t *s, const char *c) {
    size_t n = strlen(c);
    return s->len == n && (n == 0 || memcmp(s->ptr, c, n) == 0);
}

/* ------------------------------------------------------------------ */
/* Formatting an f64 the way Rust's `{}` (Display) does                */
/* ------------------------------------------------------------------ */

/* Enough for any f64 in positional notation (5e-324 has 324 decimals). */
#define SLUICE_F64_BUF 400

/* Writes `x` to `buf` (SLUICE_F64_BUF bytes) as Rust's `format!("{}", x)`
 * prints an f64, and returns `buf`: the shortest digits that read back as
 * the same double, never in exponent notation (2 → "2", 1.5 → "1.5",
 * 1e21 → "1000000000000000000000", 1e-7 → "0.0000001", -0.0 → "-0",
 * NaN → "NaN", infinity → "inf"/"-inf"). Of two shortest candidates it
 * picks the nearer, and of two equally near the larger, as Rust does
 * (checked equal to Rust's output on 316,306 doubles: every power of two
 * and its neighbours, 200,000 random bit patterns, short decimals, large
 * integers, subnormals). Uses about 2 KiB of stack. */
static inline char *sluice_fmt_f64(double x, char *buf) {
    if (isnan(x)) {
        strcpy(buf, "NaN");
        return buf;
    }
    char *o = buf;
    if (signbit(x)) {
        *o++ = '-';
        x = -x;
    }
    if (isinf(x)) {
        strcpy(o, "inf");
        return buf;
    }
    if (x == 0) {
        strcpy(o, "0");
        return buf;
    }
    /* Shortest: the fewest significant digits p for which some p-digit
     * decimal reads back as x; of two such, the nearer; of two equally
     * near, the larger (as Rust's Grisu/Dragon). From the exact decimal
     * expansion of x (at most 767 significant digits): the first p digits,
     * rounded half up; if that does not read back and was rounded down,
     * the next p-digit decimal up may (at a power of two the interval that
     * reads back as x is twice as wide above x as below). */
    char exact[800];
    snprintf(exact, sizeof exact, "%.766e", x);
    char all[800];
    int na = 0;
    const char *q = exact;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') all[na++] = *q;
    int e0 = atoi(q + 1);
    char digits[24];
    int nd = 0, exp10 = e0;
    for (int p = 1; p <= 17; p++) {
        bool up_first = all[p] >= '5';
        for (int attempt = 0; attempt < 2; attempt++) {
            bool up = attempt == 0 ? up_first : true;
            if (attempt == 1 && up_first) break; /* already tried the one above */
            memcpy(digits, all, (size_t)p);
            digits[p] = '\0';
            exp10 = e0;
            if (up) {
                int i = p - 1;
                while (i >= 0 && digits[i] == '9') digits[i--] = '0';
                if (i < 0) { /* 99…9 + 1 = 100…0 */
                    digits[0] = '1';
                    exp10++;
                } else {
                    digits[i]++;
                }
            }
            char t[48];
            snprintf(t, sizeof t, "%c.%se%d", digits[0], digits + 1, exp10);
            if (strtod(t, NULL) == x) {
                nd = p;
                break;
            }
        }
        if (nd) break;
    }
    while (nd > 1 && digits[nd - 1] == '0') nd--; /* 1.50 → 1.5 */
    /* value = 0.d1d2…dn × 10^(exp10 + 1) */
    int point = exp10 + 1;
    if (point <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -point; i++) *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else if (point >= nd) {
        memcpy(o, digits, (size_t)nd);
        o += nd;
        for (int i = 0; i < point - nd; i++) *o++ = '0';
    } else {
        memcpy(o, digits, (size_t)point);
        o += point;
        *o++ = '.';
        memcpy(o, digits + point, (size_t)(nd - point));
        o += nd - point;
    }
    *o = '\0';
    return buf;
}

/* ------------------------------------------------------------------ */
/* Manifest builder (for exports_step_describe)                        */
/* ------------------------------------------------------------------ */
/*
 *     void exports_step_describe(step_manifest_t *ret) {
 *         *ret = sluice_manifest_new("scale-c", "0.1.0", "Multiplies …");
 *         sluice_manifest_input_table(ret, "data", "The rows to scale.");
 *         sluice_manifest_output_table(ret, "scaled", NULL);
 *         sluice_manifest_param_text_required(ret, "column", "The column.");
 *         sluice_manifest_param_float_default(ret, "factor", 2.0, NULL);
 *     }
 *
 * Every string is copied to the heap (rule 3 above); a NULL doc is "".
 */

/* A manifest with no ports and no params. */
static inline step_manifest_t sluice_manifest_new(const char *name, const char *version,
                                                  const char *doc) {
    step_manifest_t m;
    memset(&m, 0, sizeof m);
    m.name = sluice_str_dup(name);
    m.version = sluice_str_dup(version);
    m.doc = sluice_str_dup(doc);
    return m;
}

static inline void sluice__push_port(sluice_pipeline_types_list_port_t *list, const char *name,
                                     sluice_pipeline_types_artifact_kind_t kind, bool optional,
                                     const char *doc) {
    list->ptr = (sluice_pipeline_types_port_t *)sluice__xrealloc(
        list->ptr, (list->len + 1) * sizeof *list->ptr);
    sluice_pipeline_types_port_t *p = &list->ptr[list->len++];
    memset(p, 0, sizeof *p);
    p->name = sluice_str_dup(name);
    p->kind = kind;
    p->optional = optional;
    p->doc = sluice_str_dup(doc);
}

/* An input port of any kind (SLUICE_PIPELINE_TYPES_ARTIFACT_KIND_…);
 * an optional one may be left unbound by the spec (see
 * sluice_pipeline_context_has_input). */
static inline void sluice_manifest_input(step_manifest_t *m, const char *name,
                                         sluice_pipeline_types_artifact_kind_t kind, bool optional,
                                         const char *doc) {
    sluice__push_port(&m->inputs, name, kind, optional, doc);
}

/* A required `table` input. */
static inline void sluice_manifest_input_table(step_manifest_t *m, const char *name,
                                               const char *doc) {
    sluice_manifest_input(m, name, SLUICE_PIPELINE_TYPES_ARTIFACT_KIND_TABLE, false, doc);
}

/* An output port of any kind (outputs are never optional). */
static inline void sluice_manifest_output(step_manifest_t *m, const char *name,
                                          sluice_pipeline_types_artifact_kind_t kind,
                                          const char *doc) {
    sluice__push_port(&m->outputs, name, kind, false, doc);
}

/* A `table` output. */
static inline void sluice_manifest_output_table(step_manifest_t *m, const char *name,
                                                const char *doc) {
    sluice_manifest_output(m, name, SLUICE_PIPELINE_TYPES_ARTIFACT_KIND_TABLE, doc);
}

/* A parameter: its type (SLUICE_PIPELINE_TYPES_VALUE_TYPE_…), whether the
 * spec must set it, and its default (NULL for none; copied, text and json
 * strings included). As in the Rust SDK, a required param has no default. */
static inline void sluice_manifest_param(step_manifest_t *m, const char *name,
                                         sluice_pipeline_types_value_type_t type, bool required,
                                         const sluice_pipeline_types_value_t *dflt,
                                         const char *doc) {
    sluice_pipeline_types_list_param_spec_t *list = &m->params;
    list->ptr = (sluice_pipeline_types_param_spec_t *)sluice__xrealloc(
        list->ptr, (list->len + 1) * sizeof *list->ptr);
    sluice_pipeline_types_param_spec_t *p = &list->ptr[list->len++];
    memset(p, 0, sizeof *p);
    p->name = sluice_str_dup(name);
    p->value_type = type;
    p->required = required;
    if (dflt && !required) {
        p->default_.is_some = true;
        p->default_.val = *dflt;
        if (dflt->tag == SLUICE_PIPELINE_TYPES_VALUE_TEXT ||
            dflt->tag == SLUICE_PIPELINE_TYPES_VALUE_JSON) {
            /* text and json share the union slot */
            p->default_.val.val.text =
                sluice_str_dup_n((const char *)dflt->val.text.ptr, dflt->val.text.len);
        }
    }
    p->doc = sluice_str_dup(doc);
}

/* An optional parameter with no default (reads as unset when the spec
 * leaves it out; see sluice_param_is_set). */
static inline void sluice_manifest_param_optional(step_manifest_t *m, const char *name,
                                                  sluice_pipeline_types_value_type_t type,
                                                  const char *doc) {
    sluice_manifest_param(m, name, type, false, NULL, doc);
}

static inline void sluice_manifest_param_text_required(step_manifest_t *m, const char *name,
                                                       const char *doc) {
    sluice_manifest_param(m, name, SLUICE_PIPELINE_TYPES_VALUE_TYPE_TEXT, true, NULL, doc);
}

static inline void sluice_manifest_param_text_default(step_manifest_t *m, const char *name,
                                                      const char *dflt, const char *doc) {
    sluice_pipeline_types_value_t v;
    v.tag = SLUICE_PIPELINE_TYPES_VALUE_TEXT;
    v.val.text = sluice_str(dflt); /* borrowed; sluice_manifest_param copies it */
    sluice_manifest_param(m, name, SLUICE_PIPELINE_TYPES_VALUE_TYPE_TEXT, false, &v, doc);
}

/* A float param; the spec may also give an integer. */
static inline void sluice_manifest_param_float_required(step_manifest_t *m, const char *name,
                                                        const char *doc) {
    sluice_manifest_param(m, name, SLUICE_PIPELINE_TYPES_VALUE_TYPE_FLOAT, true, NULL, doc);
}

static inline void sluice_manifest_param_float_default(step_manifest_t *m, const char *name,
                                                       double dflt, const char *doc) {
    sluice_pipeline_types_value_t v;
    v.tag = SLUICE_PIPELINE_TYPES_VALUE_FLOAT;
    v.val.float_ = dflt;
    sluice_manifest_param(m, name, SLUICE_PIPELINE_TYPES_VALUE_TYPE_FLOAT, false, &v, doc);
}

static inline void sluice_manifest_param_int_required(step_manifest_t *m, const char *name,
                                                      const char *doc) {
    sluice_manifest_param(m, name, SLUICE_PIPELINE_TYPES_VALUE_TYPE_INTEGER, true, NULL, doc);
}

static inline void sluice_manifest_param_int_default(step_manifest_t *m, const char *name,
                                                     int64_t dflt, const char *doc) {
    sluice_pipeline_types_value_t v;
    v.tag = SLUICE_PIPELINE_TYPES_VALUE_INTEGER;
    v.val.integer = dflt;
    sluice_manifest_param(m, name, SLUICE_PIPELINE_TYPES_VALUE_TYPE_INTEGER, false, &v, doc);
}

static inline void sluice_manifest_param_bool_default(step_manifest_t *m, const char *name,
                                                      bool dflt, const char *doc) {
    sluice_pipeline_types_value_t v;
    v.tag = SLUICE_PIPELINE_TYPES_VALUE_BOOLEAN;
    v.val.boolean = dflt;
    sluice_manifest_param(m, name, SLUICE_PIPELINE_TYPES_VALUE_TYPE_BOOLEAN, false, &v, doc);
}

/* ------------------------------------------------------------------ */
/* Errors (for exports_step_run)                                       */
/* ------------------------------------------------------------------ */
/*
 * Each sets *err to one case of step-error with a heap-allocated,
 * printf-formatted message and returns false, so a step can write
 *     return sluice_error_invalid_input(err, "factor must not be zero");
 * Set *err once: a second call leaks the first message (harmless).
 */

static inline bool sluice_error_v(step_step_error_t *err, uint8_t tag, const char *fmt,
                                  va_list ap) {
    err->tag = tag;
    /* invalid_input, rejected and failed share the union slot */
    err->val.failed = sluice_str_vformat(fmt, ap);
    return false;
}

/* The inputs or params break the step's contract; never retried. */
SLUICE__PRINTF(2, 3)
static inline bool sluice_error_invalid_input(step_step_error_t *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sluice_error_v(err, SLUICE_PIPELINE_TYPES_STEP_ERROR_INVALID_INPUT, fmt, ap);
    va_end(ap);
    return false;
}

/* A validation gate said no; never retried, outputs not blessed. */
SLUICE__PRINTF(2, 3)
static inline bool sluice_error_rejected(step_step_error_t *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sluice_error_v(err, SLUICE_PIPELINE_TYPES_STEP_ERROR_REJECTED, fmt, ap);
    va_end(ap);
    return false;
}

/* Anything else; retried when the step allows retries. */
SLUICE__PRINTF(2, 3)
static inline bool sluice_error_failed(step_step_error_t *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sluice_error_v(err, SLUICE_PIPELINE_TYPES_STEP_ERROR_FAILED, fmt, ap);
    va_end(ap);
    return false;
}

/* Sets *err from a host error message `msg` (owned; freed here):
 * "<prefix>: <msg>", or the message alone when prefix is NULL. */
static inline bool sluice__error_host(step_step_error_t *err, uint8_t tag, const char *prefix,
                                      step_string_t *msg) {
    err->tag = tag;
    if (prefix) {
        err->val.failed = sluice_str_format("%s: " SLUICE_STR_FMT, prefix, SLUICE_STR_ARG(*msg));
        step_string_free(msg);
    } else {
        err->val.failed = *msg; /* hand the host's heap string on as is */
        msg->ptr = NULL;
        msg->len = 0;
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* Logging, metrics, progress                                          */
/* ------------------------------------------------------------------ */

static inline void sluice_log_v(sluice_pipeline_types_log_level_t level, const char *fmt,
                                va_list ap) {
    step_string_t msg = sluice_str_vformat(fmt, ap);
    sluice_pipeline_context_log(level, &msg);
    step_string_free(&msg);
}

#define SLUICE__LOG_FN(fn, LEVEL)                                          \
    SLUICE__PRINTF(1, 2)                                                   \
    static inline void fn(const char *fmt, ...) {                          \
        va_list ap;                                                        \
        va_start(ap, fmt);                                                 \
        sluice_log_v(SLUICE_PIPELINE_TYPES_LOG_LEVEL_##LEVEL, fmt, ap);    \
        va_end(ap);                                                        \
    }

/* printf-style lines to the step's log. */
SLUICE__LOG_FN(sluice_log_debug, DEBUG)
SLUICE__LOG_FN(sluice_log_info, INFO)
SLUICE__LOG_FN(sluice_log_warn, WARN)
SLUICE__LOG_FN(sluice_log_error, ERROR)

/* Records a named numeric metric of this execution. */
static inline void sluice_metric(const char *name, double value) {
    step_string_t n = sluice_str(name);
    sluice_pipeline_context_metric(&n, value);
}

/* Reports progress: `done` of `total` units, and a printf-style message. */
SLUICE__PRINTF(3, 4)
static inline void sluice_progress(uint64_t done, uint64_t total, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    step_string_t msg = sluice_str_vformat(fmt, ap);
    va_end(ap);
    sluice_pipeline_context_progress(done, total, &msg);
    step_string_free(&msg);
}

/* ------------------------------------------------------------------ */
/* Parameters                                                          */
/* ------------------------------------------------------------------ */
/*
 * sluice_param_X(name, &out, err): the spec's value, else the manifest
 * default. An unset parameter, or one of another type, is an invalid-input
 * error naming it (as the Rust SDK's `ctx.param`):
 *   "parameter `NAME` is not set"
 *   "parameter `NAME` must be text, found integer"
 * A float accepts an integer (converted), as the host does.
 */

static inline const char *sluice_value_type_name(uint8_t tag) {
    switch (tag) {
    case SLUICE_PIPELINE_TYPES_VALUE_BOOLEAN: return "boolean";
    case SLUICE_PIPELINE_TYPES_VALUE_INTEGER: return "integer";
    case SLUICE_PIPELINE_TYPES_VALUE_FLOAT: return "float";
    case SLUICE_PIPELINE_TYPES_VALUE_TEXT: return "text";
    case SLUICE_PIPELINE_TYPES_VALUE_JSON: return "json";
    default: return "unknown";
    }
}

/* The raw value (owned: free with sluice_pipeline_types_value_free), or
 * an error when unset. */
static inline bool sluice__param(const char *name, sluice_pipeline_types_value_t *out,
                                 step_step_error_t *err) {
    step_string_t n = sluice_str(name);
    if (!sluice_pipeline_context_param(&n, out))
        return sluice_error_invalid_input(err, "parameter `%s` is not set", name);
    return true;
}

static inline bool sluice__param_wrong(const char *name, const char *expected,
                                       sluice_pipeline_types_value_t *v, step_step_error_t *err) {
    sluice_error_invalid_input(err, "parameter `%s` must be %s, found %s", name, expected,
                               sluice_value_type_name(v->tag));
    sluice_pipeline_types_value_free(v);
    return false;
}

/* Whether the parameter has a value (set by the spec or defaulted). */
static inline bool sluice_param_is_set(const char *name) {
    step_string_t n = sluice_str(name);
    sluice_pipeline_types_value_t v;
    if (!sluice_pipeline_context_param(&n, &v)) return false;
    sluice_pipeline_types_value_free(&v);
    return true;
}

/* A text parameter, as a malloc'd NUL-terminated string (free() it). */
static inline bool sluice_param_text(const char *name, char **out, step_step_error_t *err) {
    sluice_pipeline_types_value_t v;
    if (!sluice__param(name, &v, err)) return false;
    if (v.tag != SLUICE_PIPELINE_TYPES_VALUE_TEXT) return sluice__param_wrong(name, "text", &v, err);
    *out = sluice_cstr(&v.val.text);
    sluice_pipeline_types_value_free(&v);
    return true;
}

/* A float parameter; an integer value is converted. */
static inline bool sluice_param_float(const char *name, double *out, step_step_error_t *err) {
    sluice_pipeline_types_value_t v;
    if (!sluice__param(name, &v, err)) return false;
    if (v.tag == SLUICE_PIPELINE_TYPES_VALUE_FLOAT)
        *out = v.val.float_;
    else if (v.tag == SLUICE_PIPELINE_TYPES_VALUE_INTEGER)
        *out = (double)v.val.integer;
    else
        return sluice__param_wrong(name, "a float", &v, err);
    return true;
}

/* An integer parameter. */
static inline bool sluice_param_int(const char *name, int64_t *out, step_step_error_t *err) {
    sluice_pipeline_types_value_t v;
    if (!sluice__param(name, &v, err)) return false;
    if (v.tag != SLUICE_PIPELINE_TYPES_VALUE_INTEGER)
        return sluice__param_wrong(name, "an integer", &v, err);
    *out = v.val.integer;
    return true;
}

/* A boolean parameter. */
static inline bool sluice_param_bool(const char *name, bool *out, step_step_error_t *err) {
    sluice_pipeline_types_value_t v;
    if (!sluice__param(name, &v, err)) return false;
    if (v.tag != SLUICE_PIPELINE_TYPES_VALUE_BOOLEAN)
        return sluice__param_wrong(name, "a boolean", &v, err);
    *out = v.val.boolean;
    return true;
}

/* ------------------------------------------------------------------ */
/* Inputs and outputs                                                  */
/* ------------------------------------------------------------------ */

/* The table bound to input `port` (owned: sluice_table_drop it). */
static inline bool sluice_input_table(const char *port, sluice_table_t *out,
                                      step_step_error_t *err) {
    step_string_t p = sluice_str(port);
    step_string_t e;
    if (!sluice_pipeline_context_input_table(&p, out, &e))
        return sluice__error_host(err, SLUICE_PIPELINE_TYPES_STEP_ERROR_FAILED, NULL, &e);
    return true;
}

/* Records `table` as the output on table port `port`. Borrows it: you
 * still own `table` and drop it afterwards. */
static inline bool sluice_output_table(const char *port, sluice_table_t table,
                                       step_step_error_t *err) {
    step_string_t p = sluice_str(port);
    step_string_t e;
    if (!sluice_pipeline_context_output_table(&p, sluice_pipeline_tables_borrow_table(table), &e))
        return sluice__error_host(err, SLUICE_PIPELINE_TYPES_STEP_ERROR_FAILED, NULL, &e);
    return true;
}

/* ------------------------------------------------------------------ */
/* Tables and columns                                                  */
/* ------------------------------------------------------------------ */

/* Drops an owned table handle (exactly once). */
static inline void sluice_table_drop(sluice_table_t table) {
    sluice_pipeline_tables_table_drop_own(table);
}

static inline uint64_t sluice_table_num_rows(sluice_table_t table) {
    return sluice_pipeline_tables_method_table_num_rows(sluice_pipeline_tables_borrow_table(table));
}

static inline const char *sluice_dtype_name(uint8_t values_tag) {
    switch (values_tag) {
    case SLUICE_PIPELINE_TABLES_VALUES_BOOLEAN: return "boolean";
    case SLUICE_PIPELINE_TABLES_VALUES_INT64: return "int64";
    case SLUICE_PIPELINE_TABLES_VALUES_FLOAT64: return "float64";
    case SLUICE_PIPELINE_TABLES_VALUES_UTF8: return "utf8";
    default: return "unknown";
    }
}

/* Frees a column (from sluice_table_column_f64, sluice_column_new_f64 or
 * the host) and leaves it empty. */
static inline void sluice_column_free(sluice_column_t *col) {
    sluice_pipeline_tables_column_free(col);
    memset(col, 0, sizeof *col);
}

/* Number of rows of a column. */
static inline size_t sluice_column_len(const sluice_column_t *col) {
    switch (col->values.tag) {
    case SLUICE_PIPELINE_TABLES_VALUES_BOOLEAN: return col->values.val.boolean.len;
    case SLUICE_PIPELINE_TABLES_VALUES_INT64: return col->values.val.int64.len;
    case SLUICE_PIPELINE_TABLES_VALUES_FLOAT64: return col->values.val.float64.len;
    default: return col->values.val.utf8.len;
    }
}

/* Whether row `row` is null (binary search of the ascending null list). */
static inline bool sluice_column_is_null(const sluice_column_t *col, uint64_t row) {
    size_t lo = 0, hi = col->nulls.len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (col->nulls.ptr[mid] < row)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < col->nulls.len && col->nulls.ptr[lo] == row;
}

/* A new float64 column of `len` rows, all 0.0 and none null (owned). */
static inline sluice_column_t sluice_column_new_f64(size_t len) {
    sluice_column_t c;
    memset(&c, 0, sizeof c);
    c.values.tag = SLUICE_PIPELINE_TABLES_VALUES_FLOAT64;
    c.values.val.float64.len = len;
    c.values.val.float64.ptr = len ? (double *)sluice__xrealloc(NULL, len * sizeof(double)) : NULL;
    for (size_t i = 0; i < len; i++) c.values.val.float64.ptr[i] = 0.0;
    return c;
}

/* Marks row `row` null. Rows must be marked in ascending order, each once.
 * The value slot is left as is; the host ignores it. */
static inline void sluice_column_push_null(sluice_column_t *col, uint64_t row) {
    col->nulls.ptr = (uint64_t *)sluice__grow(col->nulls.ptr, col->nulls.len,
                                              (col->nulls.len + 1) * sizeof(uint64_t));
    col->nulls.ptr[col->nulls.len++] = row;
}

/* Column `name` of `table` as float64, int64 converted (as the Rust SDK's
 * `column_f64`): on success *out is an owned column whose
 * `values.tag == SLUICE_PIPELINE_TABLES_VALUES_FLOAT64`, values in
 * `out->values.val.float64.ptr[0 .. len)`, null rows listed in
 * `out->nulls` (their value is a placeholder 0.0). Free it with
 * sluice_column_free. Read chunk by chunk, so a column of any length moves.
 *
 * Errors (invalid-input, as the Rust SDK):
 *   "column `x`: <host message naming the columns that exist>"
 *   "column `x` has type utf8, expected float64 or int64" */
static inline bool sluice_table_column_f64(sluice_table_t table, const char *name,
                                           sluice_column_t *out, step_step_error_t *err) {
    sluice_pipeline_tables_borrow_table_t b = sluice_pipeline_tables_borrow_table(table);
    uint64_t rows = sluice_pipeline_tables_method_table_num_rows(b);
    step_string_t n = sluice_str(name);
    memset(out, 0, sizeof *out);
    out->values.tag = SLUICE_PIPELINE_TABLES_VALUES_FLOAT64;
    uint64_t offset = 0;
    do {
        uint64_t want = rows - offset < SLUICE_CHUNK_ROWS ? rows - offset : SLUICE_CHUNK_ROWS;
        sluice_column_t chunk;
        step_string_t e;
        if (!sluice_pipeline_tables_method_table_column_chunk(b, &n, offset, want, &chunk, &e)) {
            sluice_column_free(out);
            err->tag = SLUICE_PIPELINE_TYPES_STEP_ERROR_INVALID_INPUT;
            err->val.invalid_input =
                sluice_str_format("column `%s`: " SLUICE_STR_FMT, name, SLUICE_STR_ARG(e));
            step_string_free(&e);
            return false;
        }
        uint8_t tag = chunk.values.tag;
        if (tag != SLUICE_PIPELINE_TABLES_VALUES_FLOAT64 && tag != SLUICE_PIPELINE_TABLES_VALUES_INT64) {
            sluice_column_free(&chunk);
            sluice_column_free(out);
            return sluice_error_invalid_input(err, "column `%s` has type %s, expected float64 or int64",
                                              name, sluice_dtype_name(tag));
        }
        /* int64 → float64 in place: both are 8 bytes a value, same list layout. */
        size_t len = chunk.values.val.int64.len;
        uint8_t *bytes = (uint8_t *)chunk.values.val.int64.ptr;
        if (tag == SLUICE_PIPELINE_TABLES_VALUES_INT64) {
            for (size_t i = 0; i < len; i++) {
                int64_t iv;
                memcpy(&iv, bytes + i * 8, 8);
                double dv = (double)iv;
                memcpy(bytes + i * 8, &dv, 8);
            }
        }
        if (offset == 0) { /* the first (often only) chunk becomes the column */
            out->values.val.float64.ptr = (double *)(void *)bytes;
            out->values.val.float64.len = len;
            out->nulls = chunk.nulls;
        } else {
            step_list_f64_t *v = &out->values.val.float64;
            if (len) {
                v->ptr = (double *)sluice__grow(v->ptr, v->len, (v->len + len) * sizeof(double));
                memcpy(v->ptr + v->len, bytes, len * sizeof(double));
            }
            step_list_u64_t *nl = &out->nulls;
            if (chunk.nulls.len) {
                nl->ptr = (uint64_t *)sluice__grow(nl->ptr, nl->len,
                                                   (nl->len + chunk.nulls.len) * sizeof(uint64_t));
                for (size_t i = 0; i < chunk.nulls.len; i++)
                    nl->ptr[nl->len + i] = chunk.nulls.ptr[i] + (uint64_t)v->len;
                nl->len += chunk.nulls.len;
            }
            v->len += len;
            sluice_column_free(&chunk); /* frees only non-empty lists */
            if (len == 0) break;        /* the host clamped: nothing more */
        }
        offset += SLUICE_CHUNK_ROWS;
    } while (offset < rows);
    return true;
}

/* A new, empty table builder (owned: sluice_builder_drop it). */
static inline sluice_builder_t sluice_builder_new(void) {
    return sluice_pipeline_tables_constructor_table_builder();
}

static inline void sluice_builder_drop(sluice_builder_t builder) {
    sluice_pipeline_tables_table_builder_drop_own(builder);
}

/* Appends column `name` (borrowed: still yours to free). Fails (failed:
 * "building a table: column `x`: …") if the name repeats, the length
 * differs from earlier columns, or a null index is out of range. */
static inline bool sluice_builder_add_column(sluice_builder_t builder, const char *name,
                                             const sluice_column_t *col, step_step_error_t *err) {
    step_string_t n = sluice_str(name);
    step_string_t e;
    if (!sluice_pipeline_tables_method_table_builder_add_column(
            sluice_pipeline_tables_borrow_table_builder(builder), &n, (sluice_column_t *)col, &e)) {
        err->tag = SLUICE_PIPELINE_TYPES_STEP_ERROR_FAILED;
        err->val.failed = sluice_str_format("building a table: column `%s`: " SLUICE_STR_FMT, name,
                                            SLUICE_STR_ARG(e));
        step_string_free(&e);
        return false;
    }
    return true;
}

/* The table built so far (owned); the builder is left empty. */
static inline bool sluice_builder_finish(sluice_builder_t builder, sluice_table_t *out,
                                         step_step_error_t *err) {
    step_string_t e;
    if (!sluice_pipeline_tables_method_table_builder_finish(
            sluice_pipeline_tables_borrow_table_builder(builder), out, &e))
        return sluice__error_host(err, SLUICE_PIPELINE_TYPES_STEP_ERROR_FAILED,
                                  "building a table", &e);
    return true;
}

/* A one-column table (owned) from column `col` (borrowed). */
static inline bool sluice_table_from_column(const char *name, const sluice_column_t *col,
                                            sluice_table_t *out, step_step_error_t *err) {
    sluice_builder_t b = sluice_builder_new();
    bool ok = sluice_builder_add_column(b, name, col, err) && sluice_builder_finish(b, out, err);
    sluice_builder_drop(b);
    return ok;
}

#endif /* SLUICE_H */
