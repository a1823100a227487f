# Score two classifiers on the test rows: nearest centroid with the Spark-computed species means, and 1-NN.
import argparse
import json
import os

import pandas as pd
from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--extracted", required=True)
parser.add_argument("--aggregated", required=True)
parser.add_argument("--comp_data1", required=True)
parser.add_argument("--comp_data2", required=True)
args = parser.parse_args()

train = pd.read_csv(os.path.join(args.extracted, "train.csv"))
test = pd.read_csv(os.path.join(args.extracted, "test.csv"))
centroids = pd.read_csv(os.path.join(args.aggregated, "species_means.csv")).set_index("species")
features = [c for c in test.columns if c != "species"]


def nearest_centroid():
    dist = {sp: ((test[features] - centroids.loc[sp, features]) ** 2).sum(axis=1) for sp in centroids.index}
    return pd.DataFrame(dist).idxmin(axis=1)


def one_nearest_neighbour():
    tr = train[features].to_numpy()
    labels = train["species"].to_numpy()
    return pd.Series([labels[((tr - row) ** 2).sum(axis=1).argmin()] for row in test[features].to_numpy()],
                     index=test.index)


run = Run.get_context()
models = {"nearest_centroid": nearest_centroid, "one_nn": one_nearest_neighbour}
for (name, fit), out in zip(models.items(), (args.comp_data1, args.comp_data2), strict=True):
    accuracy = float((fit() == test["species"]).mean())
    run.log(f"accuracy_{name}", accuracy)
    os.makedirs(out, exist_ok=True)
    json.dump({"model": name, "accuracy": accuracy}, open(os.path.join(out, "score.json"), "w"))
    print(f"{name}: {accuracy:.3f} -> {out}")
