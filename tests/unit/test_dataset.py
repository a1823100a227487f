"""Datasets over real files: Titanic CSVs, parquet, memory:// stores, registration and materialisation."""

from __future__ import annotations

import json
import os
import uuid

import pandas as pd
import pytest

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.runtime.fingerprints import dataset_fingerprint
from airflow_mlpipe.sdk.data_reference import DataPath
from airflow_mlpipe.sdk.dataset import (
    Dataset,
    DataType,
    FileDataset,
    TabularDataset,
    materialize,
)
from airflow_mlpipe.sdk.dataset_consumption import DatasetConsumptionConfig
from airflow_mlpipe.sdk.datastore import Datastore


@pytest.fixture
def store(workspace, test_data):
    ds = Datastore.get_default(workspace)
    ds.upload_files([str(test_data / "titanic.csv")], target_path="whole", show_progress=False)
    ds.upload(str(test_data / "titanic"), target_path="parts", show_progress=False)
    return ds


def test_delimited_matches_pandas(store, test_data):
    ds = Dataset.Tabular.from_delimited_files((store, "whole/titanic.csv"))
    df = ds.to_pandas_dataframe()
    expected = pd.read_csv(test_data / "titanic.csv")
    assert df.shape == expected.shape
    assert list(df.columns) == list(expected.columns)
    assert df["Age"].isna().sum() == expected["Age"].isna().sum()
    assert df["Fare"].sum() == pytest.approx(expected["Fare"].sum())


def test_glob_and_folder_over_parts_equal_whole(store):
    whole = Dataset.Tabular.from_delimited_files((store, "whole/titanic.csv")).to_pandas_dataframe()
    for path in ("parts/*.csv", "parts/**/*.csv", "parts", [DataPath(store, "parts/part1.csv"),
                                                            (store, "parts/part2.csv")]):
        df = Dataset.Tabular.from_delimited_files(path if isinstance(path, list) else (store, path))
        got = df.to_pandas_dataframe()
        pd.testing.assert_frame_equal(got, whole, check_dtype=False)


def test_options_include_path_types_separator(store, tmp_path):
    ds = Dataset.Tabular.from_delimited_files((store, "parts"), include_path=True,
                                              set_column_types={"Survived": DataType.to_bool(),
                                                                "Pclass": DataType.to_string()})
    df = ds.to_pandas_dataframe()
    assert set(df["Path"]) == {"/part1.csv", "/part2.csv"}
    assert str(df["Survived"].dtype) == "boolean" and df["Pclass"].iloc[0] == "3"
    raw = Dataset.Tabular.from_delimited_files((store, "whole/titanic.csv"), infer_column_types=False)
    assert raw.to_pandas_dataframe()["PassengerId"].iloc[0] == "1"
    (tmp_path / "semi").mkdir()
    (tmp_path / "semi" / "a.txt").write_text("1;x\n2;y\n")
    semi = Dataset.Tabular.from_delimited_files((tmp_path / "semi").as_uri(), separator=";", header=False)
    assert semi.to_pandas_dataframe().values.tolist() == [[1, "x"], [2, "y"]]


def test_parquet_round_trip(store, tmp_path):
    frame = pd.DataFrame({"a": [1, 2, 3, 4], "b": ["w", "x", "y", "z"]})
    os.makedirs(tmp_path / "pq")
    frame.iloc[:2].to_parquet(tmp_path / "pq" / "p0.parquet", index=False)
    frame.iloc[2:].to_parquet(tmp_path / "pq" / "p1.parquet", index=False)
    (tmp_path / "pq" / "_SUCCESS").write_text("")
    store.upload(str(tmp_path / "pq"), target_path="pq", show_progress=False)
    ds = Dataset.Tabular.from_parquet_files((store, "pq"))
    pd.testing.assert_frame_equal(ds.to_pandas_dataframe(), frame, check_dtype=False)
    converted = Dataset.Tabular.from_delimited_files((store, "whole/titanic.csv")).take(7).to_parquet_files()
    converted_path = converted.to_definition()["source"]["paths"][0]["path"]
    back = Dataset.Tabular.from_parquet_files((store, converted_path))
    assert back.to_pandas_dataframe().shape == (7, 12)


def test_take_skip_split(store):
    ds = Dataset.Tabular.from_delimited_files((store, "whole/titanic.csv"))
    assert len(ds.take(5).to_pandas_dataframe()) == 5
    skipped = ds.skip(880).to_pandas_dataframe()
    assert list(skipped["PassengerId"]) == list(range(881, 892))
    assert list(ds.skip(10).take(3).to_pandas_dataframe()["PassengerId"]) == [11, 12, 13]
    a, b = ds.random_split(0.3, seed=42)
    ida, idb = set(a.to_pandas_dataframe()["PassengerId"]), set(b.to_pandas_dataframe()["PassengerId"])
    assert not ida & idb and len(ida | idb) == 891
    assert 0.2 < len(ida) / 891 < 0.4
    a2, _ = ds.random_split(0.3, seed=42)
    assert set(a2.to_pandas_dataframe()["PassengerId"]) == ida
    c, d = ds.random_split(0.5)  # no seed: still complementary and stable (seed derived from definition)
    assert len(c.to_pandas_dataframe()) + len(d.to_pandas_dataframe()) == 891
    assert c.to_definition() == ds.random_split(0.5)[0].to_definition()
    sample = ds.take_sample(0.1, seed=3).to_pandas_dataframe()
    assert 40 < len(sample) < 140
    cols = ds.keep_columns(["Name", "Age"]).drop_columns("Age").to_pandas_dataframe()
    assert list(cols.columns) == ["Name"]


def test_register_versions_and_lookup(workspace, store):
    ds = Dataset.Tabular.from_delimited_files((store, "whole/titanic.csv"))
    r1 = ds.register(workspace, "titanic", description="all rows", tags={"k": "v"})
    assert r1.version == 1 and r1.name == "titanic" and r1.id and r1.tags == {"k": "v"}
    assert ds.register(workspace, "titanic").version == 1  # identical definition → existing version
    with pytest.raises(UserErrorException, match="create_new_version"):
        ds.take(10).register(workspace, "titanic")
    r2 = ds.take(10).register(workspace, "titanic", create_new_version=True)
    assert r2.version == 2
    assert Dataset.get_by_name(workspace, "titanic").version == 2
    old = Dataset.get_by_name(workspace, "titanic", version=1)
    assert old.version == 1 and len(old.to_pandas_dataframe()) == 891
    assert Dataset.get_by_id(workspace, r1.id).name == "titanic"
    assert set(Dataset.get_all(workspace)) == {"titanic"}
    assert isinstance(Dataset.get_by_name(workspace, "titanic"), TabularDataset)
    with pytest.raises(UserErrorException, match="nope"):
        Dataset.get_by_name(workspace, "nope")


def test_definition_round_trip(workspace, store):
    ds = Dataset.Tabular.from_delimited_files((store, "parts/*.csv"), separator=",").skip(3)
    definition = ds.to_definition()
    text = json.dumps(definition)
    assert definition["source"]["paths"] == [{"datastore": "workspaceblobstore", "path": "parts/*.csv"}]
    assert definition["transforms"] == [{"op": "skip", "count": 3}]
    again = Dataset.from_definition(workspace, json.loads(text))
    assert isinstance(again, TabularDataset)
    pd.testing.assert_frame_equal(again.to_pandas_dataframe(), ds.to_pandas_dataframe())
    reg = ds.register(workspace, "parts")
    assert Dataset.from_definition(workspace, reg.to_definition()).version == 1
    files = Dataset.File.from_files((store, "parts"))
    assert isinstance(Dataset.from_definition(workspace, files.to_definition()), FileDataset)


def test_validation_errors(store, tmp_path):
    with pytest.raises(UserErrorException, match="nothere"):
        Dataset.Tabular.from_delimited_files((store, "nothere/*.csv"))
    with pytest.raises(UserErrorException, match="nothere"):
        Dataset.File.from_files((store, "nothere"))
    lazy = Dataset.File.from_files((store, "nothere"), validate=False)
    assert lazy.download(str(tmp_path / "x"), ignore_not_found=True) == []
    with pytest.raises(UserErrorException, match="http"):
        Dataset.Tabular.from_delimited_files("https://example.com/a.csv")
    with pytest.raises(UserErrorException):
        Dataset.Tabular.from_delimited_files(42)


def test_consumption_configs(store):
    tab = Dataset.Tabular.from_delimited_files((store, "whole/titanic.csv"))
    cfg = tab.as_named_input("titanic")
    assert isinstance(cfg, DatasetConsumptionConfig) and cfg.mode == "direct"
    assert str(cfg) == cfg.arg_val == "DatasetConsumptionConfig:titanic"
    spec = cfg.to_spec()
    assert spec["kind"] == "dataset" and spec["dataset"] == tab.to_definition()
    json.dumps(spec)
    with pytest.raises(UserErrorException, match="letters, digits"):
        tab.as_named_input("bad name")
    with pytest.raises(UserErrorException, match="direct"):
        tab.as_mount()
    with pytest.raises(UserErrorException, match="direct"):
        cfg.as_download()
    files = Dataset.File.from_files((store, "parts"))
    mounted = files.as_mount()
    assert mounted.mode == "mount" and mounted.name.startswith("input_") and len(mounted.name) == 14
    assert files.as_mount().name == mounted.name == Dataset.File.from_files((store, "parts")).as_download().name
    renamed = files.as_named_input("raw").as_download("/data")
    assert renamed.name == "raw" and renamed.mode == "download" and renamed.path_on_compute == "/data"
    with pytest.raises(UserErrorException, match="hdfs"):
        files.as_named_input("raw").as_hdfs()
    renamed.name = "other"
    with pytest.raises(UserErrorException):
        renamed.name = "no-dash"

    class Later:
        def to_spec(self):
            return {"kind": "parameter", "name": "p"}

    later = DatasetConsumptionConfig("p_in", Later())
    assert later.to_spec()["dataset"] == {"kind": "parameter", "name": "p"}


def test_file_dataset_paths_download_mount(store, tmp_path):
    files = Dataset.File.from_files((store, "parts"))
    assert files.to_path() == ["/part1.csv", "/part2.csv"]
    got = files.download(str(tmp_path / "dl"))
    assert sorted(os.path.basename(p) for p in got) == ["part1.csv", "part2.csv"]
    assert files.download(str(tmp_path / "dl")) == got  # identical files: fine without overwrite
    with open(got[0], "a") as handle:
        handle.write("x")
    with pytest.raises(UserErrorException, match="overwrite"):
        files.download(str(tmp_path / "dl"))
    assert files.take(1).to_path() == ["/part1.csv"] and files.skip(1).to_path() == ["/part2.csv"]
    a, b = files.random_split(0.5, seed=1)
    assert sorted(a.to_path() + b.to_path()) == ["/part1.csv", "/part2.csv"]
    with files.mount() as ctx:
        assert ctx.mount_point == store.full_path("parts")
        assert sorted(os.listdir(ctx.mount_point)) == ["part1.csv", "part2.csv"]
    with files.take(1).mount() as ctx:
        temp = ctx.mount_point
        assert os.listdir(temp) == ["part1.csv"]
    assert not os.path.exists(temp)


def test_materialize(workspace, store, tmp_path):
    folder = Dataset.File.from_files((store, "parts")).to_definition()
    single = Dataset.File.from_files((store, "parts/part1.csv")).to_definition()
    assert materialize(workspace, folder, "mount", str(tmp_path / "m1")) == store.full_path("parts")
    assert materialize(workspace, single, "mount", str(tmp_path / "m2")) == store.full_path("parts/part1.csv")
    out = materialize(workspace, folder, "download", str(tmp_path / "d1"))
    assert out == str(tmp_path / "d1") and sorted(os.listdir(out)) == ["part1.csv", "part2.csv"]
    one = materialize(workspace, single, "download", str(tmp_path / "d2"))
    assert one == str(tmp_path / "d2" / "part1.csv") and os.path.isfile(one)
    subset = Dataset.File.from_files((store, "parts")).take(1).to_definition()
    picked = materialize(workspace, subset, "mount", str(tmp_path / "d3"))
    assert os.listdir(picked) == ["part1.csv"]


def test_memory_store_end_to_end(workspace, test_data, tmp_path):
    name = f"mem_{uuid.uuid4().hex[:8]}"
    mem = Datastore.register(workspace, name, f"memory://{name}")
    mem.upload(str(test_data / "titanic"), target_path="t", show_progress=False)
    tab = Dataset.Tabular.from_delimited_files((mem, "t/*.csv"))
    assert tab.to_pandas_dataframe().shape == (891, 12)
    reg = tab.register(workspace, "mem_titanic")
    back = Dataset.from_definition(workspace, reg.to_definition())
    assert back.to_pandas_dataframe().shape == (891, 12)
    files = Dataset.File.from_files((mem, "t"))
    path = materialize(workspace, files.to_definition(), "mount", str(tmp_path / "mm"))
    assert path == str(tmp_path / "mm") and sorted(os.listdir(path)) == ["part1.csv", "part2.csv"]
    with files.mount() as ctx:
        assert sorted(os.listdir(ctx.mount_point)) == ["part1.csv", "part2.csv"]


def test_dataset_fingerprint_changes_with_data(workspace, store, tmp_path):
    definition = Dataset.File.from_files((store, "parts")).to_definition()
    before = dataset_fingerprint(workspace, definition)
    assert dataset_fingerprint(workspace, definition) == before
    extra = tmp_path / "part3.csv"
    extra.write_text("PassengerId\n999\n")
    store.upload_files([str(extra)], target_path="parts", show_progress=False)
    assert dataset_fingerprint(workspace, definition) != before
