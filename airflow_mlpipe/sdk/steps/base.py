"""PipelineStep: the shared rules every v1 step constructor enforces, and its part of the PipelineSpec."""

from __future__ import annotations

import re
from typing import Any

from airflow_mlpipe.contract.exceptions import PipelineValidationError
from airflow_mlpipe.sdk.parameters import PipelineParameter
from airflow_mlpipe.sdk.pipeline_data import (
    InputPortBinding,
    OutputFileDatasetConfig,
    PipelineData,
    PipelineOutputFileDataset,
    _Output,
)

_WORD = re.compile(r"^\w+$")


def task_id_for(step_name: str) -> str:
    """Airflow task ids allow ``[A-Za-z0-9_.-]``; anything else becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", step_name).strip("_") or "step"


def _is_dataset(obj: Any) -> bool:
    """A raw FileDataset/TabularDataset (must be consumed through ``as_named_input``)."""
    return hasattr(obj, "to_definition") and hasattr(obj, "as_named_input") and not isinstance(
        obj, PipelineOutputFileDataset
    )


def _is_consumption(obj: Any) -> bool:
    return type(obj).__name__ == "DatasetConsumptionConfig"


def _is_data_reference(obj: Any) -> bool:
    return type(obj).__name__ in ("DataReference", "PortDataReference")


class PipelineStep:
    """Base of every step. Subclasses set ``kind`` and add their fields in :meth:`_kind_spec`."""

    kind = "PipelineStep"

    def __init__(self, name: str, inputs: list | None = None, outputs: list | None = None,
                 arguments: list | None = None, fix_port_name_collisions: bool = False,
                 allow_reuse: bool = True, version: str | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise PipelineValidationError(f"{self.kind}: name must be a non-empty string, got {name!r}")
        self.name = name
        self.allow_reuse = bool(allow_reuse)
        self.version = version
        self._after: list[PipelineStep] = []
        self._inputs: dict[str, dict[str, Any]] = {}
        self._input_objects: list[Any] = []
        self._outputs: dict[str, _Output] = {}
        self._parameters: dict[str, PipelineParameter] = {}
        for out in outputs or []:
            self._add_output(out)
        for inp in inputs or []:
            self._add_input(inp, from_arguments=False)
        self._arguments = [self._argument_token(a, i) for i, a in enumerate(arguments or [])]
        if fix_port_name_collisions:
            for key in list(self._inputs):
                if key in self._outputs:
                    spec = self._inputs.pop(key)
                    spec["name"] = f"INPUT_{key}"
                    self._inputs[spec["name"]] = spec
        else:
            clash = set(self._inputs) & set(self._outputs)
            if clash:
                raise PipelineValidationError(
                    f"Step {self.name!r}: input and output share the name(s) {sorted(clash)}"
                )

    # ------------------------------------------------------------------ ports
    def _err(self, argument: str, message: str) -> PipelineValidationError:
        return PipelineValidationError(f"Step {self.name!r}, argument {argument!r}: {message}")

    def _add_output(self, out: Any) -> _Output:
        if isinstance(out, PipelineOutputFileDataset):
            out = out.pipeline_data
        if not isinstance(out, _Output):
            raise self._err("outputs", f"unexpected output type {type(out).__name__}; expected PipelineData, "
                                       "OutputFileDatasetConfig or PipelineData.as_dataset()")
        existing = self._outputs.get(out.output_name)
        if existing is not None and existing is not out:
            raise self._err("outputs", f"two outputs are named {out.output_name!r}")
        out._set_producer(self)
        self._outputs[out.output_name] = out
        return out

    def _input_spec_of(self, inp: Any, argument: str) -> dict[str, Any]:
        if isinstance(inp, PipelineData | OutputFileDatasetConfig):
            return inp.input_spec()
        if isinstance(inp, InputPortBinding | PipelineOutputFileDataset):
            return inp.input_spec()
        if _is_consumption(inp):
            ds = inp.dataset
            if isinstance(ds, PipelineOutputFileDataset | _Output):
                view = ds if isinstance(ds, PipelineOutputFileDataset) else PipelineOutputFileDataset(ds)
                spec = view.input_spec()
                spec.update(name=inp.name, mode=inp.mode)
                return spec
            if isinstance(ds, PipelineParameter):
                self._parameters[ds.name] = ds
                spec = {"kind": "dataset_parameter", "name": inp.name, "mode": inp.mode,
                        "parameter": ds.name, "path_on_compute": inp.path_on_compute}
                return spec
            return inp.to_spec()
        if _is_data_reference(inp):
            if getattr(inp, "mode", None) == "upload":
                raise self._err(argument, f"DataReference {inp.data_reference_name!r} is in upload mode: nothing "
                                          "would upload what the step writes there; write results to a "
                                          "PipelineData or OutputFileDatasetConfig(destination=(datastore, path))")
            return inp.to_spec()
        if isinstance(inp, tuple) and len(inp) == 2 and isinstance(inp[0], PipelineParameter):
            param, binding = inp
            self._parameters[param.name] = param
            return {"kind": "datapath_parameter", "name": param.name, "parameter": param.name,
                    "mode": getattr(binding, "mode", "mount"), "path_on_compute": getattr(binding, "path_on_compute", None)}
        if _is_dataset(inp):
            raise self._err(argument, f"a {type(inp).__name__} must be consumed through "
                                      "dataset.as_named_input('name') (optionally .as_download()/.as_mount())")
        raise self._err(argument, f"unexpected input type {type(inp).__name__}; expected PipelineData, "
                                  "a dataset's as_named_input(...), DataReference, InputPortBinding or "
                                  "PipelineData.as_dataset()")

    def _add_input(self, inp: Any, from_arguments: bool) -> dict[str, Any]:
        spec = self._input_spec_of(inp, "arguments" if from_arguments else "inputs")
        name = spec["name"]
        if not _WORD.match(name):
            raise self._err("inputs", f"input name {name!r} must match \\w+ (letters, digits, '_')")
        existing = self._inputs.get(name)
        if existing is not None and existing != spec and not from_arguments:
            raise self._err("inputs", f"two different inputs are named {name!r}")
        self._inputs[name] = spec  # the form used in arguments wins (e.g. as_download() of a listed input)
        self._input_objects.append(inp)
        return spec

    # ------------------------------------------------------------------ arguments
    def _argument_token(self, arg: Any, index: int) -> dict[str, Any]:
        where = f"arguments[{index}]"
        if isinstance(arg, bool | int | float):
            return {"literal": str(arg)}
        if isinstance(arg, str):
            return {"literal": arg}
        if isinstance(arg, PipelineParameter):
            self._parameters[arg.name] = arg
            return {"parameter": arg.name}
        if isinstance(arg, OutputFileDatasetConfig):
            self._add_output(arg)
            return {"output": arg.output_name}
        if isinstance(arg, PipelineData):
            if arg.output_name in self._outputs and self._outputs[arg.output_name] is arg:
                return {"output": arg.output_name}
            if arg.name in self._inputs:
                return {"input": arg.name}
            raise self._err(where, f"PipelineData {arg.name!r} appears in arguments but is not in the "
                                   "inputs or outputs list")
        if isinstance(arg, InputPortBinding) or _is_data_reference(arg):
            name = arg.name if isinstance(arg, InputPortBinding) else arg.data_reference_name
            if name not in self._inputs:
                raise self._err(where, f"input {name!r} appears in arguments but is not in the inputs list")
            return {"input": name}
        if isinstance(arg, PipelineOutputFileDataset) and self._outputs.get(arg.pipeline_data.output_name) is \
                arg.pipeline_data:
            return {"output": arg.pipeline_data.output_name}  # the seed's as_dataset() in outputs and arguments
        if _is_consumption(arg) or isinstance(arg, PipelineOutputFileDataset):
            spec = self._add_input(arg, from_arguments=True)
            return {"input": spec["name"]}
        if _is_dataset(arg):
            raise self._err(where, f"a {type(arg).__name__} must be passed as dataset.as_named_input('name')")
        raise self._err(where, f"unsupported argument type {type(arg).__name__}; expected str, number, "
                               "PipelineParameter, PipelineData or a dataset input")

    # ------------------------------------------------------------------ graph
    def run_after(self, step: PipelineStep) -> None:
        if not isinstance(step, PipelineStep):
            raise self._err("run_after", f"expected a step, got {type(step).__name__}")
        self._after.append(step)

    @property
    def inputs(self) -> list[Any]:
        return list(self._input_objects)

    @property
    def outputs(self) -> list[_Output]:
        return list(self._outputs.values())

    def upstream_steps(self) -> list[PipelineStep]:
        """Producers of this step's inputs plus ``run_after`` steps (for closure over producers)."""
        found: list[PipelineStep] = list(self._after)
        for obj in self._input_objects:
            data = None
            if isinstance(obj, _Output):
                data = obj
            elif isinstance(obj, InputPortBinding):
                data = obj.bind_object
            elif isinstance(obj, PipelineOutputFileDataset):
                data = obj.pipeline_data
            elif _is_consumption(obj):
                ds = obj.dataset
                data = ds.pipeline_data if isinstance(ds, PipelineOutputFileDataset) else (
                    ds if isinstance(ds, _Output) else None)
            if data is not None and data.producer is not None and data.producer is not self:
                found.append(data.producer)
        return found

    def parameters(self) -> dict[str, PipelineParameter]:
        return dict(self._parameters)

    def _kind_spec(self, pipeline: Any) -> dict[str, Any]:
        return {}

    def _resolved_input(self, spec: dict[str, Any]) -> dict[str, Any]:
        source = spec.get("source")
        if not source or "_data" not in source:
            return dict(spec)
        data = source["_data"]
        if data.producer is None:
            raise self._err("inputs", f"{type(data).__name__} {data.name!r} is consumed but produced by no step: "
                                      "list it in the outputs of the step that writes it")
        return {**spec, "source": {"step": data.producer.name, "task_id": task_id_for(data.producer.name),
                                   "output": source["output"]}}

    def to_spec(self, pipeline: Any) -> dict[str, Any]:
        return {
            "name": self.name,
            "task_id": task_id_for(self.name),
            "kind": self.kind,
            "inputs": [self._resolved_input(spec) for spec in self._inputs.values()],
            "outputs": [o.output_spec() for o in self._outputs.values()],
            "arguments": list(self._arguments),
            "parameters": sorted(self._parameters),
            "allow_reuse": self.allow_reuse,
            "version": self.version,
            "after": [s.name for s in self._after],
            **self._kind_spec(pipeline),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class StepSequence:
    """v1 ``StepSequence(steps)``: run the given steps (or lists of steps) one after another."""

    def __init__(self, steps: list | None = None) -> None:
        self._steps = list(steps or [])
        previous: list[PipelineStep] = []
        for item in self._steps:
            group = _flatten(item)
            for step in group:
                for prev in previous:
                    if prev not in step._after:
                        step.run_after(prev)
            previous = group

    @property
    def steps(self) -> list[PipelineStep]:
        return [s for item in self._steps for s in _flatten(item)]


def _flatten(item: Any) -> list[PipelineStep]:
    if isinstance(item, PipelineStep):
        return [item]
    if isinstance(item, StepSequence):
        return item.steps
    if isinstance(item, list | tuple):
        return [s for sub in item for s in _flatten(sub)]
    raise PipelineValidationError(f"Pipeline steps: expected steps or lists of steps, got {type(item).__name__}")


flatten_steps = _flatten
