# Step 2 of the iris pipeline: fit a nearest-centroid classifier on the prepared data and score it.
import argparse
import json
import os

import pandas as pd
from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--input", required=True)
parser.add_argument("--model", required=True)
args = parser.parse_args()

run = Run.get_context()
train = pd.read_csv(os.path.join(args.input, "train.csv"))
test = pd.read_csv(os.path.join(args.input, "test.csv"))
features = [c for c in train.columns if c != "species"]

centroids = train.groupby("species")[features].mean()
distances = {sp: ((test[features] - centroids.loc[sp]) ** 2).sum(axis=1) for sp in centroids.index}
predicted = pd.DataFrame(distances).idxmin(axis=1)
accuracy = float((predicted == test["species"]).mean())

os.makedirs(args.model, exist_ok=True)
with open(os.path.join(args.model, "model.json"), "w") as fh:
    json.dump({"features": features, "centroids": centroids.to_dict(orient="index")}, fh, indent=1)
run.log("accuracy", accuracy)
for species, row in centroids.iterrows():
    run.log_row("centroids", species=species, **{k: float(v) for k, v in row.items()})
print(f"accuracy on {len(test)} held-out rows: {accuracy:.3f}")
