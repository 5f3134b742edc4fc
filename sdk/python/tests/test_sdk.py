"""Unit tests for sluice_sdk on plain CPython, against a fake host.

componentize-py generates the `wit_world` bindings only inside a build; here
a small in-memory stand-in (`fake_host.py`) takes their place, so the SDK's
own logic (params, nulls, manifests, error mapping) is tested without a
build. Run: python3 -m unittest discover -s sdk/python/tests
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

import fake_host  # noqa: E402  (installs the fake `wit_world` modules)

from componentize_py_types import Err  # noqa: E402
from sluice_sdk import Context, Manifest, Param, Port, Step, StepError, TableBuilder, sql  # noqa: E402
from sluice_sdk import _export  # noqa: E402
from wit_world.imports import types as raw  # noqa: E402


class Params(unittest.TestCase):
    def setUp(self) -> None:
        fake_host.reset()

    def test_typed_params(self) -> None:
        fake_host.PARAMS.update(
            f=raw.Value_Integer(3), t=raw.Value_Text("x"), j=raw.Value_Json("[1, 2]"),
            b=raw.Value_Boolean(True),
        )
        ctx = Context()
        self.assertEqual(ctx.param("f", float), 3.0)
        self.assertIsInstance(ctx.param("f", float), float)
        self.assertEqual(ctx.param("f", int), 3)
        self.assertEqual(ctx.param("t", str), "x")
        self.assertEqual(ctx.param("j", list), [1, 2])
        self.assertIs(ctx.param("b", bool), True)
        self.assertEqual(ctx.param("j"), [1, 2])
        self.assertIsNone(ctx.param_opt("absent", int))

    def test_absent_and_wrong_type_are_invalid_input(self) -> None:
        fake_host.PARAMS["t"] = raw.Value_Text("x")
        ctx = Context()
        with self.assertRaises(StepError) as e:
            ctx.param("absent", int)
        self.assertEqual(e.exception.kind, "invalid-input")
        self.assertIn("`absent`", e.exception.message)
        with self.assertRaises(StepError) as e:
            ctx.param("t", float)
        self.assertEqual(e.exception.message, "parameter `t` must be a float, found text")
        fake_host.PARAMS["b"] = raw.Value_Boolean(True)
        with self.assertRaises(StepError):
            ctx.param("b", int)


class Tables(unittest.TestCase):
    def setUp(self) -> None:
        fake_host.reset()

    def test_round_trip_with_nulls(self) -> None:
        t = (
            TableBuilder()
            .add_f64("x", [1.5, None, 3])
            .add_i64("i", [None, 2, 3])
            .add_str("s", ["a", "b", None])
            .add_bool("b", [True, None, False])
            .finish()
        )
        self.assertEqual(t.num_rows(), 3)
        self.assertEqual([f.dtype for f in t.fields()], ["float64", "int64", "utf8", "boolean"])
        self.assertEqual(t.column_f64("x"), [1.5, None, 3.0])
        self.assertEqual(t.column_f64("i"), [None, 2.0, 3.0])
        self.assertEqual(t.column_i64("i"), [None, 2, 3])
        self.assertEqual(t.column_str("s"), ["a", "b", None])
        self.assertEqual(t.column_bool("b"), [True, None, False])
        raw_x = fake_host.last_columns["x"]
        self.assertEqual((raw_x.values.value, raw_x.nulls), ([1.5, 0.0, 3.0], [1]))

    def test_column_errors(self) -> None:
        t = TableBuilder().add_str("s", ["a"]).finish()
        with self.assertRaises(StepError) as e:
            t.column_f64("s")
        self.assertEqual(e.exception.kind, "invalid-input")
        self.assertIn("has type utf8, expected float64 or int64", e.exception.message)
        with self.assertRaises(StepError) as e:
            t.column("nope")
        self.assertEqual(e.exception.kind, "invalid-input")
        with self.assertRaises(StepError) as e:
            TableBuilder().add_f64("a", [1.0]).add_f64("b", [1.0, 2.0])
        self.assertEqual(e.exception.kind, "failed")


class HostOperations(unittest.TestCase):
    def setUp(self) -> None:
        fake_host.reset()
        fake_host.SQL_CALLS.clear()

    def test_sql_passes_named_tables_and_wraps_the_result(self) -> None:
        t = TableBuilder().add_f64("x", [1.0, 2.0]).finish()
        out = sql("SELECT x FROM data", {"data": t})
        self.assertEqual(fake_host.SQL_CALLS, [("SELECT x FROM data", ["data"])])
        self.assertEqual(out.column_f64("x"), [1.0, 2.0])

    def test_host_refusals_are_invalid_input_naming_the_operation(self) -> None:
        t = TableBuilder().add_f64("x", [1.0]).finish()
        with self.assertRaises(StepError) as e:
            sql("SELECT syntax error", {"data": t})
        self.assertEqual(e.exception.kind, "invalid-input")
        self.assertTrue(e.exception.message.startswith("sql: SQL error"), e.exception.message)
        with self.assertRaises(StepError) as e:
            t.select(["y"])
        self.assertEqual(e.exception.message, "select: the table has no column `y`")
        self.assertEqual(t.select(["x"]).column_names(), ["x"])


class Good(Step):
    def describe(self) -> Manifest:
        return (
            Manifest("good", "0.1.0")
            .doc("d")
            .input(Port.table("data").optional())
            .output(Port.metrics("m"))
            .param(Param.float("factor").default(2))
            .param(Param.json("cols").default(["a"]))
            .param(Param.text("name").required())
        )

    def run(self, ctx: Context) -> None:
        mode = ctx.param("name", str)
        if mode == "invalid":
            raise StepError.invalid_input("bad")
        if mode == "crash":
            raise ZeroDivisionError("division by zero")
        ctx.output_json("m", {"ok": True})


class Export(unittest.TestCase):
    def setUp(self) -> None:
        fake_host.reset()

    def test_manifest(self) -> None:
        m = _export.manifest_to_raw(Good().describe())
        self.assertEqual(m.inputs[0].optional, True)
        self.assertEqual(m.outputs[0].kind, raw.ArtifactKind.METRICS)
        factor, cols, name = m.params
        self.assertEqual(factor.default, raw.Value_Float(2.0))
        self.assertEqual(cols.default, raw.Value_Json('["a"]'))
        self.assertTrue(name.required)
        self.assertIsNone(name.default)

    def test_errors_map_to_step_error(self) -> None:
        fake_host.PARAMS["name"] = raw.Value_Text("invalid")
        with self.assertRaises(Err) as e:
            _export.run_step(Good)
        self.assertEqual(e.exception.value, raw.StepError_InvalidInput("bad"))
        fake_host.PARAMS["name"] = raw.Value_Text("crash")
        with self.assertRaises(Err) as e:
            _export.run_step(Good)
        self.assertEqual(e.exception.value, raw.StepError_Failed("ZeroDivisionError: division by zero"))
        self.assertIn("Traceback", fake_host.LOG[-1][1])
        fake_host.PARAMS["name"] = raw.Value_Text("ok")
        _export.run_step(Good)
        self.assertIn('"ok": true', fake_host.OUTPUTS["m"])

    def test_world_for_finds_the_one_step(self) -> None:
        world = _export.world_for(sys.modules[__name__])
        self.assertEqual(world().describe().name, "good")


if __name__ == "__main__":
    unittest.main()
